//! What the engine's own metrics say of each scenario, sampled during it
//! beside the reads before and after (`EngineCounters`): its prefix-cache
//! hit rate, its peak KV-cache usage and queue, and its own TTFT and
//! inter-token latency means where it exports those histograms.

use serde::{Deserialize, Serialize};

/// The engine's own figures of one scenario; `null` where the engine does
/// not export what they are computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineScenarioMetrics {
    /// The scenario's name.
    pub name: String,
    /// Reads of the engine's metrics inside the scenario (about one a
    /// second), beside the reads right before and after it.
    pub n_samples: u32,
    /// Prompt tokens served from the engine's prefix cache over the prompt
    /// tokens it was asked for, 0 to 1.
    pub prefix_cache_hit_rate: Option<f64>,
    /// What the hit rate is computed from, e.g.
    /// `vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total`.
    pub prefix_cache_source: Option<String>,
    /// The scenario's prompts share no prefix (no `shared_prefix_tokens`,
    /// each prompt distinct from its first tokens), yet the cache served
    /// some: it was warm from before, or the chat template is long enough
    /// to fill a cache block.
    #[serde(default)]
    pub warm_prefix_cache: bool,
    /// The highest KV-cache usage read, 0 to 1 (`vllm:kv_cache_usage_perc`,
    /// `llamacpp:kv_cache_usage_ratio`, `sglang:token_usage`).
    pub kv_cache_usage_peak: Option<f64>,
    /// The most requests the engine held waiting (`vllm:num_requests_waiting`,
    /// `llamacpp:requests_deferred`, `sglang:num_queue_reqs`).
    pub queued_requests_peak: Option<f64>,
    /// The engine's own mean time to first token over the scenario, from
    /// the deltas of its histogram's `_sum` and `_count`.
    pub engine_ttft_mean_ms: Option<f64>,
    /// The engine's own mean inter-token latency (or time per output token).
    pub engine_itl_mean_ms: Option<f64>,
}
