//! The generation endpoints (`/v1/completions`, `/v1/chat/completions`):
//! parsing and validating a request, the context check, and the streamed or
//! whole response, with the faults `--fail-rate` and friends inject.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::api::{
    Reject, Resp, bad_request, chat_messages, check_model, error, json_response, read_json,
};
use crate::args::Flavor;
use crate::engine::{Generation, block_hashes};
use crate::protocol::{
    ChatChoice, ChatCompletionResponse, ChatMessageOut, ChatRequest, CompletionChoice,
    CompletionRequest, CompletionResponse, LlamacppError, LlamacppErrorResponse, Prompt, Sampling,
    Usage,
};
use crate::server::Shared;
use crate::stream::{Endpoint, FaultKind, Finish, Plan, SimBody, SseBody, TruthGuard};
use crate::tokenizer;
use crate::tokenizer::splitmix64;
use crate::truth::{Outcome, TruthRecord, monotonic_ns, unix_ns};

/// The prompt of a request, tokenized (chat template applied for chat).
struct Parsed {
    prompt: Vec<u32>,
    sampling: Sampling,
    stream: bool,
}

async fn parse_generation(req: Request<Incoming>, endpoint: Endpoint) -> Result<Parsed, Reject> {
    let (prompt, sampling) = match endpoint {
        Endpoint::Chat => {
            let request: ChatRequest = read_json(req).await?;
            let messages = chat_messages(&request.messages)?;
            let ids =
                tokenizer::encode_chat(&messages, request.add_generation_prompt.unwrap_or(true));
            (ids, request.sampling)
        }
        Endpoint::Completion => {
            let request: CompletionRequest = read_json(req).await?;
            let ids = match request.prompt {
                Prompt::Text(text) => tokenizer::encode(&text),
                Prompt::Texts(mut texts) if texts.len() == 1 => {
                    tokenizer::encode(&texts.pop().unwrap_or_default())
                }
                Prompt::Ids(ids) => ids,
                Prompt::IdLists(mut lists) if lists.len() == 1 => lists.pop().unwrap_or_default(),
                _ => {
                    return Err(Box::new(bad_request(
                        "spark-sim serves exactly one prompt per request".to_owned(),
                        Some("prompt"),
                    )));
                }
            };
            if let Some(&bad) = ids.iter().find(|&&id| id >= tokenizer::vocab_size()) {
                return Err(Box::new(bad_request(
                    format!("token id {bad} is out of vocabulary"),
                    Some("prompt"),
                )));
            }
            (ids, request.sampling)
        }
    };
    let stream = sampling.stream.unwrap_or(false);
    if !stream && sampling.stream_options.is_some() {
        return Err(Box::new(bad_request(
            "Stream options can only be defined when `stream=True`.".to_owned(),
            Some("stream_options"),
        )));
    }
    Ok(Parsed {
        prompt,
        sampling,
        stream,
    })
}

fn context_error(
    shared: &Shared,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
    stream: bool,
) -> Option<Resp> {
    let max_len = shared.args.max_model_len;
    if shared.args.flavor == Flavor::Tgi {
        return crate::tgi::context_error(shared, prompt_tokens, max_tokens);
    }
    if shared.args.flavor == Flavor::Llamacpp {
        // llama.cpp rejects only prompts that do not fit; it cuts generation
        // at the context end instead of refusing a large max_tokens.
        return (prompt_tokens >= max_len).then(|| {
            let error = LlamacppError {
                code: 400,
                message: format!(
                    "request ({prompt_tokens} tokens) exceeds the available context size ({max_len} tokens), try increasing it"
                ),
                kind: "exceed_context_size_error",
                n_prompt_tokens: Some(prompt_tokens),
                n_ctx: Some(max_len),
            };
            if stream {
                // llama-server has already answered 200 when the slot finds
                // the prompt too long: the error is an `error:` field of
                // its own in the stream (`server_sent_event(sink, "error",
                // …)`), the inner object only, and no [DONE].
                let json = serde_json::to_string(&error).unwrap_or_default();
                let mut response =
                    Response::new(SimBody::full(format!("error: {json}\n\n")));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                return response;
            }
            json_response(StatusCode::BAD_REQUEST, &LlamacppErrorResponse { error })
        });
    }
    if prompt_tokens >= max_len {
        return Some(bad_request(
            format!(
                "This model's maximum context length is {max_len} tokens. However, your request has {prompt_tokens} input tokens. Please reduce the length of the input messages."
            ),
            Some("input_tokens"),
        ));
    }
    if let Some(max_tokens) = max_tokens
        && u64::from(prompt_tokens) + u64::from(max_tokens) > u64::from(max_len)
    {
        return Some(bad_request(
            format!(
                "'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum context length is {max_len} tokens and your request has {prompt_tokens} input tokens ({max_tokens} > {max_len} - {prompt_tokens})."
            ),
            Some("max_tokens"),
        ));
    }
    None
}

fn non_negative(value: Option<i64>, name: &'static str) -> Result<Option<u32>, Reject> {
    match value {
        None => Ok(None),
        Some(v) if v < 0 => Err(Box::new(bad_request(
            format!("{name} must be at least 0, got {v}."),
            Some(name),
        ))),
        Some(v) => Ok(Some(u32::try_from(v).unwrap_or(u32::MAX))),
    }
}

/// Decides the response (length, finish reason, faults) and serves it.
pub(crate) async fn generate(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    endpoint: Endpoint,
) -> Resp {
    let arrival_mono_ns = monotonic_ns();
    let arrival_unix_ns = unix_ns();
    let request_number = shared.request_counter.fetch_add(1, Ordering::Relaxed);
    let client_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed = match parse_generation(req, endpoint).await {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let sampling = &parsed.sampling;
    if let Err(resp) = check_model(&shared, sampling.model.as_deref()) {
        return *resp;
    }
    if sampling.n.is_some_and(|n| n != 1) {
        return bad_request("spark-sim only supports n=1".to_owned(), Some("n"));
    }
    let temperature = sampling.temperature.unwrap_or(1.0);
    if temperature.is_nan() || temperature < 0.0 {
        return bad_request(
            format!("temperature must be non-negative, got {temperature}."),
            Some("temperature"),
        );
    }
    let requested = match endpoint {
        Endpoint::Chat => sampling.max_completion_tokens.or(sampling.max_tokens),
        // vLLM's CompletionRequest defaults max_tokens to 16, as OpenAI does.
        Endpoint::Completion => Some(sampling.max_tokens.unwrap_or(16)),
    };
    let max_tokens = match non_negative(requested, "max_tokens") {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    if max_tokens == Some(0) {
        return bad_request(
            "max_tokens must be at least 1, got 0.".to_owned(),
            Some("max_tokens"),
        );
    }
    let min_tokens = match non_negative(sampling.min_tokens, "min_tokens") {
        Ok(v) => v.unwrap_or(0),
        Err(resp) => return *resp,
    };
    let max_len = shared.args.max_model_len;
    let prompt_tokens = u32::try_from(parsed.prompt.len()).unwrap_or(u32::MAX);
    if shared.args.reject_stream_options && sampling.stream_options.is_some() {
        return bad_request(
            "Unrecognized request argument supplied: stream_options".to_owned(),
            Some("stream_options"),
        );
    }
    if shared.args.reject_ignore_eos {
        let field = if sampling.ignore_eos.is_some() {
            Some("ignore_eos")
        } else if sampling.min_tokens.is_some() {
            Some("min_tokens")
        } else {
            None
        };
        if let Some(field) = field {
            return bad_request(
                format!("Unrecognized request argument supplied: {field}"),
                Some(field),
            );
        }
    }
    if let Some(resp) = context_error(&shared, prompt_tokens, max_tokens, parsed.stream) {
        return resp;
    }
    let room = max_len.saturating_sub(prompt_tokens).max(1);
    let max_tokens = max_tokens.unwrap_or(room).min(room.max(1));
    if min_tokens > max_tokens {
        return bad_request(
            format!(
                "min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}."
            ),
            Some("min_tokens"),
        );
    }

    // Output: seeded by the prompt; sampling (temperature > 0) also mixes in
    // the request number so that repeated prompts differ, as they would.
    let mut content_seed = shared.args.seed;
    for &id in &parsed.prompt {
        content_seed = splitmix64(content_seed ^ u64::from(id));
    }
    if temperature > 0.0 {
        content_seed = splitmix64(content_seed ^ request_number.wrapping_mul(0x9E37));
    }
    let (total_tokens, finish) = if sampling.ignore_eos.unwrap_or(false) || min_tokens >= max_tokens
    {
        (max_tokens, Finish::Length)
    } else {
        let mean = u64::from(shared.args.mean_output_tokens.max(1));
        let natural = 1 + (splitmix64(content_seed ^ 0xE05) % (2 * mean)) as u32;
        let natural = natural.max(min_tokens + 1);
        if natural <= max_tokens {
            (natural, Finish::Stop)
        } else {
            (max_tokens, Finish::Length)
        }
    };

    let prefix = match endpoint {
        Endpoint::Chat => "chatcmpl",
        Endpoint::Completion => "cmpl",
    };
    let id = match client_id {
        Some(base) => format!("{prefix}-{base}"),
        None => {
            let r = splitmix64(shared.args.seed ^ request_number.wrapping_add(1));
            format!("{prefix}-{r:016x}{:016x}", splitmix64(r))
        }
    };
    let fault = [
        (FaultKind::Error, shared.args.error_after),
        (FaultKind::Disconnect, shared.args.disconnect_after),
        (FaultKind::Stall, shared.args.stall_after),
    ]
    .into_iter()
    .filter_map(|(kind, at)| at.map(|at| (kind, at)))
    .min_by_key(|&(_, at)| at)
    .filter(|_| parsed.stream);
    let (include_usage, continuous_usage) = match &sampling.stream_options {
        Some(options) => {
            // TensorRT-LLM only sends usage when include_usage is set
            // explicitly; vLLM's StreamOptions defaults it to true.
            let default = shared.args.flavor != Flavor::Trtllm;
            let include = options.include_usage.unwrap_or(default);
            (
                include,
                include && options.continuous_usage_stats.unwrap_or(false),
            )
        }
        None => (false, false),
    };
    let plan = Plan {
        endpoint,
        id: id.clone(),
        created: arrival_unix_ns / 1_000_000_000,
        model: shared.served_names[0].clone(),
        prompt_tokens,
        total_tokens,
        finish,
        seed: content_seed,
        reasoning: shared.args.reasoning,
        include_usage,
        continuous_usage,
        fault,
        tokens_per_chunk: shared.args.tokens_per_chunk.max(1),
        llamacpp: shared.args.flavor == Flavor::Llamacpp,
    };
    let record = TruthRecord {
        request_id: id,
        endpoint: endpoint.path(),
        stream: parsed.stream,
        arrival_mono_ns,
        arrival_unix_ns,
        first_token_mono_ns: None,
        token_mono_ns: if shared.truth.is_some() {
            Vec::with_capacity(plan.produced_tokens() as usize)
        } else {
            Vec::new()
        },
        end_mono_ns: 0,
        prompt_tokens,
        cached_tokens: 0,
        completion_tokens: 0,
        finish_reason: None,
        outcome: Outcome::Ok,
    };
    let mut guard = TruthGuard::new(Arc::clone(&shared), record);

    let fail_draw =
        splitmix64(shared.args.seed ^ 0xFA11 ^ request_number.wrapping_mul(0x2545_F491));
    // The top 53 bits as a uniform draw in [0, 1).
    if ((fail_draw >> 11) as f64 / (1u64 << 53) as f64) < shared.args.fail_rate {
        guard.finish(Outcome::Http500, None);
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal server error".to_owned(),
            None,
        );
    }

    let hashes = block_hashes(&parsed.prompt, shared.engine.block_size());
    let generation = Generation::new(
        Arc::clone(&shared.engine),
        prompt_tokens,
        hashes,
        plan.produced_tokens(),
    );
    if parsed.stream {
        let body = SseBody::new(plan, shared.args.reasoning_field.name(), generation, guard);
        let mut response = Response::new(SimBody::Stream(Box::new(body)));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        return response;
    }
    full_response(&shared, plan, generation, guard).await
}

async fn full_response(
    shared: &Shared,
    plan: Plan,
    mut generation: Generation,
    mut guard: TruthGuard,
) -> Resp {
    loop {
        let n = poll_fn(|cx| generation.poll_tokens(cx, u32::MAX)).await;
        if n == 0 {
            break;
        }
    }
    let mut content = String::new();
    let mut reasoning = String::new();
    for idx in 0..plan.total_tokens {
        let (_, text, is_reasoning) = plan.token(idx);
        if is_reasoning {
            reasoning.push_str(text);
        } else {
            content.push_str(text);
        }
    }
    let usage = Usage {
        prompt_tokens: plan.prompt_tokens,
        total_tokens: plan.prompt_tokens + plan.total_tokens,
        completion_tokens: plan.total_tokens,
        prompt_tokens_details: None,
    };
    let response = match plan.endpoint {
        Endpoint::Chat => json_response(
            StatusCode::OK,
            &ChatCompletionResponse {
                id: plan.id.clone(),
                object: "chat.completion",
                created: plan.created,
                model: plan.model.clone(),
                choices: vec![ChatChoice {
                    index: 0,
                    message: ChatMessageOut {
                        content,
                        reasoning_field: shared.args.reasoning_field.name(),
                        reasoning: (plan.reasoning > 0).then_some(reasoning),
                    },
                    logprobs: None,
                    finish_reason: Some(plan.finish.as_str()),
                    stop_reason: None,
                    token_ids: None,
                }],
                service_tier: None,
                system_fingerprint: None,
                usage,
                prompt_logprobs: None,
                prompt_token_ids: None,
                kv_transfer_params: None,
            },
        ),
        Endpoint::Completion => json_response(
            StatusCode::OK,
            &CompletionResponse {
                id: plan.id.clone(),
                object: "text_completion",
                created: plan.created,
                model: plan.model.clone(),
                choices: vec![CompletionChoice {
                    index: 0,
                    text: content,
                    logprobs: None,
                    finish_reason: Some(plan.finish.as_str()),
                    stop_reason: None,
                    token_ids: None,
                    prompt_logprobs: None,
                    prompt_token_ids: None,
                }],
                service_tier: None,
                system_fingerprint: None,
                usage,
                kv_transfer_params: None,
            },
        ),
    };
    if let Some(record) = guard.record.as_mut() {
        let now = monotonic_ns();
        record.first_token_mono_ns = Some(now);
        record.completion_tokens = plan.total_tokens;
        record.cached_tokens = generation.cached_tokens();
    }
    guard.finish(Outcome::Ok, Some(plan.finish.as_str()));
    response
}
