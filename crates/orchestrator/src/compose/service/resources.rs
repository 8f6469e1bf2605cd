//! Resources and devices: `shm_size`, `mem_limit`, `cpus`, `ulimits`,
//! `deploy:` (limits, reservations, restart policy), `gpus:`, `devices:` and
//! `group_add:` (the groups that own device nodes, e.g. `video` for AMD GPUs).

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::super::locate::{Seg, ypath};
use super::super::scalar_text;
use super::super::units::parse_bytes;
use super::keys::{Problems, key_value_map, string_list};

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

/// What a service asks of the host: memory, CPUs, limits and devices.
#[derive(Debug, Default)]
pub(super) struct Resources {
    pub(super) shm_size: Option<i64>,
    pub(super) mem_limit: Option<i64>,
    pub(super) nano_cpus: Option<i64>,
    pub(super) ulimits: Vec<(String, i64, i64)>,
    pub(super) device_requests: Vec<DeviceRequestSpec>,
    pub(super) devices: Vec<String>,
    /// Extra groups of the container's user, names or numeric ids.
    pub(super) group_add: Vec<String>,
}

/// Parses the resource keys of a service; `deploy.restart_policy` fills
/// `restart` when the service has no `restart:` of its own.
pub(super) fn parse_resources(
    def: &Mapping,
    restart: &mut Option<String>,
    p: &mut Problems<'_>,
) -> Resources {
    let get = |key: &str| def.get(key);
    let text = |key: &str| get(key).and_then(scalar_text);
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
    if let Some(deploy) = get("deploy") {
        parse_deploy(
            deploy,
            p,
            &mut device_requests,
            &mut mem_limit,
            &mut nano_cpus,
            restart,
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
    Resources {
        shm_size,
        mem_limit,
        nano_cpus,
        ulimits,
        device_requests,
        devices: get("devices").map(string_list).unwrap_or_default(),
        group_add: get("group_add").map(string_list).unwrap_or_default(),
    }
}

pub(super) fn parse_ulimits(
    value: Option<&Value>,
    p: &mut Problems<'_>,
) -> Vec<(String, i64, i64)> {
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
