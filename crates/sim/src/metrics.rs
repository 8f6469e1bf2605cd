//! Prometheus metrics with vLLM's current names (and each flavor's own names).
//!
//! Counters are atomics updated once per body frame; the two histograms are
//! merged once per request (time to first token when it is sent, inter-token
//! latencies when the request ends), so the per-token path takes no lock.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::args::Flavor;

/// vLLM v1's buckets for `vllm:time_to_first_token_seconds`.
const TTFT_BUCKETS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM v1's buckets for `vllm:inter_token_latency_seconds`.
pub(crate) const ITL_BUCKETS: [f64; 19] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// One count per bound plus the +Inf bucket (not cumulative).
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        let idx = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[idx] += 1;
        self.sum += value;
    }
}

/// Inter-token latencies of one request, kept locally and merged at its end.
#[derive(Debug, Clone)]
pub(crate) struct LocalItl {
    counts: [u32; ITL_BUCKETS.len() + 1],
    sum_ns: u64,
}

impl LocalItl {
    pub(crate) fn new() -> LocalItl {
        LocalItl {
            counts: [0; ITL_BUCKETS.len() + 1],
            sum_ns: 0,
        }
    }

    pub(crate) fn observe_ns(&mut self, gap_ns: u64) {
        let seconds = gap_ns as f64 / 1e9;
        let idx = ITL_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(ITL_BUCKETS.len());
        self.counts[idx] += 1;
        self.sum_ns += gap_ns;
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }
}

#[derive(Debug)]
struct Histograms {
    ttft: Histogram,
    itl: Histogram,
}

/// The engine's counters and histograms.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) generation_tokens: AtomicU64,
    pub(crate) prefix_queries: AtomicU64,
    pub(crate) prefix_hits: AtomicU64,
    pub(crate) requests_success: AtomicU64,
    histograms: Mutex<Histograms>,
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gauges {
    pub(crate) running: u64,
    pub(crate) waiting: u64,
    pub(crate) kv_usage: f64,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            prefix_queries: AtomicU64::new(0),
            prefix_hits: AtomicU64::new(0),
            requests_success: AtomicU64::new(0),
            histograms: Mutex::new(Histograms {
                ttft: Histogram::new(&TTFT_BUCKETS),
                itl: Histogram::new(&ITL_BUCKETS),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histograms> {
        // A panic while holding this lock leaves plain numbers behind, which
        // are still fine to read.
        self.histograms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn observe_ttft(&self, seconds: f64) {
        self.lock().ttft.observe(seconds);
    }

    pub(crate) fn merge_itl(&self, local: &LocalItl) {
        if local.is_empty() {
            return;
        }
        let mut guard = self.lock();
        for (total, &count) in guard.itl.counts.iter_mut().zip(local.counts.iter()) {
            *total += u64::from(count);
        }
        guard.itl.sum += local.sum_ns as f64 / 1e9;
    }

    /// The Prometheus text exposition, with the names of `flavor`.
    pub(crate) fn render(&self, flavor: Flavor, model_name: &str, gauges: Gauges) -> String {
        let (ttft, itl) = {
            let guard = self.lock();
            (guard.ttft.clone(), guard.itl.clone())
        };
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let mut out = String::with_capacity(8192);
        let names = Names::of(flavor);
        let labels = match flavor {
            Flavor::Vllm => format!("engine=\"0\",model_name=\"{}\"", escape_label(model_name)),
            Flavor::Llamacpp | Flavor::Tgi => String::new(),
            Flavor::Trtllm | Flavor::Sglang => {
                format!("model_name=\"{}\"", escape_label(model_name))
            }
        };
        let sample = |out: &mut String, name: &str, help: &str, kind: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value:?}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value:?}");
            }
        };
        if let Some(name) = names.running {
            sample(
                &mut out,
                name,
                "Number of requests in model execution batches.",
                "gauge",
                gauges.running as f64,
            );
        }
        if let Some(name) = names.waiting {
            sample(
                &mut out,
                name,
                "Number of requests waiting to be processed.",
                "gauge",
                gauges.waiting as f64,
            );
        }
        if let Some(name) = names.kv_usage {
            sample(
                &mut out,
                name,
                "KV-cache usage. 1 means 100 percent usage.",
                "gauge",
                gauges.kv_usage,
            );
        }
        let counters = [
            (
                names.prefix_queries,
                "Prefix cache queries, in terms of number of queried tokens.",
                load(&self.prefix_queries),
            ),
            (
                names.prefix_hits,
                "Prefix cache hits, in terms of number of cached tokens.",
                load(&self.prefix_hits),
            ),
            (
                names.prompt_tokens,
                "Number of prefill tokens processed.",
                load(&self.prompt_tokens),
            ),
            (
                names.generation_tokens,
                "Number of generation tokens processed.",
                load(&self.generation_tokens),
            ),
            (
                names.requests_success,
                "Count of successfully processed requests.",
                load(&self.requests_success),
            ),
        ];
        for (name, help, value) in counters {
            if let Some(name) = name {
                sample(&mut out, name, help, "counter", value);
            }
        }
        if let Some(name) = names.ttft {
            histogram(
                &mut out,
                name,
                "Histogram of time to first token in seconds.",
                &labels,
                &ttft,
            );
        }
        if let Some(name) = names.itl {
            histogram(
                &mut out,
                name,
                "Histogram of inter-token latency in seconds.",
                &labels,
                &itl,
            );
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histogram(out: &mut String, name: &str, help: &str, labels: &str, hist: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0u64;
    for (idx, count) in hist.counts.iter().enumerate() {
        cumulative += count;
        let le = match hist.bounds.get(idx) {
            Some(bound) => format!("{bound:?}"),
            None => "+Inf".to_owned(),
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {:?}",
            cumulative as f64
        );
    }
    let braces = |labels: &str| {
        if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        }
    };
    let _ = writeln!(
        out,
        "{name}_count{} {:?}",
        braces(labels),
        cumulative as f64
    );
    let _ = writeln!(out, "{name}_sum{} {:?}", braces(labels), hist.sum);
}

/// Metric names per flavor; `None` means that engine has no such metric.
struct Names {
    running: Option<&'static str>,
    waiting: Option<&'static str>,
    kv_usage: Option<&'static str>,
    prefix_queries: Option<&'static str>,
    prefix_hits: Option<&'static str>,
    prompt_tokens: Option<&'static str>,
    generation_tokens: Option<&'static str>,
    requests_success: Option<&'static str>,
    ttft: Option<&'static str>,
    itl: Option<&'static str>,
}

impl Names {
    fn of(flavor: Flavor) -> Names {
        match flavor {
            Flavor::Vllm => Names {
                running: Some("vllm:num_requests_running"),
                waiting: Some("vllm:num_requests_waiting"),
                kv_usage: Some("vllm:kv_cache_usage_perc"),
                prefix_queries: Some("vllm:prefix_cache_queries_total"),
                prefix_hits: Some("vllm:prefix_cache_hits_total"),
                prompt_tokens: Some("vllm:prompt_tokens_total"),
                generation_tokens: Some("vllm:generation_tokens_total"),
                requests_success: Some("vllm:request_success_total"),
                ttft: Some("vllm:time_to_first_token_seconds"),
                itl: Some("vllm:inter_token_latency_seconds"),
            },
            Flavor::Sglang => Names {
                running: Some("sglang:num_running_reqs"),
                waiting: Some("sglang:num_queue_reqs"),
                kv_usage: Some("sglang:token_usage"),
                prefix_queries: None,
                prefix_hits: None,
                prompt_tokens: Some("sglang:prompt_tokens_total"),
                generation_tokens: Some("sglang:generation_tokens_total"),
                requests_success: Some("sglang:num_requests_total"),
                ttft: Some("sglang:time_to_first_token_seconds"),
                itl: Some("sglang:inter_token_latency_seconds"),
            },
            Flavor::Trtllm => Names {
                running: None,
                waiting: None,
                kv_usage: Some("trtllm_kv_cache_utilization"),
                prefix_queries: None,
                prefix_hits: None,
                prompt_tokens: None,
                generation_tokens: None,
                requests_success: Some("trtllm_request_success_total"),
                ttft: Some("trtllm_time_to_first_token_seconds"),
                itl: Some("trtllm_time_per_output_token_seconds"),
            },
            Flavor::Llamacpp => Names {
                running: Some("llamacpp:requests_processing"),
                waiting: Some("llamacpp:requests_deferred"),
                kv_usage: Some("llamacpp:kv_cache_usage_ratio"),
                prefix_queries: None,
                prefix_hits: None,
                prompt_tokens: Some("llamacpp:prompt_tokens_total"),
                generation_tokens: Some("llamacpp:tokens_predicted_total"),
                requests_success: None,
                ttft: None,
                itl: None,
            },
            // TGI's router metrics have no model label and no per-token
            // histograms (its time per token is a per-request mean).
            Flavor::Tgi => Names {
                running: Some("tgi_batch_current_size"),
                waiting: Some("tgi_queue_size"),
                kv_usage: None,
                prefix_queries: None,
                prefix_hits: None,
                prompt_tokens: None,
                generation_tokens: None,
                requests_success: Some("tgi_request_success"),
                ttft: None,
                itl: None,
            },
        }
    }
}
