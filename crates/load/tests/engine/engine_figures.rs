//! What the engine says about itself, read beside what the client measured:
//! llama-server's per-response `timings` and the engine's Prometheus
//! counters before and after a scenario, against spark-sim (whose
//! `llamacpp` flavor sends both from its own clock and counts).

use spark_load::RunOptions;
use spark_sim::Flavor;

use crate::common;

/// Prefill and decode slow enough to be measured in milliseconds.
fn timed(args: &mut spark_sim::SimArgs) {
    args.flavor = Flavor::Llamacpp;
    args.prefill_base_ms = Some(8.0);
    args.decode_ms = Some(4.0);
}

#[tokio::test]
async fn llamacpp_timings_are_recorded_and_agree_with_the_client_clock() {
    let _serial = common::serial().await;
    let sim = common::start(timed);
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("timings", 64, 24, 8, 2),
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.aggregate.n_ok, 8, "{:?}", result.aggregate);
    let ids: Vec<&str> = result
        .requests
        .iter()
        .map(|r| r.request_id.as_str())
        .collect();
    let truth = sim.truth_for(&ids);
    for record in &result.requests {
        let timings = record.engine_timings.as_ref().expect("timings sent");
        let t = &truth[&record.request_id];
        // The engine's own counts are the sim's.
        assert_eq!(
            timings.predicted_n,
            Some(t.completion_tokens),
            "{timings:?}"
        );
        assert_eq!(timings.prompt_n, record.input_tokens, "{timings:?}");
        // Our TTFT contains the engine's prefill: never below it.
        let prompt_ms = timings.prompt_ms.expect("prompt_ms");
        let ttft = record.ttft_ms.expect("ttft");
        assert!(ttft >= prompt_ms, "TTFT {ttft} < prompt_ms {prompt_ms}");
        assert!(
            prompt_ms >= 8.0,
            "the sim's prefill is at least 8 ms: {prompt_ms}"
        );
    }
    let engine_agg = result
        .aggregate
        .engine_timings
        .as_ref()
        .expect("an aggregate of the engine's timings");
    assert_eq!(engine_agg.n, 8);
    assert_eq!(engine_agg.n_ttft_below_prefill, 0);
    // Bounds (docs/METRICS.md): loopback adds well under 10 ms to the
    // engine's prefill at the median, and under 100 ms at p99 on a busy
    // machine; client TPOT is within 5 % of the engine's at the median.
    let over = &engine_agg.ttft_over_prefill_ms;
    assert!(over.p50.expect("p50") < 10.0, "{over:?}");
    assert!(over.max.expect("max") < 100.0, "{over:?}");
    let ratio = engine_agg.tpot_ratio.p50.expect("ratio p50");
    assert!((0.95..=1.05).contains(&ratio), "client/engine TPOT {ratio}");
    let engine_tpot = engine_agg.tpot_ms.p50.expect("engine tpot");
    assert!(
        (3.5..8.0).contains(&engine_tpot),
        "engine TPOT {engine_tpot}"
    );
}

#[tokio::test]
async fn engines_without_timings_record_none() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.flavor = Flavor::Vllm);
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("no-timings", 32, 8, 2, 1),
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.aggregate.n_ok, 2);
    assert!(result.requests.iter().all(|r| r.engine_timings.is_none()));
    assert!(result.aggregate.engine_timings.is_none());
}

#[tokio::test]
async fn engine_counters_count_what_the_scenario_sent() {
    let _serial = common::serial().await;
    for (flavor, prompt, generated) in [
        (
            Flavor::Llamacpp,
            "llamacpp:prompt_tokens_total",
            "llamacpp:tokens_predicted_total",
        ),
        (
            Flavor::Vllm,
            "vllm:prompt_tokens_total",
            "vllm:generation_tokens_total",
        ),
    ] {
        let sim = common::start(|args| {
            args.flavor = flavor;
            args.no_prefix_cache = true;
        });
        let engine = common::connect(&sim).await;
        let result = common::run_one(
            &engine,
            &common::scenario("counted", 48, 16, 6, 3),
            &RunOptions::default(),
        )
        .await;
        assert_eq!(result.aggregate.n_ok, 6, "{flavor:?}");
        let counters = result.engine_counters.as_ref().expect("counters read");
        assert_eq!(counters.path, "/metrics");
        assert_eq!(counters.error, None);
        let sent_in = result.aggregate.input_tokens_total.expect("usage") as f64;
        let sent_out = result.aggregate.output_tokens_total as f64;
        // Calibration and probes ran before the first read: only the
        // scenario's own requests are in the difference.
        assert_eq!(
            counters.delta(prompt),
            Some(sent_in),
            "{flavor:?} {counters:?}"
        );
        assert_eq!(
            counters.delta(generated),
            Some(sent_out),
            "{flavor:?} {counters:?}"
        );
    }
}

#[tokio::test]
async fn an_engine_without_metrics_records_none() {
    let _serial = common::serial().await;
    // llama-server started without `--metrics` answers /metrics with 501.
    let sim = common::start(|args| {
        args.flavor = Flavor::Llamacpp;
        args.no_metrics = true;
    });
    let engine = common::connect(&sim).await;
    for name in ["first", "second"] {
        let result = common::run_one(
            &engine,
            &common::scenario(name, 32, 4, 1, 1),
            &RunOptions::default(),
        )
        .await;
        assert_eq!(result.aggregate.n_ok, 1);
        assert!(
            result.engine_counters.is_none(),
            "{:?}",
            result.engine_counters
        );
    }
}
