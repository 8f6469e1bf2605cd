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

#[tokio::test]
async fn tgi_health_info_and_models() {
    let mut a = args();
    a.flavor = Flavor::Tgi;
    a.model = "tiny".to_owned();
    a.never_ready = true;
    let sim = start(a).await;
    let unhealthy = get(&sim, "/health").await;
    assert_eq!(unhealthy.status(), 503);
    assert_eq!(
        json(unhealthy).await,
        json!({"error": "unhealthy", "error_type": "healthcheck"})
    );
    sim.stop().await;

    let mut a = args();
    a.flavor = Flavor::Tgi;
    a.model = "tiny".to_owned();
    a.max_model_len = 4096;
    let sim = start(a).await;
    let healthy = get(&sim, "/health").await;
    assert_eq!(healthy.status(), 200);
    assert_eq!(healthy.text().await.unwrap(), "");
    // TGI's Info, field for field, in its order.
    let info = get(&sim, "/info").await.text().await.unwrap();
    assert_eq!(
        info,
        r#"{"model_id":"tiny","model_sha":null,"model_pipeline_tag":null,"max_concurrent_requests":128,"max_best_of":2,"max_stop_sequences":4,"max_input_tokens":4095,"max_total_tokens":4096,"validation_workers":2,"max_client_batch_size":4,"router":"text-generation-router","version":"3.3.4","sha":null,"docker_label":null}"#
    );
    // One card, no context length.
    assert_eq!(
        json(get(&sim, "/v1/models").await).await,
        json!({"object": "list", "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "tiny"}]})
    );
    assert!(
        get(&sim, "/metrics")
            .await
            .text()
            .await
            .unwrap()
            .contains("tgi_queue_size 0.0")
    );
    sim.stop().await;
}

#[tokio::test]
async fn tgi_streams_chat_and_rejects_what_does_not_fit_with_422() {
    let mut a = args();
    a.flavor = Flavor::Tgi;
    a.model = "tiny".to_owned();
    a.max_model_len = 64;
    a.max_input_tokens = Some(40);
    let sim = start(a).await;
    // The request's model is ignored; the response names --model-id.
    let body = json!({"model": "tgi", "messages": [{"role": "user", "content": "Hello there."}], "max_tokens": 3, "ignore_eos": true, "stream": true});
    let (text, err) = read_stream(post(&sim, "/v1/chat/completions", body).await).await;
    assert!(err.is_none(), "{err:?}");
    let chunks = events(&text);
    assert_eq!(chunks.last().map(String::as_str), Some("[DONE]"), "{text}");
    let tokens: Vec<serde_json::Value> = chunks
        .iter()
        .filter(|c| c.as_str() != "[DONE]")
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    assert!(tokens.iter().all(|c| c["model"] == "tiny"), "{text}");
    let content: Vec<_> = tokens
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .collect();
    assert_eq!(content.len(), 3, "{text}");
    assert_eq!(content[2]["choices"][0]["finish_reason"], "length");

    let long = "word ".repeat(50);
    let n = tokenizer::count(&long);
    let too_long = post(&sim, "/v1/completions", json!({"prompt": long})).await;
    assert_eq!(too_long.status(), 422);
    assert_eq!(
        json(too_long).await,
        json!({"error": format!("Input validation error: `inputs` must have less than 40 tokens. Given: {n}"), "error_type": "validation"})
    );
    let too_many = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "hi", "max_tokens": 64}),
    )
    .await;
    assert_eq!(too_many.status(), 422);
    let n = tokenizer::count("hi");
    assert_eq!(
        json(too_many).await["error"],
        format!(
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 64. Given: {n} `inputs` tokens and 64 `max_new_tokens`"
        )
    );
    sim.stop().await;
}

#[tokio::test]
async fn tgi_tokenize_takes_inputs_and_answers_tokens_with_offsets() {
    let mut a = args();
    a.flavor = Flavor::Tgi;
    let sim = start(a).await;
    let tokens = json(post(&sim, "/tokenize", json!({"inputs": "Hello world"})).await).await;
    let ids = tokenizer::encode("Hello world");
    assert_eq!(tokens.as_array().map(Vec::len), Some(ids.len()), "{tokens}");
    assert_eq!(tokens[0]["id"], ids[0]);
    assert_eq!(tokens[0]["start"], 0);
    let last = &tokens[ids.len() - 1];
    assert_eq!(last["stop"], 11, "{tokens}");
    // A vLLM-style body is the extractor's 422.
    let vllm_style = post(&sim, "/tokenize", json!({"model": "m", "prompt": "x"})).await;
    assert_eq!(vllm_style.status(), 422);
    assert_eq!(
        post(&sim, "/detokenize", json!({"tokens": [1]}))
            .await
            .status(),
        404
    );
    sim.stop().await;
}
