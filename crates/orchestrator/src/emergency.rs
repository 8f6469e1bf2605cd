//! The second Ctrl-C: the user wants out now. [`EmergencyStop`] is a handle,
//! detached from the run's futures, that stops and removes the container the
//! run has started, and its dependencies (bounded by its grace period plus a margin) and starts
//! again what was in its way, on a thread and runtime of its own, so that the
//! process can exit 130 at once afterwards without leaving a container
//! behind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cleanup::Cleanup;
use crate::docker::{Docker, connect_client};
use crate::sweep::StoppedContainer;

/// What a restore may take beyond the stop: a few start calls.
const RESTORE_MARGIN: Duration = Duration::from_secs(30);

/// Stops the running container and restores the displaced ones from outside
/// the run; see [`Docker::emergency_stop`].
#[derive(Debug, Clone)]
pub struct EmergencyStop {
    current: Arc<Mutex<Option<Cleanup>>>,
    displaced: Arc<Mutex<Vec<StoppedContainer>>>,
}

impl Docker {
    /// A handle for the second Ctrl-C (see [`EmergencyStop::stop_blocking`]).
    pub fn emergency_stop(&self) -> EmergencyStop {
        EmergencyStop {
            current: Arc::clone(&self.current),
            displaced: Arc::clone(&self.displaced),
        }
    }
}

impl EmergencyStop {
    /// Blocks until the running container (if any) is stopped and removed
    /// (unless `--keep`) and, with `restore`, the displaced containers run
    /// again; bounded by the grace period plus a margin. Returns one line
    /// per displaced container that does not run again, for the user.
    pub fn stop_blocking(&self, restore: bool) -> Vec<String> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let displaced = Arc::clone(&self.displaced);
        let bound = current
            .as_ref()
            .map_or(Duration::ZERO, Cleanup::bound)
            .saturating_add(RESTORE_MARGIN);
        let work = std::thread::Builder::new()
            .name("spark-perf-emergency".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async move {
                    let client = connect_client().await.ok()?;
                    let body = async {
                        if let Some(c) = &current
                            && let Err(err) = c.run(&client).await
                        {
                            tracing::error!(error = %err, "cleanup failed");
                        }
                        if !restore {
                            return Vec::new();
                        }
                        let docker = Docker {
                            client: client.clone(),
                            active: Arc::new(Mutex::new(None)),
                            displaced,
                            current: Arc::new(Mutex::new(None)),
                        };
                        docker
                            .restore_displaced()
                            .await
                            .into_iter()
                            .filter_map(|o| {
                                o.error.map(|e| format!("{}: {e}", o.container.container))
                            })
                            .collect()
                    };
                    tokio::time::timeout(bound, body).await.ok()
                })
            });
        work.ok()
            .and_then(|handle| handle.join().ok())
            .flatten()
            .unwrap_or_else(|| vec!["the clean-up did not finish in time".to_owned()])
    }

    /// The displaced containers not restored yet (for `--no-restore` and for
    /// a message).
    pub fn displaced(&self) -> Vec<String> {
        self.displaced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|d| d.container.clone())
            .collect()
    }
}
