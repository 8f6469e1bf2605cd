//! The results of a whole `spark-perf run` (or `demo`): several engines, one
//! after the other, each with its startup cost, provenance and the
//! [`RunResults`] of its scenarios, or the reason it has none.
//!
//! This is what `reports/<run>/results.json` holds, what every renderer
//! reads, and what `spark-perf compare` compares.

use serde::{Deserialize, Serialize};

use crate::RunResults;

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
    /// One entry per engine, in the order they ran.
    pub engines: Vec<EngineRun>,
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
