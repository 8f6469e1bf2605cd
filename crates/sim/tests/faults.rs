//! Every fault mode, with what the client sees and what the truth log says.

mod common;

use std::time::Duration;

use common::{args, events, post, read_stream, start, truth_lines};
use serde_json::json;
use spark_sim::SimExit;

fn stream_body(max_tokens: u32) -> serde_json::Value {
    json!({"prompt": "Hi", "max_tokens": max_tokens, "ignore_eos": true, "stream": true})
}

#[tokio::test]
async fn fail_rate_answers_vllms_500_deterministically() {
    let truth = common::temp_path("fail.jsonl");
    let mut a = args();
    a.fail_rate = 1.0;
    a.truth_log = Some(truth.clone());
    let sim = start(a).await;
    let response = post(&sim, "/v1/completions", stream_body(3)).await;
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":{"message":"Internal server error","type":"InternalServerError","param":null,"code":500}}"#
    );
    sim.stop().await;
    let lines = truth_lines(&truth);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "http500");
    assert_eq!(lines[0]["completion_tokens"], 0);

    // A fractional rate fails the same requests on every run with one seed.
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let mut a = args();
        a.fail_rate = 0.5;
        a.seed = 42;
        let sim = start(a).await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(
                post(
                    &sim,
                    "/v1/completions",
                    json!({"prompt": "x", "max_tokens": 1}),
                )
                .await
                .status()
                .as_u16(),
            );
        }
        sim.stop().await;
        outcomes.push(statuses);
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let failed = outcomes[0].iter().filter(|&&s| s == 500).count();
    assert!(
        (3..=17).contains(&failed),
        "{failed} of 20 failed at rate 0.5"
    );
}

#[tokio::test]
async fn error_after_sends_an_in_band_error_then_done() {
    let truth = common::temp_path("error.jsonl");
    let mut a = args();
    a.error_after = Some(3);
    a.truth_log = Some(truth.clone());
    let sim = start(a).await;
    let response = post(&sim, "/v1/completions", stream_body(10)).await;
    assert_eq!(response.status(), 200);
    let (body, err) = read_stream(response).await;
    assert!(err.is_none(), "the stream ends cleanly");
    let events = events(&body);
    assert_eq!(events.len(), 3 + 2, "{body}");
    assert_eq!(
        events[3],
        r#"{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}"#
    );
    assert_eq!(events[4], "[DONE]");
    // Shorter responses are not affected.
    let (short, _) = read_stream(post(&sim, "/v1/completions", stream_body(2)).await).await;
    assert_eq!(common::events(&short).len(), 3);
    sim.stop().await;
    let lines = truth_lines(&truth);
    assert_eq!(lines[0]["outcome"], "error_after");
    assert_eq!(lines[0]["completion_tokens"], 3);
    assert_eq!(lines[0]["token_mono_ns"].as_array().unwrap().len(), 3);
    assert_eq!(lines[1]["outcome"], "ok");
}

#[tokio::test]
async fn disconnect_after_drops_the_connection_without_the_last_chunk() {
    let truth = common::temp_path("disconnect.jsonl");
    let mut a = args();
    a.disconnect_after = Some(4);
    a.truth_log = Some(truth.clone());
    let sim = start(a).await;
    let response = post(&sim, "/v1/completions", stream_body(10)).await;
    assert_eq!(response.status(), 200);
    let (body, err) = read_stream(response).await;
    assert!(err.is_some(), "the body must fail, not end: {body}");
    let events = events(&body);
    assert_eq!(events.len(), 4);
    assert!(!body.contains("[DONE]"));
    sim.stop().await;
    let lines = truth_lines(&truth);
    assert_eq!(lines[0]["outcome"], "disconnect_after");
    assert_eq!(lines[0]["completion_tokens"], 4);
}

#[tokio::test]
async fn stall_after_keeps_the_connection_until_shutdown() {
    let truth = common::temp_path("stall.jsonl");
    let mut a = args();
    a.stall_after = Some(2);
    a.truth_log = Some(truth.clone());
    let sim = start(a).await;
    let mut response = post(&sim, "/v1/completions", stream_body(10)).await;
    let mut received = Vec::new();
    while String::from_utf8_lossy(&received).matches("data: ").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("first tokens")
            .unwrap()
            .expect("open stream");
        received.extend_from_slice(&chunk);
    }
    // Nothing more comes while the sim runs.
    let more = tokio::time::timeout(Duration::from_millis(300), response.chunk()).await;
    assert!(more.is_err(), "stalled stream must stay silent");
    let stopping = tokio::spawn(sim.stop());
    let rest = tokio::time::timeout(Duration::from_secs(2), async {
        let mut rest = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => rest.extend_from_slice(&chunk),
                Ok(None) => return (rest, false),
                Err(_) => return (rest, true),
            }
        }
    })
    .await
    .expect("stream ends at shutdown");
    assert!(rest.1, "a stalled stream is cut, not completed");
    assert!(!String::from_utf8_lossy(&rest.0).contains("data: "));
    let exit = tokio::time::timeout(Duration::from_secs(2), stopping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, SimExit::Stopped);
    let lines = truth_lines(&truth);
    assert_eq!(lines[0]["outcome"], "stall_after");
    assert_eq!(lines[0]["completion_tokens"], 2);
}

#[tokio::test]
async fn exit_after_requests_crashes_cutting_streams_in_flight() {
    let truth = common::temp_path("crash.jsonl");
    let mut a = args();
    a.exit_after_requests = Some(1);
    a.decode_ms = Some(30.0);
    a.truth_log = Some(truth.clone());
    let mut sim = start(a).await;
    // A slow stream (100 tokens x 30 ms) that is running when the crash comes.
    let mut slow = post(&sim, "/v1/completions", stream_body(100)).await;
    let first_chunk = tokio::time::timeout(Duration::from_secs(5), slow.chunk())
        .await
        .unwrap()
        .unwrap()
        .expect("first token");
    assert!(String::from_utf8_lossy(&first_chunk).contains("data: "));
    // One short request ends: that is the first finished request, so the sim crashes.
    let quick = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "a", "max_tokens": 1}),
    )
    .await;
    assert_eq!(quick.status(), 200);
    assert_eq!(common::json(quick).await["usage"]["completion_tokens"], 1);
    let exit = sim.wait().await;
    assert_eq!(exit, SimExit::Crashed);
    assert_eq!(exit.code(), 3);
    let (rest, err) = read_stream(slow).await;
    assert!(err.is_some(), "the stream in flight is cut: {rest}");
    assert!(!rest.contains("[DONE]"));
    let refused = common::client()
        .get(sim.url("/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "no one listens after the crash");
    let lines = truth_lines(&truth);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[1]["outcome"], "server_stopped");
}
