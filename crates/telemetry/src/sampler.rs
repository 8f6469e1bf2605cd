//! The sampler: a [`Probe`] read on an interval on a tokio task of its own,
//! beside the load, with the scenarios' boundaries marked as they pass.
//!
//! Every read is bounded by a timeout and the loop by the stop signal, so a
//! probe that hangs (a daemon that does not answer) costs one timeout per
//! sample and never delays the scenarios: they run on other tasks and only
//! take a short lock to mark a boundary.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use spark_results::UsageSample;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::recording::{Recording, Window};

/// How often a sampler reads its probe unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// The longest one read may take before it counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One reading of a probe: what it could read, `None` for what it could not.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Memory in use, bytes.
    pub memory_bytes: Option<u64>,
    /// CPU since the previous reading, percent of one core.
    pub cpu_percent: Option<f64>,
}

/// What [`Probe::read`] returns: a reading, or why there is none.
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<Reading, String>> + Send + 'a>>;

/// Something read on an interval: a container's stats through the daemon,
/// a local process's `/proc` files.
pub trait Probe: Send {
    /// Where the readings come from, for the reports: `docker stats`,
    /// `/proc/4242`.
    fn source(&self) -> String;

    /// One reading. A probe that computes a rate (CPU) keeps its previous
    /// counters and returns `None` for the rate on its first reading.
    fn read(&mut self) -> ReadFuture<'_>;
}

/// A running sampler; [`Sampler::finish`] stops it and returns what it read.
/// Dropped unfinished, its task is aborted.
pub struct Sampler {
    shared: Arc<Shared>,
    source: String,
    interval: Duration,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Box<dyn Probe>>>,
}

#[derive(Debug)]
struct Shared {
    origin: Instant,
    state: Mutex<State>,
    /// Wakes the task for a reading now (a scenario started or ended).
    wake: Notify,
}

#[derive(Debug, Default)]
struct State {
    samples: Vec<UsageSample>,
    windows: Vec<Window>,
    first_error: Option<String>,
    n_errors: u32,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn since_origin_s(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
}

impl Sampler {
    /// Starts reading `probe` every `interval` (the first reading at once).
    /// Must be called inside a tokio runtime.
    pub fn start(probe: Box<dyn Probe>, interval: Duration) -> Sampler {
        let shared = Arc::new(Shared {
            origin: Instant::now(),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        });
        let source = probe.source();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sample_loop(probe, Arc::clone(&shared), interval, stopped));
        Sampler {
            shared,
            source,
            interval,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Marks the start of a scenario (and takes a reading now).
    pub fn scenario_started(&self, name: &str) {
        let start_s = self.shared.since_origin_s();
        self.shared.state().windows.push(Window {
            name: name.to_owned(),
            start_s,
            end_s: None,
        });
        self.shared.wake.notify_one();
    }

    /// Marks the end of the scenario that started last under `name`.
    pub fn scenario_ended(&self, name: &str) {
        let end_s = self.shared.since_origin_s();
        let mut state = self.shared.state();
        if let Some(window) = state
            .windows
            .iter_mut()
            .rev()
            .find(|w| w.name == name && w.end_s.is_none())
        {
            window.end_s = Some(end_s);
        }
    }

    /// Stops the sampling (a read in flight is abandoned), takes one last
    /// reading, so that even a scenario shorter than the interval has one
    /// after its start, and returns what was read.
    pub async fn finish(mut self) -> Recording {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Ok(mut probe) = task.await
        {
            let t_s = self.shared.since_origin_s();
            let read = tokio::time::timeout(READ_TIMEOUT, probe.read()).await;
            self.shared.state().record(t_s, read, probe.as_ref());
        }
        let end_s = self.shared.since_origin_s();
        let state = std::mem::take(&mut *self.shared.state());
        let windows = state
            .windows
            .into_iter()
            .map(|w| Window {
                end_s: Some(w.end_s.unwrap_or(end_s)),
                ..w
            })
            .collect();
        Recording {
            source: self.source.clone(),
            interval: self.interval,
            samples: state.samples,
            windows,
            first_error: state.first_error,
            n_errors: state.n_errors,
        }
    }
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("source", &self.source)
            .field("interval", &self.interval)
            .field("running", &self.task.is_some())
            .finish()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn sample_loop(
    mut probe: Box<dyn Probe>,
    shared: Arc<Shared>,
    interval: Duration,
    mut stopped: oneshot::Receiver<()>,
) -> Box<dyn Probe> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => return probe,
            _ = tick.tick() => {}
            () = shared.wake.notified() => tick.reset(),
        }
        let t_s = shared.since_origin_s();
        let read = tokio::select! {
            biased;
            _ = &mut stopped => return probe,
            read = tokio::time::timeout(READ_TIMEOUT, probe.read()) => read,
        };
        shared.state().record(t_s, read, probe.as_ref());
    }
}

impl State {
    /// A reading taken at `t_s`, or its failure.
    fn record(
        &mut self,
        t_s: f64,
        read: Result<Result<Reading, String>, tokio::time::error::Elapsed>,
        probe: &dyn Probe,
    ) {
        let why = match read {
            Ok(Ok(reading)) => {
                self.samples.push(UsageSample {
                    t_s,
                    memory_bytes: reading.memory_bytes,
                    cpu_percent: reading.cpu_percent,
                });
                return;
            }
            Ok(Err(why)) => why,
            Err(_) => format!("no reading within {} s", READ_TIMEOUT.as_secs_f64()),
        };
        if self.first_error.is_none() {
            tracing::debug!(source = %probe.source(), "telemetry read failed: {why}");
            self.first_error = Some(why);
        }
        self.n_errors += 1;
    }
}
