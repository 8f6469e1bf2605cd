//! The pick of a run, as `results.json` stores it: the summary table (one
//! row per engine, the figures a user chooses by) and "which to run", one
//! verdict per use case. The report crate computes it (its `pick` module,
//! rules in docs/METRICS.md); these are the plain records it is written as.

use serde::{Deserialize, Serialize};

/// The pick: what every report opens with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Pick {
    /// One row per engine, in the order they ran.
    #[serde(default)]
    pub summary: Vec<PickSummaryRow>,
    /// One verdict per use case, in a fixed order.
    #[serde(default)]
    pub use_cases: Vec<PickUseCase>,
}

/// The figures of one engine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PickSummaryRow {
    /// The engine (compose service).
    pub engine: String,
    /// Why the engine takes no part in the pick (it failed or was
    /// interrupted); absent when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
    /// TTFT p50 of the `latency` scenario (one user).
    #[serde(default)]
    pub ttft_c1_ms: PickFigure,
    /// Decode tok/s p50 of the `latency` scenario (one user).
    #[serde(default)]
    pub decode_c1_tok_s: PickFigure,
    /// Output tok/s at saturation.
    #[serde(default)]
    pub saturation_output_tok_s: PickFigure,
    /// The most load within the SLO.
    #[serde(default)]
    pub capacity_within_slo: PickFigure,
    /// TTFT p50 at the longest context the engine ran (one user).
    #[serde(default)]
    pub longest_context_ttft_ms: PickFigure,
    /// The input tokens of that scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_context_tokens: Option<u32>,
    /// The model's weights on disk, GB.
    #[serde(default)]
    pub model_size_gb: PickFigure,
    /// The engine's memory while it served, GB.
    #[serde(default)]
    pub runtime_memory_gb: PickFigure,
}

/// One figure: its value and the spread behind it, or why there is none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PickFigure {
    /// The value; `null` when it is not known.
    pub value: Option<f64>,
    /// The standard deviation of the requests behind it, where it sums up a
    /// distribution (the noise the verdicts weigh a lead against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stddev: Option<f64>,
    /// Where it comes from, e.g. the scenario's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Why there is no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_available: Option<String>,
}

/// The outcome of a use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickVerdict {
    /// One engine leads the next by more than the noise.
    Winner,
    /// The best and the next are within the noise.
    Tie,
    /// Fewer than two engines have the figure.
    #[default]
    NotAvailable,
}

/// "Which to run" for one use case.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PickUseCase {
    /// e.g. `interactive chat`.
    pub use_case: String,
    /// The rule, in one sentence.
    pub rule: String,
    /// Winner, tie or N/A.
    pub verdict: PickVerdict,
    /// The winner, or the best of a tie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<String>,
    /// The next best (the one the margin is over), or the others of a tie.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<String>,
    /// How much better the best is than the next, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_pct: Option<f64>,
    /// The verdict as the reports print it.
    pub line: String,
    /// Engines left out of this use case, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}
