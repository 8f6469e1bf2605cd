//! Scenarios as data: the built-in set (from the field reports in
//! /work/shared/reference) and TOML scenario files, plus CLI overrides.
//!
//! A scenario file holds `[[scenario]]` tables; a table's fields default to
//! those of the built-in scenario of the same name, or to the `throughput`
//! defaults for a new name:
//!
//! ```toml
//! [[scenario]]
//! name = "throughput"
//! concurrency = 32
//!
//! [[scenario]]
//! name = "rag"
//! group = "mine"
//! input_tokens = 4000
//! max_tokens = 300
//! requests = 20
//! concurrency = 4
//! rate_rps = 1.5          # open loop, Poisson arrivals
//! duration_s = 60         # open loop: 60 s of arrivals (`requests` is then a cap)
//! shared_prefix_tokens = 3000
//!
//! [sweep]                 # the concurrency-sweep group's levels
//! levels = [1, 4, 16]
//! rounds = 8              # requests per level: rounds × level (at least 16)
//! input_tokens = 256
//! max_tokens = 256
//!
//! [slo]                   # judged on every scenario (goodput)
//! ttft_p90 = "2s"
//! tpot_p90 = "100ms"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use spark_results::{Arrival, Endpoint, ScenarioConfig};

use crate::LoadError;
use crate::slo::Slo;
use crate::sweep;

/// One scenario to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Unique name, e.g. `long-context-8k`.
    pub name: String,
    /// Group it belongs to, e.g. `long-context` (selecting a group selects
    /// all its scenarios).
    pub group: String,
    /// Results are discarded (warmup).
    pub discard: bool,
    /// Requests, load and prompt.
    pub config: ScenarioConfig,
}

/// A `[[scenario]]` table; every field but `name` is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioToml {
    name: String,
    group: Option<String>,
    discard: Option<bool>,
    endpoint: Option<Endpoint>,
    input_tokens: Option<u32>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    requests: Option<u32>,
    concurrency: Option<u32>,
    /// Open loop at this many requests per second (Poisson); absent: closed loop.
    rate_rps: Option<f64>,
    /// Open loop: seconds of arrivals.
    duration_s: Option<f64>,
    shared_prefix_tokens: Option<u32>,
    exact_output: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    scenario: Vec<ScenarioToml>,
    sweep: Option<SweepToml>,
    slo: Option<BTreeMap<String, toml::Value>>,
}

/// The `[sweep]` table: the concurrency sweep's levels and their load.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepToml {
    levels: Option<Vec<u32>>,
    rounds: Option<u32>,
    input_tokens: Option<u32>,
    max_tokens: Option<u32>,
}

/// The concurrency sweep's scenarios: one closed-loop level each, in
/// ascending order.
fn sweep_scenarios(
    levels: &[u32],
    rounds: u32,
    input_tokens: u32,
    max_tokens: u32,
) -> Vec<Scenario> {
    let mut levels = levels.to_vec();
    levels.sort_unstable();
    levels.dedup();
    levels
        .into_iter()
        .map(|level| {
            scenario(
                &sweep::level_name(level),
                sweep::GROUP,
                config(
                    input_tokens,
                    max_tokens,
                    0.0,
                    sweep::level_requests(level, rounds),
                    level,
                ),
            )
        })
        .collect()
}

/// Overrides from the command line, applied to every selected scenario but
/// the warmup.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Requests in flight.
    pub concurrency: Option<u32>,
    /// Requests per scenario.
    pub requests: Option<u32>,
    /// `max_tokens` of every request.
    pub max_tokens: Option<u32>,
    /// Endpoint.
    pub endpoint: Option<Endpoint>,
    /// Seconds of arrivals of every open-loop scenario.
    pub duration_s: Option<f64>,
}

fn config(
    input_tokens: u32,
    max_tokens: u32,
    temperature: f64,
    requests: u32,
    concurrency: u32,
) -> ScenarioConfig {
    ScenarioConfig {
        endpoint: Endpoint::Chat,
        input_tokens,
        max_tokens,
        temperature,
        requests,
        concurrency,
        arrival: Arrival::Closed,
        shared_prefix_tokens: 0,
        exact_output: true,
        duration_s: None,
    }
}

fn scenario(name: &str, group: &str, config: ScenarioConfig) -> Scenario {
    Scenario {
        name: name.to_owned(),
        group: group.to_owned(),
        discard: false,
        config,
    }
}

/// Request rates of the default rate sweep, requests per second.
pub const RATE_SWEEP_RPS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0];

/// Seconds of arrivals at each rate of the sweep: long enough for a steady
/// window that ramp-up and drain do not dominate.
pub const RATE_SWEEP_DURATION_S: f64 = 30.0;

/// Requests of one rate of the sweep at most (a bound; time sizes it).
const RATE_SWEEP_MAX_REQUESTS: u32 = 1_000_000;

/// Every built-in scenario, in run order.
///
/// - `warmup`: one ~50-token request, 50 tokens out, discarded.
/// - `latency`: ~50-token prompt, 500 tokens out, temperature 0.7, 3
///   iterations (perftest-models).
/// - `prompt-sizes`: ~20 / 50 / 100-token prompts, 256 out, 3 each (DGX
///   Spark report).
/// - `long-context`: 1K / 8K / 16K / 32K-token prompts, 100 out, 3 each
///   (perftest-models, with exact lengths).
/// - `sequential`: 10 × 128 in / 128 out, one at a time (ROCm report).
/// - `throughput`: closed loop, concurrency 16, 64 requests, 256 in / 256
///   out, temperature 0 (RTX Pro 6000 and ROCm reports).
/// - `concurrency-sweep`: closed loop at 1, 2, 4 … 64 in flight, 8 rounds
///   each, 256 in / 256 out, stopped at saturation (`crate::sweep`). Not in
///   the default selection either.
/// - `rate-sweep`: open loop, Poisson arrivals at [`RATE_SWEEP_RPS`] for
///   [`RATE_SWEEP_DURATION_S`] each (at most 256 in flight), 256 in / 256
///   out, to find the saturation point. Not in the default selection: it
///   takes minutes.
pub fn builtin() -> Vec<Scenario> {
    let mut all = vec![
        Scenario {
            discard: true,
            ..scenario("warmup", "warmup", config(50, 50, 0.7, 1, 1))
        },
        scenario("latency", "latency", config(50, 500, 0.7, 3, 1)),
        scenario("prompt-short", "prompt-sizes", config(20, 256, 0.7, 3, 1)),
        scenario("prompt-medium", "prompt-sizes", config(50, 256, 0.7, 3, 1)),
        scenario("prompt-long", "prompt-sizes", config(100, 256, 0.7, 3, 1)),
    ];
    for (name, tokens) in [("1k", 1024), ("8k", 8192), ("16k", 16384), ("32k", 32768)] {
        all.push(scenario(
            &format!("long-context-{name}"),
            "long-context",
            config(tokens, 100, 0.7, 3, 1),
        ));
    }
    all.push(scenario(
        "sequential",
        "sequential",
        config(128, 128, 0.7, 10, 1),
    ));
    all.push(scenario(
        "throughput",
        "throughput",
        config(256, 256, 0.0, 64, 16),
    ));
    for &rate in RATE_SWEEP_RPS {
        let mut c = config(256, 256, 0.0, RATE_SWEEP_MAX_REQUESTS, 256);
        c.arrival = Arrival::Poisson { rate_rps: rate };
        c.duration_s = Some(RATE_SWEEP_DURATION_S);
        all.push(scenario(&format!("rate-{rate}"), "rate-sweep", c));
    }
    all.extend(sweep_scenarios(
        sweep::DEFAULT_LEVELS,
        sweep::DEFAULT_ROUNDS,
        256,
        256,
    ));
    all
}

/// Groups run when none are named.
pub const DEFAULT_GROUPS: &[&str] = &[
    "warmup",
    "latency",
    "prompt-sizes",
    "long-context",
    "sequential",
    "throughput",
];

/// Reads a scenario file: its tables replace or extend the built-in set.
pub fn from_toml_file(path: &Path) -> Result<Vec<Scenario>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|err| LoadError::ReadScenarios {
        path: path.to_owned(),
        err,
    })?;
    from_toml(&text).map_err(|message| LoadError::ParseScenarios {
        path: path.to_owned(),
        message,
    })
}

/// The names of the scenarios a scenario file defines, in file order: what
/// a run given only that file should run.
pub fn names_in_file(path: &Path) -> Result<Vec<String>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|err| LoadError::ReadScenarios {
        path: path.to_owned(),
        err,
    })?;
    let file: ScenarioFile = toml::from_str(&text).map_err(|e| LoadError::ParseScenarios {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(file.scenario.into_iter().map(|table| table.name).collect())
}

/// The `[slo]` table of a scenario file, when it has one.
pub fn slo_in_file(path: &Path) -> Result<Option<Slo>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|err| LoadError::ReadScenarios {
        path: path.to_owned(),
        err,
    })?;
    slo_in_toml(&text).map_err(|message| LoadError::ParseScenarios {
        path: path.to_owned(),
        message,
    })
}

/// The `[slo]` table of a scenario file's text, when it has one.
pub fn slo_in_toml(text: &str) -> Result<Option<Slo>, String> {
    let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
    file.slo
        .map(|table| Slo::from_table(table).map_err(|why| format!("[slo]: {why}")))
        .transpose()
}

/// Parses scenario tables (see the module comment) on top of the built-ins.
pub fn from_toml(text: &str) -> Result<Vec<Scenario>, String> {
    let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut all = builtin();
    if let Some(table) = &file.sweep {
        let levels = table.levels.as_deref().unwrap_or(sweep::DEFAULT_LEVELS);
        if levels.is_empty() || levels.iter().any(|&l| l == 0 || l > 100_000) {
            return Err(
                "[sweep] levels must be a non-empty list of concurrencies between 1 and 100,000"
                    .to_owned(),
            );
        }
        if table.rounds == Some(0) {
            return Err("[sweep] rounds must be at least 1".to_owned());
        }
        all.retain(|s| s.group != sweep::GROUP);
        all.extend(sweep_scenarios(
            levels,
            table.rounds.unwrap_or(sweep::DEFAULT_ROUNDS),
            table.input_tokens.unwrap_or(256),
            table.max_tokens.unwrap_or(256).max(1),
        ));
    }
    if let Some(table) = file.slo {
        Slo::from_table(table).map_err(|why| format!("[slo]: {why}"))?;
    }
    let throughput = all
        .iter()
        .find(|s| s.name == "throughput")
        .cloned()
        .ok_or("no built-in throughput scenario")?;
    for table in file.scenario {
        let base = all.iter().find(|s| s.name == table.name).cloned();
        let is_new = base.is_none();
        let mut s = base.unwrap_or_else(|| Scenario {
            name: table.name.clone(),
            group: table.name.clone(),
            ..throughput.clone()
        });
        if let Some(v) = table.group {
            s.group = v;
        }
        if let Some(v) = table.discard {
            s.discard = v;
        }
        let c = &mut s.config;
        if let Some(v) = table.endpoint {
            c.endpoint = v;
        }
        if let Some(v) = table.input_tokens {
            c.input_tokens = v;
        }
        if let Some(v) = table.max_tokens {
            c.max_tokens = v;
        }
        if let Some(v) = table.temperature {
            c.temperature = v;
        }
        if let Some(v) = table.requests {
            c.requests = v;
        }
        if let Some(v) = table.concurrency {
            c.concurrency = v;
        }
        if let Some(v) = table.rate_rps {
            c.arrival = Arrival::Poisson { rate_rps: v };
        }
        if let Some(v) = table.duration_s {
            c.duration_s = Some(v);
        }
        if let Some(v) = table.shared_prefix_tokens {
            c.shared_prefix_tokens = v;
        }
        if let Some(v) = table.exact_output {
            c.exact_output = v;
        }
        validate(&s)?;
        if is_new {
            all.push(s);
        } else if let Some(slot) = all.iter_mut().find(|x| x.name == s.name) {
            *slot = s;
        }
    }
    Ok(all)
}

fn validate(s: &Scenario) -> Result<(), String> {
    let c = &s.config;
    let bad = |what: &str| Err(format!("scenario {:?}: {what}", s.name));
    if c.requests == 0 || c.requests > 10_000_000 {
        return bad("requests must be between 1 and 10,000,000");
    }
    if c.concurrency == 0 || c.concurrency > 100_000 {
        return bad("concurrency must be between 1 and 100,000");
    }
    if c.max_tokens == 0 {
        return bad("max_tokens must be at least 1");
    }
    if !(0.0..=10.0).contains(&c.temperature) {
        return bad("temperature must be between 0 and 10");
    }
    if let Arrival::Poisson { rate_rps } = c.arrival
        && !(rate_rps > 0.0 && rate_rps.is_finite())
    {
        return bad("rate_rps must be a positive number");
    }
    if let Some(d) = c.duration_s {
        if !(d > 0.0 && d <= 7.0 * 86_400.0) {
            return bad("duration_s must be a positive number of seconds, at most a week");
        }
        if c.arrival == Arrival::Closed {
            return bad("duration_s sizes an open loop: set rate_rps too");
        }
    }
    if c.shared_prefix_tokens > c.input_tokens {
        return bad("shared_prefix_tokens cannot exceed input_tokens");
    }
    Ok(())
}

/// Picks scenarios by name or group, in run order; `None` or `["default"]`
/// picks [`DEFAULT_GROUPS`], `["all"]` everything. A warmup is added in
/// front when any scenario is selected and it is not already there.
pub fn select(all: &[Scenario], names: Option<&[String]>) -> Result<Vec<Scenario>, LoadError> {
    let wanted: Vec<String> = match names {
        None => DEFAULT_GROUPS.iter().map(|s| (*s).to_owned()).collect(),
        Some(names) => names
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    let everything = wanted.iter().any(|w| w == "all");
    let defaults = wanted.iter().any(|w| w == "default");
    for w in &wanted {
        let known =
            w == "all" || w == "default" || all.iter().any(|s| s.name == *w || s.group == *w);
        if !known {
            let mut names: Vec<&str> = all.iter().map(|s| s.group.as_str()).collect();
            names.extend(all.iter().map(|s| s.name.as_str()));
            names.dedup();
            return Err(LoadError::UnknownScenario {
                name: w.clone(),
                known: names.join(", "),
            });
        }
    }
    let picked: Vec<Scenario> = all
        .iter()
        .filter(|s| {
            everything
                || (defaults && DEFAULT_GROUPS.contains(&s.group.as_str()))
                || wanted.iter().any(|w| *w == s.name || *w == s.group)
        })
        .cloned()
        .collect();
    let mut out = Vec::with_capacity(picked.len() + 1);
    if !picked.is_empty()
        && !picked.iter().any(|s| s.discard)
        && let Some(warmup) = all.iter().find(|s| s.discard)
    {
        out.push(warmup.clone());
    }
    out.extend(picked);
    Ok(out)
}

/// Applies CLI overrides to every non-discarded scenario.
pub fn apply_overrides(scenarios: &mut [Scenario], overrides: &Overrides) {
    for s in scenarios.iter_mut().filter(|s| !s.discard) {
        if let Some(v) = overrides.concurrency {
            s.config.concurrency = v.max(1);
        }
        if let Some(v) = overrides.requests {
            s.config.requests = v.max(1);
        }
        if let Some(v) = overrides.max_tokens {
            s.config.max_tokens = v.max(1);
        }
        if let Some(v) = overrides.endpoint {
            s.config.endpoint = v;
        }
        if let Some(v) = overrides.duration_s
            && matches!(s.config.arrival, Arrival::Poisson { .. })
            && v > 0.0
        {
            s.config.duration_s = Some(v);
        }
    }
}

#[cfg(test)]
mod tests;
