//! Judging one run of the history against the earlier comparable runs: the
//! glue between `spark-history` (the numbers) and `spark-report`'s
//! `nightly` statistics (the verdicts). Used by `compare --history`,
//! `run --check-history` and `history`.
//!
//! Comparable means the same measurement: the scenario's configuration (its
//! hash) and the GPU. A changed image or command is what a nightly run
//! exists to catch, so those runs are compared, and the change is named as
//! the likely cause.

use serde::Serialize;
use spark_history::{History, Point, RunId};
use spark_report::nightly::{self, Call, Direction, Judged, band, bootstrap, failures, family};

/// Earlier runs a verdict looks back on.
pub(crate) const WINDOW: usize = 30;

/// How a metric is judged: its history name, which way is better, the
/// per-request statistic of the weak (bootstrap) verdict, and whether it is
/// a tail.
///
/// A tail (a p99) is noisier from night to night than a median: its band's
/// spread is floored at [`band::MIN_RELATIVE_SPREAD_TAIL`] instead of
/// [`band::MIN_RELATIVE_SPREAD`], its practical threshold is twice the
/// run's, and a p99 over requests is judged only when the run had at least
/// [`MIN_SAMPLES_FOR_P99`] successful requests (below that it is the
/// largest value, not a percentile).
struct KeyMetric {
    name: &'static str,
    direction: Direction,
    statistic: Option<bootstrap::Statistic>,
    tail: Tail,
}

/// What kind of tail a metric is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// A median or a throughput.
    No,
    /// A percentile over requests (needs enough requests).
    OverRequests,
    /// A percentile over inter-token gaps (many per request).
    OverGaps,
}

/// Successful requests a run needs for its p99 over requests to be judged.
pub(crate) const MIN_SAMPLES_FOR_P99: u32 = 20;

const fn key(
    name: &'static str,
    direction: Direction,
    statistic: Option<bootstrap::Statistic>,
    tail: Tail,
) -> KeyMetric {
    KeyMetric {
        name,
        direction,
        statistic,
        tail,
    }
}

impl KeyMetric {
    fn min_relative_spread(&self) -> f64 {
        match self.tail {
            Tail::No => band::MIN_RELATIVE_SPREAD,
            Tail::OverRequests | Tail::OverGaps => band::MIN_RELATIVE_SPREAD_TAIL,
        }
    }

    /// The practical threshold of this metric, from the run's.
    fn threshold(&self, threshold: f64) -> f64 {
        match self.tail {
            Tail::No => threshold,
            Tail::OverRequests | Tail::OverGaps => 2.0 * threshold,
        }
    }
}

/// The metrics a night is judged on.
const KEY_METRICS: &[KeyMetric] = &[
    key(
        "ttft_ms.p50",
        Direction::LowerIsBetter,
        Some(bootstrap::median),
        Tail::No,
    ),
    key(
        "ttft_ms.p99",
        Direction::LowerIsBetter,
        Some(bootstrap::p99),
        Tail::OverRequests,
    ),
    key(
        "tpot_ms.p50",
        Direction::LowerIsBetter,
        Some(bootstrap::median),
        Tail::No,
    ),
    key(
        "itl_ms.p50",
        Direction::LowerIsBetter,
        Some(bootstrap::median),
        Tail::No,
    ),
    key(
        "itl_ms.p99",
        Direction::LowerIsBetter,
        Some(bootstrap::p99),
        Tail::OverGaps,
    ),
    key(
        "e2e_ms.p50",
        Direction::LowerIsBetter,
        Some(bootstrap::median),
        Tail::No,
    ),
    key(
        "output_throughput_tok_s",
        Direction::HigherIsBetter,
        None,
        Tail::No,
    ),
    key(
        "request_throughput_rps",
        Direction::HigherIsBetter,
        None,
        Tail::No,
    ),
    key(
        "time_to_healthy_s",
        Direction::LowerIsBetter,
        None,
        Tail::No,
    ),
];

/// The failure-rate pseudo-metric's name in verdicts.
pub(crate) const FAILURE_RATE: &str = "failure_rate";

/// One metric of one engine × scenario, judged.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MetricVerdict {
    pub engine: String,
    pub scenario: String,
    pub metric: String,
    #[serde(flatten)]
    pub judged: Judged,
    /// Whether the family correction kept this metric's p-value.
    pub discovered: bool,
    pub call: Call,
    /// What changed since the previous comparable run (image, command).
    pub likely_cause: Option<String>,
}

/// A whole run judged.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunVerdict {
    pub run_id: i64,
    pub started_unix_ms: u64,
    pub metrics: Vec<MetricVerdict>,
    /// Engines that ran well before and failed in this run.
    pub failed_engines: Vec<String>,
    /// Metrics with no comparable earlier run.
    pub not_comparable: usize,
}

impl RunVerdict {
    pub(crate) fn regressed(&self) -> bool {
        !self.failed_engines.is_empty() || self.metrics.iter().any(|m| m.call == Call::Regressed)
    }

    /// 0 nothing regressed, 1 a regression, 2 nothing could be compared.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.regressed() {
            crate::EXIT_REGRESSION
        } else if self.metrics.is_empty() {
            crate::EXIT_ERROR
        } else {
            crate::EXIT_OK
        }
    }
}

/// The points of `earlier` (oldest first, all before tonight) comparable
/// with `tonight` (same scenario configuration and GPU), the newest
/// [`WINDOW`] of them.
fn comparable<'a>(earlier: &'a [Point], tonight: &Point) -> Vec<&'a Point> {
    let same: Vec<&Point> = earlier
        .iter()
        .filter(|p| p.config_hash == tonight.config_hash && p.gpu == tonight.gpu)
        .collect();
    let skip = same.len().saturating_sub(WINDOW);
    same[skip..].to_vec()
}

/// The names of the metrics a night is judged on, failure rate last.
pub(crate) fn key_metric_names() -> impl Iterator<Item = &'static str> {
    KEY_METRICS
        .iter()
        .map(|m| m.name)
        .chain(std::iter::once(FAILURE_RATE))
}

/// The call on one point of one series, against the points before it, for
/// `history`'s table: without the run's whole family, the family is the
/// key metrics of one engine × scenario (Bonferroni over them). `None` when
/// nothing earlier is comparable.
pub(crate) fn call_in_series(
    metric: &str,
    earlier: &[Point],
    tonight: &Point,
    threshold: f64,
) -> Option<Call> {
    let comparable = comparable(earlier, tonight);
    let family_size = KEY_METRICS.len() as f64 + 1.0;
    let level = family::FDR / family_size;
    if metric == FAILURE_RATE {
        let judged = judge_failures(&comparable, tonight)?;
        return Some(failures::call(&judged, judged.p_value <= level));
    }
    let key = KEY_METRICS.iter().find(|k| k.name == metric);
    let fallback = KeyMetric {
        name: "",
        direction: if metric.contains("throughput") || metric.ends_with("tok_s") {
            Direction::HigherIsBetter
        } else {
            Direction::LowerIsBetter
        },
        statistic: None,
        tail: if metric.ends_with(".p99") || metric.ends_with(".p90") {
            Tail::OverRequests
        } else {
            Tail::No
        },
    };
    let key = key.unwrap_or(&fallback);
    let judged = judge_metric(key, &comparable, tonight)?;
    Some(judged.call(
        key.direction,
        key.threshold(threshold),
        judged.p_value <= level,
    ))
}

/// "image A → B" or "command changed" between the previous comparable run
/// and tonight.
fn likely_cause(previous: Option<&&Point>, tonight: &Point) -> Option<String> {
    let previous = previous?;
    let short = |id: &Option<String>| {
        id.as_deref()
            .map(|id| {
                id.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>()
            })
            .unwrap_or_else(|| "?".to_owned())
    };
    let mut causes = Vec::new();
    if previous.image_id != tonight.image_id {
        causes.push(format!(
            "image {} → {}",
            short(&previous.image_id),
            short(&tonight.image_id)
        ));
    }
    if previous.command_hash != tonight.command_hash {
        causes.push("command changed".to_owned());
    }
    (!causes.is_empty()).then(|| causes.join(", "))
}

/// Judges one metric; `None` when there is nothing comparable to judge by.
fn judge_metric(metric: &KeyMetric, earlier: &[&Point], tonight: &Point) -> Option<Judged> {
    let value = tonight.value?;
    let enough = |p: &Point| {
        metric.tail != Tail::OverRequests
            || p.n_requests.saturating_sub(p.n_failed) >= MIN_SAMPLES_FOR_P99
    };
    if !enough(tonight) {
        // The "p99" of a handful of requests is their largest value.
        return None;
    }
    let history: Vec<f64> = earlier
        .iter()
        .filter(|p| enough(p))
        .filter_map(|p| p.value)
        .collect();
    if history.len() >= nightly::MIN_HISTORY {
        return band::judge(
            &history,
            value,
            metric.direction,
            metric.min_relative_spread(),
        );
    }
    // Too little history for its own spread: the last comparable run as a
    // baseline, by resampling both runs' requests.
    let statistic = metric.statistic?;
    let baseline = earlier.last()?;
    bootstrap::judge(
        &baseline.values,
        &tonight.values,
        statistic,
        metric.direction,
    )
}

fn judge_failures(earlier: &[&Point], tonight: &Point) -> Option<Judged> {
    let count = |p: &Point| failures::Count {
        failed: u64::from(p.n_failed),
        requests: u64::from(p.n_requests),
    };
    let earlier: Vec<failures::Count> = earlier.iter().map(|p| count(p)).collect();
    failures::judge(&earlier, count(tonight))
}

/// Judges run `run_id` of `history` against its earlier comparable runs, at
/// the practical `threshold` (0.05 = 5 %).
pub(crate) fn judge_run(
    history: &History,
    run_id: RunId,
    threshold: f64,
) -> anyhow::Result<RunVerdict> {
    let runs = history.runs()?;
    let run = runs.iter().find(|r| r.id == run_id).ok_or_else(|| {
        anyhow::anyhow!(
            "run {} is not in the history {}",
            run_id.0,
            history.path().display()
        )
    })?;
    let mut pending: Vec<(MetricVerdict, bool)> = Vec::new();
    let mut not_comparable = 0;
    let mut failed_engines = Vec::new();
    for engine in history.engines_of(run_id)? {
        if engine.outcome != "ok" {
            let ran_before = runs
                .iter()
                .filter(|r| r.started_unix_ms < run.started_unix_ms)
                .any(|r| {
                    history.engines_of(r.id).is_ok_and(|engines| {
                        engines
                            .iter()
                            .any(|e| e.service == engine.service && e.outcome == "ok")
                    })
                });
            if ran_before && engine.outcome == "failed" {
                failed_engines.push(engine.service.clone());
            }
            continue;
        }
        for scenario in history.scenarios(&engine.service)? {
            let mut judge_one = |name: &str,
                                 judge: &dyn Fn(&[&Point], &Point) -> Option<Judged>,
                                 is_failure: bool|
             -> anyhow::Result<()> {
                let points = history.series(&engine.service, &scenario, name, usize::MAX / 2)?;
                let Some(at) = points.iter().position(|p| p.run_id == run_id) else {
                    return Ok(());
                };
                let tonight = &points[at];
                let earlier = comparable(&points[..at], tonight);
                match judge(&earlier, tonight) {
                    Some(judged) => pending.push((
                        MetricVerdict {
                            engine: engine.service.clone(),
                            scenario: scenario.clone(),
                            metric: name.to_owned(),
                            judged,
                            discovered: false,
                            call: Call::Unchanged,
                            likely_cause: likely_cause(earlier.last(), tonight),
                        },
                        is_failure,
                    )),
                    None => not_comparable += 1,
                }
                Ok(())
            };
            for metric in KEY_METRICS {
                judge_one(metric.name, &|e, t| judge_metric(metric, e, t), false)?;
            }
            judge_one(FAILURE_RATE, &judge_failures, true)?;
        }
    }
    // One family per run: every metric of every engine and scenario.
    let p_values: Vec<f64> = pending.iter().map(|(m, _)| m.judged.p_value).collect();
    let discovered = family::benjamini_hochberg(&p_values, family::FDR);
    let metrics = pending
        .into_iter()
        .zip(discovered)
        .map(|((mut verdict, is_failure), discovered)| {
            verdict.discovered = discovered;
            verdict.call = if is_failure {
                failures::call(&verdict.judged, discovered)
            } else {
                let (direction, threshold) = KEY_METRICS
                    .iter()
                    .find(|k| k.name == verdict.metric)
                    .map_or((Direction::LowerIsBetter, threshold), |k| {
                        (k.direction, k.threshold(threshold))
                    });
                verdict.judged.call(direction, threshold, discovered)
            };
            verdict
        })
        .collect();
    Ok(RunVerdict {
        run_id: run_id.0,
        started_unix_ms: run.started_unix_ms,
        metrics,
        failed_engines,
        not_comparable,
    })
}
