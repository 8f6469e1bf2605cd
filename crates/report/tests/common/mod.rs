//! The fixed result set the report tests share: two measured engines and one
//! that crashed while loading.

use std::collections::BTreeMap;

use spark_results::{
    Arrival, CalibrationMethod, Distribution, Endpoint, EngineInfo, EngineOutcome, EngineRun,
    Provenance, RunResults, ScenarioAggregate, ScenarioConfig, ScenarioResult, StartupCost,
    SuiteResults,
};

fn dist(mean: f64, p50: f64, p99: f64) -> Distribution {
    Distribution {
        n: 64,
        mean: Some(mean),
        stddev: Some(mean / 10.0),
        min: Some(p50 * 0.8),
        p50: Some(p50),
        p90: Some((p50 + p99) / 2.0),
        p95: Some((p50 + 3.0 * p99) / 4.0),
        p99: Some(p99),
        max: Some(p99 * 1.1),
    }
}

fn scenario(name: &str, speed: f64, n_failed: u32) -> ScenarioResult {
    ScenarioResult {
        name: name.to_owned(),
        config: ScenarioConfig {
            endpoint: Endpoint::Chat,
            input_tokens: 1024,
            max_tokens: 256,
            temperature: 0.0,
            requests: 64,
            concurrency: 16,
            arrival: Arrival::Closed,
            shared_prefix_tokens: 0,
            exact_output: true,
            duration_s: None,
        },
        discarded: false,
        notes: Vec::new(),
        stopped: None,
        not_run: None,
        aggregate: ScenarioAggregate {
            n_requests: 64,
            n_ok: 64 - n_failed,
            n_failed,
            failures_by_class: BTreeMap::new(),
            n_short_outputs: 0,
            n_estimated_output_tokens: 0,
            duration_s: 20.0 / speed,
            input_tokens_total: Some(65_536),
            output_tokens_total: 16_384,
            request_throughput_rps: 3.2 * speed,
            input_throughput_tok_s: Some(3276.8 * speed),
            output_throughput_tok_s: 819.2 * speed,
            ttft_ms: dist(120.0 / speed, 110.0 / speed, 300.0 / speed),
            ttfo_ms: Distribution::default(),
            reasoning_tokens: Distribution::default(),
            tpot_ms: dist(15.0 / speed, 15.0 / speed, 18.0 / speed),
            itl_ms: dist(15.0 / speed, 14.5 / speed, 25.0 / speed),
            e2e_ms: dist(4000.0 / speed, 3900.0 / speed, 4800.0 / speed),
            prompt_tok_s: dist(9000.0 * speed, 9300.0 * speed, 3400.0 * speed),
            decode_tok_s: dist(66.0 * speed, 67.0 * speed, 55.0 * speed),
            output_tok_s: dist(64.0 * speed, 65.0 * speed, 53.0 * speed),
            open_loop: None,
            engine_timings: None,
        },
        engine_counters: None,
        sweep: None,
        slo: None,
        requests: Vec::new(),
    }
}

fn engine(service: &str, speed: f64, healthy_s: f64) -> EngineRun {
    let mut results = RunResults {
        schema_version: spark_results::SCHEMA_VERSION,
        tool: "spark-perf 0.1.0".to_owned(),
        started_unix_ms: 1_795_441_408_000,
        engine: EngineInfo {
            url: "http://127.0.0.1:8000".to_owned(),
            model: format!("{service}-model"),
            max_model_len: Some(32_768),
            prompt_calibration: CalibrationMethod::Tokenize,
            ignore_eos_honoured: Some(true),
            notes: Vec::new(),
        },
        scenarios: vec![scenario("throughput", speed, 0)],
        stopped: None,
        capacity: None,
    };
    if speed < 1.0 {
        let mut short = scenario("long-context-32k", speed, 2);
        short
            .notes
            .push("input clamped to 16284 tokens: max_model_len 16384 − max_tokens 100".to_owned());
        short.aggregate.n_short_outputs = 3;
        results.scenarios.push(short);
    }
    EngineRun {
        service: service.to_owned(),
        flavor: "vllm".to_owned(),
        model: Some(format!("{service}-model")),
        outcome: EngineOutcome::Ok,
        startup: Some(StartupCost {
            created_s: 0.05,
            started_s: 0.4,
            port_open_s: Some(healthy_s / 2.0),
            healthy_s: Some(healthy_s),
        }),
        provenance: Some(Provenance {
            image: "spark-sim:dev".to_owned(),
            image_id: Some("sha256:c7d709e1953a".to_owned()),
            repo_digests: Vec::new(),
            command: vec!["--profile".to_owned(), service.to_owned()],
            env_names: vec!["HF_TOKEN".to_owned()],
            config_hash: Some("abc123".to_owned()),
            engine_version: Some("0.11.0".to_owned()),
        }),
        results: Some(results),
        telemetry: None,
    }
}

pub(crate) fn suite() -> SuiteResults {
    SuiteResults {
        schema_version: spark_results::SUITE_SCHEMA_VERSION,
        tool: "spark-perf 0.1.0".to_owned(),
        started_unix_ms: 1_795_441_408_000,
        finished_unix_ms: Some(1_795_441_708_000),
        complete: true,
        stopped: None,
        source: "compose/sim.yml (project sim)".to_owned(),
        pick: None,
        displaced: Vec::new(),
        gpu: None,
        engines: vec![
            EngineRun {
                telemetry: Some(telemetry(&["warmup", "throughput"], 17.0)),
                ..engine("fp8-moe", 2.0, 12.5)
            },
            EngineRun {
                // Read nothing: the reason is said once, not per row.
                telemetry: Some(spark_results::EngineTelemetry {
                    unavailable: Some("docker stats: the daemon refused".to_owned()),
                    model_size: spark_results::ModelSize::unavailable(
                        "the model /models/bf16 is inside the image (no mount covers it)",
                    ),
                    ..Default::default()
                }),
                ..engine("bf16-dense", 0.5, 30.25)
            },
            EngineRun {
                service: "crashy".to_owned(),
                flavor: "vllm".to_owned(),
                model: None,
                outcome: EngineOutcome::Failed {
                    phase: "health".to_owned(),
                    reason: "container exited with code 2 while loading\nlast log line: error"
                        .to_owned(),
                },
                startup: None,
                provenance: None,
                results: None,
                telemetry: None,
            },
        ],
    }
}

/// Telemetry of an engine whose container was read every 500 ms over its
/// scenarios (`names`), memory growing from `base_gib`, and its GGUF found.
#[allow(dead_code)] // not every test binary uses every fixture
pub(crate) fn telemetry(names: &[&str], base_gib: f64) -> spark_results::EngineTelemetry {
    use spark_results::{EngineTelemetry, ModelSize, ScenarioUsage, UsageSample};
    let gib = |x: f64| (x * (1u64 << 30) as f64) as u64;
    let mut samples = Vec::new();
    let mut scenarios = Vec::new();
    for (idx, name) in names.iter().enumerate() {
        let start_s = idx as f64 * 10.0;
        for step in 0..20 {
            let t_s = start_s + f64::from(step) * 0.5;
            samples.push(UsageSample {
                t_s,
                memory_bytes: Some(gib(base_gib + idx as f64 * 0.5 + f64::from(step) * 0.01)),
                cpu_percent: (t_s > 0.0).then_some(90.0 + f64::from(step)),
            });
        }
        scenarios.push(ScenarioUsage {
            name: (*name).to_owned(),
            start_s,
            end_s: start_s + 9.5,
            n_samples: 20,
            memory_peak_bytes: Some(gib(base_gib + idx as f64 * 0.5 + 0.19)),
            memory_mean_bytes: Some(gib(base_gib + idx as f64 * 0.5 + 0.095)),
            cpu_peak_percent: Some(109.0),
            cpu_mean_percent: Some(99.5),
        });
    }
    EngineTelemetry {
        source: Some("docker stats".to_owned()),
        unavailable: None,
        interval_ms: 500,
        scenarios,
        samples,
        model_size: ModelSize {
            bytes: Some(gib(base_gib * 0.8)),
            path: Some("/srv/models/model.gguf".to_owned()),
            kind: Some("gguf".to_owned()),
            unavailable: None,
        },
        gpu: None,
        engine_metrics: Vec::new(),
    }
}

/// [`suite`] with a concurrency sweep on both measured engines (levels 1,
/// 4, 16; fp8-moe saturates at 4) judged against `ttft_p90=500ms,
/// tpot_p90=50ms`.
#[allow(dead_code)] // not every test binary uses every fixture
pub(crate) fn swept_suite() -> SuiteResults {
    use spark_results::{SloMetric, SloObjective, SloResult, SweepLevel};
    let mut suite = suite();
    for engine in suite.engines.iter_mut().take(2) {
        let speed = if engine.service == "fp8-moe" {
            2.0
        } else {
            0.5
        };
        let saturated_at = (speed > 1.0).then_some(4);
        let results = engine.results.as_mut().expect("results");
        for level in [1u32, 4, 16] {
            let mut s = scenario(&format!("sweep-c{level}"), speed, 0);
            s.config.concurrency = level;
            let load = f64::from(level);
            s.aggregate.ttft_ms = dist(
                40.0 * load / speed,
                38.0 * load / speed,
                90.0 * load / speed,
            );
            s.aggregate.tpot_ms = dist(
                10.0 * load.sqrt() / speed,
                10.0 * load.sqrt() / speed,
                14.0 * load.sqrt() / speed,
            );
            let steady = 100.0 * speed * load.min(if speed > 1.0 { 4.0 } else { 16.0 });
            s.sweep = Some(SweepLevel {
                level,
                steady_window_start_s: 1.0,
                steady_window_end_s: 9.0,
                steady_n_ok: 8 * level,
                steady_request_throughput_rps: Some(steady / 256.0),
                steady_output_throughput_tok_s: Some(steady),
                saturated_at,
            });
            let objective = |key: &str, metric, limit_ms: f64, value: Option<f64>| SloObjective {
                key: key.to_owned(),
                metric,
                percentile: 90,
                limit_ms,
                scenario_value_ms: value,
                met: value.is_some_and(|v| v <= limit_ms),
                n_met: 64,
            };
            let objectives = vec![
                objective("ttft_p90", SloMetric::Ttft, 500.0, s.aggregate.ttft_ms.p90),
                objective("tpot_p90", SloMetric::Tpot, 50.0, s.aggregate.tpot_ms.p90),
            ];
            s.slo = Some(SloResult {
                met: objectives.iter().all(|o| o.met),
                objectives,
                n_met: 64,
                goodput_rps: Some(3.2),
                met_share: Some(1.0),
            });
            results.scenarios.push(s);
        }
    }
    suite
}
