//! The throughput–latency frontier: per-user decode speed (1000 / TPOT p50)
//! against total output tok/s, one point per sweep level, one line per
//! engine. Up and right is better; where a TPOT objective is set, the
//! region that meets it (per-user speed ≥ 1000 / the bound) is shaded.

use std::fmt::Write as _;

use super::{
    Bound, EngineSweep, LEFT, TOP, bound_label, bound_legend, engine_line, open, plot_size,
};
use crate::render::svg::{label, nice_max};

/// The chart's element id (the browser test looks for it).
pub const ID: &str = "frontier-chart";

/// The colour of the region within the SLO.
const COLOUR: &str = "#009E73";

/// The frontier of every engine's sweep, with the TPOT bounds shaded.
pub(super) fn chart(sweeps: &[EngineSweep], tpot_bounds: &[Bound]) -> String {
    let points = || {
        sweeps
            .iter()
            .flat_map(|s| s.levels.iter())
            .filter_map(|l| Some((l.output_tok_s, l.per_user_tok_s?)))
    };
    // The lowest per-user speed each bound allows.
    let floors: Vec<f64> = tpot_bounds
        .iter()
        .map(|b| 1000.0 / b.limit_ms.max(f64::MIN_POSITIVE))
        .collect();
    let max_x = nice_max(points().map(|p| p.0).fold(0.0, f64::max));
    let max_y = nice_max(
        points()
            .map(|p| p.1)
            .chain(floors.iter().copied())
            .fold(0.0, f64::max),
    );
    let (plot_w, plot_h) = plot_size();
    let sx = |v: f64| LEFT + v.max(0.0) / max_x * plot_w;
    let sy = |v: f64| TOP + plot_h - v.max(0.0) / max_y * plot_h;
    let mut svg = open(
        ID,
        "concurrency sweep: per-user decode vs total output throughput",
        "total output tok/s (steady window; whole level where no answer ended in it)",
        "per-user tok/s (1000 / TPOT p50)",
        max_y,
    );
    for fraction in [0.5, 1.0] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">{}</text>"#,
            LEFT + plot_w * fraction,
            TOP + plot_h + 16.0,
            label(max_x * fraction)
        );
    }
    let mut labels = Vec::new();
    for (bound, floor) in tpot_bounds.iter().zip(&floors) {
        let y = sy(*floor);
        let text = bound_label(bound, &format!(": ≥ {} tok/s per user", label(*floor)));
        let _ = write!(
            svg,
            r##"<rect class="slo-region" x="{LEFT}" y="{TOP}" width="{plot_w:.1}" height="{:.1}" fill="{COLOUR}" fill-opacity="0.10"><title>{text}</title></rect><line class="slo-line" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{COLOUR}" stroke-dasharray="5 3"/>"##,
            (y - TOP).max(0.0),
            LEFT + plot_w,
            text = crate::render::svg::escape(&text),
        );
        labels.push(format!("shaded: {text}"));
    }
    bound_legend(&mut svg, &labels, COLOUR);
    for (idx, sweep) in sweeps.iter().enumerate() {
        let points: Vec<(f64, f64, u32, String)> = sweep
            .levels
            .iter()
            .filter_map(|l| {
                let per_user = l.per_user_tok_s?;
                Some((
                    sx(l.output_tok_s),
                    sy(per_user),
                    l.level,
                    format!(
                        "{} tok/s in total, {} tok/s per user",
                        label(l.output_tok_s),
                        label(per_user)
                    ),
                ))
            })
            .collect();
        engine_line(&mut svg, idx, &sweep.engine, &points);
    }
    svg.push_str("</svg>");
    svg
}
