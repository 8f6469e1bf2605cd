//! Which services are inference engines, and how to reach them: the engine
//! flavor (from the command, then the image), the host port (from `ports:`,
//! or `--port` under `network_mode: host`), the served model name and the
//! health path. An `x-spark-perf:` mapping on a service overrides any of them
//! and can exclude the service (`inference: false`).

use serde_yaml::Value;

use super::locate::ypath;
use super::scalar_text;
use super::service::{EXTENSION_KEYS, Problems, Service};

mod command;
mod flavor;

pub use flavor::Flavor;

use command::{command_words, flag_value, positional_after_serve};
use flavor::{flavor_from_command, flavor_from_image, is_sim_image};

/// A service that runs an inference engine, and how to reach it from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceService {
    /// The service's key under `services:`.
    pub name: String,
    pub image: String,
    /// The container's name (`container_name:` or `<project>-<service>-1`).
    pub container_name: String,
    pub flavor: Flavor,
    /// The port on the host where the engine answers.
    pub host_port: u16,
    /// The engine's root URL as seen from the host, e.g. `http://127.0.0.1:8000`
    /// (no trailing slash, no API prefix).
    pub base_url: String,
    /// The path that answers 200 once the engine is ready, e.g. `/health`.
    pub health_path: String,
    /// The model name the engine serves, when the command says it.
    pub served_model: Option<String>,
    /// Whether the active profiles enable the service.
    pub enabled: bool,
    /// `x-spark-perf.max_model_len`: the context length, for engines that
    /// do not report it (TensorRT-LLM, Ollama).
    pub max_model_len: Option<u32>,
    /// `x-spark-perf.slo` as written (`ttft_p90=2s,tpot_p90=100ms`): the
    /// objectives of this engine, parsed by the CLI, which knows what they
    /// mean; over the top-level `x-spark-perf.slo`.
    pub slo: Option<String>,
    /// Set when the compose file publishes the engine's port without a host
    /// port (`ports: ["8000"]`): Docker assigns one when the container
    /// starts, and until [`InferenceService::with_host_port`] is given the
    /// port read back from the container, `host_port` is 0.
    pub assigned_port: Option<AssignedPort>,
}

/// An engine port published on a host port that Docker picks at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedPort {
    /// The engine's port inside the container (`8000/tcp`): the key of the
    /// container's `NetworkSettings.Ports` to read the host port from.
    pub container_port: u16,
    /// The host address it is published on (`127.0.0.1::8000`), if any.
    pub host_ip: Option<String>,
}

impl InferenceService {
    /// Whether the host port is known before the container starts.
    pub fn host_port_known(&self) -> bool {
        self.assigned_port.is_none()
    }

    /// The service once its Docker-assigned host port is known: `host_port`
    /// and the port of `base_url` set to `port`.
    #[must_use]
    pub fn with_host_port(mut self, port: u16) -> InferenceService {
        if let Some((prefix, rest)) = self.base_url.rsplit_once(':')
            && rest.parse::<u16>().is_ok()
        {
            self.base_url = format!("{prefix}:{port}");
        }
        self.host_port = port;
        self
    }

    /// `base_url` + `health_path`.
    pub fn health_url(&self) -> String {
        format!("{}{}", self.base_url, self.health_path)
    }
}

/// Decides whether `service` is an inference engine and how to reach it.
pub(super) fn discover(
    service: &Service,
    extension: Option<&Value>,
    p: &mut Problems<'_>,
) -> Option<InferenceService> {
    let empty = serde_yaml::Mapping::new();
    let ext = match extension {
        None | Some(Value::Null) => &empty,
        Some(Value::Mapping(m)) => m,
        Some(_) => {
            p.error(ypath!["x-spark-perf"], "`x-spark-perf` must be a mapping");
            &empty
        }
    };
    p.unknown_keys(ext, EXTENSION_KEYS, &ypath!["x-spark-perf"], "x-spark-perf");
    let ext_text = |key: &str| ext.get(key).and_then(scalar_text);
    let forced = match ext.get("inference") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            p.error(
                ypath!["x-spark-perf", "inference"],
                "`inference` must be true or false",
            );
            None
        }
    };
    if forced == Some(false) {
        return None;
    }

    let words = command_words(service);
    let sim = is_sim_image(&service.image);
    let ext_flavor = match ext_text("flavor") {
        None => None,
        Some(id) => match Flavor::from_id(&id) {
            Some(f) => Some(f),
            None => {
                let ids: Vec<&str> = Flavor::ALL.iter().map(|f| f.id()).collect();
                p.error(
                    ypath!["x-spark-perf", "flavor"],
                    format!("unknown flavor `{id}`"),
                )
                .hint = Some(format!("use one of {}", ids.join(", ")));
                None
            }
        },
    };
    let detected = if sim {
        // spark-sim imitates the flavor its `--flavor` names (vLLM by default).
        Some(
            flag_value(&words, &["--flavor"])
                .and_then(|f| Flavor::from_id(&f))
                .unwrap_or(Flavor::Vllm),
        )
    } else {
        flavor_from_command(&words).or_else(|| flavor_from_image(&service.image))
    };
    let flavor = match (ext_flavor, detected, forced) {
        (Some(f), _, _) => f,
        (None, Some(f), _) => f,
        (None, None, Some(true)) => Flavor::Other,
        (None, None, _) => return None,
    };

    if flavor.needs_gpu()
        && !sim
        && service.device_requests.is_empty()
        && service.runtime.as_deref() != Some("nvidia")
        && !service.devices.iter().any(|d| is_gpu_device(d))
    {
        p.warning(ypath!["image"], format!("{flavor} image without a GPU reservation"))
            .hint = Some("add deploy.resources.reservations.devices (driver: nvidia, count: all, capabilities: [gpu]) or `gpus: all`; for an AMD GPU, `devices: [/dev/kfd, /dev/dri]` and `group_add: [video]`".into());
    }

    // TGI's launcher also reads its flags from the environment (`PORT`,
    // `MODEL_ID`): settings, not secrets, so their values may be read here.
    let tgi_env = |name: &str| {
        (flavor == Flavor::Tgi && !sim)
            .then(|| service.environment.get(name).cloned())
            .flatten()
    };
    let container_port = flag_value(&words, &["--port"])
        .or_else(|| tgi_env("PORT"))
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(flavor.default_port());

    let mut host_ip: Option<String> = None;
    let ext_port = match ext.get("port") {
        None => None,
        Some(v) => match scalar_text(v)
            .and_then(|t| t.parse::<u16>().ok())
            .filter(|p| *p > 0)
        {
            Some(port) => Some(port),
            None => {
                p.error(
                    ypath!["x-spark-perf", "port"],
                    "`port` must be a port number",
                );
                return None;
            }
        },
    };
    let host_port = if let Some(port) = ext_port {
        Some(port)
    } else if service.network_mode.as_deref() == Some("host") {
        Some(container_port)
    } else {
        let tcp = || service.ports.iter().filter(|p| p.protocol == "tcp");
        let matching = tcp().find(|p| p.target == container_port);
        let published: Vec<_> = tcp().filter(|p| p.published.is_some()).collect();
        let chosen = match matching {
            Some(port) if port.published.is_some() => Some(port),
            // Listed without a host port: Docker picks one (below).
            Some(_) => None,
            None if published.len() == 1 => published.first().copied(),
            None => None,
        };
        if let Some(port) = chosen {
            host_ip = port.host_ip.clone();
        }
        chosen.and_then(|p| p.published)
    };
    // With an explicit `base_url`, its port is the host port.
    let host_port = host_port.or_else(|| ext_text("base_url").as_deref().and_then(url_port));
    // `ports: ["8000"]` (or `"127.0.0.1::8000"`, or `{target: 8000}`): the
    // engine's port is published on a host port Docker picks at start.
    let assigned_port = match host_port {
        Some(_) => None,
        None if service.network_mode.is_none() => service
            .ports
            .iter()
            .find(|p| p.protocol == "tcp" && p.target == container_port && p.published.is_none())
            .map(|p| {
                host_ip = p.host_ip.clone();
                AssignedPort {
                    container_port,
                    host_ip: p.host_ip.clone(),
                }
            }),
        None => None,
    };
    let host_port = host_port.or(assigned_port.as_ref().map(|_| 0));
    let Some(host_port) = host_port else {
        let published_randomly = service
            .ports
            .iter()
            .any(|p| p.target == container_port && p.published.is_none());
        let hint = if published_randomly {
            format!(
                "port {container_port} has no host port; write \"{container_port}:{container_port}\""
            )
        } else {
            format!(
                "publish the engine's port (`ports: [\"{container_port}:{container_port}\"]`), use `network_mode: host`, or set `x-spark-perf: {{port: N}}`"
            )
        };
        p.error(
            ypath!["ports"],
            format!("inference service ({flavor}) has no port reachable from the host"),
        )
        .hint = Some(hint);
        return None;
    };

    let base_url = match ext_text("base_url") {
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                p.error(
                    ypath!["x-spark-perf", "base_url"],
                    format!("`{url}` is not an http:// URL"),
                );
            }
            url.trim_end_matches('/').to_owned()
        }
        None => {
            let host = match host_ip.as_deref() {
                None | Some("0.0.0.0" | "") => "127.0.0.1".to_owned(),
                Some("::") => "[::1]".to_owned(),
                Some(ip) if ip.contains(':') => format!("[{ip}]"),
                Some(ip) => ip.to_owned(),
            };
            format!("http://{host}:{host_port}")
        }
    };

    let health_path = ext_text("health_path").unwrap_or_else(|| flavor.health_path().to_owned());
    if !health_path.starts_with('/') {
        p.error(
            ypath!["x-spark-perf", "health_path"],
            format!("health path `{health_path}` must start with `/`"),
        );
    }

    let served_model = ext_text("model").or_else(|| {
        let named = flag_value(&words, &["--served-model-name"]);
        let by_flavor = match flavor {
            Flavor::LlamaCpp => flag_value(&words, &["--alias", "-a"])
                .or_else(|| flag_value(&words, &["--model", "-m"])),
            Flavor::Sglang => flag_value(&words, &["--model-path", "--model"]),
            Flavor::Vllm | Flavor::TensorRtLlm => {
                flag_value(&words, &["--model"]).or_else(|| positional_after_serve(&words))
            }
            Flavor::Tgi if sim => flag_value(&words, &["--model-id", "--model"]),
            Flavor::Tgi => flag_value(&words, &["--model-id"]).or_else(|| tgi_env("MODEL_ID")),
            Flavor::Ollama | Flavor::Other => flag_value(&words, &["--model"]),
        };
        let sim_default = sim.then(|| "spark-sim/sim-1".to_owned());
        named.or(by_flavor).or(sim_default)
    });

    let max_model_len = match ext.get("max_model_len") {
        None => None,
        Some(v) => match scalar_text(v).and_then(|t| t.parse::<u32>().ok()) {
            Some(n) => Some(n),
            None => {
                p.error(
                    ypath!["x-spark-perf", "max_model_len"],
                    "`max_model_len` must be a number of tokens",
                );
                None
            }
        },
    };

    let slo = match ext.get("slo") {
        None => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            p.error(
                ypath!["x-spark-perf", "slo"],
                "`slo` must be a string of objectives",
            )
            .hint = Some("e.g. `slo: \"ttft_p90=2s,tpot_p90=100ms\"`".to_owned());
            None
        }
    };

    Some(InferenceService {
        name: service.name.clone(),
        image: service.image.clone(),
        container_name: service.container_name.clone(),
        flavor,
        host_port,
        base_url,
        health_path,
        served_model,
        enabled: service.enabled,
        max_model_len,
        slo,
        assigned_port,
    })
}

/// The port of an `http://host:port/...` URL (80 or 443 when absent).
fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let port = authority
        .rsplit_once(':')
        .filter(|(_, p)| !p.contains(']'))
        .map(|(_, p)| p);
    match port {
        Some(port) => port.parse().ok(),
        None if scheme == "https" => Some(443),
        None => Some(80),
    }
}

/// Whether a `devices:` entry (`HOST[:CONTAINER[:PERMISSIONS]]`) hands the
/// container a GPU: an NVIDIA device node, or AMD's ROCm nodes (`/dev/kfd`,
/// the compute interface, and `/dev/dri` or one of its render nodes), as
/// the ROCm images' documented `docker run --device` flags do.
pub(crate) fn is_gpu_device(entry: &str) -> bool {
    let host = entry.split(':').next().unwrap_or_default();
    host.contains("nvidia")
        || host == "/dev/kfd"
        || host == "/dev/dri"
        || host.starts_with("/dev/dri/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_device_nodes() {
        for gpu in [
            "/dev/kfd",
            "/dev/dri",
            "/dev/dri/renderD128",
            "/dev/dri:/dev/dri:rwm",
            "/dev/nvidia0",
            "/dev/nvidiactl:/dev/nvidiactl",
        ] {
            assert!(is_gpu_device(gpu), "{gpu}");
        }
        for other in ["/dev/fuse", "/dev/drive", "/dev/kfdx", "/dev/snd:/dev/dri"] {
            assert!(!is_gpu_device(other), "{other}");
        }
    }
}
