//! The keys of a service: which spark-perf applies, ignores or rejects; the
//! collector of a service's problems; and the value shapes the sections share
//! (string lists, `KEY=VALUE` maps, booleans, command words).

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::super::locate::{Seg, ypath};
use super::super::units::{closest, split_shell_words};
use super::super::{Problem, scalar_text};

/// Keys spark-perf applies to the container.
const SUPPORTED: &[&str] = &[
    "image",
    "container_name",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "networks",
    "network_mode",
    "ipc",
    "pid",
    "shm_size",
    "mem_limit",
    "cpus",
    "ulimits",
    "deploy",
    "gpus",
    "runtime",
    "restart",
    "healthcheck",
    "labels",
    "profiles",
    "stop_grace_period",
    "stop_signal",
    "user",
    "working_dir",
    "hostname",
    "domainname",
    "privileged",
    "init",
    "tty",
    "stdin_open",
    "read_only",
    "cap_add",
    "cap_drop",
    "security_opt",
    "extra_hosts",
    "dns",
    "tmpfs",
    "sysctls",
    "devices",
    "group_add",
    "depends_on",
    "secrets",
    "configs",
    "extends",
    "links",
    "external_links",
    "pids_limit",
    "cpuset",
    "cpu_shares",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_count",
    "cpu_percent",
    "mem_reservation",
    "memswap_limit",
    "mem_swappiness",
    "oom_kill_disable",
    "oom_score_adj",
    "uts",
    "userns_mode",
    "dns_opt",
    "dns_search",
    "storage_opt",
    "device_cgroup_rules",
    "mac_address",
    "build",
    "x-spark-perf",
];

/// Keys that change nothing about a benchmark: accepted with a warning.
const IGNORED: &[&str] = &[
    "logging",
    "platform",
    "pull_policy",
    "attach",
    "develop",
    "annotations",
    "label_file",
    "scale",
];

/// Keys of the compose specification spark-perf does not implement.
const UNSUPPORTED: &[&str] = &[
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "credential_spec",
    "driver_opts",
    "isolation",
    "models",
    "post_start",
    "pre_stop",
    "provider",
    "use_api_socket",
    "volumes_from",
];

/// Checks the service's name and reports every key spark-perf does not
/// apply: ignored ones with a warning, the rest as errors.
pub(super) fn check_keys(name: &str, def: &Mapping, p: &mut Problems<'_>) {
    let get = |key: &str| def.get(key);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        p.error(vec![], format!("`{name}` is not a valid service name"))
            .set_hint("use letters, digits, `.`, `_` and `-`");
    }

    for key in def.keys() {
        let key = scalar_text(key).unwrap_or_default();
        if SUPPORTED.contains(&key.as_str()) || key.starts_with("x-") {
            continue;
        }
        if IGNORED.contains(&key.as_str()) {
            if key == "scale" && get("scale").and_then(Value::as_i64).is_some_and(|n| n != 1) {
                p.error(
                    ypath!["scale"],
                    "spark-perf runs one container per service; `scale` must be 1",
                );
            } else {
                p.warning(
                    ypath![key.as_str()],
                    format!("`{key}` is ignored by spark-perf"),
                );
            }
        } else if UNSUPPORTED.contains(&key.as_str()) {
            p.error(ypath![key.as_str()], format!("`{key}` is not supported by spark-perf"))
                .set_hint("remove it, or start this engine with docker compose and benchmark it with `spark-perf bench --url`");
        } else {
            let all = SUPPORTED.iter().chain(IGNORED).chain(UNSUPPORTED).copied();
            let suggestion = closest(&key, all);
            let problem = p.error(ypath![key.as_str()], format!("unknown service key `{key}`"));
            if let Some(s) = suggestion {
                problem.set_hint(format!("did you mean `{s}`?"));
            }
        }
    }
}

pub(crate) const EXTENSION_KEYS: &[&str] = &[
    "inference",
    "port",
    "base_url",
    "model",
    "flavor",
    "health_path",
    "max_model_len",
    "slo",
];

/// Collects the problems of one service.
pub(crate) struct Problems<'a> {
    pub(crate) service: &'a str,
    pub(crate) list: Vec<Problem>,
}

impl Problems<'_> {
    pub(crate) fn at(&self, rest: impl Into<Vec<Seg>>) -> Vec<Seg> {
        let mut full: Vec<Seg> = ypath!["services", self.service].into();
        full.extend(rest.into());
        full
    }

    pub(crate) fn error(
        &mut self,
        rest: impl Into<Vec<Seg>>,
        message: impl Into<String>,
    ) -> &mut Problem {
        let path = self.at(rest);
        self.list.push(Problem::error(path, message));
        self.list.last_mut().expect("just pushed")
    }

    pub(crate) fn warning(
        &mut self,
        rest: impl Into<Vec<Seg>>,
        message: impl Into<String>,
    ) -> &mut Problem {
        let path = self.at(rest);
        self.list.push(Problem::warning(path, message));
        self.list.last_mut().expect("just pushed")
    }

    /// Reports keys of `mapping` that are not in `known`, with a suggestion.
    pub(crate) fn unknown_keys(
        &mut self,
        mapping: &Mapping,
        known: &[&str],
        at: &[Seg],
        what: &str,
    ) {
        for key in mapping.keys() {
            let key = scalar_text(key).unwrap_or_default();
            if known.contains(&key.as_str()) || key.starts_with("x-") {
                continue;
            }
            let mut rest = at.to_vec();
            rest.push(Seg::Key(key.clone()));
            let suggestion = closest(&key, known.iter().copied());
            let problem = self.error(rest, format!("unknown {what} key `{key}`"));
            if let Some(suggestion) = suggestion {
                problem.hint = Some(format!("did you mean `{suggestion}`?"));
            }
        }
    }
}

impl Problems<'_> {
    /// Reports the keys of a nested section (`build:`) as [`check_keys`]
    /// does those of a service: `ignored` ones with a warning,
    /// `unsupported` ones as errors, unknown ones as errors with a
    /// suggestion among all three lists.
    pub(crate) fn unknown_keys_except(
        &mut self,
        mapping: &Mapping,
        known: &[&str],
        ignored: &[&str],
        unsupported: &[&str],
        at: &[Seg],
    ) {
        let section = at
            .last()
            .map(|seg| match seg {
                Seg::Key(key) => key.clone(),
                Seg::Index(idx) => idx.to_string(),
            })
            .unwrap_or_default();
        for key in mapping.keys() {
            let key = scalar_text(key).unwrap_or_default();
            if known.contains(&key.as_str()) || key.starts_with("x-") {
                continue;
            }
            let mut rest = at.to_vec();
            rest.push(Seg::Key(key.clone()));
            if ignored.contains(&key.as_str()) {
                self.warning(rest, format!("`{section}.{key}` is ignored by spark-perf"));
            } else if unsupported.contains(&key.as_str()) {
                self.error(
                    rest,
                    format!("`{section}.{key}` is not supported by spark-perf"),
                )
                .set_hint(
                    "remove it, or build the image with `docker compose build` and name it with `image:`",
                );
            } else {
                let all = known.iter().chain(ignored).chain(unsupported).copied();
                let suggestion = closest(&key, all);
                let problem = self.error(rest, format!("unknown {section} key `{key}`"));
                if let Some(s) = suggestion {
                    problem.set_hint(format!("did you mean `{s}`?"));
                }
            }
        }
    }
}

impl Problem {
    pub(crate) fn set_hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }
}

/// A list of strings, or one string split like a shell (`command:`).
pub(super) fn command_words(
    value: &Value,
    problems: &mut Problems<'_>,
    key: &str,
) -> Option<Vec<String>> {
    match value {
        Value::Null => None,
        Value::Sequence(items) => Some(
            items
                .iter()
                .map(|v| scalar_text(v).unwrap_or_default())
                .collect(),
        ),
        other => match scalar_text(other) {
            Some(text) => match split_shell_words(&text) {
                Some(words) => Some(words),
                None => {
                    problems
                        .error(ypath![key], format!("`{key}` has an unclosed quote"))
                        .set_hint("close the quote, or write the command as a list");
                    None
                }
            },
            None => {
                problems.error(
                    ypath![key],
                    format!("`{key}` must be a string or a list of strings"),
                );
                None
            }
        },
    }
}

pub(super) fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    }
}

/// `environment:`/`labels:` as a map; list items `KEY=VALUE` or `KEY` (no value).
pub(crate) fn key_value_map(value: &Value) -> BTreeMap<String, Option<String>> {
    match value {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| (scalar_text(k).unwrap_or_default(), scalar_text(v)))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(scalar_text)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (item, None),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

pub(super) fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
