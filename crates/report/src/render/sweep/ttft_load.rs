//! TTFT p90 against offered load: the sweep's level (requests in flight,
//! on a log₂ scale, as the levels double) against each level's TTFT p90,
//! one line per engine, with a line at the bound where a TTFT objective is
//! set. Where an engine's line crosses it, more load breaks the SLO.

use std::fmt::Write as _;

use super::{
    Bound, EngineSweep, LEFT, TOP, bound_label, bound_legend, engine_line, open, plot_size,
};
use crate::render::svg::{escape, label, nice_max};

/// The chart's element id (the browser test looks for it).
pub const ID: &str = "ttft-load-chart";

/// The colour of the SLO's line.
const COLOUR: &str = "#D55E00";

/// TTFT p90 by level of every engine's sweep, with the TTFT bounds.
pub(super) fn chart(sweeps: &[EngineSweep], ttft_bounds: &[Bound]) -> String {
    let mut levels: Vec<u32> = sweeps
        .iter()
        .flat_map(|s| s.levels.iter().map(|l| l.level))
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let log = |level: u32| f64::from(level.max(1)).log2();
    let (low, high) = (
        levels.first().map_or(0.0, |l| log(*l)),
        levels.last().map_or(0.0, |l| log(*l)),
    );
    let max_y = nice_max(
        sweeps
            .iter()
            .flat_map(|s| s.levels.iter().filter_map(|l| l.ttft_p90_ms))
            .chain(ttft_bounds.iter().map(|b| b.limit_ms))
            .fold(0.0, f64::max),
    );
    let (plot_w, plot_h) = plot_size();
    // A little room on both sides, so the first and last points are not on
    // the frame; one level alone sits in the middle.
    let sx = |level: u32| {
        if high > low {
            LEFT + plot_w * (0.04 + 0.92 * (log(level) - low) / (high - low))
        } else {
            LEFT + plot_w / 2.0
        }
    };
    let sy = |v: f64| TOP + plot_h - v.max(0.0) / max_y * plot_h;
    let mut svg = open(
        ID,
        "concurrency sweep: TTFT p90 vs offered load",
        "requests in flight (sweep level, log scale)",
        "TTFT p90 (ms)",
        max_y,
    );
    for level in &levels {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">{level}</text>"#,
            sx(*level),
            TOP + plot_h + 16.0,
        );
    }
    let mut labels = Vec::new();
    for bound in ttft_bounds {
        let y = sy(bound.limit_ms);
        let text = bound_label(bound, "");
        let _ = write!(
            svg,
            r##"<line class="slo-line" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{COLOUR}" stroke-dasharray="5 3"><title>{text}</title></line>"##,
            LEFT + plot_w,
            text = escape(&text),
        );
        labels.push(format!("dashed: {text}"));
    }
    bound_legend(&mut svg, &labels, COLOUR);
    for (idx, sweep) in sweeps.iter().enumerate() {
        let points: Vec<(f64, f64, u32, String)> = sweep
            .levels
            .iter()
            .filter_map(|l| {
                let ttft = l.ttft_p90_ms?;
                Some((
                    sx(l.level),
                    sy(ttft),
                    l.level,
                    format!("TTFT p90 {} ms", label(ttft)),
                ))
            })
            .collect();
        engine_line(&mut svg, idx, &sweep.engine, &points);
    }
    svg.push_str("</svg>");
    svg
}
