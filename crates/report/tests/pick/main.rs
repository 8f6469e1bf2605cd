//! The pick on crafted results: each use case's winner, ties inside the
//! noise, a missing figure, a failed engine, and the section every renderer
//! opens with (snapshots; `UPDATE_EXPECT=1` rewrites them).

mod saturation;
mod snapshots;

use std::collections::BTreeMap;

use spark_report::pick::{pick, use_case};
use spark_results::{
    Arrival, CalibrationMethod, Distribution, Endpoint, EngineInfo, EngineOutcome, EngineRun,
    PickVerdict, RunResults, ScenarioAggregate, ScenarioConfig, ScenarioResult, SuiteResults,
};

/// A distribution of `n` requests around `p50` with standard deviation `sd`.
fn dist(p50: f64, sd: f64) -> Distribution {
    Distribution {
        n: 10,
        mean: Some(p50),
        stddev: Some(sd),
        min: Some(p50 - sd),
        p50: Some(p50),
        p90: Some(p50 + sd),
        p95: Some(p50 + sd),
        p99: Some(p50 + 2.0 * sd),
        max: Some(p50 + 2.0 * sd),
    }
}

/// What one scenario measured: TTFT and decode (p50, sd), output tok/s.
#[derive(Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) ttft: (f64, f64),
    pub(crate) decode: (f64, f64),
    pub(crate) output_tok_s: f64,
}

pub(crate) fn scenario(
    name: &str,
    input_tokens: u32,
    concurrency: u32,
    m: Measured,
) -> ScenarioResult {
    ScenarioResult {
        name: name.to_owned(),
        config: ScenarioConfig {
            endpoint: Endpoint::Chat,
            input_tokens,
            max_tokens: 100,
            temperature: 0.7,
            requests: 10,
            concurrency,
            arrival: Arrival::Closed,
            shared_prefix_tokens: 0,
            exact_output: true,
            duration_s: None,
        },
        discarded: false,
        notes: Vec::new(),
        stopped: None,
        not_run: None,
        sweep: None,
        slo: None,
        aggregate: ScenarioAggregate {
            n_requests: 10,
            n_ok: 10,
            n_failed: 0,
            failures_by_class: BTreeMap::new(),
            n_short_outputs: 0,
            n_estimated_output_tokens: 0,
            duration_s: 10.0,
            input_tokens_total: Some(u64::from(input_tokens) * 10),
            output_tokens_total: 1000,
            request_throughput_rps: 1.0,
            input_throughput_tok_s: None,
            output_throughput_tok_s: m.output_tok_s,
            ttft_ms: dist(m.ttft.0, m.ttft.1),
            ttfo_ms: Distribution::default(),
            reasoning_tokens: Distribution::default(),
            tpot_ms: dist(1000.0 / m.decode.0, 1.0),
            itl_ms: dist(1000.0 / m.decode.0, 1.0),
            e2e_ms: dist(m.ttft.0 + 100_000.0 / m.decode.0, 10.0),
            prompt_tok_s: dist(1000.0, 10.0),
            decode_tok_s: dist(m.decode.0, m.decode.1),
            output_tok_s: dist(m.decode.0 * 0.9, m.decode.1),
            open_loop: None,
            engine_timings: None,
        },
        engine_counters: None,
        requests: Vec::new(),
    }
}

/// One engine: its latency scenario (one user, 50 tokens), its throughput
/// (c=16) and its long contexts (one user; length, TTFT p50, sd).
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) ttft: (f64, f64),
    pub(crate) decode: (f64, f64),
    pub(crate) throughput: f64,
    pub(crate) long: &'static [(u32, f64, f64)],
}

pub(crate) fn engine(spec: &Spec) -> EngineRun {
    let latency = Measured {
        ttft: spec.ttft,
        decode: spec.decode,
        output_tok_s: spec.decode.0,
    };
    let mut scenarios = vec![
        scenario("latency", 50, 1, latency),
        scenario(
            "throughput",
            256,
            16,
            Measured {
                output_tok_s: spec.throughput,
                ttft: (spec.ttft.0 * 4.0, spec.ttft.1),
                ..latency
            },
        ),
    ];
    for &(tokens, ttft, sd) in spec.long {
        scenarios.push(scenario(
            &format!("long-context-{}k", tokens / 1024),
            tokens,
            1,
            Measured {
                ttft: (ttft, sd),
                ..latency
            },
        ));
    }
    EngineRun {
        service: spec.name.to_owned(),
        flavor: "vllm".to_owned(),
        model: Some(format!("{}-model", spec.name)),
        outcome: EngineOutcome::Ok,
        startup: None,
        provenance: None,
        results: Some(RunResults {
            schema_version: spark_results::SCHEMA_VERSION,
            tool: "spark-perf 0.1.0".to_owned(),
            started_unix_ms: 1_795_441_408_000,
            engine: EngineInfo {
                url: "http://127.0.0.1:8000".to_owned(),
                model: format!("{}-model", spec.name),
                max_model_len: Some(32_768),
                prompt_calibration: CalibrationMethod::Tokenize,
                ignore_eos_honoured: Some(true),
                notes: Vec::new(),
            },
            scenarios,
            stopped: None,
            capacity: None,
        }),
        telemetry: None,
    }
}

pub(crate) fn suite(engines: Vec<EngineRun>) -> SuiteResults {
    SuiteResults {
        schema_version: spark_results::SUITE_SCHEMA_VERSION,
        tool: "spark-perf 0.1.0".to_owned(),
        started_unix_ms: 1_795_441_408_000,
        finished_unix_ms: Some(1_795_441_708_000),
        complete: true,
        stopped: None,
        source: "compose/sim.yml (project sim)".to_owned(),
        pick: None,
        engines,
        displaced: Vec::new(),
        gpu: None,
    }
}

/// Three engines that each win something: `snappy` answers first, `bulk`
/// has the throughput and the fastest 8K prefill, `small` ran only 1K, the
/// longest context all three share, where it is fastest.
pub(crate) fn three() -> Vec<EngineRun> {
    vec![
        engine(&Spec {
            name: "snappy",
            ttft: (50.0, 5.0),
            decode: (40.0, 2.0),
            throughput: 500.0,
            long: &[(1024, 200.0, 10.0), (8192, 900.0, 40.0)],
        }),
        engine(&Spec {
            name: "bulk",
            ttft: (100.0, 5.0),
            decode: (80.0, 2.0),
            throughput: 1000.0,
            long: &[(1024, 150.0, 10.0), (8192, 600.0, 40.0)],
        }),
        engine(&Spec {
            name: "small",
            ttft: (200.0, 10.0),
            decode: (30.0, 2.0),
            throughput: 300.0,
            long: &[(1024, 100.0, 5.0)],
        }),
    ]
}

#[test]
fn each_use_case_has_its_winner_and_margin_over_the_next() {
    let pick = pick(&suite(three()));
    let chat = use_case(&pick, "interactive chat").expect("chat");
    assert_eq!(chat.verdict, PickVerdict::Winner);
    assert_eq!(chat.best.as_deref(), Some("snappy"));
    assert_eq!(chat.next, ["bulk"]);
    assert_eq!(chat.margin_pct, Some(50.0));
    assert_eq!(
        chat.line,
        "snappy: 50 % lower TTFT at c=1 than bulk (50.0 vs 100.0 ms)"
    );
    let batch = use_case(&pick, "batch").expect("batch");
    assert_eq!(
        batch.line,
        "bulk: 100 % higher output tok/s at saturation than snappy (1000.0 vs 500.0 tok/s)"
    );
    // bulk is fastest at 8K, but small never ran 8K: 1K is the longest
    // context all three ran, and there small wins.
    let long = use_case(&pick, "long documents").expect("long");
    assert_eq!(long.best.as_deref(), Some("small"));
    assert_eq!(
        long.line,
        "small: 33 % lower TTFT at 1024 input tokens than bulk (100.0 vs 150.0 ms)"
    );
    // Each engine's own longest context in the summary.
    let longest: Vec<_> = pick
        .summary
        .iter()
        .map(|row| {
            (
                row.longest_context_tokens,
                row.longest_context_ttft_ms.value,
            )
        })
        .collect();
    assert_eq!(
        longest,
        [
            (Some(8192), Some(900.0)),
            (Some(8192), Some(600.0)),
            (Some(1024), Some(100.0))
        ]
    );
}

#[test]
fn figures_nothing_measured_are_na_with_the_reason() {
    let pick = pick(&suite(three()));
    for (name, reason) in [
        ("capacity", "needs the concurrency sweep and an SLO"),
        ("memory-constrained", "no telemetry in these results"),
    ] {
        let verdict = use_case(&pick, name).expect("use case");
        assert_eq!(verdict.verdict, PickVerdict::NotAvailable, "{name}");
        assert!(verdict.line.starts_with("N/A: "), "{}", verdict.line);
        assert!(verdict.line.contains(reason), "{}", verdict.line);
    }
    let row = &pick.summary[0];
    assert_eq!(row.model_size_gb.value, None);
    assert_eq!(
        row.runtime_memory_gb.not_available.as_deref(),
        Some("not measured (no telemetry in these results)")
    );
}

#[test]
fn the_smallest_runtime_memory_wins_memory_constrained_and_sizes_are_in_the_summary() {
    let mut engines = three();
    for (engine, (peak_gb, model_gb)) in
        engines
            .iter_mut()
            .zip([(40.0, 30.5), (22.0, 16.0), (0.0, 0.0)])
    {
        if peak_gb == 0.0 {
            // The third has a telemetry that could not read memory.
            engine.telemetry = Some(spark_results::EngineTelemetry {
                unavailable: Some("the daemon refused the stats".to_owned()),
                model_size: spark_results::ModelSize::unavailable("inside the image"),
                ..Default::default()
            });
            continue;
        }
        engine.telemetry = Some(spark_results::EngineTelemetry {
            source: Some("docker stats".to_owned()),
            scenarios: vec![spark_results::ScenarioUsage {
                name: "latency".to_owned(),
                memory_peak_bytes: Some((peak_gb * 1e9) as u64),
                ..Default::default()
            }],
            model_size: spark_results::ModelSize {
                bytes: Some((model_gb * 1e9) as u64),
                path: Some("/models/m.gguf".to_owned()),
                kind: Some("gguf".to_owned()),
                unavailable: None,
            },
            ..Default::default()
        });
    }
    let names: Vec<String> = engines.iter().map(|e| e.service.clone()).collect();
    let pick = pick(&suite(engines));
    let verdict = use_case(&pick, "memory-constrained").expect("use case");
    assert_eq!(verdict.verdict, PickVerdict::Winner, "{}", verdict.line);
    assert!(verdict.line.starts_with(&names[1]), "{}", verdict.line);
    assert!(
        verdict
            .left_out
            .iter()
            .any(|l| l.contains("the daemon refused the stats")),
        "{:?}",
        verdict.left_out
    );
    assert_eq!(pick.summary[1].model_size_gb.value, Some(16.0));
    assert_eq!(pick.summary[0].runtime_memory_gb.value, Some(40.0));
    assert_eq!(
        pick.summary[2].model_size_gb.not_available.as_deref(),
        Some("inside the image")
    );
}

#[test]
fn a_lead_inside_the_noise_is_a_tie_and_decode_breaks_a_ttft_tie() {
    let pair = |a_ttft: f64, a_decode: f64, throughput: f64| {
        suite(vec![
            engine(&Spec {
                name: "alpha",
                ttft: (a_ttft, 10.0),
                decode: (a_decode, 2.0),
                throughput,
                long: &[],
            }),
            engine(&Spec {
                name: "beta",
                ttft: (100.0, 10.0),
                decode: (50.0, 2.0),
                throughput: 1000.0,
                long: &[],
            }),
        ])
    };
    // TTFT 95 ± 10 against 100 ± 10, decode 51 ± 2 against 50 ± 2, and a
    // throughput 3 % apart (no spread: the 5 % rule): ties, all of them.
    let tied = pick(&pair(95.0, 51.0, 1030.0));
    let chat = use_case(&tied, "interactive chat").expect("chat");
    assert_eq!(chat.verdict, PickVerdict::Tie);
    assert_eq!(chat.best.as_deref(), Some("alpha"));
    assert_eq!(chat.next, ["beta"]);
    assert_eq!(
        chat.line,
        "tie: alpha, beta within the noise on TTFT at c=1 (95.0 vs 100.0 ms); decode a tie too"
    );
    let batch = use_case(&tied, "batch").expect("batch");
    assert_eq!(batch.verdict, PickVerdict::Tie);
    assert_eq!(batch.margin_pct, None);
    // The same TTFT tie, but beta decodes far faster: beta wins chat.
    let broken = pick(&pair(95.0, 20.0, 1030.0));
    let chat = use_case(&broken, "interactive chat").expect("chat");
    assert_eq!(chat.verdict, PickVerdict::Winner);
    assert_eq!(chat.best.as_deref(), Some("beta"));
    assert_eq!(
        chat.line,
        "beta: TTFT at c=1 a tie with alpha within the noise; 150 % higher single-user decode (50.0 vs 20.0 tok/s)"
    );
}

#[test]
fn an_engine_missing_a_figure_is_left_out_of_that_use_case_with_the_reason() {
    let mut engines = three();
    let results = engines[0].results.as_mut().expect("results");
    results.scenarios[0].not_run = Some("no prompt of 50 tokens could be established".to_owned());
    let pick = pick(&suite(engines));
    let row = &pick.summary[0];
    assert_eq!(row.ttft_c1_ms.value, None);
    assert_eq!(
        row.ttft_c1_ms.not_available.as_deref(),
        Some("latency not run: no prompt of 50 tokens could be established")
    );
    // Without snappy, bulk has the lowest TTFT at c=1.
    let chat = use_case(&pick, "interactive chat").expect("chat");
    assert_eq!(chat.best.as_deref(), Some("bulk"));
    assert_eq!(
        chat.left_out,
        ["snappy: latency not run: no prompt of 50 tokens could be established"]
    );
    // Its other figures still count.
    assert_eq!(
        use_case(&pick, "batch").and_then(|u| u.next.first().cloned()),
        Some("snappy".to_owned())
    );

    // With one engine left to compare, there is no pick.
    let mut two = three();
    two.truncate(2);
    two[1].results.as_mut().expect("results").scenarios[0].not_run = Some("skipped".to_owned());
    let alone = spark_report::pick::pick(&suite(two));
    let chat = use_case(&alone, "interactive chat").expect("chat");
    assert_eq!(chat.verdict, PickVerdict::NotAvailable);
    assert_eq!(
        chat.line,
        "N/A: only snappy has TTFT at c=1, nothing to compare it with"
    );
    assert_eq!(chat.left_out, ["bulk: latency not run: skipped"]);
}

#[test]
fn a_failed_engine_is_excluded_with_the_reason_even_with_better_figures() {
    let mut engines = three();
    let mut failed = engine(&Spec {
        name: "crashy",
        ttft: (5.0, 1.0),
        decode: (500.0, 2.0),
        throughput: 9000.0,
        long: &[(1024, 10.0, 1.0)],
    });
    failed.outcome = EngineOutcome::Failed {
        phase: "scenarios".to_owned(),
        reason: "the engine stopped answering\n(connection refused)".to_owned(),
    };
    engines.push(failed);
    let pick = pick(&suite(engines));
    let row = pick.summary.last().expect("row");
    assert_eq!(
        row.excluded.as_deref(),
        Some("failed in scenarios: the engine stopped answering (connection refused)")
    );
    assert_eq!(row.ttft_c1_ms.value, None);
    for verdict in &pick.use_cases {
        assert_ne!(verdict.best.as_deref(), Some("crashy"), "{verdict:?}");
        assert!(!verdict.next.iter().any(|n| n == "crashy"), "{verdict:?}");
    }
    assert_eq!(
        use_case(&pick, "interactive chat").and_then(|u| u.best.clone()),
        Some("snappy".to_owned())
    );
}

#[test]
fn the_pick_does_not_depend_on_the_order_engines_ran_in() {
    let forward = pick(&suite(three()));
    let mut reversed = three();
    reversed.reverse();
    let backward = pick(&suite(reversed));
    assert_eq!(forward.use_cases, backward.use_cases);
    // Equal figures tie, the names in order.
    let twins = |first: &'static str, second: &'static str| {
        let spec = |name| Spec {
            name,
            ttft: (100.0, 5.0),
            decode: (50.0, 2.0),
            throughput: 1000.0,
            long: &[],
        };
        pick(&suite(vec![engine(&spec(first)), engine(&spec(second))]))
    };
    let ab = twins("a-engine", "b-engine");
    let ba = twins("b-engine", "a-engine");
    assert_eq!(ab.use_cases, ba.use_cases);
    let chat = use_case(&ab, "interactive chat").expect("chat");
    assert_eq!(chat.best.as_deref(), Some("a-engine"));
    assert_eq!(chat.verdict, PickVerdict::Tie);
}

#[test]
fn the_largest_sweep_level_within_the_slo_wins_capacity() {
    let mut engines = three();
    for (engine, level) in engines.iter_mut().zip([Some(8), Some(32), None]) {
        let results = engine.results.as_mut().expect("results");
        results.capacity = Some(spark_results::Capacity {
            max_concurrency: level,
            ..Default::default()
        });
    }
    let names: Vec<String> = engines.iter().map(|e| e.service.clone()).collect();
    let pick = pick(&suite(engines));
    let verdict = use_case(&pick, "capacity").expect("use case");
    assert_eq!(verdict.verdict, PickVerdict::Winner, "{}", verdict.line);
    assert!(verdict.line.starts_with(&names[1]), "{}", verdict.line);
    assert!(
        verdict
            .left_out
            .iter()
            .any(|l| l.contains("no level of the concurrency sweep met the SLO")),
        "{:?}",
        verdict.left_out
    );
    assert_eq!(pick.summary[0].capacity_within_slo.value, Some(8.0));
}
