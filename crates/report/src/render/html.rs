//! The HTML report: one self-contained file (inline CSS, inline SVG, one
//! small inline script; nothing fetched) with the comparison tables and
//! charts: TTFT and output tok/s per engine, latency distributions, input
//! length against TTFT for the long-context scenarios, throughput against
//! request rate or concurrency, and the concurrency sweep's ([`super::sweep`]).

use std::fmt::Write as _;

use spark_results::{Arrival, Distribution, ScenarioResult, SuiteResults};

use crate::compare_table::{scenario_names, tables};
use crate::render::svg::{self, escape};
use crate::render::{failures, flags, format_unix_ms};

const STYLE: &str = "
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}.meta{color:#555;margin-top:0}
.incomplete{background:#fde8e8;border-left:4px solid #c0392b;padding:.5rem 1rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ddd;padding:.3rem .7rem}
th{background:#f4f4f4;cursor:pointer}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.win{background:#e6f4ea;font-weight:600}td.na{color:#999;text-align:right}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{border:1px solid #eee;background:#fff}
.chart .title{font-weight:600;font-size:14px}.chart .axis{font-size:12px;fill:#444}
.chart .value{font-size:12px;fill:#222}.chart .na{font-size:12px;fill:#999}
code{background:#f4f4f4;padding:0 .2rem}
";

/// Sorts a table by a clicked header: numbers numerically, N/A last.
const SCRIPT: &str = "
document.querySelectorAll('table.sortable th').forEach(function(th, col) {
  th.addEventListener('click', function() {
    var body = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var key = function(row) { var v = parseFloat(row.cells[col].dataset.v); return isNaN(v) ? Infinity : v; };
    rows.sort(function(a, b) { return col === 0 ? a.cells[0].textContent.localeCompare(b.cells[0].textContent) : key(a) - key(b); });
    rows.forEach(function(row) { body.appendChild(row); });
  });
});
document.body.dataset.ready = 'true';
";

/// Renders the whole report as one HTML page.
pub fn render(suite: &SuiteResults) -> String {
    render_with_trends(suite, &[])
}

/// The report with the history's trends of the run's engines (see
/// [`super::trends`]), after the charts.
pub fn render_with_trends(suite: &SuiteResults, trends: &[super::trends::Trend]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>spark-perf model comparison</title><style>{STYLE}</style></head><body>\n<h1>spark-perf model comparison</h1>\n<p class=\"meta\">{} · {} · started {}</p>\n",
        escape(&suite.tool),
        escape(&suite.source),
        format_unix_ms(suite.started_unix_ms)
    );
    if let Some(gpu) = crate::compare_table::gpu_line(suite) {
        let _ = writeln!(out, "<p class=\"meta\">{}</p>", escape(&gpu));
    }
    if !suite.complete {
        let reason = suite.stopped.as_deref().unwrap_or("stopped early");
        let _ = writeln!(
            out,
            "<p class=\"incomplete\"><strong>Incomplete run:</strong> {}</p>",
            escape(reason)
        );
    }
    crate::pick::sections::html(&mut out, &crate::pick::pick(suite));
    for table in tables(suite) {
        let _ = write!(
            out,
            "<h2>{}</h2>\n<table class=\"sortable\"><thead><tr><th>metric</th>",
            escape(&table.title)
        );
        for column in &table.columns {
            let _ = write!(out, "<th>{}</th>", escape(column));
        }
        out.push_str("</tr></thead><tbody>\n");
        for row in &table.rows {
            let winners = row.winners();
            let _ = write!(out, "<tr><td>{}</td>", escape(&row.label()));
            for (idx, cell) in row.cells.iter().enumerate() {
                match (cell, row.cell_text(idx)) {
                    (Some(value), Some(text)) => {
                        let class = if winners.contains(&idx) {
                            "num win"
                        } else {
                            "num"
                        };
                        let trophy = if winners.contains(&idx) { " 🏆" } else { "" };
                        let _ = write!(
                            out,
                            "<td class=\"{class}\" data-v=\"{value}\">{}{trophy}</td>",
                            escape(&text)
                        );
                    }
                    _ => out.push_str("<td class=\"na\">N/A</td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
    }
    charts(&mut out, suite);
    out.push_str(&super::sweep::section(suite));
    memory_charts(&mut out, suite);
    super::power_chart::section(&mut out, suite);
    out.push_str(&super::trends::section(trends));
    let failed = failures(suite);
    if !failed.is_empty() {
        out.push_str("<h2>Engines without full results</h2>\n<ul>\n");
        for (service, reason) in failed {
            let _ = writeln!(
                out,
                "<li><strong>{}</strong>: <pre>{}</pre></li>",
                escape(service),
                escape(&reason)
            );
        }
        out.push_str("</ul>\n");
    }
    let flagged = flags(suite);
    if !flagged.is_empty() {
        out.push_str("<h2>What could not be guaranteed</h2>\n<ul>\n");
        for flag in flagged {
            let _ = writeln!(out, "<li>{}</li>", escape(&flag));
        }
        out.push_str("</ul>\n");
    }
    let displaced = crate::render::displaced(suite);
    if !displaced.is_empty() {
        let _ = writeln!(out, "<h2>{}</h2>\n<ul>", crate::render::DISPLACED_HEADING);
        for line in displaced {
            let _ = writeln!(out, "<li>{}</li>", escape(&line));
        }
        out.push_str("</ul>\n");
    }
    provenance(&mut out, suite);
    out.push_str("<h2>Metric definitions</h2>\n<ul>\n");
    for definition in crate::render::metric_definitions(suite) {
        let _ = writeln!(out, "<li>{}</li>", escape(definition.text));
    }
    let _ = write!(out, "</ul>\n<script>{SCRIPT}</script>\n</body></html>\n");
    out
}

fn provenance(out: &mut String, suite: &SuiteResults) {
    let with: Vec<_> = suite
        .engines
        .iter()
        .filter_map(|e| e.provenance.as_ref().map(|p| (e, p)))
        .collect();
    if with.is_empty() {
        return;
    }
    out.push_str("<h2>Provenance</h2>\n<table><thead><tr><th>engine</th><th>image</th><th>image ID</th><th>version</th><th>command</th><th>environment (names only)</th></tr></thead><tbody>\n");
    for (engine, p) in with {
        let _ = writeln!(
            out,
            "<tr><td>{} ({})</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&engine.service),
            escape(&engine.flavor),
            escape(&p.image),
            escape(p.image_id.as_deref().unwrap_or("")),
            escape(p.engine_version.as_deref().unwrap_or("")),
            escape(&p.command.join(" ")),
            escape(&p.env_names.join(", "))
        );
    }
    out.push_str("</tbody></table>\n");
}

fn measured<'a>(suite: &'a SuiteResults, name: &str) -> Vec<(String, Option<&'a ScenarioResult>)> {
    suite
        .engines
        .iter()
        .map(|engine| {
            let scenario = engine
                .results
                .as_ref()
                .and_then(|r| r.scenarios.iter().find(|s| s.name == name));
            (engine.service.clone(), scenario)
        })
        .collect()
}

fn spread(dist: &Distribution) -> Option<[f64; 5]> {
    Some([dist.min?, dist.p50?, dist.p90?, dist.p99?, dist.max?])
}

fn charts(out: &mut String, suite: &SuiteResults) {
    out.push_str("<h2>Charts</h2>\n");
    let names = scenario_names(suite);
    for name in &names {
        let per_engine = measured(suite, name);
        let ttft: Vec<_> = per_engine
            .iter()
            .map(|(e, s)| (e.clone(), s.and_then(|s| s.aggregate.ttft_ms.p50)))
            .collect();
        let tok_s: Vec<_> = per_engine
            .iter()
            .map(|(e, s)| (e.clone(), s.map(|s| s.aggregate.output_throughput_tok_s)))
            .collect();
        let ttft_spread: Vec<_> = per_engine
            .iter()
            .map(|(e, s)| (e.clone(), s.and_then(|s| spread(&s.aggregate.ttft_ms))))
            .collect();
        let itl_spread: Vec<_> = per_engine
            .iter()
            .map(|(e, s)| (e.clone(), s.and_then(|s| spread(&s.aggregate.itl_ms))))
            .collect();
        let _ = write!(
            out,
            "<h3>{}</h3>\n<div class=\"charts\">{}{}{}{}</div>\n",
            escape(name),
            svg::bars(&format!("{name}: TTFT p50"), "ms", &ttft),
            svg::bars(&format!("{name}: output throughput"), "tok/s", &tok_s),
            svg::ranges(
                &format!("{name}: TTFT min · p50–p99 · max"),
                "ms",
                &ttft_spread
            ),
            svg::ranges(
                &format!("{name}: ITL min · p50–p99 · max"),
                "ms",
                &itl_spread
            ),
        );
    }

    // Input length against TTFT: every long-context scenario is one point.
    let long: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("long-context"))
        .collect();
    if !long.is_empty() {
        let series = series(suite, &long, |s| {
            Some((f64::from(s.config.input_tokens), s.aggregate.ttft_ms.p50?))
        });
        let _ = writeln!(
            out,
            "<div class=\"charts\">{}</div>",
            svg::lines(
                "long context: input length vs TTFT p50",
                "tokens",
                "ms",
                &series
            )
        );
    }

    // Throughput against offered load: open-loop scenarios by rate, closed
    // ones by concurrency when there are several.
    let open: Vec<&String> = names
        .iter()
        .filter(|n| {
            suite.engines.iter().any(|e| {
                e.results.as_ref().is_some_and(|r| {
                    r.scenarios.iter().any(|s| {
                        &s.name == *n && matches!(s.config.arrival, Arrival::Poisson { .. })
                    })
                })
            })
        })
        .collect();
    if open.len() > 1 {
        let series = series(suite, &open, |s| match s.config.arrival {
            Arrival::Poisson { rate_rps } => Some((rate_rps, s.aggregate.output_throughput_tok_s)),
            Arrival::Closed => None,
        });
        let _ = writeln!(
            out,
            "<div class=\"charts\">{}</div>",
            svg::lines(
                "rate sweep: request rate vs output throughput",
                "req/s",
                "tok/s",
                &series
            )
        );
    }
    let closed: Vec<&String> = names
        .iter()
        .filter(|n| !open.contains(n) && !long.contains(n))
        .collect();
    let concurrencies = series(suite, &closed, |s| {
        Some((
            f64::from(s.config.concurrency),
            s.aggregate.output_throughput_tok_s,
        ))
    });
    let distinct_concurrency = concurrencies.iter().any(|(_, points)| {
        points
            .iter()
            .any(|p| points.first().is_some_and(|first| first.0 != p.0))
    });
    if distinct_concurrency {
        let _ = writeln!(
            out,
            "<div class=\"charts\">{}</div>",
            svg::lines(
                "concurrency vs output throughput",
                "concurrent",
                "tok/s",
                &concurrencies
            )
        );
    }
}

/// One series per engine of the points `point` takes from the scenarios named.
fn series(
    suite: &SuiteResults,
    names: &[&String],
    point: impl Fn(&ScenarioResult) -> Option<(f64, f64)>,
) -> Vec<(String, Vec<(f64, f64)>)> {
    suite
        .engines
        .iter()
        .filter_map(|engine| {
            let results = engine.results.as_ref()?;
            let mut points: Vec<(f64, f64)> = results
                .scenarios
                .iter()
                .filter(|s| names.iter().any(|n| **n == s.name))
                .filter_map(&point)
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!points.is_empty()).then(|| (engine.service.clone(), points))
        })
        .collect()
}

/// The most points a timeline draws; longer series keep each bucket's peak.
pub(super) const MAX_TIMELINE_POINTS: usize = 600;

/// One chart per engine of its memory over its turn, the scenarios' starts
/// marked; engines without samples have none (their N/A reason is among the
/// flags).
fn memory_charts(out: &mut String, suite: &SuiteResults) {
    let mut charts = Vec::new();
    for engine in &suite.engines {
        let Some(telemetry) = &engine.telemetry else {
            continue;
        };
        let points: Vec<(f64, f64)> = telemetry
            .samples
            .iter()
            .filter_map(|s| Some((s.t_s, s.memory_bytes? as f64)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let peak = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let (unit, scale) = if peak >= f64::from(1u32 << 30) {
            ("GiB", f64::from(1u32 << 30))
        } else {
            ("MiB", f64::from(1u32 << 20))
        };
        let points: Vec<(f64, f64)> = peaks(&points, MAX_TIMELINE_POINTS)
            .into_iter()
            .map(|(t, v)| (t, v / scale))
            .collect();
        let marks: Vec<(f64, String)> = telemetry
            .scenarios
            .iter()
            .map(|s| (s.start_s, s.name.clone()))
            .collect();
        charts.push(svg::timeline(
            &format!("{}: runtime memory", engine.service),
            unit,
            &points,
            &marks,
        ));
    }
    if !charts.is_empty() {
        let _ = writeln!(
            out,
            "<h3>runtime memory over the run</h3>\n<div class=\"charts\">{}</div>",
            charts.concat()
        );
    }
}

/// At most `max` points: consecutive buckets, each its peak (so a spike is
/// never averaged away).
pub(super) fn peaks(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let per_bucket = points.len().div_ceil(max);
    points
        .chunks(per_bucket)
        .filter_map(|chunk| chunk.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)))
        .collect()
}
