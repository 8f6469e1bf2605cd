//! `volumes:` of a service: binds, named and anonymous volumes, tmpfs
//! mounts, in the short and the long syntax.

use serde_yaml::Value;

use super::super::locate::ypath;
use super::super::scalar_text;
use super::super::units::closest;
use super::Context;
use super::keys::{Problems, as_bool};

/// A mount: a bind of a host path, a named or anonymous volume, or a tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountSpec {
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    Volume {
        key: String,
        target: String,
        read_only: bool,
    },
    Anonymous {
        target: String,
    },
    Tmpfs {
        target: String,
    },
}

const VOLUME_KEYS: &[&str] = &[
    "type",
    "source",
    "target",
    "read_only",
    "bind",
    "volume",
    "tmpfs",
    "consistency",
    "image",
];

pub(super) fn parse_volumes(
    value: Option<&Value>,
    ctx: &Context<'_>,
    p: &mut Problems<'_>,
) -> Vec<MountSpec> {
    let mut mounts = Vec::new();
    let Some(Value::Sequence(items)) = value else {
        if value.is_some_and(|v| !v.is_null()) {
            p.error(ypath!["volumes"], "`volumes` must be a list");
        }
        return mounts;
    };
    let home = ctx.vars.get("HOME").cloned().unwrap_or_default();
    let resolve = |source: &str| -> String {
        if let Some(rest) = source.strip_prefix("~/") {
            format!("{home}/{rest}")
        } else if source.starts_with('/') {
            source.to_owned()
        } else {
            let joined = ctx.working_dir.join(source);
            std::path::absolute(&joined)
                .unwrap_or(joined)
                .display()
                .to_string()
        }
    };
    let is_path = |s: &str| s.starts_with('/') || s.starts_with('.') || s.starts_with('~');
    for (idx, item) in items.iter().enumerate() {
        match item {
            Value::Mapping(m) => {
                p.unknown_keys(m, VOLUME_KEYS, &ypath!["volumes", idx], "volume");
                let kind = m
                    .get("type")
                    .and_then(scalar_text)
                    .unwrap_or_else(|| "volume".into());
                let source = m.get("source").and_then(scalar_text).unwrap_or_default();
                let Some(target) = m.get("target").and_then(scalar_text) else {
                    p.error(ypath!["volumes", idx], "a volume needs a `target`");
                    continue;
                };
                let read_only = m.get("read_only").and_then(as_bool).unwrap_or(false);
                match kind.as_str() {
                    "bind" => mounts.push(MountSpec::Bind {
                        source: resolve(&source),
                        target,
                        read_only,
                    }),
                    "volume" if source.is_empty() => mounts.push(MountSpec::Anonymous { target }),
                    "volume" => {
                        check_volume_declared(&source, ctx, p, idx);
                        mounts.push(MountSpec::Volume {
                            key: source,
                            target,
                            read_only,
                        });
                    }
                    "tmpfs" => mounts.push(MountSpec::Tmpfs { target }),
                    other => {
                        p.error(
                            ypath!["volumes", idx, "type"],
                            format!("volume type `{other}` is not supported by spark-perf"),
                        );
                    }
                }
            }
            other => {
                let Some(spec) = scalar_text(other) else {
                    continue;
                };
                let parts: Vec<&str> = spec.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [target] => (None, *target, ""),
                    [source, target] => (Some(*source), *target, ""),
                    [source, target, mode] => (Some(*source), *target, *mode),
                    _ => {
                        p.error(ypath!["volumes", idx], format!("malformed volume `{spec}`"))
                            .set_hint("write SOURCE:TARGET[:ro]");
                        continue;
                    }
                };
                if !target.starts_with('/') {
                    p.error(
                        ypath!["volumes", idx],
                        format!("the container path `{target}` of a volume must be absolute"),
                    );
                    continue;
                }
                let read_only = mode.split(',').any(|m| m == "ro");
                let target = target.to_owned();
                match source {
                    None => mounts.push(MountSpec::Anonymous { target }),
                    Some(source) if is_path(source) => mounts.push(MountSpec::Bind {
                        source: resolve(source),
                        target,
                        read_only,
                    }),
                    Some(source) => {
                        check_volume_declared(source, ctx, p, idx);
                        mounts.push(MountSpec::Volume {
                            key: source.to_owned(),
                            target,
                            read_only,
                        });
                    }
                }
            }
        }
    }
    mounts
}

fn check_volume_declared(key: &str, ctx: &Context<'_>, p: &mut Problems<'_>, idx: usize) {
    if !ctx.volumes.contains_key(key) {
        let suggestion = closest(key, ctx.volumes.keys().map(String::as_str));
        let problem = p.error(
            ypath!["volumes", idx],
            format!("named volume `{key}` is not declared under the top-level `volumes:`"),
        );
        problem.set_hint(match suggestion {
            Some(s) => format!("did you mean `{s}`?"),
            None => {
                format!("declare it (`volumes: {{{key}: {{}}}}`) or write a host path (`./{key}`)")
            }
        });
    }
}
