//! Stopping what a start created: one container (SIGTERM, SIGKILL after its
//! grace period, removal), and the [`Cleanup`] of a whole start: the engine,
//! then its dependencies in reverse start order, then the networks the start
//! created. Run by [`RunningService::stop`](crate::RunningService::stop), by
//! the `Drop` of a started service or of dependencies started for an engine
//! that never ran, and by the second Ctrl-C
//! ([`EmergencyStop`](crate::EmergencyStop)).
//!
//! Architecture Invariant: a [`Cleanup`] names only containers this process
//! created; a dependency that already ran before the start is not in it and
//! keeps running.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{RemoveContainerOptionsBuilder, StopContainerOptionsBuilder};

use crate::OrchestratorError;
use crate::docker::{connect_client, is_conflict, is_not_found};

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

pub(crate) async fn remove_container(
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

/// One container a start created.
#[derive(Debug, Clone)]
pub(crate) struct Stoppable {
    pub(crate) service: String,
    pub(crate) container_id: String,
    pub(crate) grace: Duration,
}

/// Everything one start created, to stop and remove.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cleanup {
    /// `--keep`: containers are stopped, not removed (nor the networks).
    pub(crate) keep: bool,
    /// The engine's container, once created.
    pub(crate) engine: Option<Stoppable>,
    /// The dependencies started for the engine, in start order.
    pub(crate) dependencies: Vec<Stoppable>,
    /// The networks the start created.
    pub(crate) networks: Vec<String>,
}

impl Cleanup {
    /// The longest the clean-up may take: its stops one after the other.
    pub(crate) fn bound(&self) -> Duration {
        self.engine
            .iter()
            .chain(&self.dependencies)
            .map(|s| stop_timeout(s.grace))
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// Stops (and unless `keep` removes) the engine, then the dependencies
    /// in reverse start order, then the networks nothing uses any more.
    /// Every container is attempted; the first error is returned.
    pub(crate) async fn run(&self, client: &bollard::Docker) -> Result<(), OrchestratorError> {
        let mut first_error = None;
        let order = self.engine.iter().chain(self.dependencies.iter().rev());
        for container in order {
            if let Err(err) = stop_one(client, container, self.keep).await {
                first_error.get_or_insert(err);
            }
        }
        if !self.keep {
            for network in &self.networks {
                // Fails while other containers use it; that is fine,
                // compose's `down` removes it later.
                let _ = client.remove_network(network).await;
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// [`Cleanup::run`] from a `Drop`: on a fresh thread with its own small
    /// runtime and daemon connection (the caller's runtime may be shutting
    /// down), joined, so the containers are gone when this returns.
    pub(crate) fn run_blocking(self) {
        if self.engine.is_none() && self.dependencies.is_empty() {
            return;
        }
        let thread = std::thread::Builder::new()
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
                    if let Err(err) = self.run(&client).await {
                        tracing::error!(error = %err, "cleanup failed");
                    }
                });
            });
        if let Ok(handle) = thread {
            let _ = handle.join();
        }
    }
}

/// Stops one container and, unless `keep`, removes it.
async fn stop_one(
    client: &bollard::Docker,
    container: &Stoppable,
    keep: bool,
) -> Result<(), OrchestratorError> {
    let Stoppable {
        service,
        container_id,
        grace,
    } = container;
    let stopped = stop_container(client, container_id, service, *grace).await;
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
    tracing::info!(service = %service, "stopped and removed container");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
