//! The concurrency sweep's charts in the HTML report: the throughput–latency
//! frontier ([`frontier`]) and TTFT p90 against offered load
//! ([`ttft_load`]), one line per engine over its sweep's levels, with the
//! SLO drawn where one bounds the metric. Without a sweep in the run, a
//! one-line note says why there are none.

mod frontier;
mod ttft_load;

pub use frontier::ID as FRONTIER_ID;
pub use ttft_load::ID as TTFT_LOAD_ID;

use std::fmt::Write as _;

use spark_results::{SloMetric, SuiteResults};

use super::svg::{PALETTE, escape};

/// Said in place of the charts when no engine ran the sweep.
pub const NO_SWEEP_NOTE: &str = "No engine ran the concurrency sweep (--scenarios concurrency-sweep), so there is no throughput–latency frontier and no TTFT against offered load.";

/// Width of both charts.
const WIDTH: f64 = 640.0;
/// Height of both charts.
const HEIGHT: f64 = 340.0;
/// The plot's margins: title and legend above, axes' labels left and below.
const TOP: f64 = 52.0;
const BOTTOM: f64 = 46.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;

/// One level of one engine's sweep, as the charts read it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Level {
    /// Requests in flight.
    level: u32,
    /// Output tok/s over the steady window (the whole scenario's when no
    /// answer ended in it).
    output_tok_s: f64,
    /// What one user reads at: 1000 / TPOT p50.
    per_user_tok_s: Option<f64>,
    /// TTFT p90, ms.
    ttft_p90_ms: Option<f64>,
}

/// One engine's measured levels, in ascending order.
#[derive(Debug, Clone, PartialEq)]
struct EngineSweep {
    engine: String,
    levels: Vec<Level>,
}

/// An objective of the SLO on the chart's metric, and the engines judged
/// by it (every engine, unless they were given different SLOs).
#[derive(Debug, Clone, PartialEq)]
struct Bound {
    key: String,
    limit_ms: f64,
    engines: Vec<String>,
}

/// The HTML of the sweep's charts, or the note when no engine ran it.
pub fn section(suite: &SuiteResults) -> String {
    let sweeps = sweeps(suite);
    if sweeps.is_empty() {
        return format!(
            "<p class=\"meta\" id=\"sweep-charts-note\">{}</p>\n",
            escape(NO_SWEEP_NOTE)
        );
    }
    let n_engines = sweeps.len();
    let name_bounds = |metric| {
        let mut bounds = bounds(suite, metric);
        // Named only where engines were held to different bounds.
        if bounds.len() == 1 && bounds[0].engines.len() == n_engines {
            bounds[0].engines.clear();
        }
        bounds
    };
    format!(
        "<h3>concurrency sweep</h3>\n<div class=\"charts\" id=\"sweep-charts\">{}{}</div>\n",
        frontier::chart(&sweeps, &name_bounds(SloMetric::Tpot)),
        ttft_load::chart(&sweeps, &name_bounds(SloMetric::Ttft)),
    )
}

/// Every engine's measured sweep levels; engines without one are left out.
fn sweeps(suite: &SuiteResults) -> Vec<EngineSweep> {
    suite
        .engines
        .iter()
        .filter_map(|engine| {
            let results = engine.results.as_ref()?;
            let mut levels: Vec<Level> = results
                .scenarios
                .iter()
                .filter(|s| !s.discarded && s.not_run.is_none() && s.aggregate.n_ok > 0)
                .filter_map(|s| {
                    let sweep = s.sweep.as_ref()?;
                    Some(Level {
                        level: sweep.level,
                        output_tok_s: sweep
                            .steady_output_throughput_tok_s
                            .filter(|_| sweep.steady_n_ok > 0)
                            .unwrap_or(s.aggregate.output_throughput_tok_s),
                        per_user_tok_s: s
                            .aggregate
                            .tpot_ms
                            .p50
                            .filter(|tpot| *tpot > 0.0)
                            .map(|tpot| 1000.0 / tpot),
                        ttft_p90_ms: s.aggregate.ttft_ms.p90,
                    })
                })
                .collect();
            levels.sort_by_key(|l| l.level);
            (!levels.is_empty()).then(|| EngineSweep {
                engine: engine.service.clone(),
                levels,
            })
        })
        .collect()
}

/// The distinct bounds on `metric` that the engines' sweep levels were
/// judged against.
fn bounds(suite: &SuiteResults, metric: SloMetric) -> Vec<Bound> {
    let mut bounds: Vec<Bound> = Vec::new();
    for engine in &suite.engines {
        let Some(results) = &engine.results else {
            continue;
        };
        let objective = results
            .scenarios
            .iter()
            .filter(|s| s.sweep.is_some())
            .filter_map(|s| s.slo.as_ref())
            .flat_map(|slo| slo.objectives.iter())
            .find(|o| o.metric == metric);
        let Some(objective) = objective else {
            continue;
        };
        match bounds
            .iter_mut()
            .find(|b| b.key == objective.key && b.limit_ms == objective.limit_ms)
        {
            Some(bound) => bound.engines.push(engine.service.clone()),
            None => bounds.push(Bound {
                key: objective.key.clone(),
                limit_ms: objective.limit_ms,
                engines: vec![engine.service.clone()],
            }),
        }
    }
    bounds
}

/// The label of a bound: `tpot_p90 ≤ 100 ms`, with the engines it holds
/// for when engines had different ones.
fn bound_label(bound: &Bound, what: &str) -> String {
    let mut text = format!(
        "SLO {} ≤ {} ms{what}",
        bound.key,
        super::svg::label(bound.limit_ms)
    );
    if !bound.engines.is_empty() {
        let _ = write!(text, " ({})", bound.engines.join(", "));
    }
    text
}

/// The SLO's labels in the band between the title and the plot, one after
/// the other, so they never cover a line.
fn bound_legend(svg: &mut String, labels: &[String], colour: &str) {
    if labels.is_empty() {
        return;
    }
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{:.1}" class="axis slo-label" style="fill:{colour}">{}</text>"#,
        TOP - 10.0,
        escape(&labels.join(" · "))
    );
}

/// The chart's frame: `<svg>` with its id and title, the axes, their
/// labels and the ends of their scales.
fn open(id: &str, title: &str, x_axis: &str, y_axis: &str, y_max: f64) -> String {
    let (plot_w, plot_h) = plot_size();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}"><text x="10" y="22" class="title">{title}</text>"#,
        title = escape(title)
    );
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{bottom:.1}" x2="{right:.1}" y2="{bottom:.1}" stroke="#888"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom:.1}" stroke="#888"/><text x="{mid_x:.1}" y="{:.1}" text-anchor="middle" class="axis">{}</text><text x="14" y="{mid_y:.1}" text-anchor="middle" class="axis" transform="rotate(-90 14 {mid_y:.1})">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{}</text><text x="{:.1}" y="{bottom:.1}" text-anchor="end" class="axis">0</text>"##,
        HEIGHT - 8.0,
        escape(x_axis),
        escape(y_axis),
        LEFT - 6.0,
        TOP + 4.0,
        super::svg::label(y_max),
        LEFT - 6.0,
        bottom = TOP + plot_h,
        right = LEFT + plot_w,
        mid_x = LEFT + plot_w / 2.0,
        mid_y = TOP + plot_h / 2.0,
    );
    svg
}

/// Width and height of the plot inside the margins.
fn plot_size() -> (f64, f64) {
    (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM)
}

/// An engine's line through its levels (`points` in the plot's pixels),
/// each point with its tooltip and its level's label, and the legend entry.
fn engine_line(svg: &mut String, idx: usize, engine: &str, points: &[(f64, f64, u32, String)]) {
    let colour = PALETTE[idx % PALETTE.len()];
    let path: Vec<String> = points
        .iter()
        .map(|(x, y, _, _)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = write!(
        svg,
        r#"<g class="sweep-line" data-engine="{name}"><polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
        path.join(" "),
        name = escape(engine),
    );
    for (x, y, level, tooltip) in points {
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}"><title>{}: c={level}, {}</title></circle><text x="{:.1}" y="{:.1}" class="axis level-label">c={level}</text>"#,
            escape(engine),
            escape(tooltip),
            x + 5.0,
            y - 6.0,
        );
    }
    svg.push_str("</g>");
    let (plot_w, _) = plot_size();
    let legend_y = TOP + 14.0 + idx as f64 * 18.0;
    let _ = write!(
        svg,
        r#"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{legend_y:.1}" class="axis">{}</text>"#,
        LEFT + plot_w + 16.0,
        legend_y - 10.0,
        LEFT + plot_w + 32.0,
        escape(engine)
    );
}
