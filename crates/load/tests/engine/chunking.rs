//! Chunks that carry several tokens (SGLang's `stream_interval`, vLLM when
//! the client lags, gateways), against spark-sim `--tokens-per-chunk`:
//! tokens are counted from usage (per-chunk usage, `continuous_usage_stats`),
//! never from chunks, so counts and rates match the sim's truth.

use spark_load::RunOptions;

use crate::common;

const PER_CHUNK: u32 = 4;

#[tokio::test]
async fn tokens_are_counted_from_usage_not_chunks() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        args.tokens_per_chunk = PER_CHUNK;
        args.decode_ms = Some(2.0);
    });
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("packed", 20, 30, 3, 1),
        &RunOptions::default(),
    )
    .await;
    let ids: Vec<&str> = result
        .requests
        .iter()
        .map(|r| r.request_id.as_str())
        .collect();
    let truth = sim.truth_for(&ids);
    let mut truth_total = 0u64;
    for record in &result.requests {
        assert!(record.is_ok(), "{:?}", record.failure);
        let t = &truth[&record.request_id];
        truth_total += u64::from(t.completion_tokens);
        assert_eq!(record.output_tokens, Some(t.completion_tokens));
        assert!(!record.output_tokens_estimated);
        assert_eq!(record.token_chunks, 30_u32.div_ceil(PER_CHUNK));
        // ITL is one gap per chunk; TPOT and the rates divide by tokens.
        assert_eq!(record.itl_count, record.token_chunks - 1);
        let e2e_s = record.e2e_ms / 1e3;
        let rate = record.output_tok_s.expect("rate");
        assert!(
            (rate - 30.0 / e2e_s).abs() < 1e-6 * rate,
            "{rate} vs {}",
            30.0 / e2e_s
        );
        let tpot = record.tpot_ms.expect("tpot");
        let span = record.e2e_ms - record.ttft_ms.expect("ttft");
        assert!((tpot - span / 29.0).abs() < 1e-9, "{tpot}");
    }
    assert_eq!(result.aggregate.output_tokens_total, truth_total);

    // A stream cut before its usage chunk: the per-chunk usage still says
    // how many tokens came, where counting chunks would say a quarter.
    let sim = common::start(|args| {
        args.tokens_per_chunk = PER_CHUNK;
        args.disconnect_after = Some(3);
    });
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("packed-cut", 20, 30, 2, 1),
        &RunOptions::default(),
    )
    .await;
    let ids: Vec<&str> = result
        .requests
        .iter()
        .map(|r| r.request_id.as_str())
        .collect();
    let truth = sim.truth_for(&ids);
    for record in &result.requests {
        assert!(!record.is_ok(), "cut");
        let t = &truth[&record.request_id];
        assert!(t.completion_tokens > record.token_chunks, "{t:?}");
        assert_eq!(record.output_tokens, Some(t.completion_tokens), "{t:?}");
        assert!(!record.output_tokens_estimated);
    }
}
