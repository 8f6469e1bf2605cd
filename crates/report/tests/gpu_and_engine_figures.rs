//! The GPU and engine-figure rows in every renderer: the run's one GPU line
//! (devices, or N/A with the reason, said once), power, temperature, memory
//! labelled unified host memory, energy per output token, the engine's
//! prefix-cache hit rate, KV-cache and queue peaks, and the warm-cache flag;
//! and a definition for every row the comparison tables can produce.

mod common;

use std::collections::BTreeSet;

use expect_test::expect;
use spark_report::compare_table::tables;
use spark_report::render::{self, METRIC_DEFINITIONS, definition_of, text::TextStyle};
use spark_results::{
    DeviceGpu, Distribution, EngineGpu, EngineScenarioMetrics, EngineTimingsAggregate,
    GpuEnergyMethod, GpuInfo, GpuMemoryKind, GpuSample, OpenLoopAggregate, ScenarioGpu,
    SuiteResults,
};

/// The fixture's first engine on a GB10, its throughput scenario with GPU
/// figures and the engine's own.
fn on_a_gb10() -> SuiteResults {
    let mut suite = common::suite();
    suite.gpu = Some(GpuInfo {
        backend: Some("nvidia_smi".to_owned()),
        devices: vec!["NVIDIA GB10".to_owned()],
        driver_version: Some("580.95.05".to_owned()),
        ..GpuInfo::default()
    });
    let telemetry = suite.engines[0].telemetry.as_mut().expect("telemetry");
    telemetry.gpu = Some(EngineGpu {
        interval_ms: 500,
        scenarios: vec![ScenarioGpu {
            name: "throughput".to_owned(),
            start_s: 1.0,
            end_s: 3.0,
            devices: vec![DeviceGpu {
                device_idx: 0,
                name: "NVIDIA GB10".to_owned(),
                n_samples: 4,
                power_mean_w: Some(41.5),
                power_peak_w: Some(55.0),
                temperature_peak_c: Some(63.0),
                utilization_mean_pct: Some(97.0),
                memory_peak_mib: Some(98_304.0),
                memory_total_mib: Some(124_000.0),
                memory_kind: Some(GpuMemoryKind::UnifiedHost),
                process_memory_peak_mib: None,
                energy_j: Some(83.0),
                energy_method: Some(GpuEnergyMethod::IntegratedPower),
            }],
            energy_j: Some(83.0),
            energy_method: Some(GpuEnergyMethod::IntegratedPower),
            joules_per_output_token: Some(0.25),
            output_tokens_per_joule: Some(4.0),
        }],
        samples: [(1.0, 30.0), (2.0, 55.0), (3.0, 40.0)]
            .iter()
            .map(|&(t_s, power_w)| GpuSample {
                t_s,
                power_w: Some(power_w),
                ..GpuSample::default()
            })
            .collect(),
        ..EngineGpu::default()
    });
    telemetry.engine_metrics = vec![EngineScenarioMetrics {
        name: "throughput".to_owned(),
        n_samples: 2,
        prefix_cache_hit_rate: Some(0.125),
        prefix_cache_source: Some(
            "vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total".to_owned(),
        ),
        warm_prefix_cache: true,
        kv_cache_usage_peak: Some(0.42),
        queued_requests_peak: Some(3.0),
        engine_ttft_mean_ms: Some(20.0),
        engine_itl_mean_ms: Some(5.0),
    }];
    suite
}

fn renders(suite: &SuiteResults) -> [String; 3] {
    [
        render::text::render(suite, TextStyle { color: false }),
        render::markdown::render(suite),
        render::html::render(suite),
    ]
}

#[test]
fn every_renderer_shows_the_gpu_and_the_engines_figures() {
    let suite = on_a_gb10();
    for text in renders(&suite) {
        for expected in [
            // (Markdown escapes the backend's underscore.)
            "GPU: NVIDIA GB10 · driver 580.95.05 (nvidia",
            "GPU power mean (W)",
            "41.5",
            "GPU temperature peak (°C)",
            "GPU memory peak (unified host memory)",
            "96.0 GiB",
            "energy per output token (J/token)",
            "0.250",
            "prefix-cache hit rate (%)",
            "12.5",
            "KV-cache usage peak (%)",
            "42.0",
            "queued requests peak",
            "fp8-moe / throughput: warm prefix cache: the engine served 12.5 %",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
        assert!(
            !text.contains("VRAM"),
            "unified memory is never VRAM: {text}"
        );
    }
    let [.., html] = renders(&suite);
    assert!(html.contains("fp8-moe: GPU power"), "the power chart");
    let json: serde_json::Value = serde_json::from_str(&render::json(&suite)).expect("JSON");
    assert_eq!(json["gpu"]["devices"][0], "NVIDIA GB10");
    let scenario = &json["engines"][0]["telemetry"]["gpu"]["scenarios"][0];
    assert_eq!(scenario["devices"][0]["memory_kind"], "unified_host");
    assert_eq!(scenario["joules_per_output_token"], 0.25);
    let figures = &json["engines"][0]["telemetry"]["engine_metrics"][0];
    assert_eq!(figures["warm_prefix_cache"], true);
}

#[test]
fn without_a_gpu_the_reports_say_so_once() {
    let mut suite = common::suite();
    suite.gpu = Some(GpuInfo {
        unavailable: Some(
            "no NVIDIA driver (libnvidia-ml.so.1: not found); nvidia-smi: not found; no AMD tools (amd-smi: not found; rocm-smi: not found)"
                .to_owned(),
        ),
        ..GpuInfo::default()
    });
    for text in renders(&suite) {
        assert_eq!(
            text.matches("GPU: N/A (no NVIDIA driver").count(),
            1,
            "{text}"
        );
        assert!(!text.contains("GPU power"), "no GPU rows: {text}");
    }
    // Results written before GPUs were read have no GPU line at all.
    for text in renders(&common::suite()) {
        assert!(!text.contains("GPU:"), "{text}");
    }
}

/// [`on_a_gb10`] with every optional figure of its first scenario filled
/// in (reasoning, open loop, the engine's timings), so its tables have every
/// row the comparison can produce. A new kind of row needs its figure here
/// as well as its definition.
fn every_row() -> SuiteResults {
    let mut suite = on_a_gb10();
    let aggregate = &mut suite.engines[0]
        .results
        .as_mut()
        .expect("measured")
        .scenarios[0]
        .aggregate;
    let dist = Distribution {
        n: 64,
        mean: Some(10.0),
        p50: Some(10.0),
        p99: Some(20.0),
        max: Some(25.0),
        ..Distribution::default()
    };
    aggregate.ttfo_ms = dist.clone();
    aggregate.reasoning_tokens = dist.clone();
    aggregate.open_loop = Some(OpenLoopAggregate {
        lateness_ms: dist.clone(),
        ttft_from_scheduled_ms: dist.clone(),
        e2e_from_scheduled_ms: dist.clone(),
        steady_request_throughput_rps: Some(2.0),
        steady_output_throughput_tok_s: Some(500.0),
        ..OpenLoopAggregate::default()
    });
    aggregate.engine_timings = Some(EngineTimingsAggregate {
        n: 64,
        prefill_ms: dist.clone(),
        tpot_ms: dist.clone(),
        ttft_over_prefill_ms: dist.clone(),
        n_ttft_below_prefill: 0,
        tpot_ratio: dist,
    });
    suite
}

fn row_metrics(suite: &SuiteResults) -> BTreeSet<&'static str> {
    tables(suite)
        .iter()
        .flat_map(|table| table.rows.iter().map(|row| row.metric))
        .collect()
}

#[test]
fn every_row_of_the_comparison_has_a_definition() {
    let unified = every_row();
    let mut on_vram = unified.clone();
    for engine in &mut on_vram.engines {
        for scenario in engine
            .telemetry
            .iter_mut()
            .flat_map(|t| t.gpu.iter_mut())
            .flat_map(|gpu| gpu.scenarios.iter_mut())
        {
            for device in &mut scenario.devices {
                device.memory_kind = Some(GpuMemoryKind::Vram);
            }
        }
    }
    let mut produced = row_metrics(&unified);
    produced.extend(row_metrics(&on_vram));
    let undefined: Vec<_> = produced
        .iter()
        .filter(|metric| definition_of(metric).is_none())
        .collect();
    assert!(
        undefined.is_empty(),
        "rows without a metric definition (add one to METRIC_DEFINITIONS): {undefined:?}"
    );
    // And the fixture still produces every row a definition names, so a
    // row that drops out of it is noticed too.
    let defined: BTreeSet<&str> = METRIC_DEFINITIONS
        .iter()
        .flat_map(|definition| definition.metrics.iter().copied())
        .collect();
    let missing: Vec<_> = defined.difference(&produced).collect();
    assert!(
        missing.is_empty(),
        "rows the fixture no longer produces: {missing:?}"
    );
    // Every renderer ends with the definitions, these among them.
    for text in renders(&unified) {
        for needle in [
            "GPU power mean and peak, GPU temperature peak:",
            "GPU memory peak (unified host memory): on a GPU that shares",
            "energy per output token:",
            "output tokens per joule",
            "prefix-cache hit rate:",
            "warm prefix cache (flagged)",
            "KV-cache usage peak, queued requests peak:",
            "TTFT and ITL means (results.json only)",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in\n{text}");
        }
    }
}

#[test]
fn a_report_defines_the_rows_it_has() {
    let text = render::text::render(&every_row(), TextStyle { color: false });
    let (_, list) = text
        .split_once("Metric definitions\n")
        .expect("a definitions list");
    // One per line, without the list's indent (which the snapshot would
    // take for its own).
    let definitions: String = list
        .lines()
        .map(|line| format!("{}\n", line.trim()))
        .collect();
    expect![[r#"
          TTFT: from sending the request to the first chunk carrying non-empty content or reasoning
          TTFO: from sending the request to the first answer chunk after reasoning chunks (reasoning models only); reasoning tokens: the engine's count of them, else counted per chunk
          ITL: gap between two successive token-carrying chunks
          TPOT: (E2E - TTFT) / (output tokens - 1), per request
          E2E: from sending the request to the end of the response
          decode tok/s: (output tokens - 1) / (E2E - TTFT); prompt tok/s: input tokens / TTFT
          output throughput and req/s: successful output tokens and requests over the scenario's wall time
          failed: requests that got no complete response (an HTTP error, a refused or reset connection, a timeout, a cut or malformed stream), left out of every latency and throughput (results.json counts them by class)
          open loop: send lateness is how long after its scheduled arrival a request was sent, and 'from schedule' adds it to TTFT and E2E; steady throughputs count the requests that ended between 10 % of the arrival span and the last arrival
          token counts: the engine's usage; counted chunks when it sent none (flagged)
          port open, time to healthy: from creating the container to the first TCP connection its host port accepts, and to the first 200 from its health path
          model size: the model's files on disk, found from the service's command and mounts (a GGUF, a model directory, a Hugging Face snapshot's blobs, each file once)
          runtime memory peak: the highest sample in the scenario of the engine container's memory as docker stats shows it (usage less the inactive page cache), or of a local process's resident set; sampled every 500 ms (Docker publishes once a second); CPU mean: 100 % is one core
          GPU power mean and peak, GPU temperature peak: over the GPU readings in the scenario (about every 500 ms), the mean summed over devices and the peaks of the highest device
          GPU memory peak (unified host memory): on a GPU that shares the host's memory (GB10), the host's memory in use by every process at its highest in the scenario, MemTotal - MemAvailable
          energy per output token: the GPUs' energy over the scenario (their energy counter, else the power readings integrated) over its successful output tokens; results.json also has its inverse, output tokens per joule
          prefix-cache hit rate: the prompt tokens the engine served from its prefix cache over those it was asked for, from its own metrics (llama-server: its per-response timings); warm prefix cache (flagged): a hit rate above 0 in a scenario whose prompts share no prefix
          KV-cache usage peak, queued requests peak: the highest KV-cache usage and number of waiting requests the engine's own metrics showed, read about once a second during the scenario and once after it; the engine's TTFT and ITL means (results.json only) are its own histograms' sum over count across the scenario
          engine-reported prefill and TPOT: llama-server's own timings (prompt_ms; predicted_ms / (predicted tokens - 1)); TTFT over engine prefill is our TTFT less its prefill, and TPOT ours / engine's is 1.00 where the clocks agree
          percentiles over requests: nearest rank on a histogram with 3 significant digits (error <= 0.1 %); with fewer than 20 samples no p99 is shown, the largest value is (marked max), and n is the row 'n (successful requests)' of each scenario
          mean ± sd: the mean over the successful requests and their population standard deviation (a one-at-a-time scenario's requests are its iterations)
          winner (the trophy): the best value, only where it leads the next by more than the standard deviations of both (by 5 % on rows without one: throughputs, counts); otherwise the row says tie
    "#]].assert_eq(&definitions);
    // Without a GPU, nothing about GPUs is defined.
    let plain = render::text::render(&common::suite(), TextStyle { color: false });
    assert!(!plain.contains("GPU memory peak"), "{plain}");
}
