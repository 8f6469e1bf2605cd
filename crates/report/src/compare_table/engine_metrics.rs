//! The engine's own figures in the comparison: prefix-cache hit rate, peak
//! KV-cache usage and peak queued requests of each scenario (no winner: they
//! describe the workload as much as the engine), and the warm-cache flag.

use spark_results::{EngineScenarioMetrics, SuiteResults};

use super::{Format, Row};

/// The rows of scenario `name`, per engine.
pub(super) fn rows(suite: &SuiteResults, name: &str) -> Vec<Row> {
    let figures: Vec<Option<&EngineScenarioMetrics>> = suite
        .engines
        .iter()
        .map(|engine| {
            engine
                .telemetry
                .as_ref()
                .and_then(|t| t.engine_metrics(name))
        })
        .collect();
    let cells = |pick: fn(&EngineScenarioMetrics) -> Option<f64>| -> Vec<Option<f64>> {
        figures.iter().map(|f| f.and_then(pick)).collect()
    };
    vec![
        Row::plain(
            "prefix-cache hit rate",
            "%",
            None,
            Format::OneDecimal,
            cells(|f| f.prefix_cache_hit_rate.map(|r| r * 100.0)),
        ),
        Row::plain(
            "KV-cache usage peak",
            "%",
            None,
            Format::OneDecimal,
            cells(|f| f.kv_cache_usage_peak.map(|r| r * 100.0)),
        ),
        Row::plain(
            "queued requests peak",
            "",
            None,
            Format::Count,
            cells(|f| f.queued_requests_peak),
        ),
    ]
}

/// `ENGINE / SCENARIO: warm prefix cache: …` for each scenario whose prompts
/// share no prefix and whose engine still served some from its cache.
pub fn warm_cache_flags(suite: &SuiteResults) -> Vec<String> {
    let mut flags = Vec::new();
    for engine in &suite.engines {
        let Some(telemetry) = &engine.telemetry else {
            continue;
        };
        for figures in telemetry
            .engine_metrics
            .iter()
            .filter(|f| f.warm_prefix_cache)
        {
            let rate = figures.prefix_cache_hit_rate.unwrap_or(0.0) * 100.0;
            flags.push(format!(
                "{} / {}: warm prefix cache: the engine served {rate:.1} % of the prompt tokens from its prefix cache, though the scenario's prompts share no prefix (a cache warm from before, or a chat template that fills a cache block)",
                engine.service, figures.name
            ));
        }
    }
    flags
}
