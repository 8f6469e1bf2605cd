//! The telemetry rows of the comparison: the model's size (in the startup
//! table) and the runtime memory peak and CPU mean of each scenario, and the
//! N/A reasons, said once per run for the engines that share them.

use spark_results::{EngineTelemetry, SuiteResults};

use super::{Format, Row};

fn telemetry_of(suite: &SuiteResults) -> impl Iterator<Item = Option<&EngineTelemetry>> {
    suite.engines.iter().map(|engine| engine.telemetry.as_ref())
}

/// The model's size on disk, per engine.
pub(super) fn model_size_row(suite: &SuiteResults) -> Row {
    Row::plain(
        "model size",
        "",
        None,
        Format::Bytes,
        telemetry_of(suite)
            .map(|t| t.and_then(|t| t.model_size.bytes).map(|b| b as f64))
            .collect(),
    )
}

/// Runtime memory (peak) and CPU (mean) of the scenario `name`, per engine:
/// no winner, since memory follows an engine's settings (a KV cache sized
/// to the GPU) as much as its efficiency.
pub(super) fn usage_rows(suite: &SuiteResults, name: &str) -> Vec<Row> {
    let usage = |pick: fn(&spark_results::ScenarioUsage) -> Option<f64>| -> Vec<Option<f64>> {
        telemetry_of(suite)
            .map(|t| t.and_then(|t| t.scenario(name)).and_then(pick))
            .collect()
    };
    vec![
        Row::plain(
            "runtime memory peak",
            "",
            None,
            Format::Bytes,
            usage(|s| s.memory_peak_bytes.map(|b| b as f64)),
        ),
        Row::plain(
            "CPU mean",
            "% of a core",
            None,
            Format::OneDecimal,
            usage(|s| s.cpu_mean_percent),
        ),
    ]
}

/// Bytes in binary units, one decimal: `4.0 KiB`, `17.3 GiB`.
pub(super) fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit_idx = 0;
    while value >= 1024.0 && unit_idx + 1 < UNITS.len() {
        value /= 1024.0;
        unit_idx += 1;
    }
    if unit_idx == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit_idx])
    }
}

/// Why telemetry is N/A, once per reason: `runtime memory and CPU N/A for
/// a, b: reason`, `model size N/A for c: reason`. Engines without telemetry
/// at all (never started, or results written before it) are left out.
pub fn unavailable(suite: &SuiteResults) -> Vec<String> {
    let mut lines = Vec::new();
    let mut group = |what: &str, reason_of: fn(&EngineTelemetry) -> Option<&str>| {
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for engine in &suite.engines {
            let Some(reason) = engine.telemetry.as_ref().and_then(reason_of) else {
                continue;
            };
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, engines)) => engines.push(&engine.service),
                None => reasons.push((reason, vec![&engine.service])),
            }
        }
        for (reason, engines) in reasons {
            lines.push(format!("{what} N/A for {}: {reason}", engines.join(", ")));
        }
    };
    group("runtime memory and CPU", |t| t.unavailable.as_deref());
    group("model size", |t| t.model_size.unavailable.as_deref());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(6144.0), "6.0 KiB");
        assert_eq!(format_bytes(5_476_352.0), "5.2 MiB");
        assert_eq!(format_bytes(17.25 * 1024.0 * 1024.0 * 1024.0), "17.2 GiB");
    }
}
