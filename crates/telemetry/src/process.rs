//! A local process's memory and CPU from `/proc/PID`: the demo's spark-sim
//! processes and an engine `bench --pid` names.
//!
//! Memory is the resident set (`VmRSS` of `/proc/PID/status`), the closest
//! figure to what Docker reports for a container (which also leaves the
//! page cache out). CPU is the change of `utime + stime` (`/proc/PID/stat`,
//! in clock ticks) over the wall time between two readings, 100 % being one
//! core, as `docker stats` counts.

use std::path::PathBuf;
use std::time::Instant;

use crate::sampler::{Probe, ReadFuture, Reading};

/// Reads `/proc/PID/status` and `/proc/PID/stat`.
#[derive(Debug)]
pub struct ProcessProbe {
    pid: u32,
    dir: PathBuf,
    ticks_per_s: u64,
    previous: Option<(Instant, u64)>,
}

impl ProcessProbe {
    /// A probe of process `pid`.
    pub fn new(pid: u32) -> ProcessProbe {
        ProcessProbe {
            pid,
            dir: PathBuf::from(format!("/proc/{pid}")),
            ticks_per_s: rustix::param::clock_ticks_per_second().max(1),
            previous: None,
        }
    }

    fn read_now(&mut self) -> Result<Reading, String> {
        let read = |name: &str| {
            let path = self.dir.join(name);
            std::fs::read_to_string(&path).map_err(|err| {
                if err.kind() == std::io::ErrorKind::NotFound {
                    format!("process {} is gone", self.pid)
                } else {
                    format!("cannot read {}: {err}", path.display())
                }
            })
        };
        let status = read("status")?;
        let stat = read("stat")?;
        let now = Instant::now();
        let memory_bytes = parse_vm_rss_bytes(&status);
        let ticks = parse_cpu_ticks(&stat);
        let cpu_percent = match (self.previous, ticks) {
            (Some((then, before)), Some(after)) => {
                let wall_s = now.duration_since(then).as_secs_f64();
                (wall_s > 0.0).then(|| {
                    let cpu_s = after.saturating_sub(before) as f64 / self.ticks_per_s as f64;
                    cpu_s / wall_s * 100.0
                })
            }
            _ => None,
        };
        if let Some(ticks) = ticks {
            self.previous = Some((now, ticks));
        }
        if memory_bytes.is_none() {
            return Err(format!(
                "process {} has no VmRSS in {}/status (a zombie or a kernel thread)",
                self.pid,
                self.dir.display()
            ));
        }
        Ok(Reading {
            memory_bytes,
            cpu_percent,
        })
    }
}

impl Probe for ProcessProbe {
    fn source(&self) -> String {
        format!("/proc/{}", self.pid)
    }

    fn read(&mut self) -> ReadFuture<'_> {
        // Two small files of procfs: no blocking worth a thread.
        let reading = self.read_now();
        Box::pin(async move { reading })
    }
}

/// `VmRSS` of a `/proc/PID/status` text, bytes.
pub fn parse_vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

/// `utime + stime` of a `/proc/PID/stat` line, clock ticks. The command
/// name (field 2) is in parentheses and may hold spaces and parentheses, so
/// fields are counted after the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_set_from_status() {
        let status = "Name:\tspark-sim\nVmPeak:\t  20000 kB\nVmRSS:\t    5120 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss_bytes(status), Some(5120 * 1024));
        assert_eq!(parse_vm_rss_bytes("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn cpu_ticks_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (spark sim (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    120 30 0 0 20 0 4 0 12345 100000 1280 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(150));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_reads_and_a_missing_one_is_gone() {
        let mut own = ProcessProbe::new(std::process::id());
        let first = own.read_now().expect("own /proc");
        assert!(first.memory_bytes.unwrap_or(0) > 1024 * 1024);
        assert_eq!(first.cpu_percent, None);
        let second = own.read_now().expect("own /proc");
        assert!(second.cpu_percent.is_some());

        let mut gone = ProcessProbe::new(u32::MAX - 1);
        let err = gone.read_now().expect_err("no such process");
        assert!(err.contains("is gone"), "{err}");
    }
}
