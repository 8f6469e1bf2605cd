//! The host PIDs of a running engine's processes (`docker top`), for the
//! GPU telemetry's per-process memory: NVML lists a GPU's processes by host
//! PID, which the container's own namespace does not show.

use bollard::query_parameters::TopOptions;

use crate::RunningService;

impl RunningService {
    /// The host PIDs of the container's processes; empty when the daemon
    /// cannot say (the figure they serve is then N/A, never an error).
    pub async fn host_pids(&self) -> Vec<u32> {
        match self
            .client
            .top_processes(&self.container_id, None::<TopOptions>)
            .await
        {
            Ok(top) => pids_of(top.titles.as_deref(), top.processes.as_deref()),
            Err(err) => {
                tracing::debug!(service = %self.service, "docker top failed: {err}");
                Vec::new()
            }
        }
    }
}

/// The `PID` column of `docker top`'s table.
fn pids_of(titles: Option<&[String]>, processes: Option<&[Vec<String>]>) -> Vec<u32> {
    let Some(pid_idx) = titles.and_then(|titles| titles.iter().position(|t| t == "PID")) else {
        return Vec::new();
    };
    processes
        .unwrap_or_default()
        .iter()
        .filter_map(|row| row.get(pid_idx)?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_column_of_a_ps_table() {
        let row = |cells: &[&str]| cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        let titles = row(&["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
        let processes = vec![
            row(&[
                "root",
                "4242",
                "4200",
                "0",
                "10:00",
                "?",
                "00:00:01",
                "vllm serve",
            ]),
            row(&[
                "root",
                "4250",
                "4242",
                "0",
                "10:00",
                "?",
                "00:00:00",
                "python -c",
            ]),
        ];
        assert_eq!(pids_of(Some(&titles), Some(&processes)), vec![4242, 4250]);
        assert_eq!(pids_of(None, Some(&processes)), Vec::<u32>::new());
    }
}
