//! A scenario's engine figures from the engine's metrics: the deltas of its
//! counters and histogram sums between the reads right before and after the
//! scenario, and the peaks of its gauges over the reads during it. Per
//! engine family by name; pure.

use std::collections::BTreeMap;

use spark_results::EngineScenarioMetrics;

/// Prefix-cache counters (hits, queries), in tokens: vLLM v1, then the
/// names of vLLM releases before 0.10.
const PREFIX_COUNTERS: [(&str, &str); 2] = [
    (
        "vllm:prefix_cache_hits_total",
        "vllm:prefix_cache_queries_total",
    ),
    (
        "vllm:gpu_prefix_cache_hits_total",
        "vllm:gpu_prefix_cache_queries_total",
    ),
];

/// SGLang's own hit-rate gauge.
const HIT_RATE_GAUGE: &str = "sglang:cache_hit_rate";

/// KV-cache usage, 0 to 1.
const KV_USAGE: [&str; 5] = [
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "llamacpp:kv_cache_usage_ratio",
    "sglang:token_usage",
    "trtllm_kv_cache_utilization",
];

/// Requests waiting for a slot.
const QUEUED: [&str; 4] = [
    "vllm:num_requests_waiting",
    "llamacpp:requests_deferred",
    "sglang:num_queue_reqs",
    "tgi_queue_size",
];

/// Time-to-first-token histograms, seconds.
const TTFT: [&str; 3] = [
    "vllm:time_to_first_token_seconds",
    "sglang:time_to_first_token_seconds",
    "trtllm_time_to_first_token_seconds",
];

/// Inter-token latency (or time per output token) histograms, seconds.
const ITL: [&str; 4] = [
    "vllm:inter_token_latency_seconds",
    "vllm:time_per_output_token_seconds",
    "sglang:inter_token_latency_seconds",
    "trtllm_time_per_output_token_seconds",
];

/// llama-server's per-response `timings` summed over a scenario's
/// successful requests: prompt tokens taken from its cache and evaluated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LlamaCache {
    pub cache_n: u64,
    pub prompt_n: u64,
}

/// What one scenario's figures are computed from.
#[derive(Debug, Clone, Default)]
pub struct ScenarioInputs<'a> {
    pub name: &'a str,
    /// The reads during the scenario.
    pub during: Vec<&'a BTreeMap<String, f64>>,
    /// The reads right before its first request and after its last.
    pub before: Option<&'a BTreeMap<String, f64>>,
    pub after: Option<&'a BTreeMap<String, f64>>,
    /// llama-server's timings of its requests, where they carried them.
    pub llama_cache: Option<LlamaCache>,
    /// Its prompts share no prefix: any hit means a warm cache.
    pub unique_prompts: bool,
}

/// The scenario's engine figures; `None` when the engine gave nothing to
/// compute one from.
pub fn derive(inputs: &ScenarioInputs<'_>) -> Option<EngineScenarioMetrics> {
    let delta =
        |name: &str| -> Option<f64> { Some(inputs.after?.get(name)? - inputs.before?.get(name)?) };
    // Gauges over the reads during the scenario and the one at its end.
    let gauge_reads = || inputs.during.iter().copied().chain(inputs.after);
    let peak_of = |names: &[&str]| -> Option<f64> {
        names.iter().find_map(|name| {
            gauge_reads()
                .filter_map(|values| values.get(*name).copied())
                .reduce(f64::max)
        })
    };
    let histogram_mean_ms = |names: &[&str]| -> Option<f64> {
        names.iter().find_map(|name| {
            let count = delta(&format!("{name}_count"))?;
            let sum = delta(&format!("{name}_sum"))?;
            (count > 0.0).then(|| sum / count * 1000.0)
        })
    };
    let (prefix_cache_hit_rate, prefix_cache_source) = hit_rate(inputs, &delta);
    let figures = EngineScenarioMetrics {
        name: inputs.name.to_owned(),
        n_samples: u32::try_from(inputs.during.len()).unwrap_or(u32::MAX),
        warm_prefix_cache: inputs.unique_prompts && prefix_cache_hit_rate.is_some_and(|r| r > 0.0),
        prefix_cache_hit_rate,
        prefix_cache_source,
        kv_cache_usage_peak: peak_of(&KV_USAGE),
        queued_requests_peak: peak_of(&QUEUED),
        engine_ttft_mean_ms: histogram_mean_ms(&TTFT),
        engine_itl_mean_ms: histogram_mean_ms(&ITL),
    };
    let known = figures.prefix_cache_hit_rate.is_some()
        || figures.kv_cache_usage_peak.is_some()
        || figures.queued_requests_peak.is_some()
        || figures.engine_ttft_mean_ms.is_some()
        || figures.engine_itl_mean_ms.is_some();
    known.then_some(figures)
}

/// The hit rate and what it came from: vLLM's counters, else SGLang's
/// gauge (its mean during the scenario), else llama-server's timings.
fn hit_rate(
    inputs: &ScenarioInputs<'_>,
    delta: &dyn Fn(&str) -> Option<f64>,
) -> (Option<f64>, Option<String>) {
    for (hits, queries) in PREFIX_COUNTERS {
        if let (Some(n_hits), Some(n_queries)) = (delta(hits), delta(queries))
            && n_queries > 0.0
        {
            return (
                Some(n_hits / n_queries),
                Some(format!("{hits} / {queries}")),
            );
        }
    }
    let rates: Vec<f64> = inputs
        .during
        .iter()
        .copied()
        .chain(inputs.after)
        .filter_map(|values| values.get(HIT_RATE_GAUGE).copied())
        .collect();
    if !rates.is_empty() {
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        return (Some(mean), Some(HIT_RATE_GAUGE.to_owned()));
    }
    if let Some(cache) = inputs.llama_cache
        && cache.cache_n + cache.prompt_n > 0
    {
        let rate = cache.cache_n as f64 / (cache.cache_n + cache.prompt_n) as f64;
        return (
            Some(rate),
            Some("timings.cache_n / (cache_n + prompt_n)".to_owned()),
        );
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn vllm_counters_gauges_and_histograms() {
        let before = values(&[
            ("vllm:prefix_cache_hits_total", 100.0),
            ("vllm:prefix_cache_queries_total", 1000.0),
            ("vllm:time_to_first_token_seconds_sum", 1.0),
            ("vllm:time_to_first_token_seconds_count", 10.0),
            ("vllm:inter_token_latency_seconds_sum", 2.0),
            ("vllm:inter_token_latency_seconds_count", 100.0),
            ("vllm:num_requests_waiting", 9.0),
        ]);
        let during = [
            values(&[
                ("vllm:kv_cache_usage_perc", 0.25),
                ("vllm:num_requests_waiting", 3.0),
            ]),
            values(&[
                ("vllm:kv_cache_usage_perc", 0.5),
                ("vllm:num_requests_waiting", 1.0),
            ]),
        ];
        let after = values(&[
            ("vllm:prefix_cache_hits_total", 400.0),
            ("vllm:prefix_cache_queries_total", 2000.0),
            ("vllm:time_to_first_token_seconds_sum", 1.5),
            ("vllm:time_to_first_token_seconds_count", 20.0),
            ("vllm:inter_token_latency_seconds_sum", 3.0),
            ("vllm:inter_token_latency_seconds_count", 200.0),
            ("vllm:kv_cache_usage_perc", 0.0),
            ("vllm:num_requests_waiting", 0.0),
        ]);
        let figures = derive(&ScenarioInputs {
            name: "rag",
            during: during.iter().collect(),
            before: Some(&before),
            after: Some(&after),
            llama_cache: None,
            unique_prompts: false,
        })
        .expect("figures");
        assert_eq!(figures.prefix_cache_hit_rate, Some(0.3));
        assert_eq!(
            figures.prefix_cache_source.as_deref(),
            Some("vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total")
        );
        assert!(!figures.warm_prefix_cache);
        assert_eq!(figures.kv_cache_usage_peak, Some(0.5));
        // The read before belongs to the scenario before.
        assert_eq!(figures.queued_requests_peak, Some(3.0));
        assert_eq!(figures.engine_ttft_mean_ms, Some(50.0));
        assert_eq!(figures.engine_itl_mean_ms, Some(10.0));
        assert_eq!(figures.n_samples, 2);
    }

    #[test]
    fn llama_timings_and_a_warm_cache() {
        let figures = derive(&ScenarioInputs {
            name: "latency",
            llama_cache: Some(LlamaCache {
                cache_n: 30,
                prompt_n: 90,
            }),
            unique_prompts: true,
            ..ScenarioInputs::default()
        })
        .expect("figures");
        assert_eq!(figures.prefix_cache_hit_rate, Some(0.25));
        assert!(figures.warm_prefix_cache);
        let nothing = derive(&ScenarioInputs {
            name: "latency",
            unique_prompts: true,
            ..ScenarioInputs::default()
        });
        assert_eq!(nothing, None);
    }

    #[test]
    fn sglang_reports_its_own_rate() {
        let during = [
            values(&[(HIT_RATE_GAUGE, 0.5)]),
            values(&[(HIT_RATE_GAUGE, 0.7)]),
        ];
        let figures = derive(&ScenarioInputs {
            name: "chat",
            during: during.iter().collect(),
            ..ScenarioInputs::default()
        })
        .expect("figures");
        assert!((figures.prefix_cache_hit_rate.unwrap() - 0.6).abs() < 1e-12);
    }
}
