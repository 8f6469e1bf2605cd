//! Request routing and the endpoint handlers, with vLLM's error bodies.
//!
//! Nothing here unwraps request data: every malformed body becomes the 400
//! body vLLM sends, an unknown model its 404, and so on.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::Flavor;
use crate::engine::{Generation, block_hashes};
use crate::llamacpp;
use crate::protocol::{
    ChatChoice, ChatCompletionResponse, ChatMessageOut, ChatRequest, CompletionChoice,
    CompletionRequest, CompletionResponse, DetokenizeRequest, DetokenizeResponse, ErrorInfo,
    ErrorResponse, LlamacppError, LlamacppErrorResponse, ModelCard, ModelList, ModelPermission,
    Prompt, Sampling, TokenizeRequest, TokenizeResponse, Usage, Version,
};
use crate::server::Shared;
use crate::stream::{Endpoint, FaultKind, Finish, Plan, SimBody, SseBody, TruthGuard};
use crate::tokenizer;
use crate::tokenizer::splitmix64;
use crate::truth::{Outcome, TruthRecord, monotonic_ns, unix_ns};

/// Largest request body accepted (a 128k-token prompt is well under this).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub(crate) type Resp = Response<SimBody>;
/// An early answer (an error body); boxed to keep `Result`s small.
pub(crate) type Reject = Box<Resp>;

pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(SimBody::full(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn empty(status: StatusCode) -> Resp {
    let mut response = Response::new(SimBody::empty());
    *response.status_mut() = status;
    response
}

/// vLLM's `ErrorResponse` with the HTTP status equal to `code`.
fn error(
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<&'static str>,
) -> Resp {
    json_response(
        status,
        &ErrorResponse {
            error: ErrorInfo {
                message,
                kind,
                param,
                code: status.as_u16(),
            },
        },
    )
}

fn bad_request(message: String, param: Option<&'static str>) -> Resp {
    error(StatusCode::BAD_REQUEST, "BadRequestError", message, param)
}

/// FastAPI's answer to an unknown route or method.
fn detail(status: StatusCode, text: &'static str) -> Resp {
    #[derive(Serialize)]
    struct Detail {
        detail: &'static str,
    }
    json_response(status, &Detail { detail: text })
}

/// Routes one request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let flavor = shared.args.flavor;

    // vLLM only guards /v1/*: /health, /metrics, /tokenize stay open.
    if path.starts_with("/v1")
        && let Some(key) = &shared.args.api_key
    {
        let authorized = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && token == key);
        if !authorized {
            #[derive(Serialize)]
            struct Unauthorized {
                error: &'static str,
            }
            return json_response(
                StatusCode::UNAUTHORIZED,
                &Unauthorized {
                    error: "Unauthorized",
                },
            );
        }
    }

    let ready = shared.ready.load(Ordering::Relaxed);
    match (method.clone(), path.as_str()) {
        (Method::GET, "/health") => health(&shared, ready),
        (Method::GET, "/health_generate") if flavor == Flavor::Sglang => health(&shared, ready),
        (Method::GET, "/metrics") if flavor != Flavor::Trtllm => metrics(&shared),
        (Method::GET, "/prometheus/metrics") if flavor == Flavor::Trtllm => metrics(&shared),
        (Method::GET, "/metrics") => json_response(StatusCode::OK, &[(); 0]),
        (Method::GET, "/version") => json_response(
            StatusCode::OK,
            &Version {
                version: "0.11.0",
                spark_sim: env!("CARGO_PKG_VERSION"),
            },
        ),
        _ if !ready => loading(&shared),
        (Method::GET, "/v1/models") => models(&shared),
        (Method::POST, "/v1/chat/completions") => generate(shared, req, Endpoint::Chat).await,
        (Method::POST, "/v1/completions") => generate(shared, req, Endpoint::Completion).await,
        (Method::POST, "/tokenize") if flavor == Flavor::Llamacpp => llamacpp::tokenize(req).await,
        (Method::POST, "/apply-template") if flavor == Flavor::Llamacpp => {
            llamacpp::apply_template(req).await
        }
        (Method::GET, "/props") if flavor == Flavor::Llamacpp => llamacpp::props(&shared),
        // trtllm-serve has no tokenizer endpoints.
        (Method::POST, "/tokenize" | "/detokenize") if flavor == Flavor::Trtllm => {
            detail(StatusCode::NOT_FOUND, "Not Found")
        }
        (Method::POST, "/tokenize") => tokenize(&shared, req).await,
        (Method::POST, "/detokenize") => detokenize(&shared, req).await,
        (
            _,
            "/health"
            | "/metrics"
            | "/version"
            | "/v1/models"
            | "/v1/chat/completions"
            | "/v1/completions"
            | "/tokenize"
            | "/detokenize",
        ) => detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        _ => detail(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn health(shared: &Shared, ready: bool) -> Resp {
    match (shared.args.flavor, ready) {
        (Flavor::Llamacpp, true) => {
            #[derive(Serialize)]
            struct Status {
                status: &'static str,
            }
            json_response(StatusCode::OK, &Status { status: "ok" })
        }
        (Flavor::Llamacpp, false) => loading(shared),
        (_, true) => empty(StatusCode::OK),
        (_, false) => empty(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// What every other endpoint answers while the model is "loading".
fn loading(shared: &Shared) -> Resp {
    match shared.args.flavor {
        Flavor::Llamacpp => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &LlamacppErrorResponse {
                error: LlamacppError {
                    code: 503,
                    message: "Loading model".to_owned(),
                    kind: "unavailable_error",
                    n_prompt_tokens: None,
                    n_ctx: None,
                },
            },
        ),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableError",
            "The model is still loading".to_owned(),
            None,
        ),
    }
}

fn metrics(shared: &Shared) -> Resp {
    let text = shared.engine.metrics.render(
        shared.args.flavor,
        &shared.served_names[0],
        shared.engine.gauges(),
    );
    let mut response = Response::new(SimBody::full(text));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn models(shared: &Shared) -> Resp {
    let created = unix_ns() / 1_000_000_000;
    let data = shared
        .served_names
        .iter()
        .enumerate()
        .map(|(idx, name)| ModelCard {
            id: name.clone(),
            object: "model",
            created,
            owned_by: "vllm",
            root: shared.args.model.clone(),
            parent: None,
            // llama-server's cards have no context length (it is in /props),
            // trtllm-serve's neither.
            max_model_len: matches!(shared.args.flavor, Flavor::Vllm | Flavor::Sglang)
                .then_some(shared.args.max_model_len),
            permission: vec![ModelPermission {
                id: format!(
                    "modelperm-{:016x}{:016x}",
                    splitmix64(idx as u64),
                    splitmix64(created)
                ),
                object: "model_permission",
                created,
                allow_create_engine: false,
                allow_sampling: true,
                allow_logprobs: true,
                allow_search_indices: false,
                allow_view: true,
                allow_fine_tuning: false,
                organization: "*",
                group: None,
                is_blocking: false,
            }],
        })
        .collect();
    json_response(
        StatusCode::OK,
        &ModelList {
            object: "list",
            data,
        },
    )
}

/// Reads and parses a JSON body; a failure is FastAPI's validation 400.
pub(crate) async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Reject> {
    let body = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|err| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!("cannot read the request body: {err}"),
                None,
            ))
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|err| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!("[{{'type': 'json_invalid', 'loc': ('body',), 'msg': 'JSON decode error', 'ctx': {{'error': '{err}'}}}}]"),
            None,
        ))
    })
}

fn check_model(shared: &Shared, model: Option<&str>) -> Result<(), Reject> {
    // llama.cpp serves whatever it loaded, whatever the request names.
    if shared.args.flavor == Flavor::Llamacpp {
        return Ok(());
    }
    match model {
        None => Ok(()),
        Some(name) if shared.served_names.iter().any(|n| n == name) => Ok(()),
        Some(name) => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            format!("The model `{name}` does not exist."),
            Some("model"),
        ))),
    }
}

async fn tokenize(shared: &Shared, req: Request<Incoming>) -> Resp {
    let request: TokenizeRequest = match read_json(req).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if let Err(resp) = check_model(shared, request.model.as_deref()) {
        return *resp;
    }
    let tokens = match (&request.prompt, &request.messages) {
        (Some(prompt), None) => tokenizer::encode(prompt),
        (None, Some(messages)) => match chat_messages(messages) {
            Ok(messages) => {
                tokenizer::encode_chat(&messages, request.add_generation_prompt.unwrap_or(true))
            }
            Err(resp) => return *resp,
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "exactly one of `prompt` or `messages` is required".to_owned(),
                None,
            );
        }
    };
    let token_strs = request.return_token_strs.unwrap_or(false).then(|| {
        tokens
            .iter()
            .map(|&id| tokenizer::token_str(id).unwrap_or_default())
            .collect()
    });
    json_response(
        StatusCode::OK,
        &TokenizeResponse {
            count: tokens.len(),
            max_model_len: shared.args.max_model_len,
            tokens,
            token_strs,
        },
    )
}

async fn detokenize(shared: &Shared, req: Request<Incoming>) -> Resp {
    let request: DetokenizeRequest = match read_json(req).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if let Err(resp) = check_model(shared, request.model.as_deref()) {
        return *resp;
    }
    let mut ids = Vec::with_capacity(request.tokens.len());
    for &token in &request.tokens {
        match u32::try_from(token) {
            Ok(id) if id < tokenizer::vocab_size() => ids.push(id),
            _ => {
                return bad_request(
                    format!("token id {token} is out of vocabulary"),
                    Some("tokens"),
                );
            }
        }
    }
    match tokenizer::decode(&ids) {
        Ok(prompt) => json_response(StatusCode::OK, &DetokenizeResponse { prompt }),
        Err(err) => bad_request(err.to_string(), Some("tokens")),
    }
}

pub(crate) fn chat_messages(
    messages: &[crate::protocol::InMessage],
) -> Result<Vec<tokenizer::ChatMessage>, Reject> {
    messages
        .iter()
        .map(|m| m.to_chat())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| Box::new(bad_request(message, Some("messages"))))
}

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
async fn generate(shared: Arc<Shared>, req: Request<Incoming>, endpoint: Endpoint) -> Resp {
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
        llamacpp_errors: shared.args.flavor == Flavor::Llamacpp,
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
