//! NVIDIA GPUs through NVML (`nvml-wrapper`, which loads `libnvidia-ml.so.1` at run time).
//!
//! Loading the library is the test for a driver: a machine without one gets
//! the reason from `open`, never a link error. Each reading asks every device
//! for power, temperature, utilisation, memory, the energy counter and the
//! memory of the given processes; each call that fails (`NotSupported` on
//! many parts, memory on GB10) leaves that field `None` with NVML's reason.

use std::ffi::OsStr;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use super::{Field, Memory, MemoryKind, Probe, Provenance, Reading, Sample, Unavailable, unified};

const MIB: f64 = 1024.0 * 1024.0;

/// An initialised NVML; dropping it shuts NVML down.
pub(super) struct NvmlProbe {
    nvml: Nvml,
    names: Vec<String>,
}

impl NvmlProbe {
    /// NVML loaded from `library` (default `libnvidia-ml.so.1`) and its devices.
    pub(super) fn open(library: Option<&OsStr>) -> Result<(Self, Provenance), String> {
        let mut builder = Nvml::builder();
        if let Some(library) = library {
            builder.lib_path(library);
        }
        let nvml = builder.init().map_err(|e| format!("NVML: {e}"))?;
        let n_devices = nvml.device_count().map_err(|e| format!("NVML: {e}"))?;
        if n_devices == 0 {
            return Err("NVML: no device".to_owned());
        }
        let names: Vec<String> = (0..n_devices)
            .map(|idx| {
                nvml.device_by_index(idx)
                    .and_then(|d| d.name())
                    .unwrap_or_else(|_| format!("NVIDIA GPU {idx}"))
            })
            .collect();
        let provenance = Provenance {
            devices: names.clone(),
            driver_version: nvml.sys_driver_version().ok(),
            cuda_driver_version: nvml.sys_cuda_driver_version().ok().map(|v| {
                format!(
                    "{}.{}",
                    nvml_wrapper::cuda_driver_version_major(v),
                    nvml_wrapper::cuda_driver_version_minor(v)
                )
            }),
            rocm_version: None,
        };
        Ok((Self { nvml, names }, provenance))
    }
}

impl Probe for NvmlProbe {
    fn read(&mut self, pids: &[u32]) -> Result<Vec<Reading>, String> {
        let mut readings = Vec::with_capacity(self.names.len());
        for (idx, name) in self.names.iter().enumerate() {
            let index = u32::try_from(idx).unwrap_or(u32::MAX);
            let mut unavailable = Vec::new();
            let sample = match self.nvml.device_by_index(index) {
                Ok(device) => read_device(&device, name, pids, &mut unavailable),
                Err(e) => {
                    for field in [Field::Power, Field::Temperature, Field::Memory] {
                        unavailable.push(Unavailable {
                            field,
                            reason: reason(&e),
                        });
                    }
                    Sample::default()
                }
            };
            readings.push(Reading {
                index,
                name: name.clone(),
                sample,
                unavailable,
            });
        }
        Ok(readings)
    }
}

fn read_device(
    device: &Device<'_>,
    name: &str,
    pids: &[u32],
    unavailable: &mut Vec<Unavailable>,
) -> Sample {
    let power_w = keep(
        Field::Power,
        device.power_usage().map(|mw| f64::from(mw) / 1000.0),
        unavailable,
    );
    let temperature_c = keep(
        Field::Temperature,
        device.temperature(TemperatureSensor::Gpu).map(f64::from),
        unavailable,
    );
    let utilization_pct = keep(
        Field::Utilization,
        device.utilization_rates().map(|u| f64::from(u.gpu)),
        unavailable,
    );
    let energy_counter_mj = keep(
        Field::EnergyCounter,
        device.total_energy_consumption(),
        unavailable,
    );
    let process_memory_mib = if pids.is_empty() {
        None
    } else {
        keep(
            Field::ProcessMemory,
            process_memory(device, pids),
            unavailable,
        )
    };
    let memory = match device.memory_info() {
        Ok(info) => Some(Memory {
            used_mib: info.used as f64 / MIB,
            total_mib: Some(info.total as f64 / MIB),
            kind: MemoryKind::Vram,
        }),
        Err(e) => unified::memory_fallback(name, reason(&e), unavailable),
    };
    Sample {
        t_s: 0.0,
        power_w,
        temperature_c,
        utilization_pct,
        memory,
        process_memory_mib,
        energy_counter_mj,
    }
}

/// MiB used on the device by the given processes (0 when none of them runs there).
fn process_memory(device: &Device<'_>, pids: &[u32]) -> Result<f64, NvmlError> {
    let mut used_bytes = 0u64;
    for process in device.running_compute_processes()? {
        if !pids.contains(&process.pid) {
            continue;
        }
        match process.used_gpu_memory {
            UsedGpuMemory::Used(bytes) => used_bytes += bytes,
            // The driver does not know (Windows WDDM; unified memory).
            UsedGpuMemory::Unavailable => return Err(NvmlError::NotSupported),
        }
    }
    Ok(used_bytes as f64 / MIB)
}

/// The value, or `None` with NVML's reason kept.
fn keep<T>(
    field: Field,
    result: Result<T, NvmlError>,
    unavailable: &mut Vec<Unavailable>,
) -> Option<T> {
    result
        .map_err(|e| {
            unavailable.push(Unavailable {
                field,
                reason: reason(&e),
            });
        })
        .ok()
}

fn reason(error: &NvmlError) -> String {
    match error {
        NvmlError::NotSupported => "NVML: Not Supported".to_owned(),
        other => format!("NVML: {other}"),
    }
}
