//! Prompts arrive with exactly the asked number of tokens (as the sim
//! counts them), are clamped to the context with a note, and outputs are
//! exactly `max_tokens` when the engine honours ignore_eos.

use spark_load::{RunOptions, scenario};
use spark_results::{CalibrationMethod, Endpoint};

use crate::common;

#[tokio::test]
async fn long_context_prompts_are_exact() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.max_model_len = 40_000);
    let engine = common::connect(&sim).await;
    assert_eq!(
        engine.info().prompt_calibration,
        CalibrationMethod::Tokenize
    );
    assert_eq!(engine.info().max_model_len, Some(40_000));
    let mut picked =
        scenario::select(&scenario::builtin(), Some(&["long-context".to_owned()])).expect("known");
    picked.retain(|s| !s.discard);
    scenario::apply_overrides(
        &mut picked,
        &spark_load::Overrides {
            requests: Some(2),
            max_tokens: Some(4),
            ..Default::default()
        },
    );
    let mut n_requests = 0;
    for s in &picked {
        let result = common::run_one(&engine, s, &RunOptions::default()).await;
        assert!(result.notes.is_empty(), "{:?}", result.notes);
        for record in &result.requests {
            assert_eq!(record.requested_input_tokens, s.config.input_tokens);
            assert_eq!(
                record.input_tokens,
                Some(s.config.input_tokens),
                "{}",
                s.name
            );
            assert_eq!(record.output_tokens, Some(4));
        }
        n_requests += result.requests.len();
    }
    assert_eq!(n_requests, 8);
    // The sim's own count agrees (the truth log's prompt_tokens).
    let truth = sim.truth_records(n_requests + 1);
    let mut counts: Vec<u32> = truth
        .iter()
        .filter(|t| t.request_id.contains("spark-"))
        .map(|t| t.prompt_tokens)
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1024, 1024, 8192, 8192, 16384, 16384, 32768, 32768]);
}

#[tokio::test]
async fn prompts_are_clamped_to_the_context_with_a_note() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.max_model_len = 8192);
    let engine = common::connect(&sim).await;
    let s = common::scenario("too-long", 16_384, 100, 1, 1);
    let result = common::run_one(&engine, &s, &RunOptions::default()).await;
    assert_eq!(result.config.input_tokens, 8092);
    assert!(
        result.notes.iter().any(|n| n.contains("clamped to 8092")),
        "{:?}",
        result.notes
    );
    let record = &result.requests[0];
    assert!(record.is_ok(), "{:?}", record.failure);
    assert_eq!(record.input_tokens, Some(8092));
    assert_eq!(record.output_tokens, Some(100));
}

#[tokio::test]
async fn completions_prompts_are_exact_and_distinct() {
    let _serial = common::serial().await;
    let sim = common::start(|_| {});
    let engine = common::connect(&sim).await;
    let mut s = common::scenario("completions", 300, 4, 3, 1);
    s.config.endpoint = Endpoint::Completions;
    let result = common::run_one(&engine, &s, &RunOptions::default()).await;
    for record in &result.requests {
        assert_eq!(record.input_tokens, Some(300));
    }
    // Distinct prompts: the sim's prefix cache (16-token blocks, on by
    // default) found nothing to reuse, not even the first block; identical
    // prompts would hit 299 of their 300 tokens.
    let ids: Vec<String> = result
        .requests
        .iter()
        .map(|r| r.request_id.clone())
        .collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let truth = sim.truth_for(&id_refs);
    assert_eq!(truth.len(), 3);
    for t in truth.values() {
        assert_eq!(t.prompt_tokens, 300);
        assert_eq!(
            t.cached_tokens, 0,
            "{} reused a cached prefix",
            t.request_id
        );
    }
    // The check can fail: prompts that share their first 256 tokens do hit
    // the cache from the second request on.
    let mut shared = common::scenario("shared", 300, 4, 2, 1);
    shared.config.endpoint = Endpoint::Completions;
    shared.config.shared_prefix_tokens = 256;
    let result = common::run_one(&engine, &shared, &RunOptions::default()).await;
    let last = result
        .requests
        .iter()
        .max_by_key(|r| r.request_idx)
        .expect("records");
    let truth = sim.truth_for(&[last.request_id.as_str()]);
    let cached = truth.values().next().map_or(0, |t| t.cached_tokens);
    assert!(cached >= 240, "cached {cached}");
}

#[tokio::test]
async fn ignore_eos_probe_and_exact_outputs() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.mean_output_tokens = 4);
    let engine = common::connect(&sim).await;
    assert_eq!(engine.info().ignore_eos_honoured, Some(true));
    let exact = common::run_one(
        &engine,
        &common::scenario("exact", 30, 64, 4, 2),
        &RunOptions::default(),
    )
    .await;
    assert!(
        exact
            .requests
            .iter()
            .all(|r| r.output_tokens == Some(64) && !r.short_output)
    );
    assert!(
        exact
            .requests
            .iter()
            .all(|r| r.finish_reason.as_deref() == Some("length"))
    );
    // Without ignore_eos the sim stops early (mean 4 tokens): natural lengths.
    let mut natural = common::scenario("natural", 30, 64, 4, 2);
    natural.config.exact_output = false;
    let natural = common::run_one(&engine, &natural, &RunOptions::default()).await;
    assert!(
        natural
            .requests
            .iter()
            .all(|r| r.output_tokens.is_some_and(|n| n < 64))
    );
    assert!(
        natural
            .requests
            .iter()
            .all(|r| r.finish_reason.as_deref() == Some("stop"))
    );
    // The EOS chunk has no text: fewer token chunks than tokens, counts from usage.
    assert!(
        natural
            .requests
            .iter()
            .all(|r| !r.output_tokens_estimated
                && r.token_chunks + 1 == r.output_tokens.unwrap_or(0))
    );
}

#[tokio::test]
async fn llamacpp_prompts_are_exact_and_clamped_from_props() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        args.flavor = spark_sim::Flavor::Llamacpp;
        args.max_model_len = 8192;
    });
    let engine = common::connect(&sim).await;
    let info = engine.info();
    // /tokenize answers llama-server's way and /v1/models has no context
    // length: both come from llama-server's own endpoints, not from probes.
    assert_eq!(info.prompt_calibration, CalibrationMethod::Tokenize);
    assert_eq!(info.max_model_len, Some(8192), "{:?}", info.notes);
    for endpoint in [Endpoint::Chat, Endpoint::Completions] {
        let mut s = common::scenario("llamacpp", 2000, 4, 2, 1);
        s.config.endpoint = endpoint;
        let result = common::run_one(&engine, &s, &RunOptions::default()).await;
        assert!(result.notes.is_empty(), "{:?}", result.notes);
        for record in &result.requests {
            assert!(record.is_ok(), "{:?}", record.failure);
            assert_eq!(record.input_tokens, Some(2000), "{endpoint:?}");
        }
    }
    // Clamped to the per-slot context of /props.
    let s = common::scenario("too-long", 16_384, 100, 1, 1);
    let result = common::run_one(&engine, &s, &RunOptions::default()).await;
    assert_eq!(result.config.input_tokens, 8092);
    let record = &result.requests[0];
    assert!(record.is_ok(), "{:?}", record.failure);
    assert_eq!(record.input_tokens, Some(8092));
}

#[tokio::test]
async fn an_unreported_context_is_configured_or_said_to_be_unknown() {
    let _serial = common::serial().await;
    // trtllm-serve reports no context length and has no /tokenize.
    let sim = common::start(|args| {
        args.flavor = spark_sim::Flavor::Trtllm;
        args.max_model_len = 4096;
    });
    let engine = common::connect(&sim).await;
    let info = engine.info();
    assert_eq!(info.max_model_len, None);
    assert_eq!(info.prompt_calibration, CalibrationMethod::UsageProbe);
    assert!(
        info.notes
            .iter()
            .any(|n| n.contains("reports no context length") && n.contains("--max-model-len")),
        "{:?}",
        info.notes
    );
    let configured = spark_load::Engine::connect(spark_load::EngineConfig {
        max_model_len: Some(4096),
        ..spark_load::EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    assert_eq!(configured.info().max_model_len, Some(4096));
    assert!(
        !configured
            .info()
            .notes
            .iter()
            .any(|n| n.contains("context length")),
        "{:?}",
        configured.info().notes
    );
    let s = common::scenario("too-long", 8192, 96, 1, 1);
    let result = common::run_one(&configured, &s, &RunOptions::default()).await;
    assert_eq!(result.config.input_tokens, 4000);
    let record = &result.requests[0];
    assert!(record.is_ok(), "{:?}", record.failure);
    // Usage probes are exact too.
    assert_eq!(record.input_tokens, Some(4000));
    // 0 configured is unknown, not a context of no tokens.
    let zero = spark_load::Engine::connect(spark_load::EngineConfig {
        max_model_len: Some(0),
        ..spark_load::EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    assert_eq!(zero.info().max_model_len, None);
}
