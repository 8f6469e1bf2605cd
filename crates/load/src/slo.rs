//! Service-level objectives: parsing `ttft_p90=2s,tpot_p90=100ms`, judging
//! each request against every objective (goodput, as vLLM's `--goodput` and
//! AIPerf define it), and the scenario's result.
//!
//! An objective bounds a per-request latency; its percentile name says which
//! scenario percentile it is reported against. A request is good when its
//! TTFT, its TPOT and its E2E are each within their bounds (a bound that is
//! not set is not checked); a request with fewer than 2 tokens has no TPOT
//! and passes that bound, as in vLLM (its TPOT is 0 there).

use std::collections::BTreeMap;
use std::fmt;

use spark_results::{RequestRecord, ScenarioAggregate, SloMetric, SloObjective, SloResult};

/// One objective: `metric ≤ limit_ms` per request, reported against the
/// scenario's `percentile`.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// The key as written, e.g. `ttft_p90`.
    pub key: String,
    /// What it bounds.
    pub metric: SloMetric,
    /// 50, 90, 95 or 99.
    pub percentile: u8,
    /// The bound, milliseconds.
    pub limit_ms: f64,
}

/// A set of objectives, at most one per metric.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slo {
    /// In the order given.
    pub objectives: Vec<Objective>,
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, o) in self.objectives.iter().enumerate() {
            let sep = if idx == 0 { "" } else { "," };
            write!(f, "{sep}{}={}ms", o.key, o.limit_ms)?;
        }
        Ok(())
    }
}

impl Slo {
    /// Parses `ttft_p90=2s,tpot_p90=100ms,e2e_p99=30s`.
    pub fn parse(text: &str) -> Result<Slo, String> {
        let mut pairs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!(
                    "SLO {part:?}: expected KEY=DURATION, e.g. ttft_p90=2s"
                ));
            };
            pairs.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        Slo::from_pairs(pairs)
    }

    /// Builds an SLO from `(key, duration)` pairs (the `[slo]` table of a
    /// scenario file, or the flag's list).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Slo, String> {
        let mut slo = Slo::default();
        for (key, value) in pairs {
            let (metric, percentile) = parse_key(&key)?;
            if slo.objectives.iter().any(|o| o.metric == metric) {
                return Err(format!(
                    "SLO key {key:?}: {} is bounded twice",
                    metric_name(metric)
                ));
            }
            let limit_ms =
                parse_duration_ms(&value).map_err(|why| format!("SLO key {key:?}: {why}"))?;
            slo.objectives.push(Objective {
                key,
                metric,
                percentile,
                limit_ms,
            });
        }
        if slo.objectives.is_empty() {
            return Err("empty SLO: give at least one objective, e.g. ttft_p90=2s".to_owned());
        }
        Ok(slo)
    }

    /// The `[slo]` table of a scenario file: every value a duration string.
    pub(crate) fn from_table(table: BTreeMap<String, toml::Value>) -> Result<Slo, String> {
        let mut pairs = Vec::new();
        for (key, value) in table {
            match value {
                toml::Value::String(s) => pairs.push((key, s)),
                other => {
                    return Err(format!(
                        "SLO key {key:?}: expected a duration string such as \"2s\", got {other}"
                    ));
                }
            }
        }
        Slo::from_pairs(pairs)
    }

    /// Whether a successful request met objective `idx`.
    fn request_meets(&self, idx: usize, r: &RequestRecord) -> bool {
        let o = &self.objectives[idx];
        match o.metric {
            SloMetric::Ttft => r.ttft_ms.is_some_and(|v| v <= o.limit_ms),
            // vLLM counts a one-token answer's TPOT as 0.
            SloMetric::Tpot => r.tpot_ms.is_none_or(|v| v <= o.limit_ms),
            SloMetric::E2e => r.e2e_ms <= o.limit_ms,
        }
    }
}

fn metric_name(metric: SloMetric) -> &'static str {
    match metric {
        SloMetric::Ttft => "ttft",
        SloMetric::Tpot => "tpot",
        SloMetric::E2e => "e2e",
    }
}

fn parse_key(key: &str) -> Result<(SloMetric, u8), String> {
    let bad = || {
        Err(format!(
            "unknown SLO key {key:?}: expected ttft, tpot or e2e with p50, p90, p95 or p99, e.g. ttft_p90"
        ))
    };
    let Some((metric, percentile)) = key.split_once("_p") else {
        return bad();
    };
    let metric = match metric {
        "ttft" => SloMetric::Ttft,
        "tpot" => SloMetric::Tpot,
        "e2e" => SloMetric::E2e,
        _ => return bad(),
    };
    match percentile {
        "50" | "90" | "95" | "99" => Ok((metric, percentile.parse().unwrap_or(90))),
        _ => bad(),
    }
}

/// `2s`, `100ms`, `1.5s`, `250us`, `1m` → milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "us" | "µs" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        "" => return Err(format!("duration {text:?} needs a unit: us, ms, s or m")),
        other => {
            return Err(format!(
                "duration {text:?}: unknown unit {other:?} (us, ms, s or m)"
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "duration {text:?} is not a positive number with a unit"
        )),
    }
}

/// Counts, request by request, who met the SLO (memory independent of the
/// requests).
#[derive(Debug, Clone)]
pub(crate) struct SloCounter {
    slo: Slo,
    n_met_each: Vec<u32>,
    n_met: u32,
}

impl SloCounter {
    pub(crate) fn new(slo: &Slo) -> SloCounter {
        SloCounter {
            n_met_each: vec![0; slo.objectives.len()],
            slo: slo.clone(),
            n_met: 0,
        }
    }

    /// Takes one record; a failed request meets nothing.
    pub(crate) fn add(&mut self, r: &RequestRecord) {
        if !r.is_ok() {
            return;
        }
        let mut all = true;
        for idx in 0..self.slo.objectives.len() {
            let meets = self.slo.request_meets(idx, r);
            self.n_met_each[idx] += u32::from(meets);
            all &= meets;
        }
        self.n_met += u32::from(all);
    }

    /// The scenario's result, judged on its aggregate's percentiles.
    pub(crate) fn finish(&self, aggregate: &ScenarioAggregate) -> SloResult {
        let objectives: Vec<SloObjective> = self
            .slo
            .objectives
            .iter()
            .zip(&self.n_met_each)
            .map(|(o, &n_met)| {
                let dist = match o.metric {
                    SloMetric::Ttft => &aggregate.ttft_ms,
                    SloMetric::Tpot => &aggregate.tpot_ms,
                    SloMetric::E2e => &aggregate.e2e_ms,
                };
                let value = match o.percentile {
                    50 => dist.p50,
                    95 => dist.p95,
                    99 => dist.p99,
                    _ => dist.p90,
                };
                SloObjective {
                    key: o.key.clone(),
                    metric: o.metric,
                    percentile: o.percentile,
                    limit_ms: o.limit_ms,
                    scenario_value_ms: value,
                    // A TPOT without samples (one-token answers) is 0, as per request.
                    met: value.map_or(o.metric == SloMetric::Tpot && aggregate.n_ok > 0, |v| {
                        v <= o.limit_ms
                    }),
                    n_met,
                }
            })
            .collect();
        let met = aggregate.n_ok > 0 && aggregate.n_failed == 0 && objectives.iter().all(|o| o.met);
        SloResult {
            objectives,
            n_met: self.n_met,
            goodput_rps: (aggregate.duration_s > 0.0)
                .then(|| f64::from(self.n_met) / aggregate.duration_s),
            met_share: (aggregate.n_requests > 0)
                .then(|| f64::from(self.n_met) / f64::from(aggregate.n_requests)),
            met,
        }
    }
}

/// Goodput over records a caller kept: the same counting as a scenario's.
pub fn judge(slo: &Slo, records: &[RequestRecord], aggregate: &ScenarioAggregate) -> SloResult {
    let mut counter = SloCounter::new(slo);
    for r in records {
        counter.add(r);
    }
    counter.finish(aggregate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spark_results::{Distribution, Failure, FailureClass};

    fn record(ttft_ms: f64, tpot_ms: Option<f64>, e2e_ms: f64) -> RequestRecord {
        serde_json::from_value(serde_json::json!({
            "scenario": "s", "request_idx": 0, "request_id": "spark-0",
            "scheduled_ms": null, "start_ms": 0.0, "sent_mono_ns": 0,
            "ttfb_ms": ttft_ms, "ttft_ms": ttft_ms, "e2e_ms": e2e_ms, "tpot_ms": tpot_ms,
            "itl_count": 0, "itl_min_ms": null, "itl_max_ms": null, "itl_mean_ms": null,
            "first_token_mono_ns": null, "last_token_mono_ns": null,
            "requested_input_tokens": 10, "input_tokens": 10, "requested_output_tokens": 10,
            "output_tokens": 10, "output_tokens_estimated": false, "short_output": false,
            "token_chunks": 10, "reasoning_chunks": 0, "prompt_tok_s": null,
            "decode_tok_s": null, "output_tok_s": null, "finish_reason": "length",
            "failure": null
        }))
        .expect("a record")
    }

    fn dist(p: f64) -> Distribution {
        Distribution {
            n: 4,
            p50: Some(p),
            p90: Some(p),
            p95: Some(p),
            p99: Some(p),
            ..Distribution::default()
        }
    }

    fn aggregate(n_requests: u32, n_ok: u32, ttft_p90: f64, tpot_p90: f64) -> ScenarioAggregate {
        serde_json::from_value(serde_json::json!({
            "n_requests": n_requests, "n_ok": n_ok, "n_failed": n_requests - n_ok,
            "failures_by_class": {}, "n_short_outputs": 0, "n_estimated_output_tokens": 0,
            "duration_s": 2.0, "output_tokens_total": 40, "request_throughput_rps": 2.0,
            "output_throughput_tok_s": 20.0,
            "ttft_ms": dist(ttft_p90), "tpot_ms": dist(tpot_p90), "itl_ms": dist(1.0),
            "e2e_ms": dist(500.0), "prompt_tok_s": dist(1.0), "decode_tok_s": dist(1.0),
            "output_tok_s": dist(1.0)
        }))
        .expect("an aggregate")
    }

    #[test]
    fn keys_and_durations_parse_and_errors_name_the_key() {
        let slo = Slo::parse("ttft_p90=2s, tpot_p90=100ms,e2e_p99=1.5m").expect("valid");
        let got: Vec<(SloMetric, u8, f64)> = slo
            .objectives
            .iter()
            .map(|o| (o.metric, o.percentile, o.limit_ms))
            .collect();
        assert_eq!(
            got,
            [
                (SloMetric::Ttft, 90, 2000.0),
                (SloMetric::Tpot, 90, 100.0),
                (SloMetric::E2e, 99, 90_000.0)
            ]
        );
        assert_eq!(parse_duration_ms("250us"), Ok(0.25));
        for (bad, key) in [
            ("ttft_p90=2s,itl_p90=5ms", "itl_p90"),
            ("ttft_p42=2s", "ttft_p42"),
            ("tpot_p90=100", "tpot_p90"),
            ("e2e_p50=-1s", "e2e_p50"),
            ("ttft_p90=2s,ttft_p99=3s", "ttft_p99"),
        ] {
            let err = Slo::parse(bad).expect_err(bad);
            assert!(err.contains(key), "{bad}: {err}");
        }
        assert!(Slo::parse("ttft_p90").is_err());
        assert!(Slo::parse("").is_err());
    }

    #[test]
    fn goodput_counts_requests_that_met_every_objective() {
        let slo = Slo::parse("ttft_p90=200ms,tpot_p90=20ms").expect("valid");
        let mut failed = record(50.0, Some(5.0), 100.0);
        failed.failure = Some(Failure {
            class: FailureClass::Reset,
            http_status: None,
            phase: None,
            message: "reset".to_owned(),
        });
        let records = [
            record(100.0, Some(10.0), 300.0), // meets both
            record(100.0, Some(30.0), 400.0), // meets TTFT, not TPOT: not good
            record(300.0, Some(10.0), 400.0), // meets TPOT, not TTFT: not good
            record(200.0, None, 200.0),       // one token: no TPOT, and TTFT at the bound
            failed,                           // a failure meets nothing
        ];
        let result = judge(&slo, &records, &aggregate(5, 4, 150.0, 25.0));
        assert_eq!(result.n_met, 2);
        assert_eq!(result.goodput_rps, Some(1.0));
        assert_eq!(result.met_share, Some(0.4));
        assert_eq!(result.objectives[0].n_met, 3);
        assert_eq!(result.objectives[1].n_met, 3);
        // The scenario's p90 TTFT met its bound, its p90 TPOT did not.
        assert!(result.objectives[0].met);
        assert!(!result.objectives[1].met);
        assert!(!result.met);
        let ok = judge(&slo, &records[..1], &aggregate(1, 1, 100.0, 10.0));
        assert!(ok.met);
        // A failed request fails the scenario's SLO even when its percentiles meet it.
        assert!(!judge(&slo, &records, &aggregate(5, 4, 100.0, 10.0)).met);
    }
}
