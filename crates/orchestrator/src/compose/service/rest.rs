//! The rest of a service's keys: `image`, `container_name`,
//! `restart`, `labels`, `stop_grace_period`, the boolean switches,
//! `sysctls` and `extra_hosts`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::super::locate::ypath;
use super::super::scalar_text;
use super::super::units::parse_duration;
use super::Context;
use super::keys::{Problems, as_bool, key_value_map, string_list};

/// `image:`, with the warning for a floating tag. With `build:`, `image:` is
/// the tag of the build, and without it the build is tagged
/// `<project>-<service>` as compose v2 tags it.
pub(super) fn parse_image(
    name: &str,
    def: &Mapping,
    ctx: &Context<'_>,
    p: &mut Problems<'_>,
) -> String {
    let image = def.get("image").and_then(scalar_text).unwrap_or_default();
    let built = def.get("build").is_some();
    if image.is_empty() {
        if built {
            return super::build::default_image_name(ctx.project, name);
        }
        p.error(vec![], "the service has neither `image` nor `build`")
            .set_hint("add `image: NAME:TAG`");
    } else if !built && crate::image_ref::ImageRef::parse(&image).is_floating() {
        // A built image is what its context says, whatever its tag.
        p.warning(
            ypath!["image"],
            format!("image `{image}` uses the `latest` tag"),
        )
        .set_hint("pin a version so that results stay comparable between runs");
    }
    image
}

/// `container_name:`, else `<project>-<service>-1` as compose v2 names it.
pub(super) fn parse_container_name(
    name: &str,
    def: &Mapping,
    ctx: &Context<'_>,
    p: &mut Problems<'_>,
) -> String {
    match def.get("container_name").and_then(scalar_text) {
        Some(cn) => {
            let valid = cn.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && cn.len() > 1
                && cn
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                p.error(
                    ypath!["container_name"],
                    format!("`{cn}` is not a valid container name"),
                )
                .set_hint("use [a-zA-Z0-9][a-zA-Z0-9_.-]+");
            }
            cn
        }
        None => format!("{}-{name}-1", ctx.project),
    }
}

/// Checks a restart policy (`restart:` or `deploy.restart_policy`).
pub(super) fn check_restart(restart: Option<&String>, p: &mut Problems<'_>) {
    if let Some(r) = restart {
        let ok = ["no", "always", "unless-stopped", "on-failure"].contains(&r.as_str())
            || r.strip_prefix("on-failure:")
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if !ok {
            p.error(ypath!["restart"], format!("`{r}` is not a restart policy"))
                .set_hint("use no, always, unless-stopped or on-failure[:N]");
        }
    }
}

/// `labels:`, refusing compose's own.
pub(super) fn parse_labels(def: &Mapping, p: &mut Problems<'_>) -> BTreeMap<String, String> {
    let labels: BTreeMap<String, String> = def
        .get("labels")
        .map(key_value_map)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    for key in labels.keys() {
        if key.starts_with("com.docker.compose.") {
            p.error(
                ypath!["labels"],
                format!("label `{key}` is reserved for compose"),
            );
        }
    }
    labels
}

/// `stop_grace_period:`, 10 s by default.
pub(super) fn parse_stop_grace_period(def: &Mapping, p: &mut Problems<'_>) -> Duration {
    match def.get("stop_grace_period").and_then(scalar_text) {
        None => Duration::from_secs(10),
        Some(t) => parse_duration(&t).unwrap_or_else(|| {
            p.error(
                ypath!["stop_grace_period"],
                format!("`{t}` is not a duration"),
            )
            .set_hint("write e.g. `30s` or `1m30s`");
            Duration::from_secs(10)
        }),
    }
}

/// The boolean switches of a service.
#[derive(Debug, Default)]
pub(super) struct Flags {
    pub(super) privileged: bool,
    pub(super) init: Option<bool>,
    pub(super) tty: bool,
    pub(super) stdin_open: bool,
    pub(super) read_only: bool,
}

pub(super) fn parse_flags(def: &Mapping, p: &mut Problems<'_>) -> Flags {
    let get = |key: &str| def.get(key);
    let bool_key = |p: &mut Problems<'_>, key: &str| -> Option<bool> {
        let value = get(key)?;
        let b = as_bool(value);
        if b.is_none() {
            p.error(ypath![key], format!("`{key}` must be true or false"));
        }
        b
    };
    Flags {
        privileged: bool_key(p, "privileged").unwrap_or(false),
        init: bool_key(p, "init"),
        tty: bool_key(p, "tty").unwrap_or(false),
        stdin_open: bool_key(p, "stdin_open").unwrap_or(false),
        read_only: bool_key(p, "read_only").unwrap_or(false),
    }
}

/// `sysctls:` as a map.
pub(super) fn parse_sysctls(def: &Mapping) -> BTreeMap<String, String> {
    def.get("sysctls")
        .map(key_value_map)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

/// `extra_hosts:` as `HOST:IP` entries (list or mapping form).
pub(super) fn parse_extra_hosts(def: &Mapping) -> Vec<String> {
    match def.get("extra_hosts") {
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    scalar_text(k).unwrap_or_default(),
                    string_list(v).join(",")
                )
            })
            .collect(),
        Some(other) => string_list(other),
        None => Vec::new(),
    }
}
