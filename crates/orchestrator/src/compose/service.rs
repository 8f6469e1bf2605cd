//! One service: its definition checked key by key and turned into what the
//! Docker Engine API needs. Problems are collected, not returned one at a
//! time, so that `compose-validate` reports all of them in one pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::discover::{self, InferenceService};
use super::interpolate::{self, Vars};
use super::locate::{Seg, ypath};
use super::units::{closest, parse_bytes, parse_duration, split_shell_words};
use super::{NetworkSpec, Problem, VolumeSpec, canonical_json, is_secret_name, scalar_text};

/// What a service needs from the rest of the project while it is parsed.
pub(crate) struct Context<'a> {
    pub(crate) project: &'a str,
    pub(crate) working_dir: &'a Path,
    pub(crate) vars: &'a Vars,
    pub(crate) profiles: &'a [String],
    pub(crate) networks: &'a BTreeMap<String, NetworkSpec>,
    pub(crate) volumes: &'a BTreeMap<String, VolumeSpec>,
}

/// A published or exposed port: `[HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]`,
/// ranges expanded to one entry per port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortSpec {
    pub(crate) target: u16,
    pub(crate) published: Option<u16>,
    pub(crate) host_ip: Option<String>,
    pub(crate) protocol: String,
}

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

/// A service's `healthcheck:`; durations in nanoseconds as the API wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Healthcheck {
    pub(crate) test: Option<Vec<String>>,
    pub(crate) interval: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) start_period: Option<Duration>,
    pub(crate) start_interval: Option<Duration>,
    pub(crate) retries: Option<i64>,
}

/// A GPU (or other device) request: `deploy.resources.reservations.devices`
/// or `gpus:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceRequestSpec {
    pub(crate) driver: Option<String>,
    /// -1 for `all`.
    pub(crate) count: Option<i64>,
    pub(crate) device_ids: Vec<String>,
    pub(crate) capabilities: Vec<String>,
    pub(crate) options: BTreeMap<String, String>,
}

/// One service of the project, as compose would run it.
#[derive(Debug, Clone)]
pub struct Service {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) container_name: String,
    pub(crate) enabled: bool,
    pub(crate) profiles: Vec<String>,
    pub(crate) command: Option<Vec<String>>,
    pub(crate) entrypoint: Option<Vec<String>>,
    /// `command` as written, before interpolation (`${VLLM_API_KEY}`): what
    /// provenance shows of a word that came from a variable.
    pub(crate) raw_command: Option<Vec<String>>,
    /// `entrypoint` as written, before interpolation.
    pub(crate) raw_entrypoint: Option<Vec<String>>,
    /// The container's environment: `env_file:` entries, then `environment:`.
    pub(crate) environment: BTreeMap<String, String>,
    pub(crate) ports: Vec<PortSpec>,
    pub(crate) expose: Vec<String>,
    pub(crate) mounts: Vec<MountSpec>,
    /// Keys of the project's networks, in the order the service lists them.
    pub(crate) networks: Vec<(String, Vec<String>)>,
    pub(crate) network_mode: Option<String>,
    pub(crate) ipc: Option<String>,
    pub(crate) pid: Option<String>,
    pub(crate) shm_size: Option<i64>,
    pub(crate) mem_limit: Option<i64>,
    pub(crate) nano_cpus: Option<i64>,
    pub(crate) ulimits: Vec<(String, i64, i64)>,
    pub(crate) device_requests: Vec<DeviceRequestSpec>,
    pub(crate) devices: Vec<String>,
    pub(crate) runtime: Option<String>,
    pub(crate) restart: Option<String>,
    pub(crate) healthcheck: Option<Healthcheck>,
    pub(crate) healthcheck_disabled: bool,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) stop_grace_period: Duration,
    pub(crate) stop_signal: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) domainname: Option<String>,
    pub(crate) privileged: bool,
    pub(crate) init: Option<bool>,
    pub(crate) tty: bool,
    pub(crate) stdin_open: bool,
    pub(crate) read_only: bool,
    pub(crate) cap_add: Vec<String>,
    pub(crate) cap_drop: Vec<String>,
    pub(crate) security_opt: Vec<String>,
    pub(crate) extra_hosts: Vec<String>,
    pub(crate) dns: Vec<String>,
    pub(crate) tmpfs: Vec<String>,
    pub(crate) sysctls: BTreeMap<String, String>,
    pub(crate) config_hash: String,
    pub(crate) inference: Option<InferenceService>,
}

impl Service {
    /// The service's key under `services:`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image reference (`image:`).
    pub fn image(&self) -> &str {
        &self.image
    }

    /// `container_name:`, else `<project>-<service>-1` as compose v2 names it.
    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    /// Whether the active profiles enable the service (always, without `profiles:`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The service's `profiles:`.
    pub fn profiles(&self) -> &[String] {
        &self.profiles
    }

    /// The inference engine this service runs, when it is one.
    pub fn inference(&self) -> Option<&InferenceService> {
        self.inference.as_ref()
    }

    /// The `com.docker.compose.config-hash` label: SHA-256 of the
    /// interpolated definition in canonical form.
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    /// The names of the container's environment variables (never values).
    pub fn environment_names(&self) -> Vec<String> {
        self.environment.keys().cloned().collect()
    }

    /// The grace period between SIGTERM and SIGKILL (`stop_grace_period`, 10 s).
    pub fn stop_grace_period(&self) -> Duration {
        self.stop_grace_period
    }
}

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
    "build",
    "x-spark-perf",
];

/// Keys that change nothing about a benchmark: accepted with a warning.
const IGNORED: &[&str] = &[
    "depends_on",
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
    "configs",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "device_cgroup_rules",
    "dns_opt",
    "dns_search",
    "driver_opts",
    "extends",
    "external_links",
    "group_add",
    "isolation",
    "links",
    "mac_address",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "oom_kill_disable",
    "oom_score_adj",
    "pids_limit",
    "post_start",
    "pre_stop",
    "provider",
    "secrets",
    "storage_opt",
    "use_api_socket",
    "userns_mode",
    "uts",
    "volumes_from",
];

const HEALTHCHECK_KEYS: &[&str] = &[
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_interval",
    "disable",
];
const DEPLOY_KEYS: &[&str] = &[
    "mode",
    "replicas",
    "labels",
    "update_config",
    "rollback_config",
    "resources",
    "restart_policy",
    "placement",
    "endpoint_mode",
];
const RESOURCES_KEYS: &[&str] = &["limits", "reservations"];
const RESOURCE_KEYS: &[&str] = &["cpus", "memory", "pids", "devices", "generic_resources"];
const DEVICE_KEYS: &[&str] = &["driver", "count", "device_ids", "capabilities", "options"];
const PORT_KEYS: &[&str] = &[
    "target",
    "published",
    "host_ip",
    "protocol",
    "mode",
    "name",
    "app_protocol",
];
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
pub(crate) const EXTENSION_KEYS: &[&str] = &[
    "inference",
    "port",
    "base_url",
    "model",
    "flavor",
    "health_path",
    "max_model_len",
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

impl Problem {
    fn set_hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }
}

/// A list of strings, or one string split like a shell (`command:`).
fn command_words(value: &Value, problems: &mut Problems<'_>, key: &str) -> Option<Vec<String>> {
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

fn string_list(value: &Value) -> Vec<String> {
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

fn as_bool(value: &Value) -> Option<bool> {
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

fn parse_port_number(text: &str) -> Option<(u16, u16)> {
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
            (a <= b && a > 0).then_some((a, b))
        }
        None => text.parse::<u16>().ok().filter(|p| *p > 0).map(|p| (p, p)),
    }
}

/// Parses the short port syntax.
pub(crate) fn parse_short_port(spec: &str) -> Result<Vec<PortSpec>, String> {
    let (spec, protocol) = match spec.rsplit_once('/') {
        Some((spec, protocol)) => (spec, protocol.to_owned()),
        None => (spec, "tcp".to_owned()),
    };
    if !["tcp", "udp", "sctp"].contains(&protocol.as_str()) {
        return Err(format!("unknown protocol `{protocol}`"));
    }
    // An IPv6 host address is bracketed: `[::1]:8000:8000`.
    let (host_ip, rest) = if let Some(rest) = spec.strip_prefix('[') {
        let (ip, rest) = rest
            .split_once("]:")
            .ok_or("unclosed `[` in the host address")?;
        (Some(ip.to_owned()), rest)
    } else {
        (None, spec)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, target) = match (host_ip, parts.as_slice()) {
        (None, [target]) => (None, None, *target),
        (None, [published, target]) => (None, Some(*published), *target),
        (None, [ip, published, target]) => (Some((*ip).to_owned()), Some(*published), *target),
        (Some(ip), [published, target]) => (Some(ip), Some(*published), *target),
        _ => return Err("expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]".into()),
    };
    let target = parse_port_number(target)
        .ok_or_else(|| format!("`{target}` is not a port or port range"))?;
    let published = match published {
        None | Some("") => None,
        Some(p) => {
            Some(parse_port_number(p).ok_or_else(|| format!("`{p}` is not a port or port range"))?)
        }
    };
    if let Some(ip) = &host_ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(format!("`{ip}` is not an IP address"));
    }
    let n_targets = target.1 - target.0 + 1;
    let mut ports = Vec::new();
    for offset in 0..n_targets {
        let published = match published {
            None => None,
            Some((start, end)) if end - start + 1 == n_targets => Some(start + offset),
            // One published range for one target: Docker picks in the range.
            Some((start, _)) if n_targets == 1 => Some(start),
            Some(_) => return Err("the host and container port ranges differ in size".into()),
        };
        ports.push(PortSpec {
            target: target.0 + offset,
            published,
            host_ip: host_ip.clone().filter(|ip| !ip.is_empty()),
            protocol: protocol.clone(),
        });
    }
    Ok(ports)
}

impl Service {
    /// Parses one service. Returns `None` only when the definition is not a
    /// mapping; every other problem still yields a service.
    pub(crate) fn parse(
        name: &str,
        value: &Value,
        raw: &Value,
        ctx: &Context<'_>,
    ) -> (Option<Service>, Vec<Problem>) {
        let mut problems = Problems {
            service: name,
            list: Vec::new(),
        };
        let service = match value {
            Value::Mapping(def) => Some(Self::parse_mapping(name, def, raw, ctx, &mut problems)),
            Value::Null => {
                problems
                    .error(
                        vec![],
                        "the service is empty: it has neither `image` nor `build`",
                    )
                    .set_hint("add `image: NAME:TAG`");
                None
            }
            _ => {
                problems.error(vec![], "a service must be a mapping of keys to values");
                None
            }
        };
        (service, problems.list)
    }

    fn parse_mapping(
        name: &str,
        def: &Mapping,
        raw: &Value,
        ctx: &Context<'_>,
        p: &mut Problems<'_>,
    ) -> Service {
        let get = |key: &str| def.get(key);
        let text = |key: &str| get(key).and_then(scalar_text);

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

        // Image and build.
        let image = text("image").unwrap_or_default();
        if image.is_empty() {
            if get("build").is_some() {
                p.error(
                    ypath!["build"],
                    "`build:` is not supported by spark-perf and there is no `image:`",
                )
                .set_hint(
                    "build the image first (`docker compose build`) and name it with `image:`",
                );
            } else {
                p.error(vec![], "the service has neither `image` nor `build`")
                    .set_hint("add `image: NAME:TAG`");
            }
        } else {
            if get("build").is_some() {
                p.warning(
                    ypath!["build"],
                    "spark-perf does not build images; it runs `image:` as it is",
                )
                .set_hint("build the image first with `docker compose build`");
            }
            if crate::image_ref::ImageRef::parse(&image).is_floating() {
                p.warning(
                    ypath!["image"],
                    format!("image `{image}` uses the `latest` tag"),
                )
                .set_hint("pin a version so that results stay comparable between runs");
            }
        }

        let container_name = match text("container_name") {
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
        };

        let profiles = get("profiles").map(string_list).unwrap_or_default();
        let enabled = profiles.is_empty()
            || profiles
                .iter()
                .any(|pr| ctx.profiles.contains(pr) || ctx.profiles.iter().any(|a| a == "*"));

        let command = get("command").and_then(|v| command_words(v, p, "command"));
        let entrypoint = get("entrypoint").and_then(|v| command_words(v, p, "entrypoint"));
        // The same words before interpolation; their problems were reported
        // for the interpolated text already.
        let mut unreported = Problems {
            service: name,
            list: Vec::new(),
        };
        let raw_command = raw
            .get("command")
            .and_then(|v| command_words(v, &mut unreported, "command"));
        let raw_entrypoint = raw
            .get("entrypoint")
            .and_then(|v| command_words(v, &mut unreported, "entrypoint"));

        let environment = parse_environment(def, raw, ctx, p);
        let ports = parse_ports(get("ports"), p);
        let expose = get("expose").map(string_list).unwrap_or_default();
        for (idx, e) in expose.iter().enumerate() {
            let spec = e.split('/').next().unwrap_or_default();
            if parse_port_number(spec).is_none() {
                p.error(ypath!["expose", idx], format!("`{e}` is not a port"));
            }
        }
        let mounts = parse_volumes(get("volumes"), ctx, p);

        // Networks.
        let network_mode = text("network_mode");
        if let Some(mode) = &network_mode
            && !["host", "none", "bridge"].contains(&mode.as_str())
        {
            p.error(
                ypath!["network_mode"],
                format!("network_mode `{mode}` is not supported by spark-perf"),
            )
            .set_hint("use `host`, `bridge`, `none`, or the project's networks");
        }
        let mut networks = Vec::new();
        match get("networks") {
            None | Some(Value::Null) => {
                if network_mode.is_none() {
                    networks.push(("default".to_owned(), Vec::new()));
                }
            }
            Some(Value::Sequence(items)) => {
                networks.extend(
                    items
                        .iter()
                        .filter_map(scalar_text)
                        .map(|n| (n, Vec::new())),
                );
            }
            Some(Value::Mapping(m)) => {
                for (key, settings) in m {
                    let key = scalar_text(key).unwrap_or_default();
                    let aliases = settings.get("aliases").map(string_list).unwrap_or_default();
                    networks.push((key, aliases));
                }
            }
            Some(_) => {
                p.error(ypath!["networks"], "`networks` must be a list or a mapping");
            }
        }
        if network_mode.is_some() && get("networks").is_some() {
            p.error(
                ypath!["networks"],
                "`network_mode` and `networks` cannot be combined",
            );
        }
        for (net, _) in &networks {
            if !ctx.networks.contains_key(net) {
                let suggestion = closest(net, ctx.networks.keys().map(String::as_str));
                let problem = p.error(
                    ypath!["networks"],
                    format!("network `{net}` is not declared under the top-level `networks:`"),
                );
                if let Some(s) = suggestion {
                    problem.set_hint(format!("did you mean `{s}`?"));
                }
            }
        }

        let size = |p: &mut Problems<'_>, key: &str| -> Option<i64> {
            let value = get(key)?;
            let text = scalar_text(value)?;
            let bytes = parse_bytes(&text);
            if bytes.is_none() {
                p.error(ypath![key], format!("`{text}` is not a size"))
                    .set_hint("write e.g. `16gb`, `512m` or a number of bytes");
            }
            bytes
        };
        let shm_size = size(p, "shm_size");
        let mut mem_limit = size(p, "mem_limit");
        let mut nano_cpus = match text("cpus") {
            Some(cpus) => match cpus.parse::<f64>() {
                Ok(c) if (0.0..1e6).contains(&c) => Some((c * 1e9) as i64),
                _ => {
                    p.error(ypath!["cpus"], format!("`{cpus}` is not a number of CPUs"));
                    None
                }
            },
            None => None,
        };

        let ulimits = parse_ulimits(get("ulimits"), p);

        // Deploy and GPUs.
        let mut device_requests = Vec::new();
        let mut restart = text("restart");
        if let Some(deploy) = get("deploy") {
            parse_deploy(
                deploy,
                p,
                &mut device_requests,
                &mut mem_limit,
                &mut nano_cpus,
                &mut restart,
            );
        }
        match get("gpus") {
            None => {}
            Some(Value::String(all)) if all == "all" => device_requests.push(DeviceRequestSpec {
                driver: None,
                count: Some(-1),
                device_ids: Vec::new(),
                capabilities: vec!["gpu".into()],
                options: BTreeMap::new(),
            }),
            Some(Value::Sequence(items)) => {
                for (idx, item) in items.iter().enumerate() {
                    if let Some(request) = parse_device(item, p, &ypath!["gpus", idx]) {
                        let mut request = request;
                        if request.capabilities.is_empty() {
                            request.capabilities.push("gpu".into());
                        }
                        device_requests.push(request);
                    }
                }
            }
            Some(_) => {
                p.error(
                    ypath!["gpus"],
                    "`gpus` must be `all` or a list of device requests",
                );
            }
        }
        if let Some(r) = &restart {
            let ok = ["no", "always", "unless-stopped", "on-failure"].contains(&r.as_str())
                || r.strip_prefix("on-failure:")
                    .is_some_and(|n| n.parse::<u32>().is_ok());
            if !ok {
                p.error(ypath!["restart"], format!("`{r}` is not a restart policy"))
                    .set_hint("use no, always, unless-stopped or on-failure[:N]");
            }
        }

        let (healthcheck, healthcheck_disabled) = parse_healthcheck(get("healthcheck"), p);

        let labels: BTreeMap<String, String> = get("labels")
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

        let stop_grace_period = match text("stop_grace_period") {
            None => Duration::from_secs(10),
            Some(t) => parse_duration(&t).unwrap_or_else(|| {
                p.error(
                    ypath!["stop_grace_period"],
                    format!("`{t}` is not a duration"),
                )
                .set_hint("write e.g. `30s` or `1m30s`");
                Duration::from_secs(10)
            }),
        };

        let bool_key = |p: &mut Problems<'_>, key: &str| -> Option<bool> {
            let value = get(key)?;
            let b = as_bool(value);
            if b.is_none() {
                p.error(ypath![key], format!("`{key}` must be true or false"));
            }
            b
        };
        let privileged = bool_key(p, "privileged").unwrap_or(false);
        let init = bool_key(p, "init");
        let tty = bool_key(p, "tty").unwrap_or(false);
        let stdin_open = bool_key(p, "stdin_open").unwrap_or(false);
        let read_only = bool_key(p, "read_only").unwrap_or(false);

        let sysctls = get("sysctls")
            .map(key_value_map)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        let tmpfs = get("tmpfs").map(string_list).unwrap_or_default();
        let devices = get("devices").map(string_list).unwrap_or_default();
        let extra_hosts = match get("extra_hosts") {
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
        };

        let mut canonical = String::new();
        canonical_json(&Value::Mapping(def.clone()), &mut canonical);
        let config_hash = crate::hash::sha256_hex(canonical.as_bytes());

        let mut service = Service {
            name: name.to_owned(),
            image,
            container_name,
            enabled,
            profiles,
            command,
            entrypoint,
            raw_command,
            raw_entrypoint,
            environment,
            ports,
            expose,
            mounts,
            networks,
            network_mode,
            ipc: text("ipc"),
            pid: text("pid"),
            shm_size,
            mem_limit,
            nano_cpus,
            ulimits,
            device_requests,
            devices,
            runtime: text("runtime"),
            restart,
            healthcheck,
            healthcheck_disabled,
            labels,
            stop_grace_period,
            stop_signal: text("stop_signal"),
            user: text("user"),
            working_dir: text("working_dir"),
            hostname: text("hostname"),
            domainname: text("domainname"),
            privileged,
            init,
            tty,
            stdin_open,
            read_only,
            cap_add: get("cap_add").map(string_list).unwrap_or_default(),
            cap_drop: get("cap_drop").map(string_list).unwrap_or_default(),
            security_opt: get("security_opt").map(string_list).unwrap_or_default(),
            extra_hosts,
            dns: get("dns").map(string_list).unwrap_or_default(),
            tmpfs,
            sysctls,
            config_hash,
            inference: None,
        };
        service.inference = discover::discover(&service, get("x-spark-perf"), p);
        service
    }
}

fn parse_environment(
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

fn parse_ports(value: Option<&Value>, p: &mut Problems<'_>) -> Vec<PortSpec> {
    let mut ports = Vec::new();
    let items = match value {
        None | Some(Value::Null) => return ports,
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            p.error(ypath!["ports"], "`ports` must be a list");
            return ports;
        }
    };
    for (idx, item) in items.iter().enumerate() {
        match item {
            Value::Mapping(m) => {
                p.unknown_keys(m, PORT_KEYS, &ypath!["ports", idx], "port");
                let target = m
                    .get("target")
                    .and_then(scalar_text)
                    .and_then(|t| t.parse::<u16>().ok())
                    .filter(|t| *t > 0);
                let Some(target) = target else {
                    p.error(
                        ypath!["ports", idx],
                        "a port needs a `target` container port (1-65535)",
                    );
                    continue;
                };
                let published = match m.get("published").and_then(scalar_text) {
                    None => None,
                    Some(text) if text.is_empty() => None,
                    Some(text) => match parse_port_number(&text) {
                        Some((start, _)) => Some(start),
                        None => {
                            p.error(
                                ypath!["ports", idx, "published"],
                                format!("`{text}` is not a port"),
                            );
                            continue;
                        }
                    },
                };
                let host_ip = m.get("host_ip").and_then(scalar_text);
                if let Some(ip) = &host_ip
                    && ip.parse::<std::net::IpAddr>().is_err()
                {
                    p.error(
                        ypath!["ports", idx, "host_ip"],
                        format!("`{ip}` is not an IP address"),
                    );
                }
                ports.push(PortSpec {
                    target,
                    published,
                    host_ip,
                    protocol: m
                        .get("protocol")
                        .and_then(scalar_text)
                        .unwrap_or_else(|| "tcp".into()),
                });
            }
            other => {
                // YAML reads an unquoted `80:80` as a base-60 number in 1.1;
                // serde_yaml follows YAML 1.2, so a number here is one port.
                let Some(spec) = scalar_text(other) else {
                    p.error(ypath!["ports", idx], "a port must be a string or a mapping");
                    continue;
                };
                match parse_short_port(&spec) {
                    Ok(parsed) => ports.extend(parsed),
                    Err(why) => {
                        p.error(
                            ypath!["ports", idx],
                            format!("malformed port `{spec}`: {why}"),
                        )
                        .set_hint("write \"HOST:CONTAINER\", e.g. \"8000:8000\"");
                    }
                }
            }
        }
    }
    ports
}

fn parse_volumes(value: Option<&Value>, ctx: &Context<'_>, p: &mut Problems<'_>) -> Vec<MountSpec> {
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

fn parse_ulimits(value: Option<&Value>, p: &mut Problems<'_>) -> Vec<(String, i64, i64)> {
    let mut ulimits = Vec::new();
    let Some(Value::Mapping(m)) = value else {
        if value.is_some() {
            p.error(ypath!["ulimits"], "`ulimits` must be a mapping");
        }
        return ulimits;
    };
    for (name, limit) in m {
        let name = scalar_text(name).unwrap_or_default();
        let pair = match limit {
            Value::Mapping(sh) => {
                let soft = sh.get("soft").and_then(Value::as_i64);
                let hard = sh.get("hard").and_then(Value::as_i64);
                soft.zip(hard)
            }
            other => scalar_text(other)
                .and_then(|t| t.parse::<i64>().ok())
                .map(|n| (n, n)),
        };
        match pair {
            Some((soft, hard)) => ulimits.push((name, soft, hard)),
            None => {
                p.error(
                    ypath!["ulimits", name.as_str()],
                    format!("ulimit `{name}` must be a number or {{soft, hard}}"),
                );
            }
        }
    }
    ulimits
}

fn parse_device(item: &Value, p: &mut Problems<'_>, at: &[Seg]) -> Option<DeviceRequestSpec> {
    let Value::Mapping(m) = item else {
        p.error(at.to_vec(), "a device request must be a mapping");
        return None;
    };
    p.unknown_keys(m, DEVICE_KEYS, at, "device");
    let count = match m.get("count") {
        None => None,
        Some(Value::String(s)) if s == "all" => Some(-1),
        Some(other) => match scalar_text(other).and_then(|t| t.parse::<i64>().ok()) {
            Some(n) => Some(n),
            None => {
                let mut rest = at.to_vec();
                rest.push(Seg::Key("count".into()));
                p.error(rest, "`count` must be a number or `all`");
                None
            }
        },
    };
    let device_ids = m.get("device_ids").map(string_list).unwrap_or_default();
    if count.is_some() && !device_ids.is_empty() {
        p.error(at.to_vec(), "`count` and `device_ids` cannot be combined");
    }
    Some(DeviceRequestSpec {
        driver: m.get("driver").and_then(scalar_text),
        count: count.or(device_ids.is_empty().then_some(-1)),
        device_ids,
        capabilities: m.get("capabilities").map(string_list).unwrap_or_default(),
        options: m
            .get("options")
            .map(key_value_map)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
    })
}

fn parse_deploy(
    deploy: &Value,
    p: &mut Problems<'_>,
    device_requests: &mut Vec<DeviceRequestSpec>,
    mem_limit: &mut Option<i64>,
    nano_cpus: &mut Option<i64>,
    restart: &mut Option<String>,
) {
    let Value::Mapping(deploy) = deploy else {
        p.error(ypath!["deploy"], "`deploy` must be a mapping");
        return;
    };
    p.unknown_keys(deploy, DEPLOY_KEYS, &ypath!["deploy"], "deploy");
    if deploy
        .get("replicas")
        .and_then(Value::as_i64)
        .is_some_and(|n| n != 1)
    {
        p.error(
            ypath!["deploy", "replicas"],
            "spark-perf runs one container per service; `replicas` must be 1",
        );
    }
    if let Some(policy) = deploy
        .get("restart_policy")
        .and_then(|r| r.get("condition"))
        .and_then(scalar_text)
        && restart.is_none()
    {
        *restart = Some(match policy.as_str() {
            "none" => "no".to_owned(),
            "any" => "always".to_owned(),
            other => other.to_owned(),
        });
    }
    let Some(resources) = deploy.get("resources") else {
        return;
    };
    let Value::Mapping(resources) = resources else {
        p.error(
            ypath!["deploy", "resources"],
            "`resources` must be a mapping",
        );
        return;
    };
    p.unknown_keys(
        resources,
        RESOURCES_KEYS,
        &ypath!["deploy", "resources"],
        "resources",
    );
    for section in ["limits", "reservations"] {
        let Some(Value::Mapping(block)) = resources.get(section) else {
            continue;
        };
        p.unknown_keys(
            block,
            RESOURCE_KEYS,
            &ypath!["deploy", "resources", section],
            section,
        );
        if section == "limits" {
            if let Some(memory) = block.get("memory").and_then(scalar_text) {
                match parse_bytes(&memory) {
                    Some(bytes) => *mem_limit = Some(bytes),
                    None => {
                        p.error(
                            ypath!["deploy", "resources", "limits", "memory"],
                            format!("`{memory}` is not a size"),
                        );
                    }
                }
            }
            if let Some(cpus) = block
                .get("cpus")
                .and_then(scalar_text)
                .and_then(|c| c.parse::<f64>().ok())
                && (0.0..1e6).contains(&cpus)
            {
                *nano_cpus = Some((cpus * 1e9) as i64);
            }
        }
        if section == "reservations"
            && let Some(devices) = block.get("devices")
        {
            let Value::Sequence(items) = devices else {
                p.error(
                    ypath!["deploy", "resources", "reservations", "devices"],
                    "`devices` must be a list",
                );
                continue;
            };
            for (idx, item) in items.iter().enumerate() {
                let at = ypath!["deploy", "resources", "reservations", "devices", idx];
                if let Some(request) = parse_device(item, p, &at) {
                    if request.capabilities.is_empty() {
                        p.error(at, "a device reservation needs `capabilities` (e.g. [gpu])");
                    }
                    device_requests.push(request);
                }
            }
        }
    }
}

fn parse_healthcheck(value: Option<&Value>, p: &mut Problems<'_>) -> (Option<Healthcheck>, bool) {
    let Some(value) = value else {
        return (None, false);
    };
    let Value::Mapping(m) = value else {
        p.error(ypath!["healthcheck"], "`healthcheck` must be a mapping");
        return (None, false);
    };
    p.unknown_keys(m, HEALTHCHECK_KEYS, &ypath!["healthcheck"], "healthcheck");
    if m.get("disable").and_then(as_bool) == Some(true) {
        return (None, true);
    }
    let duration = |p: &mut Problems<'_>, key: &str| -> Option<Duration> {
        let text = m.get(key).and_then(scalar_text)?;
        let parsed = parse_duration(&text);
        if parsed.is_none() {
            p.error(
                ypath!["healthcheck", key],
                format!("`{text}` is not a duration"),
            );
        }
        parsed
    };
    let test = match m.get("test") {
        None => None,
        Some(Value::Sequence(items)) => Some(
            items
                .iter()
                .map(|v| scalar_text(v).unwrap_or_default())
                .collect(),
        ),
        // The string form runs in the image's shell.
        Some(other) => scalar_text(other).map(|t| vec!["CMD-SHELL".to_owned(), t]),
    };
    if let Some(test) = &test
        && !["NONE", "CMD", "CMD-SHELL"].contains(&test.first().map_or("", String::as_str))
    {
        p.error(
            ypath!["healthcheck", "test"],
            "a healthcheck test list starts with CMD, CMD-SHELL or NONE",
        );
    }
    let healthcheck = Healthcheck {
        test,
        interval: duration(p, "interval"),
        timeout: duration(p, "timeout"),
        start_period: duration(p, "start_period"),
        start_interval: duration(p, "start_interval"),
        retries: m.get("retries").and_then(Value::as_i64),
    };
    (Some(healthcheck), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ports() {
        let one = |s: &str| parse_short_port(s).unwrap();
        assert_eq!(
            one("8000"),
            [PortSpec {
                target: 8000,
                published: None,
                host_ip: None,
                protocol: "tcp".into()
            }]
        );
        assert_eq!(one("8001:8000")[0].published, Some(8001));
        let p = one("127.0.0.1:8001:8000/udp");
        assert_eq!(
            (p[0].host_ip.as_deref(), p[0].protocol.as_str()),
            (Some("127.0.0.1"), "udp")
        );
        assert_eq!(one("[::1]:8001:8000")[0].host_ip.as_deref(), Some("::1"));
        let range = one("9000-9001:8000-8001");
        assert_eq!(
            range
                .iter()
                .map(|p| (p.published, p.target))
                .collect::<Vec<_>>(),
            [(Some(9000), 8000), (Some(9001), 8001)]
        );
        for bad in [
            "",
            "abc",
            "80:80:80:80",
            "0:80",
            "70000:80",
            "1.2.3:80:80",
            "80/xyz",
            "9000-9002:8000-8001",
            "[::1:80:80",
        ] {
            assert!(parse_short_port(bad).is_err(), "{bad}");
        }
    }
}
