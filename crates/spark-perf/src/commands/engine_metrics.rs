//! The engine's own metrics beside its scenarios: the load client's scrape
//! wrapped as a telemetry probe and sampled about every second, llama-server's
//! per-request cache counts summed as records arrive, and each scenario's
//! figures (prefix-cache hit rate, peak KV-cache usage and queue, the
//! engine's TTFT and ITL means) derived from them and the reads before and
//! after it.
//!
//! The telemetry crate knows no load client: the engine is wrapped here.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use spark_load::Engine;
use spark_results::{EngineScenarioMetrics, RequestRecord, RunResults};
use spark_telemetry::engine_metrics::{
    LlamaCache, METRICS_INTERVAL, MetricsFuture, MetricsProbe, MetricsSample, MetricsSampler,
    ScenarioInputs, derive,
};
use spark_telemetry::gpu::ScenarioWindow;

/// The engine's metrics sampler (once the engine is connected) and
/// llama-server's cache counts per scenario.
#[derive(Debug, Default)]
pub(crate) struct EngineWatch {
    sampler: Mutex<Option<MetricsSampler>>,
    llama: Mutex<BTreeMap<String, LlamaCache>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EngineWatch {
    /// Starts sampling `engine`'s metrics, times counted from `origin`.
    pub(crate) fn watch(&self, engine: &Engine, origin: Instant) {
        let probe = Box::new(EngineProbe(engine.clone()));
        let mut sampler = lock(&self.sampler);
        if sampler.is_none() {
            *sampler = Some(MetricsSampler::start(probe, origin, METRICS_INTERVAL));
        }
    }

    /// Adds a successful record's llama-server cache counts to its scenario.
    pub(crate) fn record(&self, record: &RequestRecord) {
        let Some(timings) = &record.engine_timings else {
            return;
        };
        let (Some(cache_n), Some(prompt_n)) = (timings.cache_n, timings.prompt_n) else {
            return;
        };
        if record.failure.is_some() {
            return;
        }
        let mut llama = lock(&self.llama);
        let sums = llama.entry(record.scenario.clone()).or_default();
        sums.cache_n += u64::from(cache_n);
        sums.prompt_n += u64::from(prompt_n);
    }

    /// Stops the sampling; each scenario's figures.
    pub(crate) async fn finish(
        self,
        windows: &[ScenarioWindow],
        results: Option<&RunResults>,
    ) -> Vec<EngineScenarioMetrics> {
        let sampler = lock(&self.sampler).take();
        let samples = match sampler {
            Some(sampler) => sampler.finish().await,
            None => Vec::new(),
        };
        let llama = std::mem::take(&mut *lock(&self.llama));
        let Some(results) = results else {
            return Vec::new();
        };
        windows
            .iter()
            .filter_map(|window| figures(window, &samples, results, &llama))
            .collect()
    }
}

fn figures(
    window: &ScenarioWindow,
    samples: &[MetricsSample],
    results: &RunResults,
    llama: &BTreeMap<String, LlamaCache>,
) -> Option<EngineScenarioMetrics> {
    let result = results
        .scenarios
        .iter()
        .rfind(|s| s.name == window.name && !s.discarded)?;
    let counters = result.engine_counters.as_ref();
    derive(&ScenarioInputs {
        name: &window.name,
        during: samples
            .iter()
            .filter(|s| s.t_s >= window.start_s && s.t_s <= window.end_s)
            .map(|s| &s.values)
            .collect(),
        before: counters.map(|c| &c.before),
        after: counters.map(|c| &c.after),
        llama_cache: llama.get(&window.name).copied(),
        // Every prompt differs from its first tokens unless a prefix is shared.
        unique_prompts: result.config.shared_prefix_tokens == 0,
    })
}

/// The load client's scrape of the engine's metrics as a probe.
struct EngineProbe(Engine);

impl MetricsProbe for EngineProbe {
    fn read(&mut self) -> MetricsFuture<'_> {
        Box::pin(self.0.read_metrics())
    }
}
