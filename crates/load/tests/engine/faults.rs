//! Each sim fault becomes the right failure class; nothing panics; records
//! measured before a failure are kept; K consecutive failures stop a scenario.

use std::time::Duration;

use spark_load::{ApiKey, Engine, EngineConfig, RunOptions, Timeouts};
use spark_results::{FailureClass, TimeoutPhase};

use crate::common;

fn options(k: u32) -> RunOptions {
    RunOptions {
        max_consecutive_failures: k,
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn http_500_carries_status_and_server_message() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.fail_rate = 1.0);
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("fail", 20, 8, 10, 1),
        &options(3),
    )
    .await;
    // The worker may have started one more before the collector decided.
    assert!(
        (3..=4).contains(&result.requests.len()),
        "stopped after 3 consecutive failures"
    );
    let why = result.stopped.as_deref().expect("stopped early");
    assert!(
        why.contains("3 consecutive failures") && why.contains("http_status"),
        "{why}"
    );
    for record in &result.requests[..3] {
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(failure.class, FailureClass::HttpStatus);
        assert_eq!(failure.http_status, Some(500));
        assert_eq!(failure.message, "Internal server error");
    }
    let n_http = result
        .aggregate
        .failures_by_class
        .get("http_status")
        .copied()
        .unwrap_or(0);
    assert!(n_http >= 3, "{:?}", result.aggregate.failures_by_class);
}

#[tokio::test]
async fn some_failures_do_not_stop_the_scenario() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        args.fail_rate = 0.3;
        args.seed = 3;
    });
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("flaky", 20, 8, 40, 4),
        &options(10),
    )
    .await;
    assert!(result.stopped.is_none());
    assert_eq!(result.aggregate.n_requests, 40);
    assert!(
        result.aggregate.n_ok > 10 && result.aggregate.n_failed > 3,
        "{:?}",
        result.aggregate
    );
    assert_eq!(result.aggregate.ttft_ms.n, u64::from(result.aggregate.n_ok));
}

#[tokio::test]
async fn distributions_count_only_successful_requests() {
    let _serial = common::serial().await;
    // Streams longer than 5 tokens break after 5 token chunks (an in-band
    // error), so failed requests have gaps of their own, which must stay
    // out of `itl_ms`; HTTP 500s add failures without gaps.
    let sim = common::start(|args| {
        args.fail_rate = 0.2;
        args.seed = 5;
        args.error_after = Some(5);
    });
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    let results = [
        common::run_one(
            &engine,
            &common::scenario("mixed", 20, 4, 20, 2),
            &options(100),
        )
        .await,
        common::run_one(
            &engine,
            &common::scenario("failing", 20, 12, 6, 2),
            &options(100),
        )
        .await,
    ];
    for result in &results {
        let ok: Vec<_> = result.requests.iter().filter(|r| r.is_ok()).collect();
        let failed_gaps: u32 = result
            .requests
            .iter()
            .filter(|r| !r.is_ok())
            .map(|r| r.itl_count)
            .sum();
        let ok_gaps: u64 = ok.iter().map(|r| u64::from(r.itl_count)).sum();
        let a = &result.aggregate;
        assert_eq!(a.itl_ms.n, ok_gaps, "{}: {a:?}", result.name);
        assert_eq!(a.ttft_ms.n, ok.len() as u64);
        assert_eq!(a.e2e_ms.n, ok.len() as u64);
        if result.name == "failing" {
            assert!(failed_gaps > 0, "the failed requests had gaps");
            assert_eq!(a.itl_ms.n, 0);
        }
    }
    assert!(results[0].aggregate.n_ok > 0 && results[0].aggregate.itl_ms.n > 0);
}

#[tokio::test]
async fn in_band_error_is_a_stream_error() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.error_after = Some(5));
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("error", 20, 16, 2, 1),
        &options(10),
    )
    .await;
    for record in &result.requests {
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(failure.class, FailureClass::StreamError, "{failure:?}");
        assert_eq!(failure.message, "Internal server error");
        assert_eq!(record.token_chunks, 5);
        assert!(
            record.ttft_ms.is_some(),
            "times measured before the error are kept"
        );
    }
    // A stream shorter than the fault threshold is fine.
    let ok = common::run_one(
        &engine,
        &common::scenario("short", 20, 4, 2, 1),
        &options(10),
    )
    .await;
    assert_eq!(ok.aggregate.n_ok, 2);
}

#[tokio::test]
async fn disconnect_is_a_truncated_stream() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.disconnect_after = Some(5));
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("disconnect", 20, 16, 3, 1),
        &options(10),
    )
    .await;
    assert_eq!(result.requests.len(), 3);
    for record in &result.requests {
        let failure = record.failure.as_ref().expect("failed");
        assert!(
            matches!(failure.class, FailureClass::Truncated | FailureClass::Reset),
            "{failure:?}"
        );
        assert_eq!(record.token_chunks, 5, "{failure:?}");
    }
}

#[tokio::test]
async fn stall_times_out_between_tokens() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.stall_after = Some(3));
    let engine = Engine::connect(EngineConfig {
        timeouts: Timeouts {
            between_tokens: Duration::from_millis(300),
            ..Timeouts::default()
        },
        ..EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("stall", 20, 16, 2, 2),
        &options(10),
    )
    .await;
    for record in &result.requests {
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(failure.class, FailureClass::Timeout);
        assert_eq!(failure.phase, Some(TimeoutPhase::BetweenTokens));
        assert_eq!(record.token_chunks, 3);
        assert!(
            record.e2e_ms >= 300.0 && record.e2e_ms < 2_000.0,
            "{}",
            record.e2e_ms
        );
    }
}

#[tokio::test]
async fn first_token_timeout() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.prefill_base_ms = Some(2_000.0));
    let engine = Engine::connect(EngineConfig {
        timeouts: Timeouts {
            first_token: Duration::from_millis(200),
            ..Timeouts::default()
        },
        probe_ignore_eos: false,
        ..EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("slow", 20, 4, 1, 1),
        &options(10),
    )
    .await;
    let failure = result.requests[0].failure.as_ref().expect("failed");
    assert_eq!(failure.phase, Some(TimeoutPhase::FirstToken), "{failure:?}");
}

/// A first token that takes several between-token limits, but less than
/// the first-token limit, is no timeout: before the first token the timer
/// looks every between-token limit and waits on.
#[tokio::test]
async fn a_slow_first_token_within_its_limit_is_no_timeout() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.prefill_base_ms = Some(700.0));
    let engine = Engine::connect(EngineConfig {
        timeouts: Timeouts {
            first_token: Duration::from_secs(20),
            between_tokens: Duration::from_millis(150),
            ..Timeouts::default()
        },
        probe_ignore_eos: false,
        ..EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("slow", 20, 4, 2, 1),
        &options(10),
    )
    .await;
    for record in &result.requests {
        assert!(record.failure.is_none(), "{:?}", record.failure);
        assert!(
            record.ttft_ms.is_some_and(|ttft| ttft >= 700.0),
            "{record:?}"
        );
    }
    assert_eq!(result.aggregate.n_ok, 2);
}

#[tokio::test]
async fn engine_exit_keeps_earlier_records_and_stops() {
    let _serial = common::serial().await;
    // The sim crashes after 4 generation requests; whether the non-streamed
    // ignore_eos probe of `connect` counts depends on when its guard drops,
    // so 3 or 4 scenario requests succeed before the crash.
    let sim = common::start(|args| {
        args.exit_after_requests = Some(4);
        args.decode_ms = Some(1.0);
    });
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("crash", 20, 8, 20, 1),
        &options(3),
    )
    .await;
    let ok: Vec<_> = result.requests.iter().filter(|r| r.is_ok()).collect();
    let summary: Vec<String> = result
        .requests
        .iter()
        .map(|r| format!("{} {:?} {:?}", r.request_idx, r.output_tokens, r.failure))
        .collect();
    assert!(
        (3..=4).contains(&ok.len()),
        "the requests before the crash are kept: {summary:#?}"
    );
    let first_failure = result
        .requests
        .iter()
        .position(|r| !r.is_ok())
        .expect("a failure");
    assert!(
        result.requests[first_failure..].iter().all(|r| !r.is_ok()),
        "{summary:#?}"
    );
    assert!(ok.iter().all(|r| r.output_tokens == Some(8)));
    let why = result.stopped.as_deref().expect("stopped early");
    assert!(why.contains("consecutive failures"), "{why}");
    let failed: Vec<_> = result
        .requests
        .iter()
        .filter_map(|r| r.failure.as_ref())
        .collect();
    assert!((3..=4).contains(&failed.len()), "{failed:?}");
    assert!(
        failed.iter().all(|f| matches!(
            f.class,
            FailureClass::Connect | FailureClass::Reset | FailureClass::Truncated
        )),
        "{failed:?}"
    );
    assert_eq!(failed.last().map(|f| f.class), Some(FailureClass::Connect));
    assert_eq!(sim.join().map(|e| e.code()), Some(3));
}

#[tokio::test]
async fn api_key_is_sent_and_never_recorded() {
    let _serial = common::serial().await;
    const KEY: &str = "sk-test-do-not-leak";
    let sim = common::start(|args| args.api_key = Some(KEY.to_owned()));
    let err = Engine::connect(EngineConfig::new(sim.url.clone()))
        .await
        .expect_err("401");
    let message = err.to_string();
    assert!(
        message.contains("401") && message.contains("Unauthorized"),
        "{message}"
    );
    let engine = Engine::connect(EngineConfig {
        api_key: Some(ApiKey::new(KEY)),
        ..EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect with the key");
    let mut sink = Vec::new();
    let scenarios = [common::scenario("auth", 20, 4, 2, 1)];
    let results = spark_load::run(
        &engine,
        &scenarios,
        &mut sink,
        &RunOptions::default(),
        &Default::default(),
    )
    .await;
    assert_eq!(results.scenarios[0].aggregate.n_ok, 2);
    let json = serde_json::to_string(&results).expect("json");
    assert!(!json.contains(KEY));
    assert!(!format!("{engine:?}").contains(KEY));
}

#[tokio::test]
async fn cancellation_returns_what_was_measured() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.decode_ms = Some(5.0));
    let engine = common::connect(&sim).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stopper.cancel();
    });
    let mut sink = Vec::new();
    let scenarios = [
        common::scenario("long", 20, 40, 1_000, 2),
        common::scenario("never", 20, 4, 5, 1),
    ];
    let results = tokio::time::timeout(
        Duration::from_secs(10),
        spark_load::run(
            &engine,
            &scenarios,
            &mut sink,
            &RunOptions::default(),
            &cancel,
        ),
    )
    .await
    .expect("cancellation ends the run");
    assert_eq!(results.scenarios.len(), 1);
    assert!(results.stopped.is_some());
    let s = &results.scenarios[0];
    assert!(
        s.aggregate.n_ok >= 2 && s.aggregate.n_ok < 1_000,
        "{:?}",
        s.aggregate
    );
    assert!(s.requests.iter().any(|r| {
        r.failure
            .as_ref()
            .is_some_and(|f| f.class == FailureClass::Cancelled)
    }));
}
