//! `environment:` and `env_file:`: the container's variables, and a warning
//! for a secret written literally.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::super::interpolate;
use super::super::locate::ypath;
use super::super::{is_secret_name, scalar_text};
use super::Context;
use super::keys::{Problems, as_bool, key_value_map};

pub(super) fn parse_environment(
    def: &Mapping,
    raw: &Value,
    ctx: &Context<'_>,
    p: &mut Problems<'_>,
) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    // `env_file:` first; `environment:` wins over it.
    let env_files: Vec<(String, bool)> = match def.get("env_file") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::Mapping(m) => {
                    let path = m.get("path").and_then(scalar_text)?;
                    let required = m.get("required").and_then(as_bool).unwrap_or(true);
                    Some((path, required))
                }
                other => scalar_text(other).map(|p| (p, true)),
            })
            .collect(),
        Some(other) => scalar_text(other).map(|p| (p, true)).into_iter().collect(),
    };
    for (idx, (file, required)) in env_files.iter().enumerate() {
        let full = ctx.working_dir.join(file);
        match std::fs::read_to_string(&full) {
            Ok(text) => {
                let (vars, bad_lines) = interpolate::parse_env_file(&text, ctx.vars);
                for line in bad_lines {
                    p.error(
                        ypath!["env_file", idx],
                        format!("{}:{line}: malformed line", full.display()),
                    )
                    .set_hint("write KEY=VALUE");
                }
                environment.extend(vars);
            }
            Err(err) if *required => {
                p.error(
                    ypath!["env_file", idx],
                    format!("cannot read env file {}: {err}", full.display()),
                )
                .set_hint("create it, or mark it `required: false`");
            }
            Err(_) => {}
        }
    }
    if let Some(value) = def.get("environment") {
        if !matches!(value, Value::Mapping(_) | Value::Sequence(_)) {
            p.error(
                ypath!["environment"],
                "`environment` must be a mapping or a list of KEY=VALUE",
            );
        }
        for (key, value) in key_value_map(value) {
            match value {
                Some(value) => {
                    environment.insert(key, value);
                }
                // `KEY` alone: the value comes from the shell or .env.
                None => {
                    if let Some(value) = ctx.vars.get(&key) {
                        environment.insert(key, value.clone());
                    }
                }
            }
        }
    }
    // Literal secrets: look at the text before interpolation.
    if let Some(raw_env) = raw.get("environment") {
        for (key, value) in key_value_map(raw_env) {
            if let Some(value) = value
                && is_secret_name(&key)
                && !value.is_empty()
                && !value.contains('$')
            {
                p.warning(
                    ypath!["environment", key.as_str()],
                    format!("{key} holds a literal secret value"),
                )
                .set_hint(format!(
                    "write `{key}: ${{{key}}}` and set it in the environment or .env"
                ));
            }
        }
    }
    environment
}
