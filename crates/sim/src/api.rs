//! Request routing and the endpoint handlers other than generation (health,
//! loading, metrics, models, tokenize), with vLLM's error bodies; the
//! generation endpoints are in `generate.rs`.
//!
//! Nothing here unwraps request data: every malformed body becomes the 400
//! body vLLM sends, an unknown model its 404, and so on.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::Flavor;
use crate::generate::generate;
use crate::llamacpp;
use crate::protocol::{
    DetokenizeRequest, DetokenizeResponse, ErrorInfo, ErrorResponse, LlamacppError,
    LlamacppErrorResponse, ModelCard, ModelList, ModelPermission, TokenizeRequest,
    TokenizeResponse, Version,
};
use crate::server::Shared;
use crate::stream::{Endpoint, SimBody};
use crate::tgi;
use crate::tokenizer;
use crate::tokenizer::splitmix64;
use crate::truth::unix_ns;

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

pub(crate) fn empty(status: StatusCode) -> Resp {
    let mut response = Response::new(SimBody::empty());
    *response.status_mut() = status;
    response
}

/// vLLM's `ErrorResponse` with the HTTP status equal to `code`.
pub(crate) fn error(
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

pub(crate) fn bad_request(message: String, param: Option<&'static str>) -> Resp {
    error(StatusCode::BAD_REQUEST, "BadRequestError", message, param)
}

/// FastAPI's answer to an unknown route or method.
pub(crate) fn detail(status: StatusCode, text: &'static str) -> Resp {
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
        (Method::GET, "/metrics" | "/prometheus/metrics") if shared.args.no_metrics => error(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported_error",
            "This server does not support metrics endpoint. Start it with `--metrics`".to_owned(),
            None,
        ),
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
        (Method::GET, "/info") if flavor == Flavor::Tgi => tgi::info(&shared),
        (Method::GET, "/v1/models") if flavor == Flavor::Tgi => tgi::models(&shared),
        (Method::GET, "/v1/models") => models(&shared),
        (Method::POST, "/v1/chat/completions") => generate(shared, req, Endpoint::Chat).await,
        (Method::POST, "/v1/completions") => generate(shared, req, Endpoint::Completion).await,
        (Method::POST, "/tokenize") if flavor == Flavor::Llamacpp => llamacpp::tokenize(req).await,
        (Method::POST, "/apply-template") if flavor == Flavor::Llamacpp => {
            llamacpp::apply_template(req).await
        }
        (Method::GET, "/props") if flavor == Flavor::Llamacpp => llamacpp::props(&shared),
        (Method::POST, "/tokenize") if flavor == Flavor::Tgi => tgi::tokenize(req).await,
        // trtllm-serve has no tokenizer endpoints, TGI no /detokenize.
        (Method::POST, "/detokenize") if flavor == Flavor::Tgi => {
            detail(StatusCode::NOT_FOUND, "Not Found")
        }
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
        (Flavor::Tgi, false) => tgi::unhealthy(),
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

pub(crate) fn check_model(shared: &Shared, model: Option<&str>) -> Result<(), Reject> {
    // llama.cpp serves whatever it loaded, whatever the request names; TGI
    // ignores the field.
    if matches!(shared.args.flavor, Flavor::Llamacpp | Flavor::Tgi) {
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
