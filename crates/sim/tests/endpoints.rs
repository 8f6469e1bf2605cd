//! Every non-streaming endpoint over real loopback HTTP, with exact bodies.

mod common;

use common::{args, get, json, post, start};
use serde_json::json;
use spark_sim::tokenizer;

#[tokio::test]
async fn models_health_version_and_unknown_routes() {
    let mut a = args();
    a.served_model_name = vec!["alpha".to_owned(), "beta".to_owned()];
    a.max_model_len = 4096;
    let sim = start(a).await;

    let health = get(&sim, "/health").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "");

    let models_text = get(&sim, "/v1/models").await.text().await.unwrap();
    assert!(
        models_text
            .starts_with(r#"{"object":"list","data":[{"id":"alpha","object":"model","created":"#),
        "{models_text}"
    );
    assert!(models_text.contains(r#","owned_by":"vllm","root":"spark-sim/sim-1","parent":null,"max_model_len":4096,"permission":[{"id":"modelperm-"#), "{models_text}");
    let models: serde_json::Value = serde_json::from_str(&models_text).unwrap();
    assert_eq!(models["object"], "list");
    let data = models["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], "alpha");
    assert_eq!(data[1]["id"], "beta");
    assert_eq!(data[0]["object"], "model");
    assert_eq!(data[0]["owned_by"], "vllm");
    assert_eq!(data[0]["root"], "spark-sim/sim-1");
    assert_eq!(data[0]["max_model_len"], 4096);

    let version = json(get(&sim, "/version").await).await;
    assert_eq!(version["version"], "0.11.0");

    let missing = get(&sim, "/v2/nothing").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(json(missing).await, json!({"detail": "Not Found"}));
    let wrong_method = get(&sim, "/v1/chat/completions").await;
    assert_eq!(wrong_method.status(), 405);
    sim.stop().await;
}

#[tokio::test]
async fn chat_non_streaming_has_vllm_shape_and_exact_usage() {
    let sim = start(args()).await;
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Hello there"}, {"type": "text", "text": "friend"}]}
    ]);
    let response = post(
        &sim,
        "/v1/chat/completions",
        json!({"model": "spark-sim/sim-1", "messages": messages, "max_tokens": 7, "ignore_eos": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let expected_prompt = tokenizer::encode(
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello there\nfriend<|im_end|>\n<|im_start|>assistant\n",
    )
    .len();
    assert_eq!(body["usage"]["prompt_tokens"], expected_prompt);
    assert_eq!(body["usage"]["completion_tokens"], 7);
    assert_eq!(body["usage"]["total_tokens"], expected_prompt + 7);
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(tokenizer::count(content), 7, "{content:?}");
    // Byte-level shape: key order and nulls as vLLM's model_dump() writes them.
    assert!(text.starts_with("{\"id\":\"chatcmpl-"), "{text}");
    assert!(
        text.contains(",\"object\":\"chat.completion\",\"created\":"),
        "{text}"
    );
    assert!(text.contains("\"refusal\":null,\"annotations\":null,\"audio\":null,\"function_call\":null,\"tool_calls\":[],\"reasoning_content\":null},\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null,\"token_ids\":null}],\"service_tier\":null,\"system_fingerprint\":null,\"usage\":{\"prompt_tokens\":"), "{text}");
    assert!(text.ends_with(",\"prompt_tokens_details\":null},\"prompt_logprobs\":null,\"prompt_token_ids\":null,\"kv_transfer_params\":null}"), "{text}");
    sim.stop().await;
}

#[tokio::test]
async fn tokenize_detokenize_and_usage_agree() {
    let sim = start(args()).await;
    let prompt = "The quick brown fox, 2025 edition: naïve résumé!";
    let tokenized = json(
        post(
            &sim,
            "/tokenize",
            json!({"prompt": prompt, "return_token_strs": true}),
        )
        .await,
    )
    .await;
    let ids = tokenizer::encode(prompt);
    assert_eq!(tokenized["count"], ids.len());
    assert_eq!(tokenized["max_model_len"], 8192);
    assert_eq!(tokenized["tokens"], json!(ids));
    assert_eq!(tokenized["token_strs"].as_array().unwrap().len(), ids.len());

    let detok = json(post(&sim, "/detokenize", json!({"tokens": ids})).await).await;
    assert_eq!(detok, json!({"prompt": prompt}));

    let completion = json(
        post(
            &sim,
            "/v1/completions",
            json!({"prompt": prompt, "max_tokens": 3, "ignore_eos": true}),
        )
        .await,
    )
    .await;
    assert_eq!(completion["usage"]["prompt_tokens"], ids.len());
    assert_eq!(completion["usage"]["completion_tokens"], 3);
    assert_eq!(completion["object"], "text_completion");
    let text = completion["choices"][0]["text"].as_str().unwrap();
    assert_eq!(tokenizer::count(text), 3);

    let messages = json!([{"role": "user", "content": "Hi"}]);
    let chat_tok = json(post(&sim, "/tokenize", json!({"messages": messages})).await).await;
    let chat = json(
        post(
            &sim,
            "/v1/chat/completions",
            json!({"messages": messages, "max_tokens": 2}),
        )
        .await,
    )
    .await;
    assert_eq!(chat_tok["count"], chat["usage"]["prompt_tokens"]);
    assert_eq!(
        chat_tok["count"],
        tokenizer::encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n").len()
    );

    let bad = post(&sim, "/detokenize", json!({"tokens": [u32::MAX]})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(json(bad).await["error"]["type"], "BadRequestError");
    sim.stop().await;
}

#[tokio::test]
async fn unknown_model_is_vllms_404() {
    let sim = start(args()).await;
    let response = post(
        &sim,
        "/v1/chat/completions",
        json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":{"message":"The model `gpt-9` does not exist.","type":"NotFoundError","param":"model","code":404}}"#
    );
    sim.stop().await;
}

#[tokio::test]
async fn context_overflow_is_vllms_400() {
    let mut a = args();
    a.max_model_len = 64;
    let sim = start(a).await;
    let prompt = "word ".repeat(100);
    let n = tokenizer::count(&prompt);
    let too_long = post(&sim, "/v1/completions", json!({"prompt": prompt})).await;
    assert_eq!(too_long.status(), 400);
    assert_eq!(
        json(too_long).await,
        json!({"error": {
            "message": format!("This model's maximum context length is 64 tokens. However, your request has {n} input tokens. Please reduce the length of the input messages."),
            "type": "BadRequestError", "param": "input_tokens", "code": 400}})
    );
    let short = "one two three";
    let n = tokenizer::count(short);
    let too_many = post(
        &sim,
        "/v1/completions",
        json!({"prompt": short, "max_tokens": 62}),
    )
    .await;
    assert_eq!(too_many.status(), 400);
    assert_eq!(
        json(too_many).await,
        json!({"error": {
            "message": format!("'max_tokens' or 'max_completion_tokens' is too large: 62. This model's maximum context length is 64 tokens and your request has {n} input tokens (62 > 64 - {n})."),
            "type": "BadRequestError", "param": "max_tokens", "code": 400}})
    );
    // Without max_tokens a chat request may use the whole rest of the context.
    let chat = json(
        post(
            &sim,
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": short}], "ignore_eos": true}),
        )
        .await,
    )
    .await;
    let prompt_tokens = chat["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(
        chat["usage"]["completion_tokens"].as_u64().unwrap(),
        64 - prompt_tokens
    );
    sim.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_400_bodies() {
    let sim = start(args()).await;
    let response = common::client()
        .post(sim.url("/v1/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["error"]["type"], "Bad Request");
    assert_eq!(body["error"]["code"], 400);
    assert!(body["error"]["param"].is_null());

    let missing = post(
        &sim,
        "/v1/chat/completions",
        json!({"model": "spark-sim/sim-1"}),
    )
    .await;
    assert_eq!(missing.status(), 400);
    let negative = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "x", "max_tokens": -3}),
    )
    .await;
    assert_eq!(negative.status(), 400);
    let options = post(
        &sim,
        "/v1/completions",
        json!({"prompt": "x", "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(options.status(), 400);
    assert_eq!(
        json(options).await["error"]["message"],
        "Stream options can only be defined when `stream=True`."
    );
    sim.stop().await;
}

#[tokio::test]
async fn early_stop_without_ignore_eos_and_min_tokens() {
    let mut a = args();
    a.mean_output_tokens = 4;
    let sim = start(a).await;
    let mut saw_stop = false;
    for idx in 0..20 {
        let body = json(
            post(
                &sim,
                "/v1/completions",
                json!({"prompt": format!("prompt {idx}"), "max_tokens": 6}),
            )
            .await,
        )
        .await;
        let finish = body["choices"][0]["finish_reason"].as_str().unwrap();
        let completion = body["usage"]["completion_tokens"].as_u64().unwrap();
        let text = body["choices"][0]["text"].as_str().unwrap();
        match finish {
            "stop" => {
                saw_stop = true;
                assert!(completion <= 6);
                // The EOS token is counted but has no text.
                assert_eq!(tokenizer::count(text) as u64, completion - 1);
            }
            "length" => assert_eq!(completion, 6),
            other => panic!("finish_reason {other}"),
        }
        // min_tokens == max_tokens gives exactly that many.
        let exact = json(
            post(
                &sim,
                "/v1/completions",
                json!({"prompt": format!("prompt {idx}"), "max_tokens": 6, "min_tokens": 6}),
            )
            .await,
        )
        .await;
        assert_eq!(exact["usage"]["completion_tokens"], 6);
        assert_eq!(exact["choices"][0]["finish_reason"], "length");
    }
    assert!(saw_stop, "mean 4 < max 6 must stop early sometimes");

    // temperature 0 is greedy: the same prompt gives the same text.
    let greedy =
        |_: ()| json!({"prompt": "same", "max_tokens": 5, "temperature": 0, "ignore_eos": true});
    let a = json(post(&sim, "/v1/completions", greedy(())).await).await;
    let b = json(post(&sim, "/v1/completions", greedy(())).await).await;
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    sim.stop().await;
}

#[tokio::test]
async fn api_key_guards_v1_only() {
    let mut a = args();
    a.api_key = Some("sekret".to_owned());
    let sim = start(a).await;
    let denied = post(&sim, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.text().await.unwrap(), r#"{"error":"Unauthorized"}"#);
    let wrong = common::client()
        .get(sim.url("/v1/models"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let allowed = common::client()
        .post(sim.url("/v1/completions"))
        .bearer_auth("sekret")
        .json(&json!({"prompt": "x", "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(get(&sim, "/health").await.status(), 200);
    assert_eq!(get(&sim, "/metrics").await.status(), 200);
    assert_eq!(
        post(&sim, "/tokenize", json!({"prompt": "x"}))
            .await
            .status(),
        200
    );
    sim.stop().await;
}

#[tokio::test]
async fn metrics_use_vllm_names_and_count_tokens_and_prefix_hits() {
    let mut a = args();
    a.served_model_name = vec!["m".to_owned()];
    let sim = start(a).await;
    let prompt = "alpha beta gamma delta ".repeat(20);
    let n_prompt = tokenizer::count(&prompt) as u64;
    for _ in 0..2 {
        let body = json(
            post(
                &sim,
                "/v1/completions",
                json!({"prompt": prompt, "max_tokens": 5, "ignore_eos": true}),
            )
            .await,
        )
        .await;
        assert_eq!(body["usage"]["completion_tokens"], 5);
    }
    let text = get(&sim, "/metrics").await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{engine=\"0\",model_name=\"m\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("vllm:num_requests_running"), 0.0);
    assert_eq!(value("vllm:num_requests_waiting"), 0.0);
    assert_eq!(value("vllm:kv_cache_usage_perc"), 0.0);
    assert_eq!(value("vllm:prompt_tokens_total"), 2.0 * n_prompt as f64);
    assert_eq!(value("vllm:generation_tokens_total"), 10.0);
    assert_eq!(
        value("vllm:prefix_cache_queries_total"),
        2.0 * n_prompt as f64
    );
    // The second request hits every full 16-token block of the first.
    assert_eq!(
        value("vllm:prefix_cache_hits_total"),
        ((n_prompt / 16) * 16) as f64
    );
    assert_eq!(value("vllm:time_to_first_token_seconds_count"), 2.0);
    assert_eq!(value("vllm:inter_token_latency_seconds_count"), 8.0);
    assert!(text.contains("# TYPE vllm:time_to_first_token_seconds histogram"));
    assert!(text.contains(
        "vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"m\",le=\"+Inf\"} 2.0"
    ));
    sim.stop().await;
}
