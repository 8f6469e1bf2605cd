//! One service: its definition checked key by key and turned into what the
//! Docker Engine API needs. Problems are collected, not returned one at a
//! time, so that `compose-validate` reports all of them in one pass.
//!
//! One module per section of the compose specification: [`keys`] (which keys
//! are applied, ignored or refused, and the shared value shapes),
//! [`build`], [`environment`], [`ports`], [`volumes`], [`networks`], [`resources`]
//! (memory, CPUs, ulimits, deploy, GPUs, devices), [`healthcheck`], and
//! [`rest`] (image, container name, labels, switches, the other scalars).

mod build;
mod depends_on;
mod environment;
mod healthcheck;
mod host;
pub(crate) mod keys;
mod networks;
mod ports;
mod resources;
mod rest;
mod secrets;
mod volumes;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::discover::{self, InferenceService};
use super::interpolate::Vars;
use super::{NetworkSpec, Problem, VolumeSpec, canonical_json, scalar_text};
pub use build::BuildSpec;
pub use depends_on::{Dependency, DependencyCondition};
pub(crate) use healthcheck::Healthcheck;
pub(crate) use host::HostSettings;
pub(crate) use keys::{EXTENSION_KEYS, Problems, key_value_map};
use keys::{command_words, string_list};
pub(crate) use ports::PortSpec;
pub(crate) use resources::DeviceRequestSpec;
pub use secrets::SecretFile;
pub(crate) use volumes::MountSpec;

/// What a service needs from the rest of the project while it is parsed.
pub(crate) struct Context<'a> {
    pub(crate) project: &'a str,
    pub(crate) working_dir: &'a Path,
    pub(crate) vars: &'a Vars,
    pub(crate) profiles: &'a [String],
    pub(crate) networks: &'a BTreeMap<String, NetworkSpec>,
    pub(crate) volumes: &'a BTreeMap<String, VolumeSpec>,
    pub(crate) secrets: &'a BTreeMap<String, super::secrets::FileSource>,
    pub(crate) configs: &'a BTreeMap<String, super::secrets::FileSource>,
}

/// One service of the project, as compose would run it.
#[derive(Debug, Clone)]
pub struct Service {
    pub(crate) name: String,
    /// `image:`; with `build:`, the tag of the build (`<project>-<service>`
    /// without `image:`).
    pub(crate) image: String,
    /// `build:`: built when the image is missing locally, or always with
    /// `--build` (the Docker side).
    pub(crate) build: Option<BuildSpec>,
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
    /// `links:` as (service, alias) and `external_links:` as (container,
    /// alias): container-scoped aliases on the service's network.
    pub(crate) links: Vec<(String, String)>,
    pub(crate) external_links: Vec<(String, String)>,
    /// Both as the endpoint's `Links` (`CONTAINER:ALIAS`), set once every
    /// service's container name is known (the loader).
    pub(crate) endpoint_links: Vec<String>,
    pub(crate) ipc: Option<String>,
    pub(crate) pid: Option<String>,
    pub(crate) shm_size: Option<i64>,
    pub(crate) mem_limit: Option<i64>,
    pub(crate) nano_cpus: Option<i64>,
    pub(crate) ulimits: Vec<(String, i64, i64)>,
    pub(crate) device_requests: Vec<DeviceRequestSpec>,
    pub(crate) devices: Vec<String>,
    pub(crate) group_add: Vec<String>,
    pub(crate) runtime: Option<String>,
    pub(crate) restart: Option<String>,
    pub(crate) healthcheck: Option<Healthcheck>,
    pub(crate) healthcheck_disabled: bool,
    pub(crate) depends_on: Vec<Dependency>,
    /// The other HostConfig keys (`pids_limit`, `cpuset`, `oom_score_adj`, ...).
    pub(crate) host: HostSettings,
    /// Secrets and configs whose content is a value, to write into the
    /// container before it starts (file-based ones are binds in `mounts`).
    pub(crate) secret_files: Vec<SecretFile>,
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

    /// The image reference (`image:`), or, for a service with `build:` and
    /// no `image:`, the tag compose v2 gives its build (`<project>-<service>`).
    pub fn image(&self) -> &str {
        &self.image
    }

    /// `build:`, when the service has one.
    pub fn build(&self) -> Option<&BuildSpec> {
        self.build.as_ref()
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

    /// The secrets and configs whose content is a value (an environment
    /// variable, a config's `content:`): files to write into the container
    /// after it is created and before it starts. File-based ones are
    /// read-only binds in the create request already.
    pub fn secret_files(&self) -> &[SecretFile] {
        &self.secret_files
    }

    /// `depends_on:` as written, in file order.
    pub fn depends_on(&self) -> &[Dependency] {
        &self.depends_on
    }

    /// The grace period between SIGTERM and SIGKILL (`stop_grace_period`, 10 s).
    pub fn stop_grace_period(&self) -> Duration {
        self.stop_grace_period
    }
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

        keys::check_keys(name, def, p);
        let image = rest::parse_image(name, def, ctx, p);
        let build = build::parse_build(get("build"), ctx, p);
        let container_name = rest::parse_container_name(name, def, ctx, p);

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

        let environment = environment::parse_environment(def, raw, ctx, p);
        let ports = ports::parse_ports(get("ports"), p);
        let expose = ports::parse_expose(get("expose"), p);
        let mut mounts = volumes::parse_volumes(get("volumes"), ctx, p);
        let mut secret_files = secrets::parse_files(
            super::secrets::FileKind::Secret,
            get("secrets"),
            ctx,
            &mut mounts,
            p,
        );
        secret_files.extend(secrets::parse_files(
            super::secrets::FileKind::Config,
            get("configs"),
            ctx,
            &mut mounts,
            p,
        ));
        let networking = networks::parse_networks(def, ctx, p);
        let mut restart = text("restart");
        let resources = resources::parse_resources(def, &mut restart, p);
        rest::check_restart(restart.as_ref(), p);
        let (healthcheck, healthcheck_disabled) =
            healthcheck::parse_healthcheck(get("healthcheck"), p);
        let labels = rest::parse_labels(def, p);
        let stop_grace_period = rest::parse_stop_grace_period(def, p);
        let flags = rest::parse_flags(def, p);

        let mut canonical = String::new();
        canonical_json(&Value::Mapping(def.clone()), &mut canonical);
        let config_hash = crate::hash::sha256_hex(canonical.as_bytes());

        let mut service = Service {
            name: name.to_owned(),
            image,
            build,
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
            networks: networking.networks,
            network_mode: networking.network_mode,
            links: networking.links,
            external_links: networking.external_links,
            endpoint_links: Vec::new(),
            ipc: text("ipc"),
            pid: text("pid"),
            shm_size: resources.shm_size,
            mem_limit: resources.mem_limit,
            nano_cpus: resources.nano_cpus,
            ulimits: resources.ulimits,
            device_requests: resources.device_requests,
            devices: resources.devices,
            group_add: resources.group_add,
            runtime: text("runtime"),
            restart,
            healthcheck,
            healthcheck_disabled,
            depends_on: depends_on::parse_depends_on(get("depends_on"), p),
            host: host::parse_host(def, p),
            secret_files,
            labels,
            stop_grace_period,
            stop_signal: text("stop_signal"),
            user: text("user"),
            working_dir: text("working_dir"),
            hostname: text("hostname"),
            domainname: text("domainname"),
            privileged: flags.privileged,
            init: flags.init,
            tty: flags.tty,
            stdin_open: flags.stdin_open,
            read_only: flags.read_only,
            cap_add: get("cap_add").map(string_list).unwrap_or_default(),
            cap_drop: get("cap_drop").map(string_list).unwrap_or_default(),
            security_opt: get("security_opt").map(string_list).unwrap_or_default(),
            extra_hosts: rest::parse_extra_hosts(def),
            dns: get("dns").map(string_list).unwrap_or_default(),
            tmpfs: get("tmpfs").map(string_list).unwrap_or_default(),
            sysctls: rest::parse_sysctls(def),
            config_hash,
            inference: None,
        };
        service.inference = discover::discover(&service, get("x-spark-perf"), p);
        service
    }
}
