//! A running container's memory and CPU from the Docker stats API, computed
//! as `docker stats` computes them (the docker CLI's
//! `calculateMemUsageUnixNoCache` and `calculateCPUPercentUnix`).
//!
//! The daemon publishes a container's stats once a second; a reader holds
//! one streaming request open (`stream=true`, as `docker stats` does) and
//! each reading is the next sample, so readings come at most once a second
//! whatever the sampler's interval, and each carries the daemon's previous
//! CPU counters (`precpu_stats`) to take the CPU delta from. A one-shot
//! request would wait for the next publication anyway (up to a second).
//! bollard's types stay here: the caller gets [`ContainerStats`].

use std::pin::Pin;

use bollard::models::{ContainerCpuStats, ContainerMemoryStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::{Stream, StreamExt as _};

use crate::OrchestratorError;

/// One reading of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContainerStats {
    /// Memory in use, bytes: usage less the inactive page cache.
    pub memory_bytes: Option<u64>,
    /// CPU since the daemon's previous sample, percent of one core; `None`
    /// when there is none yet (a stream's first sample).
    pub cpu_percent: Option<f64>,
}

/// The daemon's stream of one container's stats.
type StatsStream =
    Pin<Box<dyn Stream<Item = Result<ContainerStatsResponse, bollard::errors::Error>> + Send>>;

/// Reads one container's stats again and again (see
/// [`RunningService::stats_reader`](crate::RunningService::stats_reader)).
pub struct StatsReader {
    pub(crate) client: bollard::Docker,
    pub(crate) service: String,
    pub(crate) container: String,
    pub(crate) stream: Option<StatsStream>,
    pub(crate) previous: Option<CpuCounters>,
}

impl std::fmt::Debug for StatsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsReader")
            .field("service", &self.service)
            .field("container", &self.container)
            .field("streaming", &self.stream.is_some())
            .finish()
    }
}

impl StatsReader {
    /// The container's next sample: its memory and its CPU since the
    /// previous one. Waits for the daemon's next publication (up to about
    /// a second); cancel-safe.
    pub async fn read(&mut self) -> Result<ContainerStats, OrchestratorError> {
        let fail = |reader: &StatsReader, reason: String| OrchestratorError::ReadStats {
            service: reader.service.clone(),
            container: reader.container.clone(),
            reason,
        };
        let stream = self.stream.get_or_insert_with(|| {
            let options = StatsOptionsBuilder::new().stream(true).build();
            Box::pin(self.client.stats(&self.container, Some(options)))
        });
        let response = match stream.next().await {
            Some(Ok(response)) => response,
            Some(Err(source)) => {
                // Opened again on the next read.
                self.stream = None;
                return Err(fail(self, source.to_string()));
            }
            None => {
                self.stream = None;
                return Err(fail(self, "the daemon ended the stats stream".to_owned()));
            }
        };
        let current = response.cpu_stats.as_ref().and_then(cpu_counters);
        // The daemon's previous sample, else ours (a reopened stream's first).
        let previous = response
            .precpu_stats
            .as_ref()
            .and_then(cpu_counters)
            .or(self.previous);
        let cpu_percent = previous
            .zip(current)
            .map(|(previous, current)| cpu_percent(&previous, &current));
        if current.is_some() {
            self.previous = current;
        }
        Ok(ContainerStats {
            memory_bytes: response.memory_stats.as_ref().and_then(memory_in_use),
            cpu_percent,
        })
    }
}

/// The cumulative CPU counters of one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuCounters {
    /// The container's CPU time, nanoseconds.
    total_usage: u64,
    /// The host's CPU time, nanoseconds.
    system_usage: u64,
    online_cpus: u32,
}

/// Memory as the docker CLI shows it: usage less `total_inactive_file`
/// (cgroup v1) or `inactive_file` (cgroup v2) when it is below usage, else
/// usage.
pub(crate) fn memory_in_use(memory: &ContainerMemoryStats) -> Option<u64> {
    let usage = memory.usage?;
    let stat = |key: &str| memory.stats.as_ref().and_then(|s| s.get(key)).copied();
    if let Some(inactive) = stat("total_inactive_file")
        && inactive < usage
    {
        return Some(usage - inactive);
    }
    if let Some(inactive) = stat("inactive_file")
        && inactive < usage
    {
        return Some(usage - inactive);
    }
    Some(usage)
}

/// The counters of a `cpu_stats` (or `precpu_stats`) object; `None` when
/// the daemon left it empty (the first sample of a one-shot read).
pub(crate) fn cpu_counters(cpu: &ContainerCpuStats) -> Option<CpuCounters> {
    let usage = cpu.cpu_usage.as_ref()?;
    let online_cpus = match cpu.online_cpus {
        Some(n) if n > 0 => n,
        // As the CLI does on daemons that do not send it.
        _ => usage
            .percpu_usage
            .as_ref()
            .map_or(0, |per_cpu| u32::try_from(per_cpu.len()).unwrap_or(0)),
    };
    // A stream's first sample has an empty (zeroed) `precpu_stats`: a delta
    // from it would be the container's whole life over the host's uptime.
    let system_usage = cpu.system_cpu_usage.filter(|&n| n > 0)?;
    Some(CpuCounters {
        total_usage: usage.total_usage?,
        system_usage,
        online_cpus,
    })
}

/// The docker CLI's CPU %: the container's share of the host's CPU time
/// between two readings, times the online CPUs (100 % is one core); 0 when
/// either delta is not positive.
pub(crate) fn cpu_percent(previous: &CpuCounters, current: &CpuCounters) -> f64 {
    let cpu_delta = current.total_usage as f64 - previous.total_usage as f64;
    let system_delta = current.system_usage as f64 - previous.system_usage as f64;
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * f64::from(current.online_cpus) * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerStatsResponse;

    use super::*;

    /// Memory and CPU of one stats response the daemon filled both ways
    /// (`stream=false` without `one-shot`: `precpu_stats` is its previous
    /// sample), as `docker stats` shows it.
    fn of_response(response: &ContainerStatsResponse) -> ContainerStats {
        let previous = response.precpu_stats.as_ref().and_then(cpu_counters);
        let current = response.cpu_stats.as_ref().and_then(cpu_counters);
        ContainerStats {
            memory_bytes: response.memory_stats.as_ref().and_then(memory_in_use),
            cpu_percent: previous
                .zip(current)
                .map(|(previous, current)| cpu_percent(&previous, &current)),
        }
    }

    /// `GET /containers/ID/stats?stream=false` of the spark-sim:dev
    /// container on a cgroup v1 host (Docker 20.10), as the daemon sent it.
    const CGROUP_V1: &str = include_str!("cgroup-v1.json");

    #[test]
    fn a_recorded_cgroup_v1_reading_as_docker_stats_shows_it() {
        let response: ContainerStatsResponse = serde_json::from_str(CGROUP_V1).expect("stats");
        let stats = of_response(&response);
        // usage 4325376 − total_inactive_file 3358720.
        assert_eq!(stats.memory_bytes, Some(966_656));
        // (39987643 − 33136937) / (5678040000000 − 5676030000000) × 2 × 100.
        let cpu = stats.cpu_percent.expect("both samples");
        assert!((cpu - 0.681_662).abs() < 1e-5, "{cpu}");
    }

    #[test]
    fn cgroup_v2_subtracts_inactive_file() {
        // The keys a cgroup v2 daemon sends (no `total_*`, no `cache`).
        let response: ContainerStatsResponse = serde_json::from_value(serde_json::json!({
            "memory_stats": {
                "usage": 52_428_800u64,
                "stats": {"anon": 30_000_000u64, "file": 20_000_000u64, "inactive_file": 12_428_800u64},
                "limit": 8_000_000_000u64
            },
            "cpu_stats": {
                "cpu_usage": {"total_usage": 3_000_000_000u64},
                "system_cpu_usage": 20_000_000_000u64,
                "online_cpus": 4
            },
            "precpu_stats": {
                "cpu_usage": {"total_usage": 2_000_000_000u64},
                "system_cpu_usage": 16_000_000_000u64,
                "online_cpus": 4
            }
        }))
        .expect("stats");
        let stats = of_response(&response);
        assert_eq!(stats.memory_bytes, Some(40_000_000));
        // 1 s of CPU over 4 s of host time on 4 CPUs: one core.
        assert_eq!(stats.cpu_percent, Some(100.0));
    }

    #[test]
    fn edge_cases_follow_the_cli() {
        let memory = |usage: u64, stats: &[(&str, u64)]| ContainerMemoryStats {
            usage: Some(usage),
            stats: Some(stats.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
            ..ContainerMemoryStats::default()
        };
        // An inactive cache larger than usage is not subtracted.
        assert_eq!(
            memory_in_use(&memory(100, &[("inactive_file", 200)])),
            Some(100)
        );
        assert_eq!(memory_in_use(&memory(100, &[])), Some(100));
        assert_eq!(memory_in_use(&ContainerMemoryStats::default()), None);
        // A stream's first sample has an empty or zeroed precpu: no counters.
        assert_eq!(cpu_counters(&ContainerCpuStats::default()), None);
        let zeroed: ContainerCpuStats = serde_json::from_value(serde_json::json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
        }))
        .expect("precpu");
        assert_eq!(cpu_counters(&zeroed), None);
        let at = |total_usage, system_usage| CpuCounters {
            total_usage,
            system_usage,
            online_cpus: 2,
        };
        // A counter that went backwards (a restart) reads 0, as in the CLI.
        assert_eq!(cpu_percent(&at(10, 10), &at(5, 20)), 0.0);
        assert_eq!(cpu_percent(&at(10, 10), &at(15, 20)), 100.0);
    }
}
