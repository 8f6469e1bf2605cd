//! A started service: its watch (the container dying while it is gated or
//! measured), its logs, its stop and the `Drop` that stops it on every
//! other path (Ctrl-C, a panic), together with the dependencies started for
//! it (`cleanup.rs` stops them).
//!
//! Architecture Invariant: the slot of the [`Docker`](crate::Docker) handle
//! is freed when the running service is stopped or dropped, and the
//! container is gone when `Drop` returns (see the module comment of
//! `docker.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{InspectContainerOptions, LogsOptionsBuilder};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::OrchestratorError;
use crate::cleanup::{Cleanup, Stoppable};
use crate::docker::{LOG_TAIL_LINES, Provenance, is_not_found};
use crate::health::{
    self, ContainerState, GateFailure, GateTarget, HealthOptions, ProbeAnswer, StartupCost,
};
use crate::model_files::ModelFiles;
use crate::redact::Redactor;
use crate::stats::StatsReader;

/// A started inference container. Stop it with [`RunningService::stop`];
/// dropping it stops (and, unless `keep`, removes) it as well.
#[derive(Debug)]
pub struct RunningService {
    pub(crate) client: bollard::Docker,
    pub(crate) active: Arc<Mutex<Option<String>>>,
    pub(crate) current: Arc<Mutex<Option<Cleanup>>>,
    pub(crate) service: String,
    pub(crate) container_id: String,
    pub(crate) container_name: String,
    pub(crate) keep: bool,
    pub(crate) stop_grace: Duration,
    pub(crate) created_networks: Vec<String>,
    /// The dependencies started for it (`depends_on`), in start order.
    pub(crate) dependencies: Vec<Stoppable>,
    pub(crate) health_host: String,
    pub(crate) health_port: u16,
    pub(crate) health_path: String,
    pub(crate) health_url: String,
    pub(crate) redactor: Redactor,
    pub(crate) clock: Instant,
    pub(crate) create_time: Duration,
    pub(crate) start_time: Duration,
    pub(crate) provenance: Provenance,
    /// What the container runs and mounts, for finding its model's files.
    pub(crate) model_files: ModelFiles,
    /// Set once stopped: the drop guard then has nothing to do.
    pub(crate) done: bool,
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

    /// The host port the engine answers on: the published one, or the one
    /// Docker assigned (`ports: ["8000"]`), read back after the start.
    pub fn host_port(&self) -> u16 {
        self.health_port
    }

    /// The names of the dependencies started for it, in start order.
    pub fn dependencies(&self) -> Vec<&str> {
        self.dependencies
            .iter()
            .map(|d| d.service.as_str())
            .collect()
    }

    /// Image, command, environment names and config hash of the container.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The container's effective command and mounts, as the daemon reports
    /// them (empty when the inspect after the start failed).
    pub fn model_files(&self) -> &ModelFiles {
        &self.model_files
    }

    /// A reader of the container's memory and CPU (Docker's stats API),
    /// for telemetry; it holds its own handle of the client.
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader {
            client: self.client.clone(),
            service: self.service.clone(),
            container: self.container_id.clone(),
            stream: None,
            previous: None,
        }
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
        log_tail(&self.client, &self.container_id, &self.redactor).await
    }

    /// Stops the container gracefully (SIGTERM, SIGKILL after the service's
    /// `stop_grace_period`), then removes it unless `keep`, then its
    /// dependencies, and removes the networks this start created when
    /// nothing else uses them.
    pub async fn stop(mut self) -> Result<Provenance, OrchestratorError> {
        self.done = true;
        let result = self.cleanup_plan().run(&self.client).await;
        free_slot(&self.active);
        take_current(&self.current);
        result.map(|()| self.provenance.clone())
    }

    pub(crate) fn cleanup_plan(&self) -> Cleanup {
        Cleanup {
            keep: self.keep,
            engine: Some(Stoppable {
                service: self.service.clone(),
                container_id: self.container_id.clone(),
                grace: self.stop_grace,
            }),
            dependencies: self.dependencies.clone(),
            networks: self.created_networks.clone(),
        }
    }
}

/// The last 50 lines of a container's output, `redactor` applied. Best
/// effort and bounded: an error reading logs gives an empty tail.
pub(crate) async fn log_tail(
    client: &bollard::Docker,
    container_id: &str,
    redactor: &Redactor,
) -> Vec<String> {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&LOG_TAIL_LINES.to_string())
        .build();
    let mut stream = client.logs(container_id, Some(options));
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
    lines[skip..].iter().map(|l| redactor.redact(l)).collect()
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

impl Drop for RunningService {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        tracing::warn!(service = %self.service, "cleaning up container after an interrupted run");
        self.cleanup_plan().run_blocking();
        free_slot(&self.active);
        take_current(&self.current);
    }
}
