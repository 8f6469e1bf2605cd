//! Probe results are obeyed: fields the engine rejects are not sent again
//! (`ignore_eos`/`min_tokens` after the probe's 4xx; `stream_options` after
//! the first stream's 4xx, that request retried once without it).

use spark_load::RunOptions;
use spark_results::Endpoint;

use crate::common;

#[tokio::test]
async fn rejected_ignore_eos_is_not_sent_again() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        args.reject_ignore_eos = true;
        args.mean_output_tokens = 4;
    });
    let engine = common::connect(&sim).await;
    let info = engine.info();
    assert_eq!(info.ignore_eos_honoured, Some(false));
    assert!(
        info.notes
            .iter()
            .any(|n| n.contains("rejects ignore_eos") && n.contains("not sent")),
        "{:?}",
        info.notes
    );
    // Every request would be a 400 with the fields; without them each
    // succeeds, and the short natural outputs are flagged.
    let result = common::run_one(
        &engine,
        &common::scenario("exact", 30, 64, 4, 2),
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.requests.len(), 4);
    for record in &result.requests {
        assert!(record.is_ok(), "{:?}", record.failure);
        assert!(record.short_output);
    }
    assert!(
        result.notes.iter().any(|n| n.contains("does not honour")),
        "{:?}",
        result.notes
    );
}

#[tokio::test]
async fn rejected_stream_options_are_dropped_and_tokens_counted_from_chunks() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.reject_stream_options = true);
    let engine = common::connect(&sim).await;
    for endpoint in [Endpoint::Chat, Endpoint::Completions] {
        let mut s = common::scenario("no-usage", 40, 8, 3, 1);
        s.config.endpoint = endpoint;
        let result = common::run_one(&engine, &s, &RunOptions::default()).await;
        for record in &result.requests {
            assert!(record.is_ok(), "{endpoint:?}: {:?}", record.failure);
            assert_eq!(record.output_tokens, Some(8));
            assert!(record.output_tokens_estimated);
        }
        assert_eq!(result.aggregate.n_estimated_output_tokens, 3);
        assert!(
            result
                .notes
                .iter()
                .any(|n| n.contains("stream_options not sent")),
            "{:?}",
            result.notes
        );
    }
    // The first stream was rejected and retried once without the field;
    // the engine's notes say so once.
    let notes = engine.info().notes;
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("rejects stream_options"))
            .count(),
        1,
        "{notes:?}"
    );
}
