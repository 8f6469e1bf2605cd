//! The figures the pick chooses by, read from one engine's results: each an
//! accessor that gives the value (with the spread behind it) or says why
//! there is none. Model size and runtime memory come from the engine's
//! telemetry, capacity within the SLO from the concurrency sweep (the
//! largest level that met it), output tok/s at saturation from the sweep's
//! saturated level where it ran.

use spark_results::{
    Arrival, Distribution, EngineTelemetry, RunResults, ScenarioResult, SweepLevel,
};

/// The scenario of one user's latency: TTFT and decode speed at c=1.
pub const LATENCY_SCENARIO: &str = "latency";

/// The closed-loop scenario whose throughput stands for saturation where the
/// engine ran no concurrency sweep.
pub const SATURATION_SCENARIO: &str = "throughput";

/// The shortest input that counts as a long document.
pub const LONG_CONTEXT_MIN_TOKENS: u32 = 1024;

/// Why capacity has no value yet.
pub const CAPACITY_NOT_MEASURED: &str = "not measured (needs the concurrency sweep and an SLO)";

/// Why model size and runtime memory have no value: the engine's results
/// carry no telemetry (a file written before telemetry existed).
pub const MEMORY_NOT_MEASURED: &str = "not measured (no telemetry in these results)";

/// A value, the standard deviation of the requests behind it where it sums
/// up a distribution, and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub value: f64,
    pub stddev: Option<f64>,
    pub source: String,
}

/// A figure, or why it is missing.
pub type Figure = Result<Measured, String>;

/// TTFT p50 of the latency scenario.
pub fn ttft_c1(results: &RunResults) -> Figure {
    let scenario = measured_scenario(results, LATENCY_SCENARIO)?;
    median(&scenario.aggregate.ttft_ms, scenario, "TTFT")
}

/// Decode tok/s p50 of the latency scenario: the speed one user reads at.
pub fn decode_c1(results: &RunResults) -> Figure {
    let scenario = measured_scenario(results, LATENCY_SCENARIO)?;
    median(&scenario.aggregate.decode_tok_s, scenario, "decode speed")
}

/// Output tok/s at saturation: where the engine ran the concurrency sweep,
/// the steady output throughput of the level it saturated at (of its
/// highest level when it never saturated); otherwise the throughput
/// scenario's. Both are aggregates (no spread); the source says which.
pub fn saturation_output(results: &RunResults) -> Figure {
    if let Some(figure) = sweep_saturation(results) {
        return Ok(figure);
    }
    let scenario = measured_scenario(results, SATURATION_SCENARIO)
        .map_err(|why| format!("no concurrency sweep, and {why}"))?;
    Ok(Measured {
        value: scenario.aggregate.output_throughput_tok_s,
        stddev: None,
        source: format!(
            "the {} scenario (c={}; no concurrency sweep)",
            scenario.name, scenario.config.concurrency
        ),
    })
}

/// The sweep's figure, `None` when no level of a sweep was measured.
fn sweep_saturation(results: &RunResults) -> Option<Measured> {
    let levels: Vec<(&ScenarioResult, &SweepLevel)> = results
        .scenarios
        .iter()
        .filter(|s| !s.discarded && s.not_run.is_none() && s.aggregate.n_ok > 0)
        .filter_map(|s| s.sweep.as_ref().map(|level| (s, level)))
        .collect();
    let saturated_at = levels.iter().find_map(|(_, level)| level.saturated_at);
    let (scenario, level, why) = match saturated_at
        .and_then(|at| levels.iter().find(|(_, level)| level.level == at))
    {
        Some((scenario, level)) => (scenario, level, "the level the sweep saturated at"),
        None => levels
            .iter()
            .max_by_key(|(_, level)| level.level)
            .map(|(scenario, level)| {
                (
                    scenario,
                    level,
                    "the highest level; the sweep never saturated",
                )
            })?,
    };
    // A window no answer ended in measured nothing, not 0 tok/s.
    let steady = level
        .steady_output_throughput_tok_s
        .filter(|_| level.steady_n_ok > 0);
    let (value, window) = match steady {
        Some(value) => (value, "steady window"),
        None => (scenario.aggregate.output_throughput_tok_s, "whole scenario"),
    };
    Some(Measured {
        value,
        stddev: None,
        source: format!("{} (c={}, {why}; {window})", scenario.name, level.level),
    })
}

/// The most load within the SLO.
pub fn capacity_within_slo(results: &RunResults) -> Figure {
    let capacity = results
        .capacity
        .as_ref()
        .ok_or_else(|| CAPACITY_NOT_MEASURED.to_owned())?;
    match capacity.max_concurrency {
        Some(level) => Ok(Measured {
            value: f64::from(level),
            stddev: None,
            source: match capacity.max_rate_rps {
                Some(rate) => format!(
                    "the largest sweep level within the SLO; {rate:.2} req/s by the rate search"
                ),
                None => "the largest sweep level within the SLO".to_owned(),
            },
        }),
        None => Err("no level of the concurrency sweep met the SLO".to_owned()),
    }
}

/// The model's weights, GB.
pub fn model_size_gb(telemetry: Option<&EngineTelemetry>) -> Figure {
    let telemetry = telemetry.ok_or_else(|| MEMORY_NOT_MEASURED.to_owned())?;
    let size = &telemetry.model_size;
    match size.bytes {
        Some(bytes) => Ok(Measured {
            value: bytes as f64 / 1e9,
            stddev: None,
            source: size
                .path
                .clone()
                .unwrap_or_else(|| "the model's files".to_owned()),
        }),
        None => Err(size
            .unavailable
            .clone()
            .unwrap_or_else(|| "the model's files were not found".to_owned())),
    }
}

/// The engine's memory while it served, GB: the highest peak over its
/// scenarios.
pub fn runtime_memory_gb(telemetry: Option<&EngineTelemetry>) -> Figure {
    let telemetry = telemetry.ok_or_else(|| MEMORY_NOT_MEASURED.to_owned())?;
    match telemetry.memory_peak_bytes() {
        Some(bytes) => Ok(Measured {
            value: bytes as f64 / 1e9,
            stddev: None,
            source: format!(
                "peak over the scenarios, from {}",
                telemetry.source.as_deref().unwrap_or("sampling")
            ),
        }),
        None => Err(telemetry
            .unavailable
            .clone()
            .unwrap_or_else(|| "no memory sample was read".to_owned())),
    }
}

/// The input lengths of the one-user scenarios the engine measured that are
/// long documents, longest first: TTFT there is prefill, not queueing.
pub fn long_contexts(results: &RunResults) -> Vec<u32> {
    let mut lengths: Vec<u32> = one_user_long(results)
        .map(|s| s.config.input_tokens)
        .collect();
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    lengths.dedup();
    lengths
}

/// TTFT p50 at `input_tokens`, one user: the first such scenario in run
/// order.
pub fn ttft_at_context(results: &RunResults, input_tokens: u32) -> Figure {
    let scenario = one_user_long(results)
        .find(|s| s.config.input_tokens == input_tokens)
        .ok_or_else(|| format!("no one-user scenario of {input_tokens} input tokens measured"))?;
    median(&scenario.aggregate.ttft_ms, scenario, "TTFT")
}

/// TTFT p50 at the longest context the engine measured, and that length.
pub fn longest_context_ttft(results: &RunResults) -> Result<(u32, Measured), String> {
    let Some(&longest) = long_contexts(results).first() else {
        return Err(format!(
            "no one-user scenario of {LONG_CONTEXT_MIN_TOKENS} input tokens or more measured (the long-context group)"
        ));
    };
    ttft_at_context(results, longest).map(|figure| (longest, figure))
}

fn one_user_long(results: &RunResults) -> impl Iterator<Item = &ScenarioResult> {
    results.scenarios.iter().filter(|s| {
        !s.discarded
            && s.not_run.is_none()
            && s.aggregate.n_ok > 0
            && s.config.concurrency == 1
            && s.config.arrival == Arrival::Closed
            && s.config.input_tokens >= LONG_CONTEXT_MIN_TOKENS
    })
}

/// The scenario named, when it was run and has a successful request.
fn measured_scenario<'a>(
    results: &'a RunResults,
    name: &str,
) -> Result<&'a ScenarioResult, String> {
    let scenario = results
        .scenarios
        .iter()
        .find(|s| s.name == name && !s.discarded)
        .ok_or_else(|| format!("the {name} scenario was not in this run"))?;
    if let Some(why) = &scenario.not_run {
        return Err(format!("{name} not run: {why}"));
    }
    if scenario.aggregate.n_ok == 0 {
        return Err(format!("{name}: no successful request"));
    }
    Ok(scenario)
}

fn median(dist: &Distribution, scenario: &ScenarioResult, what: &str) -> Figure {
    let value = dist
        .p50
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{}: no {what} measured", scenario.name))?;
    Ok(Measured {
        value,
        stddev: dist.stddev,
        source: scenario.name.clone(),
    })
}
