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
use bollard::models::{
    ContainerStateStatusEnum, NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::OrchestratorError;
use crate::compose::{ComposeProject, InferenceService, MountSpec, Service};
pub(crate) use crate::create_body::container_body;
use crate::create_body::{endpoint, health_host_port};
use crate::health::{
    self, ContainerState, GateFailure, GateTarget, HealthOptions, ProbeAnswer, StartupCost,
};
use crate::mask;
use crate::redact::Redactor;
use crate::sweep::StoppedContainer;

/// The compose version written in `com.docker.compose.version`: the labels
/// follow compose v2's scheme, and this is the release whose behaviour was
/// checked.
pub const COMPOSE_VERSION_LABEL: &str = "2.29.7";

pub(crate) const LABEL_PROJECT: &str = "com.docker.compose.project";
pub(crate) const LABEL_SERVICE: &str = "com.docker.compose.service";

/// The number of log lines kept in a failure.
const LOG_TAIL_LINES: usize = 50;

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

/// What it takes to stop and remove a started container, without the
/// [`RunningService`] that owns it.
#[derive(Debug, Clone)]
pub(crate) struct Cleanup {
    pub(crate) service: String,
    pub(crate) container_id: String,
    pub(crate) grace: Duration,
    pub(crate) keep: bool,
    pub(crate) networks: Vec<String>,
}

/// How to start a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Pull the image when it is not present locally (`--pull`).
    pub pull: bool,
    /// Leave the stopped container in place instead of removing it (`--keep`).
    pub keep: bool,
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

fn is_conflict(err: &BollardError) -> bool {
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
            .start_in_slot(project, definition, service, options)
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
        // "address already in use" at start.
        let published = definition.ports.iter().filter_map(|p| p.published);
        for port in published.chain([service.host_port]) {
            if let Err(err) = std::net::TcpListener::bind(("0.0.0.0", port))
                && err.kind() == std::io::ErrorKind::AddrInUse
            {
                return Err(OrchestratorError::HostPortInUse {
                    service: name.clone(),
                    port,
                });
            }
        }

        let image = self
            .ensure_image(name, &definition.image, options.pull)
            .await?;

        // An old, stopped container of the same name is replaced, as `up` does.
        match self
            .client
            .inspect_container(&definition.container_name, None::<InspectContainerOptions>)
            .await
        {
            Ok(existing) => {
                if existing.state.as_ref().and_then(|s| s.running) == Some(true) {
                    return Err(OrchestratorError::ContainerExists {
                        service: name.clone(),
                        container: definition.container_name.clone(),
                    });
                }
                // One that was running before the run is the user's: it is
                // set aside under another name and restored at the end.
                if !self
                    .set_aside(existing.id.as_deref().unwrap_or_default())
                    .await
                {
                    let remove = RemoveContainerOptionsBuilder::new().force(true).build();
                    self.client
                        .remove_container(&definition.container_name, Some(remove))
                        .await
                        .map_err(|source| OrchestratorError::RemoveContainer {
                            service: name.clone(),
                            container: definition.container_name.clone(),
                            source,
                        })?;
                }
            }
            Err(err) if is_not_found(&err) => {}
            Err(source) => {
                return Err(OrchestratorError::InspectContainer {
                    service: name.clone(),
                    container: definition.container_name.clone(),
                    source,
                });
            }
        }

        let created_networks = self.ensure_networks(project, definition).await?;
        self.ensure_volumes(project, definition).await?;

        let body = container_body(project, definition, &image.id);
        let clock = Instant::now();
        let create = CreateContainerOptionsBuilder::new()
            .name(&definition.container_name)
            .build();
        let created = self
            .client
            .create_container(Some(create), body)
            .await
            .map_err(|source| OrchestratorError::CreateContainer {
                service: name.clone(),
                container: definition.container_name.clone(),
                image: definition.image.clone(),
                source,
            })?;
        let create_time = clock.elapsed();
        tracing::info!(service = %name, container = %definition.container_name, "created container");

        let (host, port) = health_host_port(service);
        // From here on the guard owns the container: any failure below still
        // stops and removes it.
        let mut running = RunningService {
            client: self.client.clone(),
            active: Arc::clone(&self.active),
            current: Arc::clone(&self.current),
            service: name.clone(),
            container_id: created.id.clone(),
            container_name: definition.container_name.clone(),
            keep: options.keep,
            stop_grace: definition.stop_grace_period(),
            created_networks,
            health_host: host,
            health_port: port,
            health_path: service.health_path.clone(),
            health_url: service.health_url(),
            // The log tail hides the secrets of the environment and those
            // the command carries (an engine may print its arguments).
            redactor: Redactor::for_environment(&definition.environment)
                .with(&command_secrets(definition)),
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
            done: false,
        };

        *running
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Cleanup {
            service: name.clone(),
            container_id: created.id.clone(),
            grace: running.stop_grace,
            keep: options.keep,
            networks: running.created_networks.clone(),
        });

        // Networks beyond the first are connected before the start.
        for (key, aliases) in definition.networks.iter().skip(1) {
            let Some(network) = project.networks.get(key) else {
                continue;
            };
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(endpoint(definition, aliases)),
            };
            if let Err(source) = self
                .client
                .connect_network(&network.docker_name, request)
                .await
            {
                return Err(OrchestratorError::CreateNetwork {
                    service: name.clone(),
                    network: network.docker_name.clone(),
                    source,
                });
            }
        }

        self.client
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|source| OrchestratorError::StartContainer {
                service: name.clone(),
                container: definition.container_name.clone(),
                source,
            })?;
        running.start_time = clock.elapsed();
        tracing::info!(service = %name, container = %definition.container_name, "started container");

        // The effective command and environment names, from the daemon.
        if let Ok(inspect) = self
            .client
            .inspect_container(&created.id, None::<InspectContainerOptions>)
            .await
            && let Some(config) = inspect.config
        {
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
        Ok(running)
    }

    async fn ensure_image(
        &self,
        service: &str,
        image: &str,
        pull: bool,
    ) -> Result<ImageFacts, OrchestratorError> {
        match self.client.inspect_image(image).await {
            Ok(inspect) => return Ok(ImageFacts::from(inspect)),
            Err(err) if is_not_found(&err) => {}
            Err(source) => {
                return Err(OrchestratorError::InspectImage {
                    service: service.to_owned(),
                    image: image.to_owned(),
                    source,
                });
            }
        }
        if !pull {
            return Err(OrchestratorError::ImageMissing {
                service: service.to_owned(),
                image: image.to_owned(),
            });
        }
        // Without a tag, the API pulls every tag of the repository.
        let (from_image, tag) = split_image_tag(image);
        let create = CreateImageOptionsBuilder::new()
            .from_image(&from_image)
            .tag(&tag)
            .build();
        let mut progress = self.client.create_image(Some(create), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|source| OrchestratorError::PullImage {
                service: service.to_owned(),
                image: image.to_owned(),
                source,
            })?;
        }
        let inspect = self.client.inspect_image(image).await.map_err(|source| {
            OrchestratorError::InspectImage {
                service: service.to_owned(),
                image: image.to_owned(),
                source,
            }
        })?;
        Ok(ImageFacts::from(inspect))
    }

    /// Creates the service's project networks that are missing; returns the
    /// names of those it created.
    async fn ensure_networks(
        &self,
        project: &ComposeProject,
        service: &Service,
    ) -> Result<Vec<String>, OrchestratorError> {
        let mut created = Vec::new();
        for (key, _) in &service.networks {
            let Some(network) = project.networks.get(key) else {
                continue;
            };
            match self
                .client
                .inspect_network(
                    &network.docker_name,
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                )
                .await
            {
                Ok(_) => continue,
                Err(err) if is_not_found(&err) => {}
                Err(source) => {
                    return Err(OrchestratorError::CreateNetwork {
                        service: service.name.clone(),
                        network: network.docker_name.clone(),
                        source,
                    });
                }
            }
            if network.external {
                return Err(OrchestratorError::ExternalMissing {
                    service: service.name.clone(),
                    kind: "network",
                    name: network.docker_name.clone(),
                });
            }
            let labels = HashMap::from([
                ("com.docker.compose.network".to_owned(), network.key.clone()),
                (LABEL_PROJECT.to_owned(), project.name().to_owned()),
                (
                    "com.docker.compose.version".to_owned(),
                    COMPOSE_VERSION_LABEL.to_owned(),
                ),
            ]);
            let request = NetworkCreateRequest {
                name: network.docker_name.clone(),
                driver: Some(network.driver.clone().unwrap_or_else(|| "bridge".into())),
                labels: Some(labels),
                ..Default::default()
            };
            match self.client.create_network(request).await {
                Ok(_) => created.push(network.docker_name.clone()),
                // Created meanwhile by someone else: fine.
                Err(err) if is_conflict(&err) => {}
                Err(source) => {
                    return Err(OrchestratorError::CreateNetwork {
                        service: service.name.clone(),
                        network: network.docker_name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(created)
    }

    async fn ensure_volumes(
        &self,
        project: &ComposeProject,
        service: &Service,
    ) -> Result<(), OrchestratorError> {
        for mount in &service.mounts {
            let MountSpec::Volume { key, .. } = mount else {
                continue;
            };
            let Some(volume) = project.volumes.get(key) else {
                continue;
            };
            match self.client.inspect_volume(&volume.docker_name).await {
                Ok(_) => continue,
                Err(err) if is_not_found(&err) => {}
                Err(source) => {
                    return Err(OrchestratorError::CreateVolume {
                        service: service.name.clone(),
                        volume: volume.docker_name.clone(),
                        source,
                    });
                }
            }
            if volume.external {
                return Err(OrchestratorError::ExternalMissing {
                    service: service.name.clone(),
                    kind: "volume",
                    name: volume.docker_name.clone(),
                });
            }
            let request = VolumeCreateRequest {
                name: Some(volume.docker_name.clone()),
                driver: volume.driver.clone(),
                labels: Some(HashMap::from([
                    ("com.docker.compose.volume".to_owned(), volume.key.clone()),
                    (LABEL_PROJECT.to_owned(), project.name().to_owned()),
                    (
                        "com.docker.compose.version".to_owned(),
                        COMPOSE_VERSION_LABEL.to_owned(),
                    ),
                ])),
                ..Default::default()
            };
            self.client.create_volume(request).await.map_err(|source| {
                OrchestratorError::CreateVolume {
                    service: service.name.clone(),
                    volume: volume.docker_name.clone(),
                    source,
                }
            })?;
        }
        Ok(())
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

#[derive(Debug)]
struct ImageFacts {
    id: String,
    repo_digests: Vec<String>,
}

impl From<bollard::models::ImageInspect> for ImageFacts {
    fn from(inspect: bollard::models::ImageInspect) -> Self {
        ImageFacts {
            id: inspect.id.unwrap_or_default(),
            repo_digests: inspect.repo_digests.unwrap_or_default(),
        }
    }
}

fn split_image_tag(image: &str) -> (String, String) {
    crate::image_ref::ImageRef::parse(image).pull_args(image)
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

/// The secrets the service's command carries, from the compose model.
fn command_secrets(definition: &Service) -> Vec<String> {
    let env: Vec<String> = definition
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let parts: Vec<mask::Part<'_>> = [
        (&definition.entrypoint, &definition.raw_entrypoint),
        (&definition.command, &definition.raw_command),
    ]
    .into_iter()
    .filter_map(|(actual, raw)| {
        let actual = actual.as_deref()?;
        Some(mask::Part {
            actual,
            interpolated: Some(actual),
            raw: raw.as_deref(),
        })
    })
    .collect();
    mask::command(&parts, &env).secrets
}

/// What a stop call may take beyond the grace period: the SIGKILL and the
/// daemon's bookkeeping.
const STOP_MARGIN: Duration = Duration::from_secs(15);

/// The HTTP timeout of a stop call: the grace period plus a margin.
pub(crate) fn stop_timeout(grace: Duration) -> Duration {
    grace.saturating_add(STOP_MARGIN)
}

/// Stops (SIGTERM, then SIGKILL after `grace`) a container.
pub(crate) async fn stop_container(
    client: &bollard::Docker,
    id: &str,
    service: &str,
    grace: Duration,
) -> Result<(), OrchestratorError> {
    let seconds =
        i32::try_from(grace.as_secs().max(u64::from(grace.subsec_nanos() > 0))).unwrap_or(i32::MAX);
    let options = StopContainerOptionsBuilder::new().t(seconds).build();
    // The daemon answers when the container is gone, up to `grace` later;
    // bollard's default 120 s HTTP timeout would abort a longer stop (and
    // skip the removal after it).
    let client = client.clone().with_timeout(stop_timeout(grace));
    match client.stop_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        // 304: already stopped; 404: already gone.
        Err(BollardError::DockerResponseServerError {
            status_code: 304 | 404,
            ..
        }) => Ok(()),
        Err(source) => Err(OrchestratorError::StopContainer {
            service: service.to_owned(),
            container: id.to_owned(),
            source,
        }),
    }
}

async fn remove_container(
    client: &bollard::Docker,
    id: &str,
    service: &str,
) -> Result<(), OrchestratorError> {
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    match client.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(err) if is_not_found(&err) => Ok(()),
        // 409: removal already in progress.
        Err(err) if is_conflict(&err) => Ok(()),
        Err(source) => Err(OrchestratorError::RemoveContainer {
            service: service.to_owned(),
            container: id.to_owned(),
            source,
        }),
    }
}

/// A started inference container. Stop it with [`RunningService::stop`];
/// dropping it stops (and, unless `keep`, removes) it as well.
#[derive(Debug)]
pub struct RunningService {
    client: bollard::Docker,
    active: Arc<Mutex<Option<String>>>,
    current: Arc<Mutex<Option<Cleanup>>>,
    service: String,
    container_id: String,
    container_name: String,
    keep: bool,
    stop_grace: Duration,
    created_networks: Vec<String>,
    health_host: String,
    health_port: u16,
    health_path: String,
    health_url: String,
    redactor: Redactor,
    clock: Instant,
    create_time: Duration,
    start_time: Duration,
    provenance: Provenance,
    /// Set once stopped: the drop guard then has nothing to do.
    done: bool,
}

struct Watched<'a> {
    running: &'a RunningService,
}

impl GateTarget for Watched<'_> {
    async fn watch(&self) -> Result<ContainerState, OrchestratorError> {
        let r = self.running;
        let inspect = match r
            .client
            .inspect_container(&r.container_id, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => inspect,
            Err(err) if is_not_found(&err) => return Ok(ContainerState::Removed),
            Err(source) => {
                return Err(OrchestratorError::InspectContainer {
                    service: r.service.clone(),
                    container: r.container_name.clone(),
                    source,
                });
            }
        };
        let restart_count = inspect.restart_count.unwrap_or(0);
        let state = inspect.state.unwrap_or_default();
        let exit_code = state.exit_code.unwrap_or(-1);
        Ok(match state.status {
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
                ContainerState::Exited { exit_code }
            }
            Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting {
                restart_count,
                exit_code,
            },
            Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removed,
            _ => ContainerState::Running { restart_count },
        })
    }

    async fn probe(&self) -> ProbeAnswer {
        let r = self.running;
        health::http_get_status(&r.health_host, r.health_port, &r.health_path).await
    }

    async fn last_line(&self) -> Option<String> {
        self.running.last_log_line().await
    }
}

impl RunningService {
    /// The compose service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The container's name.
    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    /// The container's ID.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// Image, command, environment names and config hash of the container.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Waits until the health path answers 200. Fails within about a
    /// `watch_interval` (plus one probe timeout) when the container exits,
    /// restarts or is removed, with the exit code and the last 50 log lines
    /// (secrets redacted); fails after `options.timeout` otherwise.
    pub async fn wait_healthy(
        &self,
        options: &HealthOptions,
    ) -> Result<StartupCost, OrchestratorError> {
        let gate_started = self.clock.elapsed();
        let outcome = health::gate(&Watched { running: self }, options).await;
        self.gate_outcome(gate_started, outcome).await
    }

    /// [`RunningService::wait_healthy`], handing the container's last log
    /// line (secrets redacted) to `on_line` about once a second, for a
    /// progress display. The line is read beside the gate, never inside it,
    /// so reading it delays neither the crash watch nor the startup times.
    pub async fn wait_healthy_reporting(
        &self,
        options: &HealthOptions,
        on_line: impl FnMut(String),
    ) -> Result<StartupCost, OrchestratorError> {
        let gate_started = self.clock.elapsed();
        let outcome = health::gate_reporting(&Watched { running: self }, options, on_line).await;
        self.gate_outcome(gate_started, outcome).await
    }

    async fn gate_outcome(
        &self,
        gate_started: Duration,
        outcome: health::GateOutcome,
    ) -> Result<StartupCost, OrchestratorError> {
        match outcome? {
            Ok(times) => {
                let cost = StartupCost {
                    create: self.create_time,
                    start: self.start_time,
                    port_open: gate_started + times.port_open,
                    healthy: gate_started + times.healthy,
                };
                tracing::info!(service = %self.service, healthy_after = ?cost.healthy, "service is healthy");
                Ok(cost)
            }
            Err(failure) => {
                let log_tail = self.log_tail().await;
                Err(match failure {
                    GateFailure::Exited { exit_code } => OrchestratorError::ExitedBeforeHealthy {
                        service: self.service.clone(),
                        container: self.container_name.clone(),
                        exit_code,
                        log_tail,
                    },
                    GateFailure::Restarted {
                        restart_count,
                        exit_code,
                    } => OrchestratorError::RestartedBeforeHealthy {
                        service: self.service.clone(),
                        container: self.container_name.clone(),
                        restart_count,
                        exit_code,
                        log_tail,
                    },
                    GateFailure::Removed => OrchestratorError::RemovedBeforeHealthy {
                        service: self.service.clone(),
                        container: self.container_name.clone(),
                    },
                    GateFailure::Timeout { elapsed, last } => OrchestratorError::HealthTimeout {
                        service: self.service.clone(),
                        url: self.health_url.clone(),
                        elapsed,
                        last,
                        log_tail,
                    },
                })
            }
        }
    }

    /// The container's last line of output, secrets redacted, for a progress
    /// display while it loads. Best effort and bounded: `None` on any error.
    pub async fn last_log_line(&self) -> Option<String> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail("1")
            .build();
        let mut stream = self.client.logs(&self.container_id, Some(options));
        let chunk = tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .ok()??
            .ok()?;
        let text = String::from_utf8_lossy(&chunk.into_bytes()).into_owned();
        let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
        Some(self.redactor.redact(line.trim()))
    }

    /// The last 50 lines of the container's output, secrets redacted.
    /// Best effort: an error reading logs gives an empty tail.
    pub async fn log_tail(&self) -> Vec<String> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&LOG_TAIL_LINES.to_string())
            .build();
        let mut stream = self.client.logs(&self.container_id, Some(options));
        let mut text = String::new();
        let read = async {
            while let Some(Ok(chunk)) = stream.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        };
        // Bounded: a wedged daemon must not hang the error path.
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        let lines: Vec<&str> = text.lines().collect();
        let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[skip..]
            .iter()
            .map(|l| self.redactor.redact(l))
            .collect()
    }

    /// Stops the container gracefully (SIGTERM, SIGKILL after the service's
    /// `stop_grace_period`), then removes it unless `keep`, and removes the
    /// networks this start created when nothing else uses them.
    pub async fn stop(mut self) -> Result<Provenance, OrchestratorError> {
        self.done = true;
        let result = cleanup(
            &self.client,
            &self.service,
            &self.container_id,
            self.stop_grace,
            self.keep,
            &self.created_networks,
        )
        .await;
        free_slot(&self.active);
        take_current(&self.current);
        result.map(|()| self.provenance.clone())
    }
}

fn take_current(current: &Mutex<Option<Cleanup>>) {
    current
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
}

fn free_slot(active: &Mutex<Option<String>>) {
    let mut slot = active
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = None;
}

pub(crate) async fn cleanup(
    client: &bollard::Docker,
    service: &str,
    container_id: &str,
    grace: Duration,
    keep: bool,
    networks: &[String],
) -> Result<(), OrchestratorError> {
    let stopped = stop_container(client, container_id, service, grace).await;
    if let Err(err) = &stopped {
        // A failed or timed-out stop still ends with the container gone:
        // killed, and removed unless `keep`.
        tracing::warn!(service = %service, error = %err, "stop failed; killing the container");
        if keep {
            let _ = client
                .kill_container(
                    container_id,
                    None::<bollard::query_parameters::KillContainerOptions>,
                )
                .await;
        }
    }
    if keep {
        return stopped;
    }
    // A forced removal kills the container first if it still runs.
    remove_container(client, container_id, service).await?;
    stopped?;
    for network in networks {
        // Fails while other containers use it; that is fine, compose's
        // `down` removes it later.
        let _ = client.remove_network(network).await;
    }
    tracing::info!(service = %service, "stopped and removed container");
    Ok(())
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let service = self.service.clone();
        let container_id = self.container_id.clone();
        let grace = self.stop_grace;
        let keep = self.keep;
        let networks = self.created_networks.clone();
        tracing::warn!(service = %service, "cleaning up container after an interrupted run");
        let cleanup_thread = std::thread::Builder::new()
            .name("spark-perf-cleanup".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let Ok(runtime) = runtime else { return };
                runtime.block_on(async {
                    let Ok(client) = connect_client().await else {
                        return;
                    };
                    if let Err(err) =
                        cleanup(&client, &service, &container_id, grace, keep, &networks).await
                    {
                        tracing::error!(service = %service, error = %err, "cleanup failed");
                    }
                });
            });
        if let Ok(handle) = cleanup_thread {
            let _ = handle.join();
        }
        free_slot(&self.active);
        take_current(&self.current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::LoadOptions;

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

    #[test]
    fn the_compose_model_keeps_the_command_as_written_for_masking() {
        let dir = std::env::temp_dir().join(format!("spark-mask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".env"), "VLLM_API_KEY=sk-from-dotenv-1\n").unwrap();
        std::fs::write(
            dir.join("docker-compose.yml"),
            "services:\n  vllm:\n    image: vllm/vllm-openai:v0.11.0\n    command: vllm serve ${MODEL:-m} --api-key ${VLLM_API_KEY} --hf-token hf_literal_1234\n    ports: [\"8000:8000\"]\n",
        )
        .unwrap();
        let project = ComposeProject::load(&LoadOptions {
            files: vec![dir.join("docker-compose.yml")],
            project_name: Some("mask".into()),
            ..LoadOptions::default()
        })
        .unwrap();
        let service = project.service("vllm").unwrap();
        assert_eq!(
            service.raw_command.as_deref().unwrap().join(" "),
            "vllm serve ${MODEL:-m} --api-key ${VLLM_API_KEY} --hf-token hf_literal_1234"
        );
        assert_eq!(
            command_secrets(service),
            ["hf_literal_1234", "sk-from-dotenv-1"]
        );
        let cmd = service.command.clone().unwrap();
        let masked = mask::command(
            &[mask::Part {
                actual: &cmd,
                interpolated: service.command.as_deref(),
                raw: service.raw_command.as_deref(),
            }],
            &[],
        );
        assert_eq!(
            masked.command.join(" "),
            "vllm serve ${MODEL:-m} --api-key ${VLLM_API_KEY} --hf-token [REDACTED]"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_stop_call_may_take_the_grace_period_plus_a_margin() {
        // bollard's default HTTP timeout (120 s) aborted a 300 s stop and
        // skipped the removal after it.
        assert_eq!(
            stop_timeout(Duration::from_secs(300)),
            Duration::from_secs(315)
        );
        assert_eq!(stop_timeout(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn image_tags() {
        assert_eq!(
            split_image_tag("nvcr.io/nvidia/vllm:25.09-py3"),
            ("nvcr.io/nvidia/vllm".into(), "25.09-py3".into())
        );
        assert_eq!(
            split_image_tag("localhost:5000/x"),
            ("localhost:5000/x".into(), "latest".into())
        );
        assert_eq!(
            split_image_tag("x@sha256:1"),
            ("x@sha256:1".into(), String::new())
        );
        assert_eq!(
            split_image_tag("localhost:5000/x:tag"),
            ("localhost:5000/x".into(), "tag".into())
        );
    }
}
