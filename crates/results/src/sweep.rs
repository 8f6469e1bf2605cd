//! What the concurrency sweep, the SLOs and the capacity search add to a
//! run (docs/METRICS.md, "Concurrency sweep", "SLOs and goodput",
//! "Capacity"): plain serde types, every field optional in the JSON so that
//! older files read back.

use serde::{Deserialize, Serialize};

/// One level of the concurrency sweep (`ScenarioResult::sweep`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepLevel {
    /// The level: requests in flight (closed loop).
    pub level: u32,
    /// The steady window, seconds from the scenario's start: from 10 % of
    /// the span of sends to the last send (ramp-up and drain left out).
    pub steady_window_start_s: f64,
    /// End of the steady window.
    pub steady_window_end_s: f64,
    /// Successful requests that ended inside the window.
    pub steady_n_ok: u32,
    /// `steady_n_ok` per second of the window; `null` for an empty window.
    pub steady_request_throughput_rps: Option<f64>,
    /// Output tokens of those requests per second of the window; `null`
    /// for an empty window.
    pub steady_output_throughput_tok_s: Option<f64>,
    /// The level at which the sweep saturated (the last level whose output
    /// throughput still rose), the same on every level of the sweep; `null`
    /// when it never saturated.
    #[serde(default)]
    pub saturated_at: Option<u32>,
}

/// The latency a service-level objective bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    /// Time to first token.
    Ttft,
    /// Time per output token.
    Tpot,
    /// End-to-end latency.
    E2e,
}

/// One objective, e.g. `ttft_p90=2s`: every request's TTFT at most 2 s,
/// reported against the scenario's p90.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloObjective {
    /// The objective as written, e.g. `ttft_p90`.
    pub key: String,
    /// What it bounds.
    pub metric: SloMetric,
    /// The scenario percentile it is reported against (50, 90, 95 or 99).
    pub percentile: u8,
    /// The bound, milliseconds.
    pub limit_ms: f64,
    /// The scenario's percentile of the metric; `null` without samples.
    pub scenario_value_ms: Option<f64>,
    /// Whether that percentile was within the bound.
    pub met: bool,
    /// Successful requests within this bound alone.
    pub n_met: u32,
}

/// A scenario against the SLO (`ScenarioResult::slo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// Each objective with the scenario's figure.
    pub objectives: Vec<SloObjective>,
    /// Successful requests that met every objective.
    pub n_met: u32,
    /// `n_met` per second of the scenario's `duration_s` (vLLM's and
    /// AIPerf's goodput); `null` when the duration is 0.
    pub goodput_rps: Option<f64>,
    /// `n_met` / requests that ended (failed ones count as not met); `null`
    /// without requests.
    pub met_share: Option<f64>,
    /// Whether every objective's scenario percentile was within its bound
    /// and no request failed.
    pub met: bool,
}

/// The most load one engine took within the SLO (`RunResults::capacity`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// The largest level of the concurrency sweep whose scenario met the
    /// SLO; `null` when no level did (or no sweep ran).
    pub max_concurrency: Option<u32>,
    /// `--capacity`: the largest Poisson rate, requests per second, that a
    /// probe found within the SLO; `null` when not searched or none held.
    #[serde(default)]
    pub max_rate_rps: Option<f64>,
    /// The gap between `max_rate_rps` and the lowest rate that failed: the
    /// true limit lies between; `null` when no failing rate was found.
    #[serde(default)]
    pub resolution_rps: Option<f64>,
    /// The probes of the rate search, in the order they ran.
    #[serde(default)]
    pub probes: Vec<CapacityProbe>,
    /// How the search was bounded and why it stopped.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One probe of the capacity search: a short open-loop scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityProbe {
    /// Poisson arrival rate, requests per second.
    pub rate_rps: f64,
    /// Seconds of arrivals.
    pub duration_s: f64,
    /// Whether the SLO held (its `met`).
    pub met: bool,
    /// Requests that ended.
    pub n_requests: u32,
    /// Its goodput.
    pub goodput_rps: Option<f64>,
    /// Its share of requests that met every objective.
    pub met_share: Option<f64>,
    /// Its steady request throughput.
    pub steady_request_throughput_rps: Option<f64>,
}
