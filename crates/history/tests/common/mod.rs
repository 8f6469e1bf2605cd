//! Test support: a run directory in the system temp dir removed on drop, and
//! a small run to store (one measured engine with per-request records and
//! one that crashed while loading).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use spark_results::{
    Arrival, CalibrationMethod, Distribution, Endpoint, EngineInfo, EngineOutcome, EngineRun,
    Provenance, RequestRecord, RunResults, ScenarioAggregate, ScenarioConfig, ScenarioResult,
    StartupCost, SuiteResults,
};

/// A fresh directory, removed with everything in it when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spark-history-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dist(values: &[f64]) -> Distribution {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Distribution {
        n: values.len() as u64,
        mean: Some(mean),
        stddev: Some((values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()),
        min: sorted.first().copied(),
        p50: Some(sorted[sorted.len() / 2]),
        p90: Some(sorted[sorted.len() * 9 / 10]),
        p95: Some(sorted[sorted.len() * 95 / 100]),
        p99: sorted.last().copied(),
        max: sorted.last().copied(),
    }
}

fn request(idx: u32, ttft_ms: f64, failed: bool) -> RequestRecord {
    RequestRecord {
        scenario: "latency".to_owned(),
        request_idx: idx,
        request_id: format!("req-{idx}"),
        scheduled_ms: None,
        start_ms: f64::from(idx) * 100.0,
        lateness_ms: None,
        sent_mono_ns: 1_000 + u64::from(idx),
        ttfb_ms: Some(ttft_ms / 2.0),
        ttft_ms: Some(ttft_ms),
        ttfo_ms: None,
        e2e_ms: ttft_ms + 1000.0,
        tpot_ms: Some(10.0),
        itl_count: 99,
        itl_min_ms: Some(9.0),
        itl_max_ms: Some(12.0),
        itl_mean_ms: Some(10.0),
        first_token_mono_ns: None,
        last_token_mono_ns: None,
        requested_input_tokens: 128,
        input_tokens: Some(128),
        requested_output_tokens: 100,
        output_tokens: Some(100),
        output_tokens_estimated: false,
        short_output: false,
        token_chunks: 100,
        reasoning_chunks: 0,
        reasoning_tokens: None,
        prompt_tok_s: Some(128_000.0 / ttft_ms),
        decode_tok_s: Some(100.0),
        output_tok_s: Some(100_000.0 / (ttft_ms + 1000.0)),
        finish_reason: Some("length".to_owned()),
        failure: failed.then(|| spark_results::Failure {
            class: spark_results::FailureClass::Timeout,
            http_status: None,
            phase: Some(spark_results::TimeoutPhase::FirstToken),
            message: "first token took longer than 30 s".to_owned(),
        }),
        engine_timings: None,
    }
}

/// A run started at `started_unix_ms` whose TTFTs are `ttfts_ms` (the last
/// request failed), on image `image_id`.
pub(crate) fn suite(started_unix_ms: u64, ttfts_ms: &[f64], image_id: &str) -> SuiteResults {
    let requests: Vec<RequestRecord> = ttfts_ms
        .iter()
        .enumerate()
        .map(|(idx, &ttft)| request(idx as u32, ttft, false))
        .chain(std::iter::once(request(ttfts_ms.len() as u32, 1.0, true)))
        .collect();
    let ok: Vec<&RequestRecord> = requests.iter().filter(|r| r.is_ok()).collect();
    let of = |get: fn(&RequestRecord) -> Option<f64>| {
        dist(&ok.iter().filter_map(|r| get(r)).collect::<Vec<_>>())
    };
    let n_requests = requests.len() as u32;
    let aggregate = ScenarioAggregate {
        n_requests,
        n_ok: n_requests - 1,
        n_failed: 1,
        failures_by_class: BTreeMap::from([("timeout".to_owned(), 1)]),
        n_short_outputs: 0,
        n_estimated_output_tokens: 0,
        duration_s: 10.0,
        input_tokens_total: Some(128 * u64::from(n_requests - 1)),
        output_tokens_total: 100 * u64::from(n_requests - 1),
        request_throughput_rps: f64::from(n_requests - 1) / 10.0,
        input_throughput_tok_s: Some(12.8 * f64::from(n_requests - 1)),
        output_throughput_tok_s: 10.0 * f64::from(n_requests - 1),
        ttft_ms: of(|r| r.ttft_ms),
        ttfo_ms: Distribution::default(),
        reasoning_tokens: Distribution::default(),
        tpot_ms: of(|r| r.tpot_ms),
        itl_ms: of(|r| r.itl_mean_ms),
        e2e_ms: of(|r| Some(r.e2e_ms)),
        prompt_tok_s: of(|r| r.prompt_tok_s),
        decode_tok_s: of(|r| r.decode_tok_s),
        output_tok_s: of(|r| r.output_tok_s),
        open_loop: None,
        engine_timings: None,
    };
    let scenario = ScenarioResult {
        name: "latency".to_owned(),
        config: ScenarioConfig {
            endpoint: Endpoint::Chat,
            input_tokens: 128,
            max_tokens: 100,
            temperature: 0.0,
            requests: n_requests,
            concurrency: 1,
            arrival: Arrival::Closed,
            shared_prefix_tokens: 0,
            exact_output: true,
            duration_s: None,
        },
        discarded: false,
        notes: Vec::new(),
        stopped: None,
        not_run: None,
        aggregate,
        engine_counters: None,
        sweep: None,
        slo: None,
        requests,
    };
    let mut warmup = scenario.clone();
    warmup.name = "warmup".to_owned();
    warmup.discarded = true;
    SuiteResults {
        schema_version: spark_results::SUITE_SCHEMA_VERSION,
        tool: "spark-perf 0.1.0".to_owned(),
        started_unix_ms,
        finished_unix_ms: Some(started_unix_ms + 60_000),
        complete: true,
        stopped: None,
        source: "compose/sim.yml (project sim)".to_owned(),
        pick: None,
        displaced: Vec::new(),
        gpu: None,
        engines: vec![
            EngineRun {
                service: "sim-a".to_owned(),
                flavor: "vllm".to_owned(),
                model: Some("sim-model".to_owned()),
                outcome: EngineOutcome::Ok,
                startup: Some(StartupCost {
                    created_s: 0.05,
                    started_s: 0.4,
                    port_open_s: Some(1.0),
                    healthy_s: Some(2.5),
                }),
                provenance: Some(Provenance {
                    image: "spark-sim:dev".to_owned(),
                    image_id: Some(image_id.to_owned()),
                    repo_digests: vec!["spark-sim@sha256:feed".to_owned()],
                    command: vec!["--ttft-ms".to_owned(), "50".to_owned()],
                    env_names: vec!["HF_TOKEN".to_owned()],
                    config_hash: Some("abc123".to_owned()),
                    engine_version: Some("0.11.0".to_owned()),
                }),
                results: Some(RunResults {
                    schema_version: spark_results::SCHEMA_VERSION,
                    tool: "spark-perf 0.1.0".to_owned(),
                    started_unix_ms,
                    engine: EngineInfo {
                        url: "http://127.0.0.1:8000".to_owned(),
                        model: "sim-model".to_owned(),
                        max_model_len: Some(4096),
                        prompt_calibration: CalibrationMethod::Tokenize,
                        ignore_eos_honoured: Some(true),
                        notes: Vec::new(),
                    },
                    scenarios: vec![warmup, scenario],
                    stopped: None,
                    capacity: None,
                }),
                telemetry: None,
            },
            EngineRun {
                service: "crashy".to_owned(),
                flavor: "vllm".to_owned(),
                model: None,
                outcome: EngineOutcome::Failed {
                    phase: "health".to_owned(),
                    reason: "container exited with code 2 while loading".to_owned(),
                },
                startup: None,
                provenance: None,
                results: None,
                telemetry: None,
            },
        ],
    }
}
