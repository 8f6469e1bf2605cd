//! The engine's own metrics sampled during the scenarios: a
//! [`MetricsProbe`] (the CLI wraps the load client's scrape of the engine's
//! Prometheus endpoint in one, so this crate knows no HTTP client) read
//! about every second on a tokio task of its own, and what each scenario's
//! window and the reads before and after it give ([`derive`]).
//!
//! Like the memory sampler, every read is bounded by a timeout and the loop
//! by its stop signal; an engine that serves no metrics is asked once.

mod derive;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use derive::{LlamaCache, ScenarioInputs, derive};

/// How often the engine's metrics are read during a scenario.
pub const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// The longest one read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Metric name → value (summed over label sets); `None` when the engine
/// serves no metrics.
pub type MetricsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<BTreeMap<String, f64>>, String>> + Send + 'a>>;

/// One read of the engine's metrics.
pub trait MetricsProbe: Send {
    fn read(&mut self) -> MetricsFuture<'_>;
}

/// One read, seconds on the sampler's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSample {
    pub t_s: f64,
    pub values: BTreeMap<String, f64>,
}

/// A running sampler of the engine's metrics; dropped unfinished, its task
/// is aborted.
#[derive(Debug)]
pub struct MetricsSampler {
    samples: Arc<Mutex<Vec<MetricsSample>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MetricsSampler {
    /// Starts reading `probe` every `interval`, times counted from `origin`.
    /// Must be called inside a tokio runtime.
    pub fn start(probe: Box<dyn MetricsProbe>, origin: Instant, interval: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sample_loop(
            probe,
            Arc::clone(&samples),
            origin,
            interval,
            stopped,
        ));
        MetricsSampler {
            samples,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the sampling (a read in flight is abandoned) and returns the reads.
    pub async fn finish(mut self) -> Vec<MetricsSample> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        std::mem::take(&mut *lock(&self.samples))
    }
}

impl Drop for MetricsSampler {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn lock(samples: &Mutex<Vec<MetricsSample>>) -> MutexGuard<'_, Vec<MetricsSample>> {
    samples
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn sample_loop(
    mut probe: Box<dyn MetricsProbe>,
    samples: Arc<Mutex<Vec<MetricsSample>>>,
    origin: Instant,
    interval: Duration,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => return,
            _ = tick.tick() => {}
        }
        let t_s = origin.elapsed().as_secs_f64();
        let read = tokio::select! {
            biased;
            _ = &mut stopped => return,
            read = tokio::time::timeout(READ_TIMEOUT, probe.read()) => read,
        };
        match read {
            Ok(Ok(Some(values))) => lock(&samples).push(MetricsSample { t_s, values }),
            // No metrics endpoint: nothing to sample.
            Ok(Ok(None)) => return,
            Ok(Err(why)) => tracing::debug!("engine metrics read failed: {why}"),
            Err(_) => tracing::debug!("engine metrics read timed out"),
        }
    }
}
