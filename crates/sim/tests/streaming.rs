//! Streaming responses: vLLM's framing chunk by chunk, usage options,
//! reasoning, timing, the queue and the truth log.

mod common;

use std::time::{Duration, Instant};

use common::{args, events, get, post, read_stream, start, truth_lines};
use serde_json::{Value, json};
use spark_sim::tokenizer;

fn parse(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("JSON event"))
        .collect()
}

#[tokio::test]
async fn chat_stream_matches_vllm_framing_chunk_by_chunk() {
    let mut a = args();
    a.served_model_name = vec!["m".to_owned()];
    let sim = start(a).await;
    let response = post(
        &sim,
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
               "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let (body, err) = read_stream(response).await;
    assert!(err.is_none());
    let events = events(&body);
    assert_eq!(events.len(), 1 + 3 + 1 + 1, "{body}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    let created = first["created"].as_u64().unwrap();
    let head = format!(
        r#"{{"id":"{id}","object":"chat.completion.chunk","created":{created},"model":"m","choices":["#
    );
    // 1. The role chunk: empty content, no token_ids, prompt_token_ids after choices.
    assert_eq!(
        events[0],
        format!(
            r#"{head}{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}],"prompt_token_ids":null}}"#
        )
    );
    // 2. One chunk per token; the last one carries finish_reason and stop_reason.
    let mut text = String::new();
    for (idx, event) in events[1..4].iter().enumerate() {
        let chunk: Value = serde_json::from_str(event).unwrap();
        let content = chunk["choices"][0]["delta"]["content"].as_str().unwrap();
        text.push_str(content);
        let content_json = serde_json::to_string(content).unwrap();
        let tail = if idx == 2 {
            r#""logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}]}"#
        } else {
            r#""logprobs":null,"finish_reason":null,"token_ids":null}]}"#
        };
        assert_eq!(
            *event,
            format!(r#"{head}{{"index":0,"delta":{{"content":{content_json}}},{tail}"#)
        );
    }
    assert_eq!(tokenizer::count(&text), 3);
    // 3. The usage chunk: empty choices.
    let prompt = tokenizer::count("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    assert_eq!(
        events[4],
        format!(
            r#"{{"id":"{id}","object":"chat.completion.chunk","created":{created},"model":"m","choices":[],"usage":{{"prompt_tokens":{prompt},"total_tokens":{},"completion_tokens":3}}}}"#,
            prompt + 3
        )
    );
    sim.stop().await;
}

#[tokio::test]
async fn early_stop_sends_an_empty_eos_chunk_and_counts_it() {
    let mut a = args();
    a.mean_output_tokens = 2;
    let sim = start(a).await;
    let response = post(
        &sim,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100, "stream": true,
               "stream_options": {"include_usage": true}}),
    )
    .await;
    let (body, _) = read_stream(response).await;
    let chunks = parse(&events(&body));
    let usage = &chunks.last().unwrap()["usage"];
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"]["content"], "");
    // role chunk + one chunk per completion token (EOS included) + usage chunk
    assert_eq!(
        chunks.len() as u64,
        1 + usage["completion_tokens"].as_u64().unwrap() + 1
    );
    sim.stop().await;
}

#[tokio::test]
async fn completion_stream_framing_and_continuous_usage() {
    let sim = start(args()).await;
    let response = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "Once upon a time", "max_tokens": 4, "ignore_eos": true, "stream": true,
               "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
    )
    .await;
    let (body, _) = read_stream(response).await;
    let events = events(&body);
    assert_eq!(events.len(), 4 + 1 + 1);
    let prompt = tokenizer::count("Once upon a time") as u64;
    for (idx, event) in events[..4].iter().enumerate() {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert_eq!(chunk["object"], "text_completion");
        let finish = if idx == 3 {
            json!("length")
        } else {
            Value::Null
        };
        assert_eq!(chunk["choices"][0]["finish_reason"], finish);
        assert!(event.contains(r#","stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":"#), "{event}");
        assert_eq!(chunk["usage"]["completion_tokens"], idx as u64 + 1);
        assert_eq!(chunk["usage"]["total_tokens"], prompt + idx as u64 + 1);
    }
    let usage: Value = serde_json::from_str(&events[4]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    sim.stop().await;
}

#[tokio::test]
async fn no_usage_chunk_without_stream_options() {
    let sim = start(args()).await;
    let response = post(
        &sim,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "ignore_eos": true, "stream": true}),
    )
    .await;
    let (body, _) = read_stream(response).await;
    let chunks = parse(&events(&body));
    assert_eq!(chunks.len(), 3);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    sim.stop().await;
}

#[tokio::test]
async fn reasoning_tokens_come_first_in_their_own_field() {
    for (field, flag) in [
        (
            "reasoning_content",
            spark_sim::ReasoningField::ReasoningContent,
        ),
        ("reasoning", spark_sim::ReasoningField::Reasoning),
    ] {
        let mut a = args();
        a.reasoning = 2;
        a.reasoning_field = flag;
        let sim = start(a).await;
        let response = post(
            &sim,
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "ignore_eos": true, "stream": true}),
        )
        .await;
        let (body, _) = read_stream(response).await;
        let chunks = parse(&events(&body));
        let deltas: Vec<&Value> = chunks[1..]
            .iter()
            .map(|c| &c["choices"][0]["delta"])
            .collect();
        assert_eq!(deltas.len(), 5);
        for delta in &deltas[..2] {
            assert!(
                delta[field].is_string() && delta.get("content").is_none(),
                "{delta}"
            );
        }
        for delta in &deltas[2..] {
            assert!(
                delta["content"].is_string() && delta.get(field).is_none(),
                "{delta}"
            );
        }
        let full = common::json(
            post(&sim, "/v1/chat/completions", json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "ignore_eos": true})).await,
        )
        .await;
        let message = &full["choices"][0]["message"];
        assert_eq!(tokenizer::count(message[field].as_str().unwrap()), 2);
        sim.stop().await;
    }
}

#[tokio::test]
async fn tokens_follow_the_timing_model_and_the_truth_log_records_them() {
    let truth = common::temp_path("timing.jsonl");
    let mut a = args();
    a.prefill_base_ms = Some(60.0);
    a.decode_ms = Some(15.0);
    a.truth_log = Some(truth.clone());
    let sim = start(a).await;
    let sent = Instant::now();
    let response = common::client()
        .post(sim.url("/v1/completions"))
        .header("x-request-id", "timing-1")
        .json(&json!({"prompt": "Hi", "max_tokens": 10, "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    let mut response = response;
    let mut arrivals = Vec::new();
    let mut received = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
        let n = String::from_utf8_lossy(&received)
            .matches("data: {")
            .count();
        arrivals.resize(n, sent.elapsed());
    }
    assert_eq!(arrivals.len(), 10);
    assert!(
        arrivals[0] >= Duration::from_millis(55),
        "ttft {:?}",
        arrivals[0]
    );
    let total = arrivals[9] - arrivals[0];
    assert!(
        total >= Duration::from_millis(120),
        "9 gaps of 15 ms took {total:?}"
    );
    sim.stop().await;

    let lines = truth_lines(&truth);
    assert_eq!(lines.len(), 1);
    let record = &lines[0];
    assert_eq!(record["request_id"], "cmpl-timing-1");
    assert_eq!(record["endpoint"], "/v1/completions");
    assert_eq!(record["stream"], true);
    assert_eq!(record["outcome"], "ok");
    assert_eq!(record["finish_reason"], "length");
    assert_eq!(record["completion_tokens"], 10);
    assert_eq!(record["prompt_tokens"], tokenizer::count("Hi"));
    let times: Vec<u64> = record["token_mono_ns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    assert_eq!(times.len(), 10);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let arrival = record["arrival_mono_ns"].as_u64().unwrap();
    assert_eq!(record["first_token_mono_ns"].as_u64().unwrap(), times[0]);
    assert!(times[0] - arrival >= 60_000_000, "prefill 60 ms");
    // Absolute deadlines: 60 ms + 9 gaps of 15 ms after admission, so the
    // last token is never early and drifts only by scheduling noise.
    let last = times[9] - arrival;
    assert!(
        (195_000_000..260_000_000).contains(&last),
        "last token at {last} ns"
    );
    assert!(record["end_mono_ns"].as_u64().unwrap() >= times[9]);
    assert!(record["arrival_unix_ns"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    // The log's clock is CLOCK_MONOTONIC, readable from this process too.
    assert!(spark_sim::monotonic_ns() > times[9]);
}

#[tokio::test]
async fn max_num_seqs_queues_requests_visibly() {
    let mut a = args();
    a.max_num_seqs = Some(1);
    a.decode_ms = Some(20.0);
    let sim = start(a).await;
    let body = json!({"prompt": "Hi", "max_tokens": 10, "ignore_eos": true, "stream": true});
    let first = post(&sim, "/v1/completions", body.clone()).await;
    let second = post(&sim, "/v1/completions", body).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    let metrics = get(&sim, "/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .contains("vllm:num_requests_running{engine=\"0\",model_name=\"spark-sim/sim-1\"} 1.0"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"spark-sim/sim-1\"} 1.0"),
        "{metrics}"
    );
    let started = Instant::now();
    let (a_body, _) = read_stream(first).await;
    let (b_body, _) = read_stream(second).await;
    assert_eq!(events(&a_body).len(), 11);
    assert_eq!(events(&b_body).len(), 11);
    // The second only starts decoding after the first is done.
    assert!(started.elapsed() >= Duration::from_millis(250));
    sim.stop().await;
}

#[tokio::test]
async fn zero_profile_coalesces_many_tokens_per_frame() {
    let sim = start(args()).await;
    let mut response = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "Hi", "max_tokens": 2000, "ignore_eos": true, "stream": true}),
    )
    .await;
    let mut n_chunks = 0;
    let mut received = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        n_chunks += 1;
        received.extend_from_slice(&chunk);
    }
    let n_events = String::from_utf8_lossy(&received).matches("data: ").count();
    assert_eq!(n_events, 2001);
    assert!(n_chunks < 100, "{n_chunks} reads for 2000 tokens");
    sim.stop().await;
}
