//! What the GPUs did beside the load: the machine's GPUs (provenance, or why
//! none could be read, said once per run) and, per engine, each scenario's
//! power, temperature, utilisation, memory and energy, with energy per
//! output token.
//!
//! A figure a device does not give is `null`; the reason is kept once per
//! device and field in [`EngineGpu::unavailable`], never per scenario.

use serde::{Deserialize, Serialize};

/// The GPUs of the machine a run was measured on, or why none could be read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// What read them: `nvml`, `nvidia_smi`, `amd_smi` or `rocm_smi`; `null`
    /// when none answered.
    pub backend: Option<String>,
    /// Device names, in device order.
    #[serde(default)]
    pub devices: Vec<String>,
    pub driver_version: Option<String>,
    /// The CUDA version the driver supports (NVML).
    pub cuda_version: Option<String>,
    pub rocm_version: Option<String>,
    /// Why no GPU could be read, e.g. `no NVIDIA driver (...); no AMD tools
    /// (...)`; `null` when one could.
    pub unavailable: Option<String>,
}

/// What a memory figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuMemoryKind {
    /// The GPU's own memory, as its driver reports it.
    Vram,
    /// The host's memory in use (`/proc/meminfo`: MemTotal − MemAvailable)
    /// on a GPU that shares it (DGX Spark's GB10), where the driver reports
    /// none. It counts every process on the host.
    UnifiedHost,
}

/// How an energy figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuEnergyMethod {
    /// The delta of the device's cumulative energy counter (NVML).
    Counter,
    /// Power samples integrated over the scenario (trapezoid rule).
    IntegratedPower,
}

/// The GPU figures of one engine's turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineGpu {
    /// The sampling interval, milliseconds.
    pub interval_ms: u32,
    /// One entry per scenario that ran, in order.
    #[serde(default)]
    pub scenarios: Vec<ScenarioGpu>,
    /// Every reading of every device, seconds on the clock of
    /// [`crate::EngineTelemetry::samples`].
    #[serde(default)]
    pub samples: Vec<GpuSample>,
    /// Reads of all devices that failed as a whole (a tool that timed out).
    #[serde(default)]
    pub n_failed_reads: u32,
    pub last_read_error: Option<String>,
    /// Each figure a device did not give, with the first reason.
    #[serde(default)]
    pub unavailable: Vec<GpuUnavailable>,
}

impl EngineGpu {
    /// The figures of the scenario named `name`.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioGpu> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

/// A figure one device did not give, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuUnavailable {
    pub device_idx: u32,
    /// `power`, `temperature`, `utilization`, `memory`, `process_memory`,
    /// `energy_counter`.
    pub field: String,
    pub reason: String,
}

/// One reading of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    pub t_s: f64,
    pub device_idx: u32,
    pub power_w: Option<f64>,
    pub temperature_c: Option<f64>,
    pub utilization_pct: Option<f64>,
    pub memory_used_mib: Option<f64>,
}

/// The GPUs over one scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioGpu {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
    /// Per device.
    #[serde(default)]
    pub devices: Vec<DeviceGpu>,
    /// All devices together; `null` unless every device has a figure.
    pub energy_j: Option<f64>,
    /// The method of the devices' figures (`integrated_power` if any used it).
    pub energy_method: Option<GpuEnergyMethod>,
    /// `energy_j` per output token of the scenario's successful requests.
    pub joules_per_output_token: Option<f64>,
    /// Output tokens per joule.
    pub output_tokens_per_joule: Option<f64>,
}

impl ScenarioGpu {
    /// The power of all devices together (sum of their means).
    pub fn power_mean_w(&self) -> Option<f64> {
        self.devices
            .iter()
            .filter_map(|d| d.power_mean_w)
            .reduce(|a, b| a + b)
    }

    /// The highest peak power of a device.
    pub fn power_peak_w(&self) -> Option<f64> {
        self.devices
            .iter()
            .filter_map(|d| d.power_peak_w)
            .reduce(f64::max)
    }

    /// The hottest device's peak.
    pub fn temperature_peak_c(&self) -> Option<f64> {
        self.devices
            .iter()
            .filter_map(|d| d.temperature_peak_c)
            .reduce(f64::max)
    }

    /// Memory of all devices together at their peaks, MiB, and its kind
    /// (unified host memory where any device reported that: it is shared).
    pub fn memory_peak(&self) -> Option<(f64, GpuMemoryKind)> {
        let figures: Vec<(f64, GpuMemoryKind)> = self
            .devices
            .iter()
            .filter_map(|d| Some((d.memory_peak_mib?, d.memory_kind?)))
            .collect();
        if figures.is_empty() {
            return None;
        }
        // The host's memory is one figure, however many devices share it.
        if figures
            .iter()
            .any(|(_, kind)| *kind == GpuMemoryKind::UnifiedHost)
        {
            let peak = figures.iter().map(|(mib, _)| *mib).fold(0.0, f64::max);
            return Some((peak, GpuMemoryKind::UnifiedHost));
        }
        Some((
            figures.iter().map(|(mib, _)| mib).sum(),
            GpuMemoryKind::Vram,
        ))
    }
}

/// One device over one scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceGpu {
    pub device_idx: u32,
    pub name: String,
    /// Readings inside the scenario (the first one after its start when none
    /// fell inside it).
    pub n_samples: u32,
    pub power_mean_w: Option<f64>,
    pub power_peak_w: Option<f64>,
    pub temperature_peak_c: Option<f64>,
    pub utilization_mean_pct: Option<f64>,
    /// The most memory in use, MiB, and what it measures.
    pub memory_peak_mib: Option<f64>,
    pub memory_total_mib: Option<f64>,
    pub memory_kind: Option<GpuMemoryKind>,
    /// The most memory the engine's processes used on this device, MiB.
    pub process_memory_peak_mib: Option<f64>,
    pub energy_j: Option<f64>,
    pub energy_method: Option<GpuEnergyMethod>,
}
