//! A failed calibration probe never sends a wrong prompt under the
//! scenario's name: transient failures are retried and the best bracket is
//! kept; when no length can be established the scenario is not run, and
//! says why.

use std::time::Duration;

use spark_load::{Engine, EngineConfig, RunOptions, Timeouts};
use spark_results::CalibrationMethod;
use spark_sim::Flavor;
use tokio_util::sync::CancellationToken;

use crate::common;

#[tokio::test]
async fn a_probe_over_its_timeout_means_not_run_with_the_reason() {
    let _serial = common::serial().await;
    // No /tokenize (trtllm): prompts are sized by usage probes, each a full
    // prefill of 1 ms per token, against a 2 s request limit.
    let sim = common::start(|args| {
        args.flavor = Flavor::Trtllm;
        args.max_model_len = 40_000;
        args.prefill_us_per_token = Some(1000.0);
    });
    let engine = Engine::connect(EngineConfig {
        timeouts: Timeouts {
            total: Duration::from_secs(2),
            ..Timeouts::default()
        },
        ..EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    assert_eq!(
        engine.info().prompt_calibration,
        CalibrationMethod::UsageProbe
    );
    let scenarios = [
        common::scenario("long-context-8k", 8192, 4, 2, 1),
        common::scenario("short", 300, 4, 2, 1),
    ];
    let mut sink = Vec::new();
    let results = tokio::time::timeout(
        Duration::from_secs(60),
        spark_load::run(
            &engine,
            &scenarios,
            &mut sink,
            &RunOptions::default(),
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("the run ends in time");
    assert_eq!(results.stopped, None);
    let long = &results.scenarios[0];
    let why = long.not_run.as_deref().expect("not run");
    assert!(
        why.contains("8192 tokens") && why.contains("timed out after 2 s"),
        "{why}"
    );
    assert!(long.requests.is_empty());
    assert_eq!(long.aggregate.n_requests, 0);
    // Nothing was sent under its name.
    assert!(sink.iter().all(|r| r.scenario != "long-context-8k"));
    // The next scenario ran, with its exact length.
    let short = &results.scenarios[1];
    assert_eq!(short.not_run, None);
    assert_eq!(short.requests.len(), 2);
    assert!(short.requests.iter().all(|r| r.input_tokens == Some(300)));
}

#[tokio::test]
async fn transient_probe_failures_still_give_exact_prompts() {
    let _serial = common::serial().await;
    // One generation in six fails with a 500, probes included.
    let sim = common::start(|args| {
        args.flavor = Flavor::Trtllm;
        args.max_model_len = 40_000;
        args.fail_rate = 0.15;
        args.seed = 3;
    });
    let engine = common::connect(&sim).await;
    assert_eq!(
        engine.info().prompt_calibration,
        CalibrationMethod::UsageProbe
    );
    for target in [1024, 8192] {
        let s = common::scenario("faulty", target, 4, 4, 1);
        let result = common::run_one(&engine, &s, &RunOptions::default()).await;
        assert_eq!(result.not_run, None);
        let ok: Vec<_> = result.requests.iter().filter(|r| r.is_ok()).collect();
        assert!(!ok.is_empty());
        assert!(
            ok.iter().all(|r| r.input_tokens == Some(target)),
            "{target}: {:?}",
            ok.iter().map(|r| r.input_tokens).collect::<Vec<_>>()
        );
    }
}
