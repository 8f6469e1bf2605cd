//! `spark-perf compare`: does the current run regress against a baseline?
//!
//! Two runs, one against the other: the ad-hoc comparison. Its verdicts are
//! weak, and the table says so: with one run on each side the run-to-run
//! noise (a container start, GPU clocks and heat) is unknown, and requests
//! are not independent repeats of a run, so no test over requests can
//! stand in for it (`compare --history` judges against the spread of many
//! runs, docs/NIGHTLY.md).
//!
//! A metric regresses when its median moved in the bad direction by more
//! than the threshold (default 5 %) *and* a bootstrap over the per-request
//! values of both runs (their `requests.jsonl`, which the caller reads)
//! finds the move surer than 1 − [`ALPHA`]: the same weak verdict the
//! history falls back to with fewer than five earlier runs. A metric without
//! per-request values (records missing, or an aggregate such as output
//! throughput) is judged by the threshold alone, and the table says so.

use std::collections::BTreeMap;

use spark_results::{Distribution, EngineRun, RequestRecord, ScenarioResult, SuiteResults};

use crate::nightly::bootstrap;

/// Significance level of the noise test.
pub const ALPHA: f64 = 0.01;

/// Options of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// Relative change, in the bad direction, that counts (0.05 = 5 %).
    pub threshold: f64,
    /// Compare even when the runs are not comparable.
    pub force: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            threshold: 0.05,
            force: false,
        }
    }
}

/// Which way a compared metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Latency: a rise is bad.
    LowerIsBetter,
    /// Throughput: a fall is bad.
    HigherIsBetter,
}

/// The verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the threshold.
    Unchanged,
    /// Better beyond the threshold.
    Improved,
    /// Worse beyond the threshold, but within the noise.
    Noise,
    /// Worse beyond the threshold and the noise.
    Regressed,
}

/// One metric of one scenario of one engine, before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub service: String,
    pub scenario: String,
    pub metric: &'static str,
    pub unit: &'static str,
    pub baseline: f64,
    pub current: f64,
    /// (current − baseline) / baseline.
    pub change: f64,
    /// The bootstrap's p-value over both runs' requests; `None` when the
    /// metric has no per-request values (judged by the threshold alone).
    pub p_value: Option<f64>,
    pub verdict: Verdict,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Why the runs are not comparable (empty when they are).
    pub differences: Vec<String>,
    /// Engines or scenarios present on one side only, or failed on one side.
    pub missing: Vec<String>,
    /// The compared metrics.
    pub deltas: Vec<Delta>,
}

impl Comparison {
    /// Whether any metric regressed.
    pub fn regressed(&self) -> bool {
        self.deltas.iter().any(|d| d.verdict == Verdict::Regressed)
    }
}

/// The request records of each side of a comparison, by engine (service),
/// as their `requests.jsonl` hold them; empty where they are not at hand.
#[derive(Debug, Clone, Default)]
pub struct RunRecords {
    pub baseline: BTreeMap<String, Vec<RequestRecord>>,
    pub current: BTreeMap<String, Vec<RequestRecord>>,
}

impl RunRecords {
    /// The successful records of `service` / `scenario` on both sides.
    fn of<'a>(
        &'a self,
        service: &str,
        scenario: &str,
    ) -> (Vec<&'a RequestRecord>, Vec<&'a RequestRecord>) {
        let pick = |side: &'a BTreeMap<String, Vec<RequestRecord>>| {
            side.get(service)
                .map(|records| {
                    records
                        .iter()
                        .filter(|r| r.scenario == scenario && r.is_ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        (pick(&self.baseline), pick(&self.current))
    }
}

/// Compares `current` with `baseline`, with the request records of both
/// where they are at hand. When the runs are not comparable and `force` is
/// off, the result has `differences` and no deltas.
pub fn compare(
    baseline: &SuiteResults,
    current: &SuiteResults,
    options: CompareOptions,
    records: &RunRecords,
) -> Comparison {
    let mut comparison = Comparison {
        differences: Vec::new(),
        missing: Vec::new(),
        deltas: Vec::new(),
    };
    let mut pairs = Vec::new();
    for base in &baseline.engines {
        let Some(cur) = current.engines.iter().find(|e| e.service == base.service) else {
            comparison
                .missing
                .push(format!("{}: not in the current run", base.service));
            continue;
        };
        comparison.differences.extend(engine_differences(base, cur));
        pairs.push((base, cur));
    }
    for cur in &current.engines {
        if !baseline.engines.iter().any(|e| e.service == cur.service) {
            comparison
                .missing
                .push(format!("{}: not in the baseline", cur.service));
        }
    }
    for (base, cur) in &pairs {
        let (Some(base_results), Some(cur_results)) = (&base.results, &cur.results) else {
            let side = if base.results.is_none() {
                "baseline"
            } else {
                "current run"
            };
            comparison
                .missing
                .push(format!("{}: no results in the {side}", base.service));
            continue;
        };
        for base_scenario in base_results.scenarios.iter().filter(|s| !s.discarded) {
            let Some(cur_scenario) = cur_results
                .scenarios
                .iter()
                .find(|s| s.name == base_scenario.name)
            else {
                comparison.missing.push(format!(
                    "{} / {}: not in the current run",
                    base.service, base_scenario.name
                ));
                continue;
            };
            if let Some(why) = base_scenario
                .not_run
                .as_ref()
                .or(cur_scenario.not_run.as_ref())
            {
                let side = if base_scenario.not_run.is_some() {
                    "baseline"
                } else {
                    "current run"
                };
                comparison.missing.push(format!(
                    "{} / {}: not run in the {side}: {why}",
                    base.service, base_scenario.name
                ));
                continue;
            }
            if base_scenario.config != cur_scenario.config {
                comparison.differences.push(format!(
                    "{} / {}: scenario settings differ ({:?} vs {:?})",
                    base.service, base_scenario.name, base_scenario.config, cur_scenario.config
                ));
            }
            comparison.deltas.extend(scenario_deltas(
                &base.service,
                base_scenario,
                cur_scenario,
                options.threshold,
                records,
            ));
        }
    }
    if !comparison.differences.is_empty() && !options.force {
        comparison.deltas.clear();
    }
    comparison
}

fn engine_differences(base: &EngineRun, cur: &EngineRun) -> Vec<String> {
    let mut differences = Vec::new();
    let service = &base.service;
    if base.model != cur.model {
        differences.push(format!(
            "{service}: model differs ({:?} vs {:?})",
            base.model, cur.model
        ));
    }
    if base.flavor != cur.flavor {
        differences.push(format!(
            "{service}: engine differs ({} vs {})",
            base.flavor, cur.flavor
        ));
    }
    if let (Some(a), Some(b)) = (&base.provenance, &cur.provenance) {
        if a.image_id != b.image_id || a.repo_digests != b.repo_digests {
            differences.push(format!(
                "{service}: image differs ({} vs {})",
                a.image_id.as_deref().unwrap_or(&a.image),
                b.image_id.as_deref().unwrap_or(&b.image)
            ));
        }
        if a.command != b.command {
            differences.push(format!(
                "{service}: command differs ({} vs {})",
                a.command.join(" "),
                b.command.join(" ")
            ));
        }
    }
    differences
}

type Pick = fn(&spark_results::ScenarioAggregate) -> &Distribution;
type PerRequest = fn(&RequestRecord) -> Option<f64>;

/// The metrics compared: the medians of per-request distributions (judged
/// by a bootstrap over the requests when their records are at hand) and
/// the scenario's output throughput (the threshold alone).
const DISTRIBUTION_METRICS: &[(&str, &str, Direction, Pick, PerRequest)] = &[
    (
        "TTFT p50",
        "ms",
        Direction::LowerIsBetter,
        |a| &a.ttft_ms,
        |r| r.ttft_ms,
    ),
    (
        "TPOT p50",
        "ms",
        Direction::LowerIsBetter,
        |a| &a.tpot_ms,
        |r| r.tpot_ms,
    ),
    // Over gaps, not requests: no per-request value to resample.
    (
        "ITL p50",
        "ms",
        Direction::LowerIsBetter,
        |a| &a.itl_ms,
        |_| None,
    ),
    (
        "E2E p50",
        "ms",
        Direction::LowerIsBetter,
        |a| &a.e2e_ms,
        |r| Some(r.e2e_ms),
    ),
    (
        "decode p50",
        "tok/s",
        Direction::HigherIsBetter,
        |a| &a.decode_tok_s,
        |r| r.decode_tok_s,
    ),
];

fn scenario_deltas(
    service: &str,
    base: &ScenarioResult,
    cur: &ScenarioResult,
    threshold: f64,
    records: &RunRecords,
) -> Vec<Delta> {
    let mut deltas = Vec::new();
    let (base_records, cur_records) = records.of(service, &base.name);
    for &(metric, unit, direction, pick, per_request) in DISTRIBUTION_METRICS {
        let values = |records: &[&RequestRecord]| -> Vec<f64> {
            records.iter().filter_map(|r| per_request(r)).collect()
        };
        let (a_values, b_values) = (values(&base_records), values(&cur_records));
        let judged = bootstrap::judge(&a_values, &b_values, bootstrap::median, direction);
        // With the records, the medians of the requests; without them, the
        // p50 of the aggregates (the same medians, from the histograms).
        let (a, b, p_value) = match &judged {
            Some(j) => (j.reference, j.value, Some(j.p_value)),
            None => {
                let (Some(a), Some(b)) = (pick(&base.aggregate).p50, pick(&cur.aggregate).p50)
                else {
                    continue;
                };
                (a, b, None)
            }
        };
        deltas.push(delta(
            service, &base.name, metric, unit, direction, a, b, p_value, threshold,
        ));
    }
    let (a, b) = (
        base.aggregate.output_throughput_tok_s,
        cur.aggregate.output_throughput_tok_s,
    );
    if a > 0.0 && b.is_finite() {
        deltas.push(delta(
            service,
            &base.name,
            "output throughput",
            "tok/s",
            Direction::HigherIsBetter,
            a,
            b,
            None,
            threshold,
        ));
    }
    deltas
}

#[allow(clippy::too_many_arguments)]
fn delta(
    service: &str,
    scenario: &str,
    metric: &'static str,
    unit: &'static str,
    direction: Direction,
    baseline: f64,
    current: f64,
    p_value: Option<f64>,
    threshold: f64,
) -> Delta {
    let change = if baseline == 0.0 {
        0.0
    } else {
        (current - baseline) / baseline
    };
    let worse = match direction {
        Direction::LowerIsBetter => change,
        Direction::HigherIsBetter => -change,
    };
    let verdict = if worse > threshold {
        match p_value {
            Some(p) if p >= ALPHA => Verdict::Noise,
            _ => Verdict::Regressed,
        }
    } else if worse < -threshold {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    };
    Delta {
        service: service.to_owned(),
        scenario: scenario.to_owned(),
        metric,
        unit,
        baseline,
        current,
        change,
        p_value,
        verdict,
    }
}

/// The comparison as a text table, for the terminal and cron mail.
pub fn render_text(comparison: &Comparison) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for difference in &comparison.differences {
        let _ = writeln!(out, "not comparable: {difference}");
    }
    for missing in &comparison.missing {
        let _ = writeln!(out, "missing: {missing}");
    }
    if !comparison.deltas.is_empty() {
        let _ = writeln!(
            out,
            "weak verdicts: one run against one; the run-to-run noise is unknown (p: a bootstrap over both runs' requests, `-`: no records, the threshold alone); compare --history judges against the spread of earlier runs"
        );
        let _ = writeln!(
            out,
            "{:<14} {:<18} {:<18} {:>12} {:>12} {:>8} {:>8}  verdict",
            "engine", "scenario", "metric", "baseline", "current", "change", "p"
        );
    }
    for d in &comparison.deltas {
        let p = d
            .p_value
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.3}"));
        let verdict = match d.verdict {
            Verdict::Unchanged => "ok",
            Verdict::Improved => "improved",
            Verdict::Noise => "worse, within noise",
            Verdict::Regressed => "REGRESSED",
        };
        let _ = writeln!(
            out,
            "{:<14} {:<18} {:<18} {:>12.1} {:>12.1} {:>+7.1}% {:>8}  {verdict}",
            d.service,
            d.scenario,
            format!("{} ({})", d.metric, d.unit),
            d.baseline,
            d.current,
            d.change * 100.0,
            p
        );
    }
    out
}
