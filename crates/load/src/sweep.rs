//! The concurrency sweep: its levels, the saturation rule that stops it
//! early, and the largest level within the SLO (docs/METRICS.md,
//! "Concurrency sweep").
//!
//! Each level is a closed-loop scenario (`sweep-c8`) of `rounds × level`
//! requests, measured over its steady window: from 10 % of the span of
//! sends to the last send, so that the first wave (an empty engine filling)
//! and the drain (fewer than `level` in flight) are left out.

use spark_results::{Capacity, ScenarioAggregate, ScenarioResult};

/// The group of the sweep's scenarios.
pub const GROUP: &str = "concurrency-sweep";

/// Default levels: requests in flight.
pub const DEFAULT_LEVELS: &[u32] = &[1, 2, 4, 8, 16, 32, 64];

/// Default requests per worker of a level: enough rounds that the steady
/// window holds several of them.
pub const DEFAULT_ROUNDS: u32 = 8;

/// Fewest requests of a level, however low.
pub const MIN_REQUESTS: u32 = 16;

/// Saturation: output throughput rose by less than this (5 %) over the
/// previous level…
pub const MIN_THROUGHPUT_GAIN: f64 = 0.05;

/// …while TTFT p90 or E2E p50 grew by more than this (20 %).
pub const MAX_LATENCY_GROWTH: f64 = 0.20;

/// The scenario name of a level.
pub fn level_name(level: u32) -> String {
    format!("sweep-c{level}")
}

/// Requests of a level.
pub fn level_requests(level: u32, rounds: u32) -> u32 {
    level.saturating_mul(rounds.max(1)).max(MIN_REQUESTS)
}

/// What the saturation rule reads of a level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelFigures {
    /// Output tok/s over the steady window (the whole scenario's when no
    /// answer ended in the window).
    pub output_tok_s: f64,
    /// TTFT p90, ms.
    pub ttft_p90_ms: Option<f64>,
    /// E2E p50, ms.
    pub e2e_p50_ms: Option<f64>,
}

impl LevelFigures {
    /// The figures of a level's result.
    pub fn of(result: &ScenarioResult) -> LevelFigures {
        let a: &ScenarioAggregate = &result.aggregate;
        LevelFigures {
            // A window no answer ended in (a level of very few rounds)
            // measured nothing, not 0 tok/s.
            output_tok_s: result
                .sweep
                .as_ref()
                .filter(|s| s.steady_n_ok > 0)
                .and_then(|s| s.steady_output_throughput_tok_s)
                .unwrap_or(a.output_throughput_tok_s),
            ttft_p90_ms: a.ttft_ms.p90,
            e2e_p50_ms: a.e2e_ms.p50,
        }
    }
}

/// The saturation rule: going from `previous` to `next`, output throughput
/// rose by less than 5 % while TTFT p90 or E2E p50 grew by more than 20 %.
pub fn saturated(previous: &LevelFigures, next: &LevelFigures) -> bool {
    let grew = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => b > a * (1.0 + MAX_LATENCY_GROWTH),
        _ => false,
    };
    let flat = next.output_tok_s < previous.output_tok_s * (1.0 + MIN_THROUGHPUT_GAIN);
    flat && (grew(previous.ttft_p90_ms, next.ttft_p90_ms)
        || grew(previous.e2e_p50_ms, next.e2e_p50_ms))
}

/// After a level ran: whether the last two levels of the sweep in `results`
/// show saturation. If so, every level gets `saturated_at` (the previous
/// level: the last whose throughput still rose) and the last a note, and
/// the caller skips the remaining levels.
pub fn mark_saturation(results: &mut [ScenarioResult]) -> bool {
    let levels: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.sweep.is_some() && r.not_run.is_none() && r.aggregate.n_ok > 0)
        .map(|(idx, _)| idx)
        .collect();
    let [.., previous_idx, next_idx] = levels[..] else {
        return false;
    };
    let previous = LevelFigures::of(&results[previous_idx]);
    let next = LevelFigures::of(&results[next_idx]);
    if !saturated(&previous, &next) {
        return false;
    }
    let knee = results[previous_idx].sweep.as_ref().map_or(0, |s| s.level);
    let at = results[next_idx].sweep.as_ref().map_or(0, |s| s.level);
    for idx in levels {
        if let Some(sweep) = &mut results[idx].sweep {
            sweep.saturated_at = Some(knee);
        }
    }
    let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:+.0} %", (b / a - 1.0) * 100.0),
        _ => "n/a".to_owned(),
    };
    results[next_idx].notes.push(format!(
        "the sweep saturated at c={knee}: from c={knee} to c={at} output throughput changed {}, TTFT p90 {}, E2E p50 {}; higher levels were not run",
        pct(Some(previous.output_tok_s), Some(next.output_tok_s)),
        pct(previous.ttft_p90_ms, next.ttft_p90_ms),
        pct(previous.e2e_p50_ms, next.e2e_p50_ms),
    ));
    true
}

/// The largest level of the sweep whose scenario met the SLO.
pub fn capacity_of_sweep(results: &[ScenarioResult]) -> Capacity {
    let max_concurrency = results
        .iter()
        .filter(|r| r.slo.as_ref().is_some_and(|slo| slo.met))
        .filter_map(|r| r.sweep.as_ref().map(|s| s.level))
        .max();
    Capacity {
        max_concurrency,
        ..Capacity::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(output_tok_s: f64, ttft_p90_ms: f64, e2e_p50_ms: f64) -> LevelFigures {
        LevelFigures {
            output_tok_s,
            ttft_p90_ms: Some(ttft_p90_ms),
            e2e_p50_ms: Some(e2e_p50_ms),
        }
    }

    #[test]
    fn saturation_needs_flat_throughput_and_growing_latency() {
        let c4 = figures(1000.0, 100.0, 1000.0);
        // Throughput still rising by more than 5 %: not saturated, whatever latency does.
        assert!(!saturated(&c4, &figures(1060.0, 400.0, 3000.0)));
        // Flat throughput, latency flat too: not saturated (e.g. noise).
        assert!(!saturated(&c4, &figures(1020.0, 110.0, 1100.0)));
        // Flat throughput, TTFT p90 up 50 %: saturated.
        assert!(saturated(&c4, &figures(1020.0, 150.0, 1000.0)));
        // Flat throughput, E2E p50 up 25 % alone: saturated.
        assert!(saturated(&c4, &figures(1040.0, 100.0, 1250.0)));
        // Throughput falling with latency growing: saturated.
        assert!(saturated(&c4, &figures(900.0, 300.0, 2000.0)));
        // Exactly at the thresholds: not saturated (strict inequalities).
        assert!(!saturated(&c4, &figures(1050.0, 300.0, 3000.0)));
        assert!(!saturated(&c4, &figures(1000.0, 120.0, 1200.0)));
        // Missing latency figures never make saturation.
        let blind = LevelFigures {
            output_tok_s: 1000.0,
            ttft_p90_ms: None,
            e2e_p50_ms: None,
        };
        assert!(!saturated(&blind, &figures(1000.0, 900.0, 9000.0)));
    }

    #[test]
    fn a_steady_window_without_answers_falls_back_to_the_whole_level() {
        let dist = serde_json::json!({"n": 0});
        let mut result: ScenarioResult = serde_json::from_value(serde_json::json!({
            "name": "sweep-c4",
            "config": {"endpoint": "chat", "input_tokens": 16, "max_tokens": 4,
                "temperature": 0.0, "requests": 16, "concurrency": 4, "arrival": {"kind": "closed"},
                "shared_prefix_tokens": 0, "exact_output": true},
            "discarded": false, "notes": [],
            "sweep": {"level": 4, "steady_window_start_s": 0.1, "steady_window_end_s": 0.2,
                "steady_n_ok": 0, "steady_request_throughput_rps": 0.0,
                "steady_output_throughput_tok_s": 0.0},
            "aggregate": {
                "n_requests": 16, "n_ok": 16, "n_failed": 0, "failures_by_class": {},
                "n_short_outputs": 0, "n_estimated_output_tokens": 0, "duration_s": 0.2,
                "output_tokens_total": 64, "request_throughput_rps": 80.0,
                "output_throughput_tok_s": 320.0,
                "ttft_ms": dist, "tpot_ms": dist, "itl_ms": dist, "e2e_ms": dist,
                "prompt_tok_s": dist, "decode_tok_s": dist, "output_tok_s": dist
            },
            "requests": []
        }))
        .expect("a level");
        assert_eq!(LevelFigures::of(&result).output_tok_s, 320.0);
        if let Some(sweep) = &mut result.sweep {
            sweep.steady_n_ok = 3;
            sweep.steady_output_throughput_tok_s = Some(300.0);
        }
        assert_eq!(LevelFigures::of(&result).output_tok_s, 300.0);
    }

    #[test]
    fn requests_of_a_level_are_rounds_times_the_level_with_a_floor() {
        assert_eq!(level_requests(1, 8), MIN_REQUESTS);
        assert_eq!(level_requests(8, 8), 64);
        assert_eq!(level_requests(64, 0), 64);
        assert_eq!(level_name(16), "sweep-c16");
    }
}
