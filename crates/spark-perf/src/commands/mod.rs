//! One module per subcommand, plus what `run` and `demo` share.

pub(crate) mod bench;
pub(crate) mod compare;
pub(crate) mod demo;
mod flow;
mod lock;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod sim;

use spark_load::ApiKey;

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
