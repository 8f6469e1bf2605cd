//! What was read beside the load: the engine's runtime memory and CPU over
//! its scenarios (Docker's stats of its container, or `/proc` of a local
//! process) and the size of its model on disk.
//!
//! A figure that could not be read is `null`, and the reason is said once
//! for the engine (`unavailable`, `model_size.unavailable`), never per
//! scenario.

use serde::{Deserialize, Serialize};

use crate::{EngineGpu, EngineScenarioMetrics};

/// The telemetry of one engine's turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineTelemetry {
    /// Where the runtime figures came from, e.g. `docker stats` or
    /// `/proc/4242`; `null` when nothing could be read.
    #[serde(default)]
    pub source: Option<String>,
    /// Why runtime memory and CPU are N/A for this engine; `null` when they
    /// were read.
    #[serde(default)]
    pub unavailable: Option<String>,
    /// The sampling interval, milliseconds.
    #[serde(default)]
    pub interval_ms: u32,
    /// One entry per scenario that ran, in order: its window and figures.
    #[serde(default)]
    pub scenarios: Vec<ScenarioUsage>,
    /// Every sample of the turn, seconds from the first scenario's start.
    #[serde(default)]
    pub samples: Vec<UsageSample>,
    /// The model's size on disk.
    #[serde(default)]
    pub model_size: ModelSize,
    /// The GPUs over each scenario; absent where no GPU could be read (the
    /// run's `gpu.unavailable` says why) and in files written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<EngineGpu>,
    /// The engine's own figures per scenario, from its metrics endpoint
    /// (or llama-server's per-response timings); absent where it gives none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engine_metrics: Vec<EngineScenarioMetrics>,
}

impl EngineTelemetry {
    /// The highest memory peak over the scenarios.
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        self.scenarios
            .iter()
            .filter_map(|s| s.memory_peak_bytes)
            .max()
    }

    /// The figures of the scenario named `name`.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioUsage> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// The engine's own figures of the scenario named `name`.
    pub fn engine_metrics(&self, name: &str) -> Option<&EngineScenarioMetrics> {
        self.engine_metrics.iter().find(|s| s.name == name)
    }
}

/// Runtime memory and CPU over one scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioUsage {
    /// The scenario's name.
    pub name: String,
    /// Its first request was about to be sent, seconds from the first
    /// scenario's start.
    pub start_s: f64,
    /// Its last request had ended.
    pub end_s: f64,
    /// Samples its figures are over (the first one after its start when
    /// none fell inside it).
    pub n_samples: u32,
    /// Memory in use: Docker's figure (usage less the page cache) or a
    /// process's resident set.
    pub memory_peak_bytes: Option<u64>,
    pub memory_mean_bytes: Option<u64>,
    /// CPU as `docker stats` shows it: 100 % is one core.
    pub cpu_peak_percent: Option<f64>,
    pub cpu_mean_percent: Option<f64>,
}

/// One sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageSample {
    /// Seconds from the first scenario's start (negative: before it).
    pub t_s: f64,
    pub memory_bytes: Option<u64>,
    /// `null` for the first sample, which has nothing to take a delta from.
    pub cpu_percent: Option<f64>,
}

/// The model's files on disk, as found from the service's mounts and command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSize {
    /// Bytes, each file counted once; `null` when not found.
    pub bytes: Option<u64>,
    /// What was measured: the host path of the GGUF file, the model
    /// directory or the Hugging Face snapshot.
    pub path: Option<String>,
    /// `gguf`, `hf_cache` or `directory`.
    pub kind: Option<String>,
    /// Why the size is N/A, e.g. `the model /models/m.gguf is inside the image`.
    pub unavailable: Option<String>,
}

impl ModelSize {
    /// A size that could not be found, and why.
    pub fn unavailable(reason: impl Into<String>) -> ModelSize {
        ModelSize {
            unavailable: Some(reason.into()),
            ..ModelSize::default()
        }
    }
}
