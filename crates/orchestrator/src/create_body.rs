//! The create request compose would send for a service: `container_body`
//! (image, command, environment, ports, mounts, devices, GPUs, limits,
//! health check, networks) and the helpers it needs.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointSettings, HealthConfig, HostConfig,
    Mount, MountType, NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum,
};

use crate::compose::{ComposeProject, InferenceService, MountSpec, Service};
use crate::docker::{COMPOSE_VERSION_LABEL, LABEL_PROJECT, LABEL_SERVICE};

/// Where the health probe connects: the base URL's host and port.
pub(crate) fn health_host_port(service: &InferenceService) -> (String, u16) {
    let authority = service
        .base_url
        .split_once("://")
        .map_or(service.base_url.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("127.0.0.1");
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    (host.to_owned(), service.host_port)
}

pub(crate) fn endpoint(service: &Service, aliases: &[String]) -> EndpointSettings {
    let mut all = vec![service.name.clone()];
    all.extend(aliases.iter().cloned());
    EndpointSettings {
        aliases: Some(all),
        // Per network since API 1.44, as compose v2 sends it.
        mac_address: service.host.mac_address.clone(),
        // `links`/`external_links`: container-scoped aliases on this network.
        links: (!service.endpoint_links.is_empty()).then(|| service.endpoint_links.clone()),
        ..Default::default()
    }
}

fn duration_ns(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The container's create body, from the service definition and the labels
/// compose would write.
pub(crate) fn container_body(
    project: &ComposeProject,
    service: &Service,
    image_id: &str,
) -> ContainerCreateBody {
    let mut labels: HashMap<String, String> = service.labels.clone().into_iter().collect();
    let config_files = project
        .config_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    for (key, value) in [
        (LABEL_PROJECT, project.name().to_owned()),
        (LABEL_SERVICE, service.name.clone()),
        ("com.docker.compose.oneoff", "False".to_owned()),
        ("com.docker.compose.container-number", "1".to_owned()),
        (
            "com.docker.compose.config-hash",
            service.config_hash.clone(),
        ),
        (
            "com.docker.compose.project.working_dir",
            project.working_dir().display().to_string(),
        ),
        ("com.docker.compose.project.config_files", config_files),
        (
            "com.docker.compose.version",
            COMPOSE_VERSION_LABEL.to_owned(),
        ),
        ("com.docker.compose.image", image_id.to_owned()),
        ("com.docker.compose.depends_on", String::new()),
    ] {
        labels.insert(key.to_owned(), value);
    }

    let mut exposed: Vec<String> = service
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.target, p.protocol))
        .collect();
    for e in &service.expose {
        exposed.push(if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        });
    }
    exposed.sort();
    exposed.dedup();
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &service.ports {
        port_bindings
            .entry(format!("{}/{}", port.target, port.protocol))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.clone(),
                host_port: port.published.map(|p| p.to_string()),
            });
    }

    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    let mut anonymous = Vec::new();
    let mut tmpfs: HashMap<String, String> = service
        .tmpfs
        .iter()
        .map(|t| (t.clone(), String::new()))
        .collect();
    for mount in &service.mounts {
        match mount {
            MountSpec::Bind {
                source,
                target,
                read_only,
            } => {
                binds.push(format!(
                    "{source}:{target}{}",
                    if *read_only { ":ro" } else { ":rw" }
                ));
            }
            MountSpec::Volume {
                key,
                target,
                read_only,
            } => {
                let source = project
                    .volumes
                    .get(key)
                    .map_or_else(|| key.clone(), |v| v.docker_name.clone());
                mounts.push(Mount {
                    target: Some(target.clone()),
                    source: Some(source),
                    typ: Some(MountType::VOLUME),
                    read_only: Some(*read_only),
                    ..Default::default()
                });
            }
            MountSpec::Anonymous { target } => anonymous.push(target.clone()),
            MountSpec::Tmpfs { target } => {
                tmpfs.insert(target.clone(), String::new());
            }
        }
    }

    let device_requests: Vec<DeviceRequest> = service
        .device_requests
        .iter()
        .map(|d| DeviceRequest {
            driver: d.driver.clone(),
            count: d.count,
            device_ids: (!d.device_ids.is_empty()).then(|| d.device_ids.clone()),
            capabilities: Some(vec![d.capabilities.clone()]),
            options: (!d.options.is_empty()).then(|| d.options.clone().into_iter().collect()),
        })
        .collect();

    let devices: Vec<DeviceMapping> = service
        .devices
        .iter()
        .map(|d| {
            let mut parts = d.split(':');
            let host = parts.next().unwrap_or_default().to_owned();
            let container = parts.next().map_or_else(|| host.clone(), str::to_owned);
            DeviceMapping {
                path_on_host: Some(host),
                path_in_container: Some(container),
                cgroup_permissions: Some(parts.next().unwrap_or("rwm").to_owned()),
            }
        })
        .collect();

    let restart_policy = service.restart.as_deref().map(|r| {
        let (name, retries) = match r.split_once(':') {
            Some((name, n)) => (name, n.parse().ok()),
            None => (r, None),
        };
        RestartPolicy {
            name: Some(match name {
                "always" => RestartPolicyNameEnum::ALWAYS,
                "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
                "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
                _ => RestartPolicyNameEnum::NO,
            }),
            maximum_retry_count: retries,
        }
    });

    let network_mode = match &service.network_mode {
        Some(mode) => mode.clone(),
        None => service
            .networks
            .first()
            .and_then(|(key, _)| project.networks.get(key))
            .map_or_else(
                || format!("{}_default", project.name()),
                |n| n.docker_name.clone(),
            ),
    };
    let networking_config = match (&service.network_mode, service.networks.first()) {
        (None, Some((_, aliases))) => Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network_mode.clone(),
                endpoint(service, aliases),
            )])),
        }),
        _ => None,
    };

    let healthcheck = if service.healthcheck_disabled {
        Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        })
    } else {
        service.healthcheck.as_ref().map(|h| HealthConfig {
            test: h.test.clone(),
            interval: h.interval.map(duration_ns),
            timeout: h.timeout.map(duration_ns),
            retries: h.retries,
            start_period: h.start_period.map(duration_ns),
            start_interval: h.start_interval.map(duration_ns),
        })
    };

    let host = &service.host;
    let host_config = HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        mounts: (!mounts.is_empty()).then_some(mounts),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        network_mode: Some(network_mode),
        ipc_mode: service.ipc.clone(),
        pid_mode: service.pid.clone(),
        shm_size: service.shm_size,
        memory: service.mem_limit,
        nano_cpus: service.nano_cpus,
        ulimits: (!service.ulimits.is_empty()).then(|| {
            service
                .ulimits
                .iter()
                .map(|(name, soft, hard)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        device_requests: (!device_requests.is_empty()).then_some(device_requests),
        devices: (!devices.is_empty()).then_some(devices),
        group_add: (!service.group_add.is_empty()).then(|| service.group_add.clone()),
        runtime: service.runtime.clone(),
        restart_policy,
        privileged: service.privileged.then_some(true),
        init: service.init,
        readonly_rootfs: service.read_only.then_some(true),
        cap_add: (!service.cap_add.is_empty()).then(|| service.cap_add.clone()),
        cap_drop: (!service.cap_drop.is_empty()).then(|| service.cap_drop.clone()),
        security_opt: (!service.security_opt.is_empty()).then(|| service.security_opt.clone()),
        extra_hosts: (!service.extra_hosts.is_empty()).then(|| service.extra_hosts.clone()),
        dns: (!service.dns.is_empty()).then(|| service.dns.clone()),
        sysctls: (!service.sysctls.is_empty())
            .then(|| service.sysctls.clone().into_iter().collect()),
        pids_limit: host.pids_limit,
        cpuset_cpus: host.cpuset.clone(),
        cpu_shares: host.cpu_shares,
        cpu_period: host.cpu_period,
        cpu_quota: host.cpu_quota,
        cpu_realtime_period: host.cpu_rt_period,
        cpu_realtime_runtime: host.cpu_rt_runtime,
        cpu_count: host.cpu_count,
        cpu_percent: host.cpu_percent,
        memory_reservation: host.mem_reservation,
        memory_swap: host.memswap_limit,
        memory_swappiness: host.mem_swappiness,
        oom_kill_disable: host.oom_kill_disable,
        oom_score_adj: host.oom_score_adj,
        uts_mode: host.uts.clone(),
        userns_mode: host.userns_mode.clone(),
        dns_options: (!host.dns_opt.is_empty()).then(|| host.dns_opt.clone()),
        dns_search: (!host.dns_search.is_empty()).then(|| host.dns_search.clone()),
        storage_opt: (!host.storage_opt.is_empty())
            .then(|| host.storage_opt.clone().into_iter().collect()),
        device_cgroup_rules: (!host.device_cgroup_rules.is_empty())
            .then(|| host.device_cgroup_rules.clone()),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(service.image.clone()),
        cmd: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        env: Some(
            service
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        volumes: (!anonymous.is_empty()).then_some(anonymous),
        labels: Some(labels),
        hostname: service.hostname.clone(),
        domainname: service.domainname.clone(),
        user: service.user.clone(),
        working_dir: service.working_dir.clone(),
        tty: service.tty.then_some(true),
        open_stdin: service.stdin_open.then_some(true),
        stop_signal: service.stop_signal.clone(),
        stop_timeout: Some(i64::try_from(service.stop_grace_period.as_secs()).unwrap_or(i64::MAX)),
        healthcheck,
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{LoadOptions, Severity};

    /// A fixture of the CLI's tests, loaded with an empty environment.
    pub(crate) fn fixture(name: &str) -> ComposeProject {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../spark-perf/tests/fixtures/compose")
            .join(name);
        ComposeProject::load(&LoadOptions {
            files: vec![file],
            ..LoadOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn an_amd_rocm_service_gets_its_device_nodes_groups_and_host_settings() {
        let project = fixture("rocm.yml");
        // No "vLLM image without a GPU reservation": the device nodes are one.
        let warnings: Vec<String> = project
            .warnings()
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(ToString::to_string)
            .collect();
        assert!(warnings.is_empty(), "{warnings:?}");
        let service = project.service("vllm-rocm").unwrap();
        let body = container_body(&project, service, "sha256:abc");
        let host = body.host_config.unwrap();
        let devices: Vec<(Option<String>, Option<String>, Option<String>)> = host
            .devices
            .unwrap()
            .into_iter()
            .map(|d| (d.path_on_host, d.path_in_container, d.cgroup_permissions))
            .collect();
        let node = |path: &str| {
            (
                Some(path.to_owned()),
                Some(path.to_owned()),
                Some("rwm".to_owned()),
            )
        };
        assert_eq!(devices, [node("/dev/kfd"), node("/dev/dri")]);
        assert_eq!(
            host.group_add,
            Some(vec!["video".to_owned(), "render".to_owned()])
        );
        assert_eq!(host.ipc_mode.as_deref(), Some("host"));
        assert_eq!(host.cap_add, Some(vec!["SYS_PTRACE".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["seccomp=unconfined".to_owned()])
        );
        assert_eq!(host.shm_size, Some(16 << 30));
        assert_eq!(host.device_requests, None);
    }
}

#[cfg(test)]
mod host_tests {
    use super::tests::fixture;
    use super::*;

    #[test]
    fn the_host_config_keys_reach_the_create_body() {
        let project = fixture("host-settings.yml");
        let service = project.service("engine").unwrap();
        let body = container_body(&project, service, "sha256:abc");
        let host = body.host_config.unwrap();
        assert_eq!(host.pids_limit, Some(4096));
        assert_eq!(host.cpuset_cpus.as_deref(), Some("0-3"));
        assert_eq!(
            (host.cpu_shares, host.cpu_period, host.cpu_quota),
            (Some(512), Some(100_000), Some(50_000))
        );
        assert_eq!(
            (host.cpu_realtime_runtime, host.cpu_realtime_period),
            (Some(400_000), Some(1_000_000))
        );
        assert_eq!((host.cpu_count, host.cpu_percent), (Some(2), Some(50)));
        assert_eq!(
            (host.memory, host.memory_reservation, host.memory_swap),
            (Some(2 << 30), Some(1 << 30), Some(-1))
        );
        assert_eq!(host.memory_swappiness, Some(0));
        assert_eq!(
            (host.oom_kill_disable, host.oom_score_adj),
            (Some(true), Some(-500))
        );
        assert_eq!(
            (host.uts_mode.as_deref(), host.userns_mode.as_deref()),
            (Some("host"), Some("host"))
        );
        assert_eq!(
            host.dns_options,
            Some(vec!["use-vc".to_owned(), "ndots:2".to_owned()])
        );
        assert_eq!(host.dns_search, Some(vec!["example.internal".to_owned()]));
        assert_eq!(
            host.storage_opt,
            Some(HashMap::from([("size".to_owned(), "20G".to_owned())]))
        );
        assert_eq!(
            host.device_cgroup_rules,
            Some(vec!["c 226:* rmw".to_owned()])
        );
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        let endpoint = endpoints.values().next().unwrap();
        assert_eq!(endpoint.mac_address.as_deref(), Some("02:42:ac:11:00:02"));
    }
}

#[cfg(test)]
mod secret_tests {
    use super::tests::fixture;
    use super::*;

    #[test]
    fn a_file_secret_is_a_read_only_bind_and_value_secrets_are_files_to_write() {
        let project = fixture("secrets.yml");
        let service = project.service("vllm").unwrap();
        let body = container_body(&project, service, "sha256:abc");
        let binds = body.host_config.clone().unwrap().binds.unwrap();
        let token = std::fs::canonicalize(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../spark-perf/tests/fixtures/compose/secrets/hf_token.txt"),
        )
        .unwrap();
        assert!(
            binds.iter().any(|b| {
                b.ends_with("/hf_token.txt:/run/secrets/hf_token:ro")
                    && std::fs::canonicalize(b.trim_end_matches(":/run/secrets/hf_token:ro"))
                        .is_ok_and(|p| p == token)
            }),
            "{binds:?}"
        );
        let files: Vec<(&str, &str, u32, &str)> = service
            .secret_files()
            .iter()
            .map(|f| {
                (
                    f.source.as_str(),
                    f.target.as_str(),
                    f.mode,
                    f.content.expose(),
                )
            })
            .collect();
        assert_eq!(
            files,
            [
                (
                    "api_key",
                    "/run/secrets/vllm_api_key",
                    0o400,
                    "sk-fixture-env-value-4567"
                ),
                (
                    "chat_template",
                    "/templates/chat.jinja",
                    0o444,
                    "{{ messages }}"
                ),
            ]
        );
        // The value is not in the create request (it is written apart) nor
        // in any debug print of the model.
        let debug = format!("{service:?} {body:?}");
        assert!(!debug.contains("sk-fixture-env-value-4567"), "{debug}");
    }
}

#[cfg(test)]
mod link_tests {
    use super::tests::fixture;
    use super::*;

    #[test]
    fn links_and_external_links_are_endpoint_links_by_container_name() {
        let project = fixture("links.yml");
        let service = project.service("engine").unwrap();
        let body = container_body(&project, service, "sha256:abc");
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        let endpoint = endpoints.get("links-fixture_default").unwrap();
        assert_eq!(
            endpoint.links,
            Some(vec![
                "links-fixture-cache-1:cache".to_owned(),
                "links-metrics:prometheus".to_owned(),
                "shared-redis:redis".to_owned(),
            ])
        );
    }
}
