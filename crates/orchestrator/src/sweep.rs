//! What is in an engine's way, and putting it back: before a service
//! starts, [`Docker::stop_inference_containers`] stops the project's other
//! inference containers and any container (of any project) that publishes a
//! host port the service needs, and nothing else; at the end of the run
//! [`Docker::restore_displaced`] starts each of them again, so a nightly run
//! does not take down the service a team uses by day.
//!
//! A displaced container of the project whose name the benchmark's own
//! container needs (the user's `docker compose up` of the same service) is
//! renamed aside rather than removed, and gets its name back before it is
//! started again.

use std::time::Duration;

use bollard::query_parameters::RenameContainerOptionsBuilder;

use crate::OrchestratorError;
use crate::compose::{ComposeProject, InferenceService, Service};
use crate::docker::{
    Docker, LABEL_PROJECT, LABEL_SERVICE, container_display_name, is_not_found, stop_container,
};

/// How long a container that is not the project's gets to stop (SIGTERM,
/// then SIGKILL), as `docker stop` does.
const BYSTANDER_GRACE: Duration = Duration::from_secs(10);

/// A container that [`Docker::stop_inference_containers`] stopped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedContainer {
    /// Its name.
    pub container: String,
    /// Its ID.
    pub id: String,
    /// Its compose project, when it has one.
    pub project: Option<String>,
    /// Its compose service, when it has one.
    pub service: Option<String>,
    /// Why it was in the way.
    pub reason: String,
    /// The name it was set aside under, when the benchmark needed its name.
    pub renamed_to: Option<String>,
}

/// The end of a displaced container's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    pub container: StoppedContainer,
    /// Why it could not be started again; `None` when it runs.
    pub error: Option<String>,
}

fn lock(
    displaced: &std::sync::Mutex<Vec<StoppedContainer>>,
) -> std::sync::MutexGuard<'_, Vec<StoppedContainer>> {
    displaced
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Docker {
    /// Stops what is in the way of `next`: every running inference container
    /// of the project, and any running container that publishes a host port
    /// `next` needs. Returns what it stopped and why, so the caller can say
    /// so; each is remembered for [`Docker::restore_displaced`].
    pub async fn stop_inference_containers(
        &self,
        project: &ComposeProject,
        next: &InferenceService,
    ) -> Result<Vec<StoppedContainer>, OrchestratorError> {
        let mut stopped = Vec::new();
        let inference: Vec<&str> = project
            .services()
            .iter()
            .filter(|s| s.inference().is_some())
            .map(Service::name)
            .collect();
        let mut needed_ports: Vec<u16> = project
            .service(&next.name)
            .map(|s| s.ports.iter().filter_map(|p| p.published).collect())
            .unwrap_or_default();
        needed_ports.push(next.host_port);
        needed_ports.sort_unstable();
        needed_ports.dedup();

        for container in self.running_containers(project.name(), None).await? {
            let name = container_display_name(&container);
            let id = container.id.clone().unwrap_or_else(|| name.clone());
            let labels = container.labels.clone().unwrap_or_default();
            let their_project = labels.get(LABEL_PROJECT).cloned();
            let service = labels.get(LABEL_SERVICE).cloned();
            let ours = their_project.as_deref() == Some(project.name());
            let held_port = container
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.public_port)
                .find(|port| needed_ports.contains(port));
            let (reason, grace) = match (&service, held_port) {
                (Some(service), _) if ours && inference.contains(&service.as_str()) => (
                    format!("inference service {service} of project {}", project.name()),
                    project
                        .service(service)
                        .map_or(BYSTANDER_GRACE, Service::stop_grace_period),
                ),
                (_, Some(port)) => (
                    format!("holds host port {port}, which service {} needs", next.name),
                    BYSTANDER_GRACE,
                ),
                _ => continue,
            };
            stop_container(
                &self.client,
                &id,
                service.as_deref().unwrap_or(&name),
                grace,
            )
            .await?;
            tracing::info!(container = %name, reason = %reason, "stopped a container in the way; it is started again at the end of the run");
            let entry = StoppedContainer {
                container: name,
                id,
                project: their_project,
                service,
                reason,
                renamed_to: None,
            };
            lock(&self.displaced).push(entry.clone());
            stopped.push(entry);
        }
        Ok(stopped)
    }

    /// The containers stopped so far because they were in the way.
    pub fn displaced(&self) -> Vec<StoppedContainer> {
        lock(&self.displaced).clone()
    }

    /// Renames a displaced container aside when the benchmark needs its
    /// name; false when `id` is not one this handle displaced (or the
    /// rename failed), so the caller replaces it as `up` would.
    pub(crate) async fn set_aside(&self, id: &str) -> bool {
        let Some(idx) = lock(&self.displaced).iter().position(|d| d.id == id) else {
            return false;
        };
        let short: String = id.chars().take(12).collect();
        let aside = format!("spark-perf-displaced-{short}");
        let options = RenameContainerOptionsBuilder::new().name(&aside).build();
        match self.client.rename_container(id, options).await {
            Ok(()) => {
                let mut displaced = lock(&self.displaced);
                if let Some(entry) = displaced.get_mut(idx) {
                    tracing::info!(container = %entry.container, aside = %aside, "set a displaced container aside under another name");
                    entry.renamed_to = Some(aside);
                }
                true
            }
            Err(err) => {
                tracing::warn!(container = %id, error = %err, "cannot rename a displaced container aside");
                false
            }
        }
    }

    /// Starts every displaced container again, the last stopped first, and
    /// forgets them. Never fails as a whole: each outcome says whether that
    /// container runs again.
    pub async fn restore_displaced(&self) -> Vec<RestoreOutcome> {
        let displaced: Vec<StoppedContainer> = std::mem::take(&mut *lock(&self.displaced));
        let mut outcomes = Vec::new();
        for container in displaced.into_iter().rev() {
            let error = self.restore_one(&container).await.err();
            match &error {
                None => {
                    tracing::info!(container = %container.container, "started a displaced container again");
                }
                Some(error) => {
                    tracing::warn!(container = %container.container, error = %error, "cannot start a displaced container again");
                }
            }
            outcomes.push(RestoreOutcome { container, error });
        }
        outcomes.reverse();
        outcomes
    }

    async fn restore_one(&self, container: &StoppedContainer) -> Result<(), String> {
        if container.renamed_to.is_some() {
            let options = RenameContainerOptionsBuilder::new()
                .name(&container.container)
                .build();
            self.client
                .rename_container(&container.id, options)
                .await
                .map_err(|err| format!("cannot give it its name back: {err}"))?;
        }
        match self
            .client
            .start_container(
                &container.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            Ok(()) => Ok(()),
            // 304: it runs already (its restart policy, or someone else).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(err) if is_not_found(&err) => Err("the container no longer exists".to_owned()),
            Err(err) => Err(err.to_string()),
        }
    }
}
