//! text-generation-inference, as spark-sim's `tgi` flavor serves it: its
//! `/v1/models` card has no context length, so the context comes from
//! `/info`'s `max_total_tokens`; its 422 validation errors are classed as
//! context overflows.

use spark_load::{Engine, EngineConfig, RunOptions};
use spark_results::FailureClass;
use spark_sim::Flavor;

use crate::common;

#[tokio::test]
async fn the_context_length_is_read_from_info() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        args.flavor = Flavor::Tgi;
        args.model = "tiny".to_owned();
        args.max_model_len = 2048;
    });
    let engine = common::connect(&sim).await;
    let info = engine.info();
    assert_eq!(info.max_model_len, Some(2048), "{:?}", info.notes);
    assert!(
        !info.notes.iter().any(|n| n.contains("no context length")),
        "{:?}",
        info.notes
    );
    let result = common::run_one(
        &engine,
        &common::scenario("tgi", 40, 8, 3, 1),
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.aggregate.n_ok, 3, "{:?}", result.aggregate);
    for record in &result.requests {
        assert_eq!(record.output_tokens, Some(8), "{record:?}");
    }
}

#[tokio::test]
async fn a_prompt_over_max_input_tokens_is_context_length() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        args.flavor = Flavor::Tgi;
        args.max_model_len = 4096;
        args.max_input_tokens = Some(32);
    });
    // The context (4096) leaves room for the prompt; TGI's input limit does not.
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(sim.url.clone())
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("too-long", 100, 8, 2, 1),
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.aggregate.n_ok, 0, "{:?}", result.aggregate);
    for record in &result.requests {
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(failure.class, FailureClass::ContextLength, "{failure:?}");
    }
}
