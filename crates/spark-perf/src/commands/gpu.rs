//! The GPUs beside a run: detected once per run (`SPARK_PERF_NVML_LIBRARY`
//! and `SPARK_PERF_GPU_TOOLS_DIR` point detection at another NVML library or
//! tool directory, as the tests do), sampled over each engine's turn with the
//! engine's processes, and cut into its scenarios with their energy per
//! output token.
//!
//! A machine without a GPU gets its reason in the run's provenance, once;
//! nothing fails.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use spark_results::{EngineGpu, GpuInfo, RunResults};
use spark_telemetry::energy;
use spark_telemetry::gpu::{self, Backend, DetectOptions, GpuSampler, GpuStatus, ScenarioWindow};

/// The NVML library to load instead of `libnvidia-ml.so.1`.
const NVML_LIBRARY_ENV: &str = "SPARK_PERF_NVML_LIBRARY";
/// Directories (`:`-separated) to find `nvidia-smi`, `amd-smi` and
/// `rocm-smi` in instead of `PATH`.
const TOOLS_DIR_ENV: &str = "SPARK_PERF_GPU_TOOLS_DIR";

/// The run's GPU sampler, shared by its engines one after the other.
#[derive(Debug, Clone)]
pub(crate) struct Gpu {
    sampler: Arc<Mutex<GpuSampler>>,
    info: GpuInfo,
}

impl Gpu {
    /// Finds this machine's GPUs (NVML, then the tools; each tool runs with a
    /// timeout, off the runtime's workers).
    pub(crate) async fn detect() -> Gpu {
        let options = DetectOptions {
            nvml_library: std::env::var_os(NVML_LIBRARY_ENV),
            tool_dirs: std::env::var_os(TOOLS_DIR_ENV)
                .map(|dirs: OsString| std::env::split_paths(&dirs).collect::<Vec<PathBuf>>()),
            interval: None,
        };
        let sampler = tokio::task::spawn_blocking(move || gpu::detect_with(&options))
            .await
            .unwrap_or_else(|_| gpu::detect_with(&DetectOptions::default()));
        let info = info_of(sampler.status());
        match &info.unavailable {
            Some(why) => tracing::info!("GPU telemetry N/A: {why}"),
            None => eprintln!("GPU: {}", info.devices.join(", ")),
        }
        Gpu {
            sampler: Arc::new(Mutex::new(sampler)),
            info,
        }
    }

    /// The run's GPU provenance, or why there is none.
    pub(crate) fn info(&self) -> GpuInfo {
        self.info.clone()
    }

    fn sampler(&self) -> MutexGuard<'_, GpuSampler> {
        self.sampler
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts sampling with times counted from `origin`; `pids` are the
    /// engine's processes (per-process memory where the backend reads it).
    pub(crate) fn start(&self, pids: &[u32], origin: Instant) -> GpuTurn {
        if self.info.unavailable.is_some() {
            return GpuTurn { sampler: None };
        }
        self.sampler().start_at(pids, origin);
        GpuTurn {
            sampler: Some(Arc::clone(&self.sampler)),
        }
    }
}

/// One engine's turn on the GPU sampler.
#[derive(Debug)]
pub(crate) struct GpuTurn {
    sampler: Option<Arc<Mutex<GpuSampler>>>,
}

impl GpuTurn {
    /// Stops the sampling (the last read may run a tool: off the runtime's
    /// workers) and cuts it into `windows`, with each scenario's energy per
    /// output token from `results`.
    pub(crate) async fn finish(
        mut self,
        windows: Vec<ScenarioWindow>,
        results: Option<&RunResults>,
    ) -> Option<EngineGpu> {
        let sampler = self.sampler.take()?;
        let (report, interval) = tokio::task::spawn_blocking(move || {
            let mut sampler = sampler
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (sampler.stop(), sampler.interval())
        })
        .await
        .ok()?;
        let mut gpu = report.into_engine_gpu(&windows, interval)?;
        if let Some(results) = results {
            per_token(&mut gpu, results);
        }
        Some(gpu)
    }
}

impl Drop for GpuTurn {
    /// A turn cut short (its future dropped) still stops the sampling
    /// thread, so that the next engine's turn starts afresh; the wait is one
    /// last reading, bounded by the tools' timeout.
    fn drop(&mut self) {
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .stop();
        }
    }
}

/// Energy per output token of each scenario, from its successful requests.
fn per_token(gpu: &mut EngineGpu, results: &RunResults) {
    for scenario in &mut gpu.scenarios {
        let Some(energy_j) = scenario.energy_j else {
            continue;
        };
        let Some(result) = results.scenarios.iter().rfind(|s| s.name == scenario.name) else {
            continue;
        };
        let n_tokens = result.aggregate.output_tokens_total;
        scenario.joules_per_output_token = energy::joules_per_token(energy_j, n_tokens);
        scenario.output_tokens_per_joule = energy::tokens_per_joule(energy_j, n_tokens);
    }
}

fn info_of(status: &GpuStatus) -> GpuInfo {
    match status {
        GpuStatus::Available {
            backend,
            provenance,
        } => GpuInfo {
            backend: Some(
                match backend {
                    Backend::Nvml => "nvml",
                    Backend::NvidiaSmi => "nvidia_smi",
                    Backend::AmdSmi => "amd_smi",
                    Backend::RocmSmi => "rocm_smi",
                }
                .to_owned(),
            ),
            devices: provenance.devices.clone(),
            driver_version: provenance.driver_version.clone(),
            cuda_version: provenance.cuda_driver_version.clone(),
            rocm_version: provenance.rocm_version.clone(),
            unavailable: None,
        },
        GpuStatus::Unavailable { reason } => GpuInfo {
            unavailable: Some(
                reason
                    .strip_prefix("no GPU found: ")
                    .unwrap_or(reason)
                    .to_owned(),
            ),
            ..GpuInfo::default()
        },
    }
}
