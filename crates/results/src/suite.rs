//! The results of a whole `spark-perf run` (or `demo`): several engines, one
//! after the other, each with its startup cost, provenance and the
//! [`RunResults`] of its scenarios, or the reason it has none.
//!
//! This is what `reports/<run>/results.json` holds, what every renderer
//! reads, and what `spark-perf compare` compares.

use serde::{Deserialize, Serialize};

use crate::{EngineTelemetry, GpuInfo, Pick, RunResults};

/// Version of the JSON shape of [`SuiteResults`].
pub const SUITE_SCHEMA_VERSION: u32 = 1;

/// A run over the engines of a compose file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteResults {
    /// [`SUITE_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool and its version, e.g. `spark-perf 0.1.0`.
    pub tool: String,
    /// Wall-clock start, Unix milliseconds (metadata only).
    pub started_unix_ms: u64,
    /// Wall-clock end, Unix milliseconds; `null` while the run is going on.
    pub finished_unix_ms: Option<u64>,
    /// False when the run stopped early (Ctrl-C, a crash of spark-perf).
    pub complete: bool,
    /// Why the run stopped early, `null` when it is complete.
    pub stopped: Option<String>,
    /// Where the engines came from, e.g. `compose/sim.yml (project sim)`.
    pub source: String,
    /// What to run, per use case: computed by the report crate from the
    /// engines below, so the JSON opens with it as every report does;
    /// absent from files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<Pick>,
    /// One entry per engine, in the order they ran.
    pub engines: Vec<EngineRun>,
    /// Containers of the daemon that were in an engine's way (another
    /// inference container of the project, a container holding a host port
    /// an engine needs), stopped for the run and started again at its end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub displaced: Vec<DisplacedContainer>,
    /// The machine's GPUs (names, driver, CUDA or ROCm version), or why none
    /// could be read; absent in files written before spark-perf read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuInfo>,
}

/// A container that was running before the run and was stopped because it
/// was in an engine's way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplacedContainer {
    /// The container's name.
    pub container: String,
    /// Its compose project and service, when it has them.
    pub project: Option<String>,
    pub service: Option<String>,
    /// Why it was in the way, e.g. `holds host port 8000, which service vllm needs`.
    pub reason: String,
    /// Whether it runs again.
    pub restore: RestoreStatus,
    /// Why it could not be started again, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_error: Option<String>,
}

/// Whether a displaced container was started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStatus {
    /// Stopped; the run has not ended yet (or spark-perf was killed).
    Pending,
    /// Started again at the end of the run.
    Restored,
    /// Left stopped, as `--no-restore` asked.
    LeftStopped,
    /// Starting it again failed (see `restore_error`).
    Failed,
}

/// One engine of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineRun {
    /// The compose service (or the demo's engine name).
    pub service: String,
    /// vllm, trtllm, sglang, llamacpp, ollama or unknown.
    pub flavor: String,
    /// The served model name requests used.
    pub model: Option<String>,
    /// Whether it was measured, and if not why.
    pub outcome: EngineOutcome,
    /// How long it took to become usable.
    pub startup: Option<StartupCost>,
    /// What exactly ran.
    pub provenance: Option<Provenance>,
    /// The scenarios' results; `null` when the engine never became healthy.
    pub results: Option<RunResults>,
    /// Runtime memory, CPU and model size; absent in files written before
    /// spark-perf read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<EngineTelemetry>,
}

impl EngineRun {
    /// Whether the engine was measured to the end.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, EngineOutcome::Ok)
    }
}

/// How an engine's turn ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum EngineOutcome {
    /// Started, measured, stopped.
    Ok,
    /// It failed; what it did before is kept.
    Failed {
        /// The phase that failed: `start`, `health`, `scenarios`, `stop`.
        phase: String,
        /// What happened, secrets redacted.
        reason: String,
    },
    /// The run was interrupted during (or before) this engine's turn.
    Interrupted,
}

/// Startup cost, seconds from the create call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StartupCost {
    /// The container was created.
    pub created_s: f64,
    /// The container was started.
    pub started_s: f64,
    /// The host port accepted a TCP connection.
    pub port_open_s: Option<f64>,
    /// The health endpoint answered 200: the time to healthy.
    pub healthy_s: Option<f64>,
}

/// What ran, for reproducing and for refusing to compare unlike runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// The image as named in the compose file.
    pub image: String,
    /// The local image ID (`sha256:…`).
    pub image_id: Option<String>,
    /// Registry digests of the image, when it was pulled from one.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// The effective command line (entrypoint, then command), masked: words
    /// from variables as written (`${VLLM_API_KEY}`), secret flags' values
    /// and environment values `[REDACTED]`.
    #[serde(default)]
    pub command: Vec<String>,
    /// Names of the container's environment variables (never their values).
    #[serde(default)]
    pub env_names: Vec<String>,
    /// compose's config hash of the service.
    pub config_hash: Option<String>,
    /// The engine's version when it reports one (`/version`).
    pub engine_version: Option<String>,
}
