//! The Docker lifecycle through bollard: create a service's container exactly
//! as compose would (name, labels, network, mounts, GPUs), start it, gate it
//! on health, stop and remove it.
//!
//! Architecture Invariant: a [`Docker`] handle holds at most one
//! [`RunningService`] at a time; [`Docker::start`] refuses a second one, and
//! also refuses while another inference container of the project runs on the
//! daemon. The slot is freed when the running service is stopped or dropped.
//!
//! Cleanup runs on every path: [`RunningService::stop`] on success and
//! failure, and its `Drop` when the future that owned it was cancelled
//! (Ctrl-C) or a panic unwound. `Drop` cannot `.await`, so it runs the stop on
//! a fresh thread with its own small runtime and its own daemon connection
//! (the caller's runtime may be shutting down), and joins it: dropping a
//! running service blocks for at most the stop grace period plus a few
//! seconds, and the container is gone when the drop returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use tokio::time::Instant;

use crate::OrchestratorError;
pub(crate) use crate::cleanup::{Cleanup, remove_container, stop_container, stop_timeout};
use crate::compose::{ComposeProject, InferenceService, Service};
use crate::container::Existing;
use crate::create_body::health_host_port;
use crate::mask;
use crate::model_files::ModelFiles;
pub(crate) use crate::redact::service_redactor;
pub(crate) use crate::running::RunningService;
use crate::sweep::StoppedContainer;

/// The compose version written in `com.docker.compose.version`: the labels
/// follow compose v2's scheme, and this is the release whose behaviour was
/// checked.
pub const COMPOSE_VERSION_LABEL: &str = "2.29.7";

pub(crate) const LABEL_PROJECT: &str = "com.docker.compose.project";
pub(crate) const LABEL_SERVICE: &str = "com.docker.compose.service";

/// The number of log lines kept in a failure.
pub(crate) const LOG_TAIL_LINES: usize = 50;

/// A connection to the Docker daemon that runs at most one inference
/// container at a time.
#[derive(Debug)]
pub struct Docker {
    pub(crate) client: bollard::Docker,
    /// The service whose container this handle runs, if any.
    pub(crate) active: Arc<Mutex<Option<String>>>,
    /// The containers this handle stopped because they were in the way, to
    /// be started again at the end of the run.
    pub(crate) displaced: Arc<Mutex<Vec<StoppedContainer>>>,
    /// How to clean up the container this handle runs, for a second Ctrl-C.
    pub(crate) current: Arc<Mutex<Option<Cleanup>>>,
}

/// How to start a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Pull the image when it is not present locally (`--pull`).
    pub pull: bool,
    /// Leave the stopped container in place instead of removing it (`--keep`).
    pub keep: bool,
    /// How long a dependency (`depends_on`) may take to reach its condition
    /// (30 minutes when unset: a one-shot downloader fetches the model).
    pub dependency_timeout: Option<Duration>,
    /// Build the images of services with `build:` even when present
    /// locally (`--build`); without it they are built only when missing.
    pub build: bool,
}

/// Where a result came from, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub service: String,
    pub container: String,
    /// The image reference as written in the compose file.
    pub image: String,
    /// The image ID (`sha256:...`).
    pub image_id: String,
    /// The image's repository digests (`repo@sha256:...`); empty for a local build.
    pub repo_digests: Vec<String>,
    /// The effective command: entrypoint then command.
    pub command: Vec<String>,
    /// The names of the container's environment variables; never values.
    pub env_names: Vec<String>,
    /// The `com.docker.compose.config-hash` label.
    pub config_hash: String,
}

pub(crate) fn is_not_found(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub(crate) fn is_conflict(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// The daemon address bollard will use, for error messages.
fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

pub(crate) async fn connect_client() -> Result<bollard::Docker, OrchestratorError> {
    let host = docker_host();
    let client = bollard::Docker::connect_with_defaults().map_err(|source| {
        OrchestratorError::ConnectDocker {
            host: host.clone(),
            source,
        }
    })?;
    // Ask the daemon which API version it speaks (Engine 20.10 speaks 1.41).
    let client =
        client
            .negotiate_version()
            .await
            .map_err(|source| OrchestratorError::ConnectDocker {
                host: host.clone(),
                source,
            })?;
    client
        .ping()
        .await
        .map_err(|source| OrchestratorError::ConnectDocker { host, source })?;
    Ok(client)
}

impl Docker {
    /// Connects with Docker's defaults (`DOCKER_HOST`, else the local socket)
    /// and negotiates the API version.
    pub async fn connect() -> Result<Docker, OrchestratorError> {
        Ok(Docker {
            client: connect_client().await?,
            active: Arc::new(Mutex::new(None)),
            displaced: Arc::new(Mutex::new(Vec::new())),
            current: Arc::new(Mutex::new(None)),
        })
    }

    /// The service this handle is running, if any.
    pub fn running_service(&self) -> Option<String> {
        self.active.lock().map(|slot| slot.clone()).unwrap_or(None)
    }

    pub(crate) async fn running_containers(
        &self,
        project: &str,
        label: Option<String>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, OrchestratorError> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        filters.insert("status".into(), vec!["running".into(), "restarting".into()]);
        if let Some(label) = label {
            filters.insert("label".into(), vec![label]);
        }
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.client
            .list_containers(Some(options))
            .await
            .map_err(|source| OrchestratorError::ListContainers {
                project: project.to_owned(),
                source,
            })
    }

    /// Creates and starts the container of `service`, as compose would.
    /// Refuses while this handle already runs a service or while another
    /// inference container of the project runs.
    pub async fn start(
        &self,
        project: &ComposeProject,
        service: &InferenceService,
        options: StartOptions,
    ) -> Result<RunningService, OrchestratorError> {
        self.start_reporting(project, service, options, |_| {})
            .await
    }

    /// [`Docker::start`], with each line of an image build's output or
    /// pull's progress (build-argument values redacted) given to `report`.
    pub async fn start_reporting(
        &self,
        project: &ComposeProject,
        service: &InferenceService,
        options: StartOptions,
        mut report: impl FnMut(&str) + Send,
    ) -> Result<RunningService, OrchestratorError> {
        let definition =
            project
                .service(&service.name)
                .ok_or_else(|| OrchestratorError::ServiceNotFound {
                    name: service.name.clone(),
                    suggestion: None,
                    available: project
                        .services()
                        .iter()
                        .map(|s| s.name().to_owned())
                        .collect(),
                })?;
        // Take the slot first: the invariant holds even if two tasks race.
        {
            let mut slot = self
                .active
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(running) = slot.as_ref() {
                return Err(OrchestratorError::AnotherServiceRunning {
                    running: running.clone(),
                    requested: service.name.clone(),
                });
            }
            *slot = Some(service.name.clone());
        }
        let slot = SlotGuard {
            active: Arc::clone(&self.active),
            armed: true,
        };
        let running = self
            .start_in_slot(project, definition, service, options, &mut report)
            .await?;
        slot.disarm();
        Ok(running)
    }

    /// After a cancelled [`Docker::start`] (Ctrl-C while the create call
    /// was in flight, before a [`RunningService`] owned the container),
    /// removes the service's container when it was created and never
    /// started, so nothing is left behind. Best effort.
    pub async fn remove_unstarted(&self, project: &ComposeProject, service: &InferenceService) {
        let Some(definition) = project.service(&service.name) else {
            return;
        };
        let name = &definition.container_name;
        let Ok(inspect) = self
            .client
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        else {
            return;
        };
        let created =
            inspect.state.and_then(|s| s.status) == Some(ContainerStateStatusEnum::CREATED);
        let ours = inspect
            .config
            .and_then(|c| c.labels)
            .is_some_and(|l| l.get(LABEL_PROJECT).map(String::as_str) == Some(project.name()));
        if created && ours {
            let _ = remove_container(&self.client, name, &service.name).await;
            tracing::info!(service = %service.name, "removed a container whose start was interrupted");
        }
    }

    async fn start_in_slot(
        &self,
        project: &ComposeProject,
        definition: &Service,
        service: &InferenceService,
        options: StartOptions,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<RunningService, OrchestratorError> {
        let name = &service.name;
        // Another inference container of the project running on the daemon
        // (started by hand, or by another process) breaks the invariant too.
        let running = self
            .running_containers(
                project.name(),
                Some(format!("{LABEL_PROJECT}={}", project.name())),
            )
            .await?;
        for container in &running {
            let other = container.labels.as_ref().and_then(|l| l.get(LABEL_SERVICE));
            if let Some(other) = other
                && project
                    .service(other)
                    .is_some_and(|s| s.inference().is_some())
            {
                return Err(OrchestratorError::AnotherServiceRunning {
                    running: other.clone(),
                    requested: name.clone(),
                });
            }
        }

        // A host port still held gives a clearer message here than Docker's
        // "address already in use" at start; one Docker assigns is free.
        let published = definition.ports.iter().filter_map(|p| p.published);
        let engine_port = service.host_port_known().then_some(service.host_port);
        for port in published.chain(engine_port) {
            if let Err(err) = std::net::TcpListener::bind(("0.0.0.0", port))
                && err.kind() == std::io::ErrorKind::AddrInUse
            {
                return Err(OrchestratorError::HostPortInUse {
                    service: name.clone(),
                    port,
                });
            }
        }

        let image = self.ensure_image(definition, options, report).await?;

        // What it depends on first, as `docker compose up NAME` does; owned
        // by the guard until the running service owns them.
        let dependencies = self
            .start_dependencies(project, name, options, report)
            .await?;

        if let Existing::Running(_) = self.replace_stopped(name, definition).await? {
            return Err(OrchestratorError::ContainerExists {
                service: name.clone(),
                container: definition.container_name.clone(),
            });
        }
        let created_networks = self.ensure_networks(project, definition).await?;
        self.ensure_volumes(project, definition).await?;

        let clock = Instant::now();
        let (container_id, create_time) = self.create(project, definition, &image.id).await?;

        let (host, port) = health_host_port(service);
        let (dependency_containers, mut networks) = dependencies.disarm();
        networks.extend(created_networks);
        // From here on the guard owns the container and its dependencies:
        // any failure below still stops and removes them.
        let mut running = RunningService {
            client: self.client.clone(),
            active: Arc::clone(&self.active),
            current: Arc::clone(&self.current),
            service: name.clone(),
            container_id: container_id.clone(),
            container_name: definition.container_name.clone(),
            keep: options.keep,
            stop_grace: definition.stop_grace_period(),
            created_networks: networks,
            dependencies: dependency_containers,
            health_host: host,
            health_port: port,
            health_path: service.health_path.clone(),
            health_url: service.health_url(),
            // The log tail hides the secrets of the environment and those
            // the command carries (an engine may print its arguments).
            redactor: service_redactor(definition),
            clock,
            create_time,
            start_time: Duration::ZERO,
            provenance: Provenance {
                service: name.clone(),
                container: definition.container_name.clone(),
                image: definition.image.clone(),
                image_id: image.id.clone(),
                repo_digests: image.repo_digests.clone(),
                command: Vec::new(),
                env_names: Vec::new(),
                config_hash: definition.config_hash.clone(),
            },
            model_files: ModelFiles::default(),
            done: false,
        };
        *running
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(running.cleanup_plan());

        self.connect_copy_start(project, definition, &container_id)
            .await?;
        running.start_time = clock.elapsed();

        // A host port Docker picked is known now.
        if let Some(assigned) = &service.assigned_port {
            let port = self
                .assigned_host_port(definition, &container_id, assigned)
                .await?;
            let service = service.clone().with_host_port(port);
            running.health_port = port;
            running.health_url = service.health_url();
            tracing::info!(service = %name, port, "Docker assigned the host port");
        }

        self.record_effective_command(definition, &mut running)
            .await;
        Ok(running)
    }

    /// The effective command and environment names, from the daemon.
    async fn record_effective_command(&self, definition: &Service, running: &mut RunningService) {
        let Ok(inspect) = self
            .client
            .inspect_container(&running.container_id, None::<InspectContainerOptions>)
            .await
        else {
            return;
        };
        let Some(config) = inspect.config else {
            return;
        };
        running.model_files = ModelFiles::from_inspect(
            config.entrypoint.as_deref().unwrap_or_default(),
            config.cmd.as_deref().unwrap_or_default(),
            inspect.mounts.as_deref().unwrap_or_default(),
        );
        // Interpolated by then: variables are shown as written, secret
        // flags' values and environment values masked.
        let env = config.env.unwrap_or_default();
        let entrypoint = config.entrypoint.unwrap_or_default();
        let cmd = config.cmd.unwrap_or_default();
        let masked = mask::command(
            &[
                mask::Part {
                    actual: &entrypoint,
                    interpolated: definition.entrypoint.as_deref(),
                    raw: definition.raw_entrypoint.as_deref(),
                },
                mask::Part {
                    actual: &cmd,
                    interpolated: definition.command.as_deref(),
                    raw: definition.raw_command.as_deref(),
                },
            ],
            &env,
        );
        running.provenance.command = masked.command;
        running.redactor = running.redactor.clone().with(&masked.secrets);
        let mut names: Vec<String> = env
            .iter()
            .map(|kv| kv.split('=').next().unwrap_or_default().to_owned())
            .collect();
        names.sort();
        names.dedup();
        running.provenance.env_names = names;
    }
}

/// Frees the slot when a start fails before a [`RunningService`] exists.
struct SlotGuard {
    active: Arc<Mutex<Option<String>>>,
    armed: bool,
}

impl SlotGuard {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if self.armed {
            let mut slot = self
                .active
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *slot = None;
        }
    }
}

pub(crate) fn container_display_name(container: &bollard::models::ContainerSummary) -> String {
    container
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .or_else(|| container.id.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::LoadOptions;
    use crate::create_body::container_body;

    fn dgx_project() -> ComposeProject {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compose/dgx-spark.yml");
        ComposeProject::load(&LoadOptions {
            files: vec![file],
            project_name: Some("dgx".into()),
            environment: [("HF_TOKEN".to_owned(), "hf_value".to_owned())].into(),
            ..LoadOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn the_create_body_carries_gpus_ulimits_ipc_mounts_ports_and_labels() {
        let project = dgx_project();
        let service = project.service("vllm-qwen3-30b-a3b-fp8").unwrap();
        let body = container_body(&project, service, "sha256:abc");
        let host = body.host_config.clone().unwrap();
        let gpu = &host.device_requests.clone().unwrap()[0];
        assert_eq!(
            (gpu.driver.as_deref(), gpu.count),
            (Some("nvidia"), Some(-1))
        );
        assert_eq!(gpu.capabilities, Some(vec![vec!["gpu".to_owned()]]));
        assert_eq!(host.ipc_mode.as_deref(), Some("host"));
        let ulimits: Vec<(String, i64, i64)> = host
            .ulimits
            .unwrap()
            .into_iter()
            .map(|u| (u.name.unwrap(), u.soft.unwrap(), u.hard.unwrap()))
            .collect();
        assert_eq!(
            ulimits,
            [
                ("memlock".into(), -1, -1),
                ("stack".into(), 67_108_864, 67_108_864)
            ]
        );
        assert_eq!(
            host.binds,
            Some(vec!["/opt/hf:/root/.cache/huggingface:rw".to_owned()])
        );
        assert_eq!(host.network_mode.as_deref(), Some("dgx_default"));
        let binding = &host.port_bindings.unwrap()["8000/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_port.as_deref(), Some("8000"));
        assert_eq!(body.exposed_ports, Some(vec!["8000/tcp".to_owned()]));
        assert_eq!(body.stop_timeout, Some(30));
        assert_eq!(
            body.cmd.as_ref().unwrap()[..3],
            ["vllm", "serve", "Qwen/Qwen3-30B-A3B-Instruct-2507-FP8"]
        );
        let env = body.env.unwrap();
        assert!(env.contains(&"HF_TOKEN=hf_value".to_owned()), "{env:?}");
        let labels = body.labels.unwrap();
        assert_eq!(labels["com.docker.compose.project"], "dgx");
        assert_eq!(
            labels["com.docker.compose.service"],
            "vllm-qwen3-30b-a3b-fp8"
        );
        assert_eq!(labels["com.docker.compose.image"], "sha256:abc");
        let aliases = body.networking_config.unwrap().endpoints_config.unwrap()["dgx_default"]
            .aliases
            .clone();
        assert_eq!(aliases, Some(vec!["vllm-qwen3-30b-a3b-fp8".to_owned()]));
    }
}
