//! `depends_on` on the daemon: before an engine starts, the services it
//! depends on that are not engines (a model downloader, a database, a
//! gateway) are started in dependency order, each waited for until it
//! reaches its condition (`service_started`, `service_healthy`,
//! `service_completed_successfully`), as `docker compose up ENGINE` does.
//! They are stopped with the engine (see `cleanup.rs`).
//!
//! Architecture Invariant: until the engine's [`RunningService`] owns them,
//! the dependencies this start created are owned by a [`StartedDependencies`]
//! whose `Drop` stops and removes them, and the second Ctrl-C's
//! [`Cleanup`] names them as soon as each is created; a dependency that was
//! already running is used as it is and left running. A required
//! dependency that fails its condition fails the engine's start with its
//! exit code and log tail; an optional one (`required: false`) is a warning.
//!
//! [`RunningService`]: crate::RunningService

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::InspectContainerOptions;

use crate::OrchestratorError;
use crate::cleanup::{Cleanup, Stoppable};
use crate::compose::{ComposeProject, Dependency, DependencyCondition};
use crate::container::Existing;
use crate::docker::{Docker, StartOptions, service_redactor};
use crate::running::log_tail;

/// How often a dependency's state is looked at while it is waited for.
const POLL: Duration = Duration::from_millis(250);

/// How long a dependency may take to reach its condition when the caller
/// sets no bound: a one-shot downloader fetches tens of GB.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The dependencies a start created, stopped on drop unless handed to the
/// engine's running service.
#[derive(Debug)]
pub(crate) struct StartedDependencies {
    current: Arc<Mutex<Option<Cleanup>>>,
    keep: bool,
    pub(crate) containers: Vec<Stoppable>,
    pub(crate) networks: Vec<String>,
    armed: bool,
}

impl StartedDependencies {
    /// Hands the containers and networks over (to the engine's running
    /// service); the guard then does nothing.
    pub(crate) fn disarm(mut self) -> (Vec<Stoppable>, Vec<String>) {
        self.armed = false;
        (
            std::mem::take(&mut self.containers),
            std::mem::take(&mut self.networks),
        )
    }

    fn plan(&self) -> Cleanup {
        Cleanup {
            keep: self.keep,
            engine: None,
            dependencies: self.containers.clone(),
            networks: self.networks.clone(),
        }
    }

    /// Tells the second Ctrl-C what exists so far.
    fn publish(&self) {
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(self.plan());
    }
}

impl Drop for StartedDependencies {
    fn drop(&mut self) {
        if !self.armed || (self.containers.is_empty() && self.networks.is_empty()) {
            return;
        }
        tracing::info!("stopping the dependencies of an engine that did not start");
        self.plan().run_blocking();
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }
}

impl Docker {
    /// Starts the non-inference dependencies of `engine`, in order, each
    /// waited for until its condition holds.
    pub(crate) async fn start_dependencies(
        &self,
        project: &ComposeProject,
        engine: &str,
        options: StartOptions,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<StartedDependencies, OrchestratorError> {
        let mut started = StartedDependencies {
            current: Arc::clone(&self.current),
            keep: options.keep,
            containers: Vec::new(),
            networks: Vec::new(),
            armed: true,
        };
        for dependency in project.dependencies(engine) {
            let result = self
                .start_one_dependency(project, engine, &dependency, options, &mut started, report)
                .await;
            match result {
                Ok(()) => {}
                Err(err) if !dependency.required => {
                    tracing::warn!(service = %engine, dependency = %dependency.service, error = %err, "an optional dependency failed; starting the engine anyway");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(started)
    }

    async fn start_one_dependency(
        &self,
        project: &ComposeProject,
        engine: &str,
        dependency: &Dependency,
        options: StartOptions,
        started: &mut StartedDependencies,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), OrchestratorError> {
        let name = &dependency.service;
        // `dependencies` names only services of the project.
        let Some(definition) = project.service(name) else {
            return Ok(());
        };
        tracing::info!(service = %engine, dependency = %name, condition = dependency.condition.id(), "starting a dependency");
        report(&format!(
            "starting dependency {name} (until {})",
            dependency.condition.id()
        ));
        let id = match self.replace_stopped(name, definition).await? {
            // Already up (`docker compose up -d db`): used, left running.
            Existing::Running(id) => id,
            Existing::Replaced => {
                let image = self.ensure_image(definition, options, report).await?;
                let networks = self.ensure_networks(project, definition).await?;
                started.networks.extend(networks);
                self.ensure_volumes(project, definition).await?;
                let (id, _) = self.create(project, definition, &image.id).await?;
                started.containers.push(Stoppable {
                    service: name.clone(),
                    container_id: id.clone(),
                    grace: definition.stop_grace_period(),
                });
                started.publish();
                self.connect_copy_start(project, definition, &id).await?;
                id
            }
        };
        let timeout = options.dependency_timeout.unwrap_or(DEFAULT_TIMEOUT);
        match self
            .wait_condition(&id, dependency.condition, timeout)
            .await
        {
            Ok(()) => {
                tracing::info!(service = %engine, dependency = %name, condition = dependency.condition.id(), "dependency ready");
                Ok(())
            }
            Err(failure) => Err(OrchestratorError::DependencyFailed {
                service: engine.to_owned(),
                dependency: name.clone(),
                container: definition.container_name.clone(),
                condition: dependency.condition.id(),
                reason: failure.reason,
                exit_code: failure.exit_code,
                log_tail: log_tail(&self.client, &id, &service_redactor(definition)).await,
            }),
        }
    }

    /// Polls the container until `condition` holds, it cannot any more, or
    /// `timeout` passes.
    async fn wait_condition(
        &self,
        id: &str,
        condition: DependencyCondition,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let inspect = self
                .client
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
                .map_err(|err| Failure::new(format!("cannot inspect it: {err}"), None))?;
            let state = inspect.state.unwrap_or_default();
            let exit_code = state.exit_code;
            let exited = matches!(
                state.status,
                Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
            );
            let health = state.health.and_then(|h| h.status);
            match condition {
                DependencyCondition::Started => return Ok(()),
                DependencyCondition::CompletedSuccessfully if exited => {
                    return match exit_code {
                        Some(0) => Ok(()),
                        code => Err(Failure::new(
                            format!("exited with code {}", code.unwrap_or(-1)),
                            code,
                        )),
                    };
                }
                DependencyCondition::Healthy if exited => {
                    return Err(Failure::new(
                        format!(
                            "exited with code {} before it became healthy",
                            exit_code.unwrap_or(-1)
                        ),
                        exit_code,
                    ));
                }
                DependencyCondition::Healthy => match health {
                    Some(HealthStatusEnum::HEALTHY) => return Ok(()),
                    Some(HealthStatusEnum::UNHEALTHY) => {
                        return Err(Failure::new(
                            "its healthcheck reports unhealthy".into(),
                            None,
                        ));
                    }
                    None | Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) => {
                        return Err(Failure::new(
                            "it has no healthcheck (add one, or use condition: service_started)"
                                .into(),
                            None,
                        ));
                    }
                    Some(HealthStatusEnum::STARTING) => {}
                },
                DependencyCondition::CompletedSuccessfully => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Failure::new(
                    format!("still not there after {}", humanize(timeout)),
                    None,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Why a dependency did not reach its condition.
struct Failure {
    reason: String,
    exit_code: Option<i64>,
}

impl Failure {
    fn new(reason: String, exit_code: Option<i64>) -> Failure {
        Failure { reason, exit_code }
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
