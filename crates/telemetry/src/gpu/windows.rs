//! A GPU report cut into the scenarios' windows, as results.json keeps it:
//! per scenario and device the power, temperature, utilisation and memory of
//! the readings inside the window, and the energy between its edges.

use std::time::Duration;

use spark_results::{
    DeviceGpu, EngineGpu, GpuEnergyMethod, GpuMemoryKind, GpuSample, GpuUnavailable, ScenarioGpu,
};

use super::{DeviceSummary, Field, GpuReport, MemoryKind, Sample};
use crate::energy::{self, EnergyMethod};

/// A scenario's start and end, seconds on the clock the sampler was started
/// with ([`GpuSampler::start_at`](super::GpuSampler::start_at)).
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioWindow {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
}

impl GpuReport {
    /// The figures of each window and every reading; `None` when no device
    /// was read (no backend: the run's GPU provenance says why).
    pub fn into_engine_gpu(
        self,
        windows: &[ScenarioWindow],
        interval: Duration,
    ) -> Option<EngineGpu> {
        if self.devices.is_empty() {
            return None;
        }
        let scenarios = windows
            .iter()
            .map(|window| scenario(&self.devices, window))
            .collect();
        let unavailable = self
            .devices
            .iter()
            .flat_map(|device| {
                device.unavailable.iter().map(|u| GpuUnavailable {
                    device_idx: device.index,
                    field: field_name(u.field).to_owned(),
                    reason: u.reason.clone(),
                })
            })
            .collect();
        let samples = self
            .devices
            .iter()
            .flat_map(|device| {
                device.series.iter().map(|s| GpuSample {
                    t_s: s.t_s,
                    device_idx: device.index,
                    power_w: s.power_w,
                    temperature_c: s.temperature_c,
                    utilization_pct: s.utilization_pct,
                    memory_used_mib: s.memory.map(|m| m.used_mib),
                })
            })
            .collect();
        Some(EngineGpu {
            interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
            scenarios,
            samples,
            n_failed_reads: u32::try_from(self.n_failed_reads).unwrap_or(u32::MAX),
            last_read_error: self.last_read_error,
            unavailable,
        })
    }
}

fn scenario(devices: &[DeviceSummary], window: &ScenarioWindow) -> ScenarioGpu {
    let devices: Vec<DeviceGpu> = devices
        .iter()
        .filter_map(|device| device_within(device, window))
        .collect();
    let energy_j = (!devices.is_empty())
        .then(|| devices.iter().map(|d| d.energy_j).sum::<Option<f64>>())
        .flatten();
    let energy_method = energy_j.and_then(|_| {
        let methods: Vec<GpuEnergyMethod> =
            devices.iter().filter_map(|d| d.energy_method).collect();
        if methods.contains(&GpuEnergyMethod::IntegratedPower) {
            Some(GpuEnergyMethod::IntegratedPower)
        } else {
            methods.first().copied()
        }
    });
    ScenarioGpu {
        name: window.name.clone(),
        start_s: window.start_s,
        end_s: window.end_s,
        devices,
        energy_j,
        energy_method,
        joules_per_output_token: None,
        output_tokens_per_joule: None,
    }
}

/// One device over a window: the readings inside it (the first one after
/// its start when none fell inside, as the memory summaries do).
fn device_within(device: &DeviceSummary, window: &ScenarioWindow) -> Option<DeviceGpu> {
    let inside: Vec<&Sample> = device
        .series
        .iter()
        .filter(|s| s.t_s >= window.start_s && s.t_s <= window.end_s)
        .collect();
    let inside = if inside.is_empty() {
        device
            .series
            .iter()
            .find(|s| s.t_s >= window.start_s)
            .into_iter()
            .collect()
    } else {
        inside
    };
    if inside.is_empty() {
        return None;
    }
    let values =
        |get: fn(&Sample) -> Option<f64>| inside.iter().filter_map(|s| get(s)).collect::<Vec<_>>();
    let power = values(|s| s.power_w);
    let memory = inside
        .iter()
        .filter_map(|s| s.memory)
        .max_by(|a, b| a.used_mib.total_cmp(&b.used_mib));
    let power_points: Vec<(f64, f64)> = device
        .series
        .iter()
        .filter_map(|s| Some((s.t_s, s.power_w?)))
        .collect();
    let counter: Vec<(f64, u64)> = device
        .series
        .iter()
        .filter_map(|s| Some((s.t_s, s.energy_counter_mj?)))
        .collect();
    let energy = energy::energy_within(&counter, &power_points, window.start_s, window.end_s);
    Some(DeviceGpu {
        device_idx: device.index,
        name: device.name.clone(),
        n_samples: u32::try_from(inside.len()).unwrap_or(u32::MAX),
        power_mean_w: mean(&power),
        power_peak_w: power.iter().copied().reduce(f64::max),
        temperature_peak_c: values(|s| s.temperature_c).into_iter().reduce(f64::max),
        utilization_mean_pct: mean(&values(|s| s.utilization_pct)),
        memory_peak_mib: memory.map(|m| m.used_mib),
        memory_total_mib: memory.and_then(|m| m.total_mib),
        memory_kind: memory.map(|m| match m.kind {
            MemoryKind::Vram => GpuMemoryKind::Vram,
            MemoryKind::UnifiedHost => GpuMemoryKind::UnifiedHost,
        }),
        process_memory_peak_mib: values(|s| s.process_memory_mib)
            .into_iter()
            .reduce(f64::max),
        energy_j: energy.map(|e| e.energy_j),
        energy_method: energy.map(|e| match e.method {
            EnergyMethod::Counter => GpuEnergyMethod::Counter,
            EnergyMethod::IntegratedPower => GpuEnergyMethod::IntegratedPower,
        }),
    })
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn field_name(field: Field) -> &'static str {
    match field {
        Field::Power => "power",
        Field::Temperature => "temperature",
        Field::Utilization => "utilization",
        Field::Memory => "memory",
        Field::ProcessMemory => "process_memory",
        Field::EnergyCounter => "energy_counter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{GpuStatus, Memory};

    fn sample(t_s: f64, power_w: f64, memory_mib: f64) -> Sample {
        Sample {
            t_s,
            power_w: Some(power_w),
            temperature_c: Some(40.0 + power_w / 10.0),
            utilization_pct: Some(50.0),
            memory: Some(Memory {
                used_mib: memory_mib,
                total_mib: None,
                kind: MemoryKind::UnifiedHost,
            }),
            ..Sample::default()
        }
    }

    fn report(series: Vec<Sample>) -> GpuReport {
        GpuReport {
            status: GpuStatus::Unavailable {
                reason: "test".to_owned(),
            },
            duration_s: 3.0,
            n_failed_reads: 0,
            last_read_error: None,
            devices: vec![DeviceSummary {
                index: 0,
                name: "NVIDIA GB10".to_owned(),
                n_samples: series.len(),
                mean_power_w: None,
                max_power_w: None,
                max_temperature_c: None,
                mean_utilization_pct: None,
                max_memory: None,
                max_process_memory_mib: None,
                energy: None,
                unavailable: Vec::new(),
                series,
            }],
        }
    }

    fn window(name: &str, start_s: f64, end_s: f64) -> ScenarioWindow {
        ScenarioWindow {
            name: name.to_owned(),
            start_s,
            end_s,
        }
    }

    #[test]
    fn each_window_gets_its_readings_and_its_energy() {
        let report = report(vec![
            sample(0.0, 10.0, 100.0),
            sample(1.0, 30.0, 300.0),
            sample(2.0, 10.0, 200.0),
            sample(3.0, 10.0, 200.0),
        ]);
        let windows = [window("a", 0.5, 1.5), window("b", 2.2, 2.4)];
        let gpu = report
            .into_engine_gpu(&windows, Duration::from_millis(500))
            .expect("a device");
        let a = &gpu.scenarios[0];
        let device = &a.devices[0];
        assert_eq!(device.n_samples, 1);
        assert_eq!(device.power_peak_w, Some(30.0));
        assert_eq!(device.temperature_peak_c, Some(43.0));
        assert_eq!(device.memory_peak_mib, Some(300.0));
        assert_eq!(device.memory_kind, Some(GpuMemoryKind::UnifiedHost));
        // 20 W at 0.5 s rising to 30 W at 1 s, falling to 20 W at 1.5 s: 25 J.
        assert_eq!(a.energy_j, Some(25.0));
        assert_eq!(a.energy_method, Some(GpuEnergyMethod::IntegratedPower));
        // A window with no reading inside takes the next one; its energy is
        // its share of the interval: 10 W for 0.2 s.
        let b = &gpu.scenarios[1];
        assert_eq!(b.devices[0].n_samples, 1);
        assert!((b.energy_j.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(gpu.samples.len(), 4);
    }

    #[test]
    fn no_device_is_no_gpu_figures() {
        let mut empty = report(Vec::new());
        empty.devices.clear();
        assert_eq!(empty.into_engine_gpu(&[], Duration::from_millis(500)), None);
    }
}
