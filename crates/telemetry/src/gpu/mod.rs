//! GPU telemetry: which backend this machine has, and the readings every backend gives.
//!
//! [`detect`] tries, in order, NVML (`libnvidia-ml.so`, loaded at run time),
//! `nvidia-smi`, `amd-smi` and `rocm-smi`, and returns a [`GpuSampler`] for the
//! first that answers, or one that holds the reason none did: a machine without
//! a GPU gets a status, never an error. The sampler reads every device about
//! every 500 ms on a thread of its own between `start` and `stop` (NVML calls
//! and the tools' subprocesses block) and `stop` returns a [`GpuReport`].
//!
//! A field a device cannot report (NVML's `NotSupported`, a tool's `[N/A]`) is
//! `None` in the samples, with the reason kept once per device and field.

pub mod amd;
mod command;
pub mod nvidia_smi;
mod nvml;
mod sampler;
pub mod unified;
mod windows;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use sampler::{DeviceSummary, GpuReport, GpuSampler};
pub use windows::ScenarioWindow;

/// How often the sampler reads the devices.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// How long one run of a tool (`nvidia-smi`, `amd-smi`, `rocm-smi`) may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the readings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Nvml,
    NvidiaSmi,
    AmdSmi,
    RocmSmi,
}

/// Whether this machine's GPUs can be read, and what they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GpuStatus {
    Available {
        backend: Backend,
        provenance: Provenance,
    },
    /// No backend answered; `reason` says what each one said.
    Unavailable { reason: String },
}

/// What the GPUs and their software are, for a run's provenance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Device names, in device order.
    pub devices: Vec<String>,
    pub driver_version: Option<String>,
    /// The CUDA version the driver supports (`12.8`), from NVML.
    pub cuda_driver_version: Option<String>,
    pub rocm_version: Option<String>,
}

/// What a memory figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// The GPU's own memory, as the driver reports it.
    Vram,
    /// The host's memory in use (`/proc/meminfo`: MemTotal − MemAvailable), on a
    /// GPU that shares it (DGX Spark's GB10), where the driver reports none.
    /// It counts every process on the host, not the GPU's allocations alone.
    UnifiedHost,
}

/// Memory in use, with what it measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub used_mib: f64,
    pub total_mib: Option<f64>,
    pub kind: MemoryKind,
}

/// A reading a device may not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Power,
    Temperature,
    Utilization,
    Memory,
    ProcessMemory,
    EnergyCounter,
}

/// Why a device gave no value for a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    pub field: Field,
    pub reason: String,
}

/// One reading of one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub t_s: f64,
    pub power_w: Option<f64>,
    pub temperature_c: Option<f64>,
    pub utilization_pct: Option<f64>,
    pub memory: Option<Memory>,
    /// Memory used on this device by the processes the sampler was given.
    pub process_memory_mib: Option<f64>,
    /// The cumulative energy counter, in millijoules.
    pub energy_counter_mj: Option<u64>,
}

/// One device's reading from a backend, before the sampler times it.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    index: u32,
    name: String,
    sample: Sample,
    unavailable: Vec<Unavailable>,
}

/// A backend: reads every device once. Blocking; run on the sampler's thread.
trait Probe: Send {
    fn read(&mut self, pids: &[u32]) -> Result<Vec<Reading>, String>;
}

/// What [`detect_with`] looks at; the default is this machine as it is.
#[derive(Debug, Clone, Default)]
pub struct DetectOptions {
    /// The NVML library to load instead of `libnvidia-ml.so.1`.
    pub nvml_library: Option<OsString>,
    /// The directories to look for the tools in instead of `PATH`.
    pub tool_dirs: Option<Vec<PathBuf>>,
    /// The sampling interval instead of [`DEFAULT_INTERVAL`].
    pub interval: Option<Duration>,
}

/// The sampler for this machine's GPUs; see [`detect_with`].
pub fn detect() -> GpuSampler {
    detect_with(&DetectOptions::default())
}

/// The sampler for the first backend that answers: NVML, `nvidia-smi`,
/// `amd-smi`, `rocm-smi`; or one with the reason none did.
pub fn detect_with(options: &DetectOptions) -> GpuSampler {
    let interval = options.interval.unwrap_or(DEFAULT_INTERVAL);
    let tool_dirs = options.tool_dirs.clone().unwrap_or_else(command::path_dirs);
    let mut reasons = Vec::new();

    match nvml::NvmlProbe::open(options.nvml_library.as_deref()) {
        Ok((probe, provenance)) => {
            return GpuSampler::new(Backend::Nvml, provenance, Box::new(probe), interval);
        }
        Err(reason) => reasons.push(format!("no NVIDIA driver ({reason})")),
    }
    match nvidia_smi::NvidiaSmiProbe::open(&tool_dirs) {
        Ok((probe, provenance)) => {
            return GpuSampler::new(Backend::NvidiaSmi, provenance, Box::new(probe), interval);
        }
        Err(reason) => reasons.push(reason),
    }
    let mut amd_reasons = Vec::new();
    match amd::AmdSmiProbe::open(&tool_dirs) {
        Ok((probe, provenance)) => {
            return GpuSampler::new(Backend::AmdSmi, provenance, Box::new(probe), interval);
        }
        Err(reason) => amd_reasons.push(reason),
    }
    match amd::RocmSmiProbe::open(&tool_dirs) {
        Ok((probe, provenance)) => {
            return GpuSampler::new(Backend::RocmSmi, provenance, Box::new(probe), interval);
        }
        Err(reason) => amd_reasons.push(reason),
    }
    reasons.push(format!("no AMD tools ({})", amd_reasons.join("; ")));
    GpuSampler::unavailable(format!("no GPU found: {}", reasons.join("; ")), interval)
}

/// A reading as a tool prints it, before it becomes a [`Sample`]: each value
/// or the reason the tool gave none.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolReading {
    pub index: u32,
    pub name: Option<String>,
    pub power_w: Result<f64, String>,
    pub temperature_c: Result<f64, String>,
    pub utilization_pct: Result<f64, String>,
    pub memory_used_mib: Result<f64, String>,
    pub memory_total_mib: Result<f64, String>,
    pub energy_counter_mj: Result<u64, String>,
}

impl ToolReading {
    /// The sample, with the GB10 rule for memory: a unified-memory GPU whose
    /// tool reports no memory gets the host's memory in use, labelled so.
    fn into_reading(self, default_name: &str) -> Reading {
        let name = self.name.unwrap_or_else(|| default_name.to_owned());
        let mut unavailable = Vec::new();
        let mut keep = |field, value: Result<f64, String>| match value {
            Ok(value) => Some(value),
            Err(reason) => {
                unavailable.push(Unavailable { field, reason });
                None
            }
        };
        let power_w = keep(Field::Power, self.power_w);
        let temperature_c = keep(Field::Temperature, self.temperature_c);
        let utilization_pct = keep(Field::Utilization, self.utilization_pct);
        let memory = match self.memory_used_mib {
            Ok(used_mib) => Some(Memory {
                used_mib,
                total_mib: self.memory_total_mib.ok(),
                kind: MemoryKind::Vram,
            }),
            Err(reason) => unified::memory_fallback(&name, reason, &mut unavailable),
        };
        let energy_counter_mj = match self.energy_counter_mj {
            Ok(mj) => Some(mj),
            Err(reason) => {
                unavailable.push(Unavailable {
                    field: Field::EnergyCounter,
                    reason,
                });
                None
            }
        };
        Reading {
            index: self.index,
            name,
            sample: Sample {
                power_w,
                temperature_c,
                utilization_pct,
                memory,
                energy_counter_mj,
                ..Sample::default()
            },
            unavailable,
        }
    }
}
