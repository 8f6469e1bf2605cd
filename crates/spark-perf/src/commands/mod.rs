//! One module per subcommand, plus what `run` and `demo` share.

pub(crate) mod bench;
pub(crate) mod compare;
pub(crate) mod demo;
mod engine_metrics;
pub(crate) mod export;
mod flow;
mod gpu;
pub(crate) mod history;
mod judge;
mod lock;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod sim;
pub(crate) mod slo;
mod telemetry;
mod trends;

use std::time::Duration;

use spark_load::ApiKey;

/// The parser of every duration flag: the orchestrator's grammar, the one
/// compose files use, so `90s`, `30m`, `2h`, `1h30m` and `500ms` work in
/// both places alike.
pub(crate) fn duration_arg(text: &str) -> Result<Duration, String> {
    spark_orchestrator::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration (e.g. 500ms, 90s, 30m, 2h, 1h30m)"))
}

/// Reads the API key from the environment variable named on the command
/// line (never from a flag value, so it stays out of shell history and `ps`).
pub(crate) fn api_key(var: Option<&str>) -> anyhow::Result<Option<ApiKey>> {
    let Some(var) = var else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(key) if !key.is_empty() => Ok(Some(ApiKey::new(key))),
        _ => anyhow::bail!(
            "--api-key-env names {var}, but {var} is not set (export {var}=… before running)"
        ),
    }
}
