//! The HTML report's GPU power over each engine's turn, the scenarios'
//! starts marked, as the memory chart beside it draws runtime memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use spark_results::SuiteResults;

use super::html::{MAX_TIMELINE_POINTS, peaks};
use super::svg;

/// One chart per engine with GPU samples: the power of all its devices
/// together at each reading. Engines without have none (the run's GPU line
/// says why).
pub(super) fn section(out: &mut String, suite: &SuiteResults) {
    let mut charts = Vec::new();
    for engine in &suite.engines {
        let Some(gpu) = engine.telemetry.as_ref().and_then(|t| t.gpu.as_ref()) else {
            continue;
        };
        // The devices are read together: their samples of one reading share
        // a time, and sum to the machine's GPU power then.
        // (Non-negative floats order as their bits do.)
        let mut by_time: BTreeMap<u64, f64> = BTreeMap::new();
        for sample in &gpu.samples {
            if let Some(power_w) = sample.power_w {
                *by_time.entry(sample.t_s.max(0.0).to_bits()).or_default() += power_w;
            }
        }
        if by_time.is_empty() {
            continue;
        }
        let points: Vec<(f64, f64)> = by_time
            .into_iter()
            .map(|(t, w)| (f64::from_bits(t), w))
            .collect();
        let marks: Vec<(f64, String)> = gpu
            .scenarios
            .iter()
            .map(|s| (s.start_s, s.name.clone()))
            .collect();
        charts.push(svg::timeline(
            &format!("{}: GPU power", engine.service),
            "W",
            &peaks(&points, MAX_TIMELINE_POINTS),
            &marks,
        ));
    }
    if !charts.is_empty() {
        let _ = writeln!(
            out,
            "<h3>GPU power over the run</h3>\n<div class=\"charts\">{}</div>",
            charts.concat()
        );
    }
}
