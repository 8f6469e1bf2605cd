//! The result model of a spark-perf run: plain serde types, no behaviour.
//!
//! The load engine produces these records, the report crate renders them and
//! `spark-perf compare` reads them back from a baseline. Keeping them in a
//! crate of their own means `report` never depends on `load`, and the JSON
//! written to disk has exactly one definition.
//!
//! Conventions of the JSON: keys are snake_case and carry their unit
//! (`ttft_ms`, `duration_s`, `output_throughput_tok_s`, `*_mono_ns`); a value
//! that could not be measured is `null`, never `0`. docs/METRICS.md defines
//! every metric. [`SCHEMA_VERSION`] changes whenever a field changes meaning
//! or disappears (adding an optional field does not change it).
//!
//! Architecture Invariant: this crate depends on serde only; it does no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod engine;
mod engine_metrics;
mod gpu;
mod pick;
mod suite;
mod sweep;
mod telemetry;

pub use engine::{EngineCounters, EngineTimings, EngineTimingsAggregate};
pub use engine_metrics::EngineScenarioMetrics;
pub use gpu::{
    DeviceGpu, EngineGpu, GpuEnergyMethod, GpuInfo, GpuMemoryKind, GpuSample, GpuUnavailable,
    ScenarioGpu,
};
pub use pick::{Pick, PickFigure, PickSummaryRow, PickUseCase, PickVerdict};
pub use sweep::{Capacity, CapacityProbe, SloMetric, SloObjective, SloResult, SweepLevel};
pub use telemetry::{EngineTelemetry, ModelSize, ScenarioUsage, UsageSample};

// `OpenLoopAggregate` is defined below, beside `ScenarioAggregate`.
pub use suite::{
    DisplacedContainer, EngineOutcome, EngineRun, Provenance, RestoreStatus, SUITE_SCHEMA_VERSION,
    StartupCost, SuiteResults,
};

/// Version of the JSON shape of [`RunResults`] and [`RequestRecord`].
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one `bench` (or one engine of a `run`) measured: the file
/// `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool and its version, e.g. `spark-perf 0.1.0`.
    pub tool: String,
    /// Wall-clock start of the run, Unix milliseconds (metadata only; no
    /// metric is computed from the wall clock).
    pub started_unix_ms: u64,
    /// What was measured.
    pub engine: EngineInfo,
    /// One entry per scenario, in the order they ran.
    pub scenarios: Vec<ScenarioResult>,
    /// Why the run stopped before its last scenario (Ctrl-C, engine gone),
    /// `null` when everything ran.
    #[serde(default)]
    pub stopped: Option<String>,
    /// The most load within the SLO (the sweep's levels, `--capacity`'s
    /// rate search); absent without an SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
}

/// The engine under test, as discovered before the scenarios ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Base URL (no credentials: an API key is never written anywhere).
    pub url: String,
    /// Model name sent in every request.
    pub model: String,
    /// `max_model_len` from `/v1/models`, when the engine reports it.
    pub max_model_len: Option<u32>,
    /// How prompt lengths were calibrated.
    pub prompt_calibration: CalibrationMethod,
    /// Whether the engine produced exactly `max_tokens` tokens when asked
    /// with `ignore_eos` and `min_tokens`; `null` when not probed.
    pub ignore_eos_honoured: Option<bool>,
    /// Things the user should know about the measurement of this engine.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// How the prompt of N tokens was sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// The engine's `/tokenize` endpoint (exact).
    Tokenize,
    /// The usage of `max_tokens: 1` probes (within about 1 %).
    UsageProbe,
    /// Neither worked: prompts are sized by an estimate (see notes).
    Estimate,
}

/// One scenario's configuration, records and aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Scenario name, e.g. `throughput` or `long-context-8k`.
    pub name: String,
    /// The configuration it ran with (after CLI overrides and clamping).
    pub config: ScenarioConfig,
    /// Whether its results are discarded (warmup).
    pub discarded: bool,
    /// Clamping, calibration and probe notes.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Why the scenario stopped before sending all its requests, `null` when
    /// it ran to the end.
    pub stopped: Option<String>,
    /// Why the scenario was not run at all (no prompt of its length could be
    /// established); absent when it ran. Its aggregate is then empty and the
    /// reports show N/A with this reason, never a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
    /// The aggregates over its requests.
    pub aggregate: ScenarioAggregate,
    /// The engine's Prometheus counters before and after the scenario;
    /// absent when the engine serves no metrics (or it was not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_counters: Option<EngineCounters>,
    /// A level of the concurrency sweep: its level, steady window and where
    /// the sweep saturated; absent for other scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepLevel>,
    /// The scenario against the SLO (goodput, share met); absent without an
    /// SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloResult>,
    /// One record per request in the order they ended; empty when the
    /// writer kept only aggregates (the JSONL file has them all).
    #[serde(default)]
    pub requests: Vec<RequestRecord>,
}

/// Which OpenAI-compatible endpoint a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completions,
}

/// How requests are started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Arrival {
    /// Closed loop: `concurrency` requests in flight, the next one starts
    /// when one ends.
    Closed,
    /// Open loop: Poisson arrivals at `rate_rps` requests per second, at most
    /// `concurrency` in flight (a request due while all slots are busy starts
    /// late, which its record shows).
    Poisson {
        /// Mean arrival rate, requests per second.
        rate_rps: f64,
    },
}

/// A scenario's parameters as they were run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioConfig {
    /// Endpoint used.
    pub endpoint: Endpoint,
    /// Prompt length asked for, in tokens as the engine counts them (chat:
    /// template included), after clamping.
    pub input_tokens: u32,
    /// `max_tokens` of every request.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Number of requests.
    pub requests: u32,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Arrival process.
    pub arrival: Arrival,
    /// Leading prompt tokens shared by every request (0: every prompt is
    /// distinct from its first tokens, so no prefix-cache hits).
    pub shared_prefix_tokens: u32,
    /// Whether requests asked for exactly `max_tokens` (`ignore_eos`,
    /// `min_tokens`).
    pub exact_output: bool,
    /// Open loop: seconds of arrivals (`requests` is then a cap); absent:
    /// sized by `requests` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}

/// One request, as measured by the client.
///
/// Times are milliseconds from the moment the request was handed to the
/// HTTP client (`sent_mono_ns`); `*_mono_ns` are CLOCK_MONOTONIC
/// nanoseconds, comparable with spark-sim's truth log and any other process
/// on the same host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Scenario it belongs to.
    pub scenario: String,
    /// Index within the scenario, in start order (0-based).
    pub request_idx: u32,
    /// The `X-Request-Id` sent (vLLM and spark-sim echo it in the response id).
    pub request_id: String,
    /// Open loop: when it was due, ms from the scenario's start; closed loop: `null`.
    pub scheduled_ms: Option<f64>,
    /// When it was sent, ms from the scenario's start.
    pub start_ms: f64,
    /// Open loop: `start_ms − scheduled_ms`, how late it was sent (all
    /// workers busy, or the client behind); absent in closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness_ms: Option<f64>,
    /// When it was sent, CLOCK_MONOTONIC ns.
    pub sent_mono_ns: u64,
    /// Time to the response head (status line and headers).
    pub ttfb_ms: Option<f64>,
    /// Time to the first chunk with non-empty content or reasoning.
    pub ttft_ms: Option<f64>,
    /// Time to the first answer token (TTFO): the first chunk with content
    /// after reasoning chunks; `null` when the response had no reasoning.
    #[serde(default)]
    pub ttfo_ms: Option<f64>,
    /// Time to the end of the response (or to the failure).
    pub e2e_ms: f64,
    /// (E2E − TTFT) / (output tokens − 1); `null` with fewer than 2 tokens.
    pub tpot_ms: Option<f64>,
    /// Gaps between successive token-carrying chunks: how many.
    pub itl_count: u32,
    /// Smallest gap.
    pub itl_min_ms: Option<f64>,
    /// Largest gap (the longest stall the user saw).
    pub itl_max_ms: Option<f64>,
    /// Mean gap.
    pub itl_mean_ms: Option<f64>,
    /// First token-carrying chunk, CLOCK_MONOTONIC ns.
    pub first_token_mono_ns: Option<u64>,
    /// Last token-carrying chunk, CLOCK_MONOTONIC ns.
    pub last_token_mono_ns: Option<u64>,
    /// Prompt tokens asked for.
    pub requested_input_tokens: u32,
    /// Prompt tokens per the engine's usage.
    pub input_tokens: Option<u32>,
    /// `max_tokens` asked for.
    pub requested_output_tokens: u32,
    /// Output tokens per the engine's usage (or counted chunks, see below).
    pub output_tokens: Option<u32>,
    /// `output_tokens` was counted from chunks because the engine sent no usage.
    pub output_tokens_estimated: bool,
    /// Exact output was asked for and fewer tokens came back.
    pub short_output: bool,
    /// Chunks that carried content or reasoning.
    pub token_chunks: u32,
    /// Of those, chunks that carried reasoning.
    pub reasoning_chunks: u32,
    /// Reasoning tokens: `usage.completion_tokens_details.reasoning_tokens`,
    /// else counted from per-chunk usage; `null` without reasoning or
    /// without either count.
    #[serde(default)]
    pub reasoning_tokens: Option<u32>,
    /// input tokens / TTFT.
    pub prompt_tok_s: Option<f64>,
    /// (output tokens − 1) / (E2E − TTFT).
    pub decode_tok_s: Option<f64>,
    /// output tokens / E2E.
    pub output_tok_s: Option<f64>,
    /// `finish_reason` of the last choice chunk that had one.
    pub finish_reason: Option<String>,
    /// The engine's own `timings` of this response (llama-server), when it
    /// sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_timings: Option<EngineTimings>,
    /// `null` when the request succeeded.
    pub failure: Option<Failure>,
}

impl RequestRecord {
    /// Whether the request succeeded.
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The class of failure.
    pub class: FailureClass,
    /// HTTP status, for `http_status`.
    pub http_status: Option<u16>,
    /// Which timeout fired, for `timeout`.
    pub phase: Option<TimeoutPhase>,
    /// The server's message, or what the client saw.
    pub message: String,
}

/// Classes of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The engine answered a non-2xx status.
    HttpStatus,
    /// An `{"error": …}` event inside a 200 stream.
    StreamError,
    /// No connection could be made.
    Connect,
    /// The connection was reset or broke mid-response.
    Reset,
    /// A phase took longer than its limit.
    Timeout,
    /// The stream ended before its end (`[DONE]` or a `finish_reason`).
    Truncated,
    /// The engine sent something that is not an OpenAI stream.
    InvalidResponse,
    /// Stopped by the user (Ctrl-C) while in flight.
    Cancelled,
    /// The prompt did not fit the engine's context, as the server said (an
    /// in-stream error such as llama-server's "exceeds the available context
    /// size", or a non-2xx status whose message says so: `http_status` is set).
    ContextLength,
}

impl FailureClass {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::HttpStatus => "http_status",
            FailureClass::StreamError => "stream_error",
            FailureClass::Connect => "connect",
            FailureClass::Reset => "reset",
            FailureClass::Timeout => "timeout",
            FailureClass::Truncated => "truncated",
            FailureClass::InvalidResponse => "invalid_response",
            FailureClass::Cancelled => "cancelled",
            FailureClass::ContextLength => "context_length",
        }
    }
}

/// The phases a timeout applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutPhase {
    /// Establishing the TCP connection.
    Connect,
    /// From sending to the first token-carrying chunk.
    FirstToken,
    /// Between two received chunks once tokens flow.
    BetweenTokens,
    /// The whole request.
    Total,
}

/// Aggregates over a scenario's requests (docs/METRICS.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioAggregate {
    /// Requests that ended (ok or failed; cancelled ones included).
    pub n_requests: u32,
    /// Requests that succeeded.
    pub n_ok: u32,
    /// Requests that failed.
    pub n_failed: u32,
    /// Failed requests by class (snake_case class names).
    pub failures_by_class: BTreeMap<String, u32>,
    /// Successful requests whose output was shorter than asked.
    pub n_short_outputs: u32,
    /// Successful requests whose output count was estimated from chunks.
    pub n_estimated_output_tokens: u32,
    /// From the first send to the last end, seconds.
    pub duration_s: f64,
    /// Prompt tokens of successful requests; `null` when one of them had no
    /// `usage.prompt_tokens` (the engine sent no usage), never a made-up 0.
    #[serde(default)]
    pub input_tokens_total: Option<u64>,
    /// Output tokens of successful requests.
    pub output_tokens_total: u64,
    /// Successful requests per second of `duration_s` (QPS).
    pub request_throughput_rps: f64,
    /// Prompt tokens of successful requests per second of `duration_s`;
    /// `null` when `input_tokens_total` is.
    #[serde(default)]
    pub input_throughput_tok_s: Option<f64>,
    /// Output tokens of successful requests per second of `duration_s`.
    pub output_throughput_tok_s: f64,
    /// Time to first token over successful requests.
    pub ttft_ms: Distribution,
    /// Time to the first answer token over successful requests that
    /// reasoned first; absent when none did.
    #[serde(default, skip_serializing_if = "Distribution::is_empty")]
    pub ttfo_ms: Distribution,
    /// Reasoning tokens per successful request that reported them; absent
    /// when none did.
    #[serde(default, skip_serializing_if = "Distribution::is_empty")]
    pub reasoning_tokens: Distribution,
    /// Time per output token over successful requests.
    pub tpot_ms: Distribution,
    /// Inter-token latency over every gap of every successful request.
    pub itl_ms: Distribution,
    /// End-to-end latency over successful requests.
    pub e2e_ms: Distribution,
    /// Per-request prompt tok/s (input tokens / TTFT).
    pub prompt_tok_s: Distribution,
    /// Per-request decode tok/s ((output − 1) / (E2E − TTFT)).
    pub decode_tok_s: Distribution,
    /// Per-request output tok/s (output tokens / E2E).
    pub output_tok_s: Distribution,
    /// Open loop only: latencies from the scheduled send time, lateness and
    /// the steady window's throughput; absent in closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_loop: Option<OpenLoopAggregate>,
    /// The engine's own timings against ours; absent when no response
    /// carried `timings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_timings: Option<EngineTimingsAggregate>,
}

/// What an open-loop scenario measured beyond the closed-loop aggregates,
/// so that neither an overloaded engine nor a lagging client can look
/// better than it is (no coordinated omission; docs/METRICS.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenLoopAggregate {
    /// How late each request was sent (`lateness_ms` of the records), over
    /// every request sent.
    pub lateness_ms: Distribution,
    /// Lateness + TTFT over successful requests: what a user arriving at the
    /// scheduled time waited for the first token.
    pub ttft_from_scheduled_ms: Distribution,
    /// Lateness + E2E over successful requests.
    pub e2e_from_scheduled_ms: Distribution,
    /// The steady window, seconds from the scenario's start: from 10 % of
    /// the arrival span (ramp-up excluded) to the last scheduled arrival
    /// (drain excluded).
    pub steady_window_start_s: f64,
    /// End of the steady window.
    pub steady_window_end_s: f64,
    /// Successful requests that ended inside the steady window.
    pub steady_n_ok: u32,
    /// `steady_n_ok` per second of the window; `null` for an empty window.
    pub steady_request_throughput_rps: Option<f64>,
    /// Output tokens of the requests that ended inside the window, per second of it.
    pub steady_output_throughput_tok_s: Option<f64>,
}

/// Summary of one metric; `null` fields when there was no sample.
///
/// Count, mean, min, max and standard deviation are exact; percentiles
/// are nearest-rank values of a histogram with 3 significant digits
/// (relative error ≤ 0.1 %), so memory does not grow with the requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Number of samples.
    pub n: u64,
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub stddev: Option<f64>,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
}

impl Distribution {
    /// Whether there was no sample.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}
