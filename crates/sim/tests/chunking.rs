//! Stream shapes other engines produce: several tokens per chunk, llama-server's
//! in-stream `error:` field, and a server that rejects `stream_options`.

mod common;

use common::{args, events, post, read_stream, start};
use serde_json::json;
use spark_sim::{Flavor, tokenizer};

#[tokio::test]
async fn tokens_per_chunk_packs_texts_and_usage() {
    let mut a = args();
    a.tokens_per_chunk = 4;
    a.reasoning = 3;
    let sim = start(a).await;
    let response = post(
        &sim,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10,
               "ignore_eos": true, "stream": true,
               "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
    )
    .await;
    let (body, err) = read_stream(response).await;
    assert!(err.is_none(), "{err:?}");
    let chunks: Vec<serde_json::Value> = events(&body)
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("JSON chunk"))
        .collect();
    // Role chunk, then the 3 reasoning tokens alone (an event never mixes
    // them with content), then content in chunks of 4 and the rest (3).
    let token_chunks: Vec<&serde_json::Value> = chunks[1..]
        .iter()
        .filter(|c| !c["choices"].as_array().expect("choices").is_empty())
        .collect();
    let cumulative: Vec<u64> = token_chunks
        .iter()
        .map(|c| c["usage"]["completion_tokens"].as_u64().expect("usage"))
        .collect();
    assert_eq!(cumulative, vec![3, 7, 10], "{body}");
    let reasoning = token_chunks[0]["choices"][0]["delta"]["reasoning_content"]
        .as_str()
        .expect("reasoning");
    assert_eq!(tokenizer::count(reasoning), 3);
    let second = token_chunks[1]["choices"][0]["delta"]["content"]
        .as_str()
        .expect("content");
    assert_eq!(tokenizer::count(second), 4);
    assert_eq!(token_chunks[2]["choices"][0]["finish_reason"], "length");
    let last = chunks.last().expect("usage chunk");
    assert_eq!(last["usage"]["completion_tokens"], 10);
    sim.stop().await;
}

#[tokio::test]
async fn llamacpp_stream_errors_are_error_fields() {
    let mut a = args();
    a.flavor = Flavor::Llamacpp;
    a.max_model_len = 32;
    a.error_after = Some(2);
    let sim = start(a).await;
    let prompt = "word ".repeat(40);
    let n = tokenizer::count(&prompt);
    let response = post(
        &sim,
        "/v1/completions",
        json!({"prompt": prompt, "stream": true}),
    )
    .await;
    assert_eq!(
        response.status(),
        200,
        "llama-server answers before the slot checks"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    assert_eq!(
        response.text().await.expect("body"),
        format!(
            "error: {{\"code\":400,\"message\":\"request ({n} tokens) exceeds the available context size (32 tokens), try increasing it\",\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":{n},\"n_ctx\":32}}\n\n"
        )
    );
    let response = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "hi", "max_tokens": 8, "ignore_eos": true, "stream": true}),
    )
    .await;
    let (body, _) = read_stream(response).await;
    assert!(
        body.ends_with(
            "\n\nerror: {\"code\":500,\"message\":\"Internal server error\",\"type\":\"server_error\"}\n\n"
        ),
        "{body}"
    );
    assert!(!body.contains("[DONE]"), "{body}");
    sim.stop().await;
}

#[tokio::test]
async fn reject_stream_options_answers_400_naming_it() {
    let mut a = args();
    a.reject_stream_options = true;
    let sim = start(a).await;
    let with = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "hi", "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(with.status(), 400);
    assert!(with.text().await.expect("body").contains("stream_options"));
    let without = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "hi", "stream": true}),
    )
    .await;
    assert_eq!(without.status(), 200);
    sim.stop().await;
}
