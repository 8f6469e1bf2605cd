//! The renderers, one per format, all drawing from the same
//! [`SuiteResults`] through the comparison model of `compare_table`.

pub mod html;
pub mod markdown;
pub mod openmetrics;
mod power_chart;
pub mod svg;
pub mod sweep;
pub mod text;
pub mod trends;

use std::fmt;

use spark_results::{EngineOutcome, RestoreStatus, SuiteResults};

/// One entry of the metric definitions every report ends with: its text,
/// and the comparison rows (their [`Row::metric`]) it defines, so a test can
/// hold every row the tables can produce to having a definition.
///
/// [`Row::metric`]: crate::compare_table::Row::metric
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDefinition {
    /// The metrics of the rows it defines; empty for a definition of no
    /// single row (token counts, percentiles).
    pub metrics: &'static [&'static str],
    /// What every report prints.
    pub text: &'static str,
}

impl fmt::Display for MetricDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

const fn define(metrics: &'static [&'static str], text: &'static str) -> MetricDefinition {
    MetricDefinition { metrics, text }
}

/// The metric definitions (docs/METRICS.md and docs/TELEMETRY.md have the
/// long form); a report states those of its rows, and those of no single
/// row, through [`metric_definitions`].
pub const METRIC_DEFINITIONS: &[MetricDefinition] = &[
    define(
        &["TTFT mean", "TTFT p50", "TTFT p99"],
        "TTFT: from sending the request to the first chunk carrying non-empty content or reasoning",
    ),
    define(
        &["TTFO p50", "TTFO p99", "reasoning tokens mean"],
        "TTFO: from sending the request to the first answer chunk after reasoning chunks (reasoning models only); reasoning tokens: the engine's count of them, else counted per chunk",
    ),
    define(
        &["ITL p50", "ITL p99"],
        "ITL: gap between two successive token-carrying chunks",
    ),
    define(
        &["TPOT mean"],
        "TPOT: (E2E - TTFT) / (output tokens - 1), per request",
    ),
    define(
        &["E2E p50"],
        "E2E: from sending the request to the end of the response",
    ),
    define(
        &["decode p50", "prompt p50"],
        "decode tok/s: (output tokens - 1) / (E2E - TTFT); prompt tok/s: input tokens / TTFT",
    ),
    define(
        &["output throughput", "requests"],
        "output throughput and req/s: successful output tokens and requests over the scenario's wall time",
    ),
    define(
        &["failed"],
        "failed: requests that got no complete response (an HTTP error, a refused or reset connection, a timeout, a cut or malformed stream), left out of every latency and throughput (results.json counts them by class)",
    ),
    define(
        &[
            "TTFT p50 from schedule",
            "TTFT p99 from schedule",
            "E2E p50 from schedule",
            "send lateness p99",
            "steady output throughput",
            "steady requests",
        ],
        "open loop: send lateness is how long after its scheduled arrival a request was sent, and 'from schedule' adds it to TTFT and E2E; steady throughputs count the requests that ended between 10 % of the arrival span and the last arrival",
    ),
    define(
        &[],
        "token counts: the engine's usage; counted chunks when it sent none (flagged)",
    ),
    define(
        &["port open", "time to healthy"],
        "port open, time to healthy: from creating the container to the first TCP connection its host port accepts, and to the first 200 from its health path",
    ),
    define(
        &["model size"],
        "model size: the model's files on disk, found from the service's command and mounts (a GGUF, a model directory, a Hugging Face snapshot's blobs, each file once)",
    ),
    define(
        &["runtime memory peak", "CPU mean"],
        "runtime memory peak: the highest sample in the scenario of the engine container's memory as docker stats shows it (usage less the inactive page cache), or of a local process's resident set; sampled every 500 ms (Docker publishes once a second); CPU mean: 100 % is one core",
    ),
    define(
        &["GPU power mean", "GPU power peak", "GPU temperature peak"],
        "GPU power mean and peak, GPU temperature peak: over the GPU readings in the scenario (about every 500 ms), the mean summed over devices and the peaks of the highest device",
    ),
    define(
        &["GPU memory peak (VRAM)"],
        "GPU memory peak (VRAM): the GPUs' own memory in use at its highest in the scenario, summed over devices",
    ),
    define(
        &["GPU memory peak (unified host memory)"],
        "GPU memory peak (unified host memory): on a GPU that shares the host's memory (GB10), the host's memory in use by every process at its highest in the scenario, MemTotal - MemAvailable",
    ),
    define(
        &["energy per output token"],
        "energy per output token: the GPUs' energy over the scenario (their energy counter, else the power readings integrated) over its successful output tokens; results.json also has its inverse, output tokens per joule",
    ),
    define(
        &["prefix-cache hit rate"],
        "prefix-cache hit rate: the prompt tokens the engine served from its prefix cache over those it was asked for, from its own metrics (llama-server: its per-response timings); warm prefix cache (flagged): a hit rate above 0 in a scenario whose prompts share no prefix",
    ),
    define(
        &["KV-cache usage peak", "queued requests peak"],
        "KV-cache usage peak, queued requests peak: the highest KV-cache usage and number of waiting requests the engine's own metrics showed, read about once a second during the scenario and once after it; the engine's TTFT and ITL means (results.json only) are its own histograms' sum over count across the scenario",
    ),
    define(
        &[
            "engine-reported prefill p50",
            "TTFT over engine prefill p50",
            "engine-reported TPOT p50",
            "TPOT ours / engine's p50",
        ],
        "engine-reported prefill and TPOT: llama-server's own timings (prompt_ms; predicted_ms / (predicted tokens - 1)); TTFT over engine prefill is our TTFT less its prefill, and TPOT ours / engine's is 1.00 where the clocks agree",
    ),
    define(
        &["n"],
        "percentiles over requests: nearest rank on a histogram with 3 significant digits (error <= 0.1 %); with fewer than 20 samples no p99 is shown, the largest value is (marked max), and n is the row 'n (successful requests)' of each scenario",
    ),
    define(
        &[],
        "mean ± sd: the mean over the successful requests and their population standard deviation (a one-at-a-time scenario's requests are its iterations)",
    ),
    define(
        &[],
        "winner (the trophy): the best value, only where it leads the next by more than the standard deviations of both (by 5 % on rows without one: throughputs, counts); otherwise the row says tie",
    ),
];

/// The definitions a report ends with, in list order: each one of its rows
/// has, and those of no single row (a GPU-less run is not told what GPU
/// power means, and a report on unified memory never says VRAM).
pub fn metric_definitions(suite: &SuiteResults) -> Vec<&'static MetricDefinition> {
    let tables = crate::compare_table::tables(suite);
    let shown = |metric: &&str| {
        tables
            .iter()
            .any(|table| table.rows.iter().any(|row| row.metric == *metric))
    };
    METRIC_DEFINITIONS
        .iter()
        .filter(|definition| definition.metrics.is_empty() || definition.metrics.iter().any(shown))
        .collect()
}

/// The definition of the row whose metric is `metric`, if it has one.
pub fn definition_of(metric: &str) -> Option<&'static MetricDefinition> {
    METRIC_DEFINITIONS
        .iter()
        .find(|definition| definition.metrics.contains(&metric))
}

/// The JSON report: the results themselves, pretty-printed, with the pick
/// computed afresh from their engines (so a re-rendered old run has one and
/// a stored one never goes stale).
pub fn json(suite: &SuiteResults) -> String {
    let suite = SuiteResults {
        pick: Some(crate::pick::pick(suite)),
        ..suite.clone()
    };
    serde_json::to_string_pretty(&suite).unwrap_or_else(|err| {
        // The types serialize infallibly (no maps with non-string keys);
        // this stays a message rather than a panic all the same.
        format!("{{\"error\": \"cannot serialize results: {err}\"}}")
    })
}

/// The engines without full results and why, in run order: the N/A columns
/// of every report.
pub fn failures(suite: &SuiteResults) -> Vec<(&str, String)> {
    suite
        .engines
        .iter()
        .filter_map(|engine| {
            let reason = match &engine.outcome {
                EngineOutcome::Ok => return None,
                EngineOutcome::Failed { phase, reason } => format!("failed in {phase}: {reason}"),
                EngineOutcome::Interrupted => "interrupted".to_owned(),
            };
            Some((engine.service.as_str(), reason))
        })
        .collect()
}

/// The heading of the list of containers a run stopped because they were in
/// an engine's way.
pub const DISPLACED_HEADING: &str = "Containers stopped for this run";

/// One line per container the run stopped because it was in an engine's
/// way: which, why, and whether it runs again.
pub fn displaced(suite: &SuiteResults) -> Vec<String> {
    suite
        .displaced
        .iter()
        .map(|d| {
            let owner = match (&d.service, &d.project) {
                (Some(service), Some(project)) => {
                    format!(" (service {service} of project {project})")
                }
                (Some(service), None) => format!(" (service {service})"),
                _ => String::new(),
            };
            let restore = match d.restore {
                RestoreStatus::Restored => "started again at the end".to_owned(),
                RestoreStatus::LeftStopped => "left stopped (--no-restore)".to_owned(),
                RestoreStatus::Pending => "still stopped: the run did not end".to_owned(),
                RestoreStatus::Failed => format!(
                    "could not be started again: {}",
                    d.restore_error.as_deref().unwrap_or("unknown error")
                ),
            };
            format!("{}{owner}: {}; {restore}", d.container, d.reason)
        })
        .collect()
}

/// What could not be guaranteed: estimated token counts, short outputs,
/// clamped contexts and every note the load engine left, per engine.
pub fn flags(suite: &SuiteResults) -> Vec<String> {
    let mut flags = Vec::new();
    for engine in &suite.engines {
        let Some(results) = &engine.results else {
            continue;
        };
        for note in &results.engine.notes {
            flags.push(format!("{}: {note}", engine.service));
        }
        for scenario in results.scenarios.iter().filter(|s| !s.discarded) {
            if let Some(why) = &scenario.not_run {
                flags.push(format!(
                    "{} / {}: N/A, not run: {why}",
                    engine.service, scenario.name
                ));
                continue;
            }
            let aggregate = &scenario.aggregate;
            if aggregate.n_estimated_output_tokens > 0 {
                flags.push(format!(
                    "{} / {}: output tokens of {} requests were counted from chunks, not the engine's usage",
                    engine.service, scenario.name, aggregate.n_estimated_output_tokens
                ));
            }
            if aggregate.n_short_outputs > 0 {
                flags.push(format!(
                    "{} / {}: {} requests returned fewer tokens than asked",
                    engine.service, scenario.name, aggregate.n_short_outputs
                ));
            }
            for note in &scenario.notes {
                flags.push(format!("{} / {}: {note}", engine.service, scenario.name));
            }
            if let Some(stopped) = &scenario.stopped {
                flags.push(format!(
                    "{} / {}: stopped early: {stopped}",
                    engine.service, scenario.name
                ));
            }
            for flag in engine_figure_flags(scenario) {
                flags.push(format!("{} / {}: {flag}", engine.service, scenario.name));
            }
        }
    }
    flags.extend(crate::compare_table::warm_cache_flags(suite));
    flags.extend(crate::compare_table::telemetry_unavailable(suite));
    flags
}

/// The engines' counters of generated tokens, by the prefix of their names.
const GENERATED_TOKENS: [&str; 3] = [
    "llamacpp:tokens_predicted_total",
    "vllm:generation_tokens_total",
    "sglang:generation_tokens_total",
];

/// Where the engine's own figures disagree with ours: its generated-token
/// counter against the tokens the client received (something else used the
/// engine, or the engine miscounts), a TTFT below the engine's own prefill
/// (the clocks disagree), and a failed read of its counters.
fn engine_figure_flags(scenario: &spark_results::ScenarioResult) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(timings) = &scenario.aggregate.engine_timings
        && timings.n_ttft_below_prefill > 0
    {
        flags.push(format!(
            "{} requests had a TTFT below the engine's own prefill time (prompt_ms): the client's and the engine's clocks disagree",
            timings.n_ttft_below_prefill
        ));
    }
    let Some(counters) = &scenario.engine_counters else {
        return flags;
    };
    if let Some(error) = &counters.error {
        flags.push(format!("the engine's metrics could not be read: {error}"));
    }
    let received = scenario.aggregate.output_tokens_total as f64;
    for name in GENERATED_TOKENS {
        if let Some(delta) = counters.delta(name)
            && (delta - received).abs() > 0.5
        {
            flags.push(format!(
                "the engine counted {delta} generated tokens ({name}), the client received {received}: something else used the engine during the scenario, or it counts differently"
            ));
        }
    }
    flags
}

/// A Unix time in milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_unix_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A Unix time in milliseconds as `YYYY-MM-DDTHH-MM-SS`, for file names.
pub fn file_timestamp(unix_ms: u64) -> String {
    let text = format_unix_ms(unix_ms);
    text.trim_end_matches(" UTC")
        .replacen(' ', "T", 1)
        .replace(':', "-")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), so no date crate is needed for one line of output.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_in_utc() {
        assert_eq!(format_unix_ms(0), "1970-01-01 00:00:00 UTC");
        // 2026-11-23 13:43:28 UTC.
        assert_eq!(format_unix_ms(1_795_441_408_000), "2026-11-23 13:43:28 UTC");
        assert_eq!(file_timestamp(1_795_441_408_000), "2026-11-23T13-43-28");
        // A leap day.
        assert_eq!(format_unix_ms(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
