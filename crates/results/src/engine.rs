//! What the engine itself reported, beside what spark-perf measured: the
//! per-response `timings` of llama-server, and the engine's Prometheus
//! counters read before and after each scenario.
//!
//! These let a user check our clock against the engine's (docs/METRICS.md,
//! "Engine-reported figures"): client TTFT is never below the engine's
//! prefill time, and client TPOT agrees with the engine's decode time per
//! token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Distribution;

/// llama-server's `timings` object of one response (the last one the stream
/// carried). Every field is as the engine sent it; absent ones are `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineTimings {
    /// Prompt tokens the engine evaluated (those not taken from its cache).
    pub prompt_n: Option<u32>,
    /// Milliseconds the engine spent on the prompt (prefill).
    pub prompt_ms: Option<f64>,
    /// Tokens the engine generated.
    pub predicted_n: Option<u32>,
    /// Milliseconds from the first generated token to the last.
    pub predicted_ms: Option<f64>,
    /// The engine's `predicted_ms / predicted_n`.
    pub predicted_per_token_ms: Option<f64>,
    /// Prompt tokens taken from the engine's cache, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_n: Option<u32>,
}

impl EngineTimings {
    /// The engine's decode time per output token on spark-perf's definition
    /// of TPOT: `predicted_ms / (predicted_n − 1)`, since `predicted_ms`
    /// runs from the first generated token to the last (llama-server's own
    /// `predicted_per_token_ms` divides by `predicted_n`). `None` with fewer
    /// than 2 tokens.
    pub fn tpot_ms(&self) -> Option<f64> {
        let n = self.predicted_n?;
        let ms = self.predicted_ms?;
        (n >= 2).then(|| ms / f64::from(n - 1))
    }
}

/// A scenario's engine-reported timings against its client-side figures,
/// over the successful requests whose response carried `timings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineTimingsAggregate {
    /// Successful requests that carried `timings`.
    pub n: u32,
    /// The engine's prefill time (`prompt_ms`).
    pub prefill_ms: Distribution,
    /// The engine's TPOT ([`EngineTimings::tpot_ms`]).
    pub tpot_ms: Distribution,
    /// Client TTFT − engine `prompt_ms`, per request: what the client's
    /// first token cost beyond the engine's prefill (HTTP, queueing,
    /// tokenizing, the first token's sampling and sending). Negative values
    /// (a clock disagreement) count as 0 here; `n_ttft_below_prefill` says
    /// how many there were.
    pub ttft_over_prefill_ms: Distribution,
    /// Requests whose client TTFT was below the engine's `prompt_ms`.
    pub n_ttft_below_prefill: u32,
    /// Client TPOT / engine TPOT, per request: 1.0 is perfect agreement.
    pub tpot_ratio: Distribution,
}

/// The engine's Prometheus counters and gauges read right before a
/// scenario's first request and right after its last one ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineCounters {
    /// The path that was scraped (`/metrics`, `/prometheus/metrics`).
    pub path: String,
    /// Metric name → value (summed over label sets), before the scenario.
    pub before: BTreeMap<String, f64>,
    /// The same, after the scenario.
    pub after: BTreeMap<String, f64>,
    /// Why a scrape failed, when one did (the other map is then partial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EngineCounters {
    /// `after − before` of a counter, when both were read.
    pub fn delta(&self, name: &str) -> Option<f64> {
        Some(self.after.get(name)? - self.before.get(name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_tpot_divides_by_the_gaps_not_the_tokens() {
        let timings = EngineTimings {
            predicted_n: Some(11),
            predicted_ms: Some(50.0),
            ..EngineTimings::default()
        };
        assert_eq!(timings.tpot_ms(), Some(5.0));
        let one = EngineTimings {
            predicted_n: Some(1),
            predicted_ms: Some(0.0),
            ..EngineTimings::default()
        };
        assert_eq!(one.tpot_ms(), None);
    }

    #[test]
    fn a_delta_needs_both_reads() {
        let mut counters = EngineCounters::default();
        counters
            .before
            .insert("llamacpp:prompt_tokens_total".into(), 10.0);
        counters
            .after
            .insert("llamacpp:prompt_tokens_total".into(), 110.0);
        counters
            .after
            .insert("llamacpp:requests_processing".into(), 0.0);
        assert_eq!(counters.delta("llamacpp:prompt_tokens_total"), Some(100.0));
        assert_eq!(counters.delta("llamacpp:requests_processing"), None);
    }
}
