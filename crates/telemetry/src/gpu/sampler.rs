//! The sampling thread between `start` and `stop`, and the per-device summary of what it read.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Backend, Field, GpuStatus, Memory, Probe, Provenance, Reading, Sample, Unavailable};
use crate::energy::{self, Energy};

/// Samples this machine's GPUs between [`start`](Self::start) and [`stop`](Self::stop).
///
/// Made by [`detect`](super::detect); without a backend it samples nothing and
/// its reports carry the reason.
pub struct GpuSampler {
    status: GpuStatus,
    interval: Duration,
    state: State,
}

enum State {
    /// Not sampling; `None` when there is no backend.
    Idle(Option<Box<dyn Probe>>),
    Running(Running),
    /// Only while the state is being replaced.
    Moving,
}

struct Running {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<(Box<dyn Probe>, Collected)>,
}

impl fmt::Debug for GpuSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuSampler")
            .field("status", &self.status)
            .field("interval", &self.interval)
            .field("running", &matches!(self.state, State::Running(_)))
            .finish()
    }
}

impl GpuSampler {
    pub(super) fn new(
        backend: Backend,
        provenance: Provenance,
        probe: Box<dyn Probe>,
        interval: Duration,
    ) -> Self {
        Self {
            status: GpuStatus::Available {
                backend,
                provenance,
            },
            interval,
            state: State::Idle(Some(probe)),
        }
    }

    pub(super) fn unavailable(reason: String, interval: Duration) -> Self {
        Self {
            status: GpuStatus::Unavailable { reason },
            interval,
            state: State::Idle(None),
        }
    }

    /// Which backend reads the GPUs, or why none does.
    pub fn status(&self) -> &GpuStatus {
        &self.status
    }

    /// Starts sampling on a thread; `pids` are the engine's processes, whose
    /// GPU memory is read where the backend can. Does nothing while already
    /// sampling or without a backend.
    pub fn start(&mut self, pids: &[u32]) {
        self.start_at(pids, Instant::now());
    }

    /// [`start`](Self::start) with the samples' times counted from `origin`
    /// (an instant at or before now), so that they share a clock with the
    /// caller's other series and scenario windows.
    pub fn start_at(&mut self, pids: &[u32], origin: Instant) {
        let State::Idle(Some(_)) = self.state else {
            return;
        };
        let State::Idle(Some(mut probe)) = std::mem::replace(&mut self.state, State::Moving) else {
            unreachable!("checked above");
        };
        let (stop, stopped) = mpsc::channel();
        let interval = self.interval;
        let pids = pids.to_vec();
        let thread = std::thread::Builder::new()
            .name("gpu-sampler".to_owned())
            .spawn(move || {
                let collected =
                    sample_until_stopped(probe.as_mut(), &pids, interval, origin, &stopped);
                (probe, collected)
            });
        self.state = match thread {
            Ok(thread) => State::Running(Running { stop, thread }),
            // Without a thread there is nothing to sample on; the probe is lost
            // with the closure, so later starts do nothing either.
            Err(_) => State::Idle(None),
        };
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Stops sampling and summarises what was read since `start`.
    ///
    /// Without a backend, or when not started, the report has no device.
    pub fn stop(&mut self) -> GpuReport {
        let state = std::mem::replace(&mut self.state, State::Moving);
        let (state, collected) = match state {
            State::Running(running) => {
                let _ = running.stop.send(());
                match running.thread.join() {
                    Ok((probe, collected)) => (State::Idle(Some(probe)), collected),
                    // A panic in a backend: report nothing and sample no more.
                    Err(_) => (State::Idle(None), Collected::default()),
                }
            }
            other => (other, Collected::default()),
        };
        self.state = state;
        collected.into_report(self.status.clone())
    }
}

impl Drop for GpuSampler {
    fn drop(&mut self) {
        if let State::Running(running) = std::mem::replace(&mut self.state, State::Moving) {
            let _ = running.stop.send(());
            let _ = running.thread.join();
        }
    }
}

/// Reads every `interval` until told to stop, then once more, so that even
/// a window shorter than the interval has a first and a last reading.
fn sample_until_stopped(
    probe: &mut dyn Probe,
    pids: &[u32],
    interval: Duration,
    started: Instant,
    stopped: &mpsc::Receiver<()>,
) -> Collected {
    let mut collected = Collected::default();
    loop {
        let read_at = Instant::now();
        collected.add(
            read_at.duration_since(started).as_secs_f64(),
            probe.read(pids),
        );
        let wait = interval.saturating_sub(read_at.elapsed());
        match stopped.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    collected.add(started.elapsed().as_secs_f64(), probe.read(pids));
    collected.duration_s = started.elapsed().as_secs_f64();
    collected
}

#[derive(Debug, Default)]
struct Collected {
    duration_s: f64,
    devices: BTreeMap<u32, DeviceSeries>,
    n_failed_reads: usize,
    last_read_error: Option<String>,
}

#[derive(Debug, Default)]
struct DeviceSeries {
    name: String,
    series: Vec<Sample>,
    unavailable: BTreeMap<Field, String>,
}

impl Collected {
    fn add(&mut self, t_s: f64, readings: Result<Vec<Reading>, String>) {
        let readings = match readings {
            Ok(readings) => readings,
            Err(e) => {
                self.n_failed_reads += 1;
                self.last_read_error = Some(e);
                return;
            }
        };
        for reading in readings {
            let device = self.devices.entry(reading.index).or_default();
            device.name = reading.name;
            for Unavailable { field, reason } in reading.unavailable {
                device.unavailable.entry(field).or_insert(reason);
            }
            device.series.push(Sample {
                t_s,
                ..reading.sample
            });
        }
    }

    fn into_report(self, status: GpuStatus) -> GpuReport {
        GpuReport {
            status,
            duration_s: self.duration_s,
            n_failed_reads: self.n_failed_reads,
            last_read_error: self.last_read_error,
            devices: self
                .devices
                .into_iter()
                .map(|(index, device)| summarise(index, device))
                .collect(),
        }
    }
}

/// What the sampler read between `start` and `stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReport {
    /// The backend, or why there is none (then `devices` is empty).
    pub status: GpuStatus,
    pub duration_s: f64,
    /// Readings of all devices that failed as a whole (a tool that timed out).
    pub n_failed_reads: usize,
    pub last_read_error: Option<String>,
    pub devices: Vec<DeviceSummary>,
}

impl GpuReport {
    /// The energy of all devices together; `None` unless every device has a figure.
    pub fn total_energy_j(&self) -> Option<f64> {
        if self.devices.is_empty() {
            return None;
        }
        self.devices
            .iter()
            .map(|d| d.energy.map(|e| e.energy_j))
            .sum()
    }
}

/// One device over the window, and its time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSummary {
    pub index: u32,
    pub name: String,
    pub n_samples: usize,
    pub mean_power_w: Option<f64>,
    pub max_power_w: Option<f64>,
    pub max_temperature_c: Option<f64>,
    pub mean_utilization_pct: Option<f64>,
    /// The sample with the most memory in use, with its kind.
    pub max_memory: Option<Memory>,
    pub max_process_memory_mib: Option<f64>,
    pub energy: Option<Energy>,
    /// Each field the device did not give, with the first reason.
    pub unavailable: Vec<Unavailable>,
    pub series: Vec<Sample>,
}

fn summarise(index: u32, device: DeviceSeries) -> DeviceSummary {
    let series = device.series;
    let values =
        |get: fn(&Sample) -> Option<f64>| series.iter().filter_map(get).collect::<Vec<_>>();
    let power = values(|s| s.power_w);
    let power_points: Vec<(f64, f64)> = series
        .iter()
        .filter_map(|s| Some((s.t_s, s.power_w?)))
        .collect();
    let counter_mj: Vec<u64> = series.iter().filter_map(|s| s.energy_counter_mj).collect();
    DeviceSummary {
        index,
        name: device.name,
        n_samples: series.len(),
        mean_power_w: mean(&power),
        max_power_w: max(&power),
        max_temperature_c: max(&values(|s| s.temperature_c)),
        mean_utilization_pct: mean(&values(|s| s.utilization_pct)),
        max_memory: series
            .iter()
            .filter_map(|s| s.memory)
            .max_by(|a, b| a.used_mib.total_cmp(&b.used_mib)),
        max_process_memory_mib: max(&values(|s| s.process_memory_mib)),
        energy: energy::window_energy(&counter_mj, &power_points),
        unavailable: device
            .unavailable
            .into_iter()
            .map(|(field, reason)| Unavailable { field, reason })
            .collect(),
        series,
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::EnergyMethod;
    use crate::gpu::{MemoryKind, Unavailable};

    fn reading(power_w: f64, memory_mib: f64, counter_mj: Option<u64>) -> Reading {
        Reading {
            index: 0,
            name: "NVIDIA GB10".to_owned(),
            sample: Sample {
                power_w: Some(power_w),
                temperature_c: Some(50.0 + power_w / 10.0),
                utilization_pct: Some(90.0),
                memory: Some(Memory {
                    used_mib: memory_mib,
                    total_mib: Some(1000.0),
                    kind: MemoryKind::UnifiedHost,
                }),
                energy_counter_mj: counter_mj,
                ..Sample::default()
            },
            unavailable: vec![Unavailable {
                field: Field::ProcessMemory,
                reason: "NVML: Not Supported".to_owned(),
            }],
        }
    }

    #[test]
    fn summary_of_a_series() {
        let mut collected = Collected::default();
        collected.add(0.0, Ok(vec![reading(100.0, 300.0, None)]));
        collected.add(0.5, Err("nvidia-smi: no answer".to_owned()));
        collected.add(1.0, Ok(vec![reading(200.0, 500.0, None)]));
        collected.add(2.0, Ok(vec![reading(100.0, 400.0, None)]));
        let report = collected.into_report(GpuStatus::Unavailable {
            reason: "test".to_owned(),
        });
        assert_eq!(report.n_failed_reads, 1);
        let device = &report.devices[0];
        assert_eq!(device.n_samples, 3);
        assert_eq!(device.mean_power_w, Some(400.0 / 3.0));
        assert_eq!(device.max_power_w, Some(200.0));
        assert_eq!(device.max_temperature_c, Some(70.0));
        assert_eq!(device.max_memory.unwrap().used_mib, 500.0);
        assert_eq!(device.max_memory.unwrap().kind, MemoryKind::UnifiedHost);
        // No counter: 150 J over the first second and 150 J over the next.
        let energy = device.energy.unwrap();
        assert_eq!(energy.method, EnergyMethod::IntegratedPower);
        assert_eq!(energy.energy_j, 300.0);
        assert_eq!(device.unavailable.len(), 1, "one reason per field");
        assert_eq!(report.total_energy_j(), Some(300.0));
    }

    #[test]
    fn counter_is_used_when_every_sample_has_it() {
        let mut collected = Collected::default();
        collected.add(0.0, Ok(vec![reading(100.0, 1.0, Some(10_000))]));
        collected.add(1.0, Ok(vec![reading(100.0, 1.0, Some(130_000))]));
        let report = collected.into_report(GpuStatus::Unavailable {
            reason: "test".to_owned(),
        });
        let energy = report.devices[0].energy.unwrap();
        assert_eq!(energy.method, EnergyMethod::Counter);
        assert_eq!(energy.energy_j, 120.0);
    }
}
