//! The HTML report's trends: once a run is in the history, its report.html
//! is written again with, per engine, scenario and key metric, the last
//! [`TREND_RUNS`] runs, their change points and tonight's verdict.

use std::path::Path;

use spark_history::History;
use spark_report::nightly::Call;
use spark_report::render::{
    self,
    trends::{Trend, TrendPoint, TrendVerdict},
};
use spark_results::SuiteResults;

/// Runs a trend shows.
pub(crate) const TREND_RUNS: usize = 10;

/// Runs a trend's change points are found over (more than it shows, so a
/// shift near its start is still seen).
const CHANGE_WINDOW: usize = 30;

/// The metrics with a trend.
const TREND_METRICS: &[&str] = &["ttft_ms.p50", "tpot_ms.p50", "output_throughput_tok_s"];

/// The trends of `suite`'s engines and scenarios from `history`.
pub(crate) fn trends(history: &History, suite: &SuiteResults, threshold: f64) -> Vec<Trend> {
    let mut trends = Vec::new();
    for engine in suite.engines.iter().filter(|e| e.is_ok()) {
        let Some(results) = &engine.results else {
            continue;
        };
        for scenario in results
            .scenarios
            .iter()
            .filter(|s| !s.discarded && s.not_run.is_none())
        {
            for &metric in TREND_METRICS {
                let Ok(points) =
                    history.series(&engine.service, &scenario.name, metric, CHANGE_WINDOW)
                else {
                    continue;
                };
                if points.len() < 2 {
                    continue;
                }
                let series = super::history::series_of(
                    &engine.service,
                    &scenario.name,
                    metric,
                    &points,
                    threshold,
                );
                let skip = series.runs.len().saturating_sub(TREND_RUNS);
                let shown: Vec<TrendPoint> = series.runs[skip..]
                    .iter()
                    .filter_map(|row| {
                        Some(TrendPoint {
                            label: render::format_unix_ms(row.started_unix_ms),
                            value: row.value?,
                            change_point: row.change_point.is_some(),
                        })
                    })
                    .collect();
                let verdict = match series.runs.last().and_then(|r| r.call) {
                    Some(Call::Regressed) => TrendVerdict::Regressed,
                    Some(Call::Improved) => TrendVerdict::Improved,
                    Some(Call::Unchanged) => TrendVerdict::Unchanged,
                    None => TrendVerdict::NotJudged,
                };
                trends.push(Trend {
                    engine: engine.service.clone(),
                    scenario: scenario.name.clone(),
                    metric: metric.to_owned(),
                    points: shown,
                    verdict,
                });
            }
        }
    }
    trends
}

/// Writes `run_dir/report.html` again with the trends, when the history
/// has at least two runs of a series. A failure is a warning: the report
/// without trends is already there.
pub(crate) fn rewrite_report(
    history: &History,
    suite: &SuiteResults,
    run_dir: &Path,
    threshold: f64,
) {
    let trends = trends(history, suite, threshold);
    if trends.is_empty() {
        return;
    }
    let html = render::html::render_with_trends(suite, &trends);
    if let Err(err) = std::fs::write(run_dir.join("report.html"), html) {
        eprintln!("warning: cannot add the trends to report.html: {err}");
    }
}
