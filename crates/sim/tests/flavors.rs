//! The small differences of the other engines' flavors.

mod common;

use common::{args, events, get, json, post, read_stream, start};
use serde_json::json;
use spark_sim::{Flavor, tokenizer};

#[tokio::test]
async fn llamacpp_context_overflow_and_health_bodies() {
    let mut a = args();
    a.flavor = Flavor::Llamacpp;
    a.max_model_len = 32;
    let sim = start(a).await;
    assert_eq!(
        json(get(&sim, "/health").await).await,
        json!({"status": "ok"})
    );
    let prompt = "word ".repeat(40);
    let n = tokenizer::count(&prompt);
    let response = post(
        &sim,
        "/v1/completions",
        json!({"model": "anything", "prompt": prompt}),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        format!(
            r#"{{"error":{{"code":400,"message":"request ({n} tokens) exceeds the available context size (32 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":{n},"n_ctx":32}}}}"#
        )
    );
    // A large max_tokens is cut at the context end instead of refused.
    let fits = json(
        post(
            &sim,
            "/v1/completions",
            json!({"prompt": "hi", "max_tokens": 1000, "ignore_eos": true}),
        )
        .await,
    )
    .await;
    assert_eq!(fits["usage"]["total_tokens"], 32);
    assert!(
        get(&sim, "/metrics")
            .await
            .text()
            .await
            .unwrap()
            .contains("llamacpp:prompt_tokens_total ")
    );
    sim.stop().await;
}

#[tokio::test]
async fn llamacpp_tokenize_apply_template_and_props() {
    let mut a = args();
    a.flavor = Flavor::Llamacpp;
    a.max_model_len = 4096;
    a.max_num_seqs = Some(4);
    let sim = start(a).await;
    // llama-server's /tokenize: `content` in, bare `tokens` out (no count),
    // special tokens parsed.
    let text = "<|im_start|>user\nHello there, world.<|im_end|>";
    let tokenized = json(post(&sim, "/tokenize", json!({"content": text})).await).await;
    assert_eq!(tokenized, json!({"tokens": tokenizer::encode(text)}));
    // A vLLM-style body has no `content`: no tokens, still 200.
    let vllm_style = post(&sim, "/tokenize", json!({"model": "m", "prompt": text})).await;
    assert_eq!(vllm_style.status(), 200);
    assert_eq!(json(vllm_style).await, json!({"tokens": []}));
    // The chat template as text; its tokens are the chat prompt's usage.
    let messages = json!([{"role": "user", "content": "Hello there."}]);
    let templated = json(post(&sim, "/apply-template", json!({"messages": messages})).await).await;
    let prompt = templated["prompt"].as_str().expect("a prompt").to_owned();
    assert_eq!(
        prompt,
        "<|im_start|>user\nHello there.<|im_end|>\n<|im_start|>assistant\n"
    );
    let usage = json(
        post(
            &sim,
            "/v1/chat/completions",
            json!({"messages": messages, "max_tokens": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(usage["usage"]["prompt_tokens"], tokenizer::count(&prompt));
    // The per-slot context and the slots are in /props, not in /v1/models.
    let props = json(get(&sim, "/props").await).await;
    assert_eq!(props["default_generation_settings"]["n_ctx"], 4096);
    assert_eq!(props["total_slots"], 4);
    let models = json(get(&sim, "/v1/models").await).await;
    assert!(models["data"][0].get("max_model_len").is_none(), "{models}");
    sim.stop().await;
}

#[tokio::test]
async fn trtllm_metrics_path_and_usage_only_when_asked() {
    let mut a = args();
    a.flavor = Flavor::Trtllm;
    let sim = start(a).await;
    let metrics = get(&sim, "/prometheus/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("trtllm_time_to_first_token_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains("vllm:"));
    let body = json!({"prompt": "x", "max_tokens": 2, "ignore_eos": true, "stream": true, "stream_options": {}});
    let (without, _) = read_stream(post(&sim, "/v1/completions", body).await).await;
    assert!(!without.contains("\"usage\""));
    let body = json!({"prompt": "x", "max_tokens": 2, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}});
    let (with, _) = read_stream(post(&sim, "/v1/completions", body).await).await;
    assert_eq!(events(&with).len(), 4);
    assert!(with.contains("\"usage\""));
    sim.stop().await;
}

#[tokio::test]
async fn vllm_includes_usage_when_stream_options_omit_it() {
    let sim = start(args()).await;
    let body = json!({"prompt": "x", "max_tokens": 2, "ignore_eos": true, "stream": true, "stream_options": {}});
    let (with, _) = read_stream(post(&sim, "/v1/completions", body).await).await;
    assert!(with.contains("\"choices\":[],\"usage\""));
    sim.stop().await;
}

#[tokio::test]
async fn sglang_has_health_generate_and_its_metric_names() {
    let mut a = args();
    a.flavor = Flavor::Sglang;
    a.never_ready = true;
    let sim = start(a).await;
    assert_eq!(get(&sim, "/health").await.status(), 503);
    assert_eq!(get(&sim, "/health_generate").await.status(), 503);
    sim.stop().await;

    let mut a = args();
    a.flavor = Flavor::Sglang;
    let sim = start(a).await;
    assert_eq!(get(&sim, "/health").await.status(), 200);
    assert_eq!(get(&sim, "/health_generate").await.status(), 200);
    let text = get(&sim, "/metrics").await.text().await.unwrap();
    assert!(
        text.contains("sglang:num_running_reqs{model_name=\"spark-sim/sim-1\"} 0.0"),
        "{text}"
    );
    sim.stop().await;
}
