//! The endpoints where text-generation-inference answers differently from
//! vLLM, as TGI's router (`router/src/server.rs`, 3.x) answers them: `/info`
//! (the launcher's limits, where TGI reports its context length),
//! `/v1/models` (one card, no context length), `/tokenize` (`{"inputs"}` →
//! a list of tokens with offsets), the unhealthy `/health` and the
//! validation errors (422 `{"error", "error_type"}`).
//!
//! The generation endpoints themselves are the shared OpenAI handlers:
//! TGI ignores the request's `model` and reports its `--model-id`.

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::api::{Resp, json_response, read_json};
use crate::server::Shared;
use crate::stream::SimBody;
use crate::tokenizer;

/// The TGI version whose `/info` is imitated.
const VERSION: &str = "3.3.4";
/// TGI's launcher defaults that `/info` reports and the sim has no flag for.
const MAX_CONCURRENT_REQUESTS: u32 = 128;
const MAX_BEST_OF: u32 = 2;
const MAX_STOP_SEQUENCES: u32 = 4;
const VALIDATION_WORKERS: u32 = 2;
const MAX_CLIENT_BATCH_SIZE: u32 = 4;

/// TGI's `ErrorResponse`.
#[derive(Debug, Serialize)]
struct ErrorResponse {
    error: String,
    error_type: &'static str,
}

/// `GET /health` while the model is not ready: TGI's failed health check.
/// (Real TGI does not listen before its shards are loaded; the sim's
/// listening part of `--load-time` answers this.)
pub(crate) fn unhealthy() -> Resp {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &ErrorResponse {
            error: "unhealthy".to_owned(),
            error_type: "healthcheck",
        },
    )
}

/// A request that fails TGI's validation: 422, `Input validation error: …`.
fn validation_error(message: &str) -> Resp {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &ErrorResponse {
            error: format!("Input validation error: {message}"),
            error_type: "validation",
        },
    )
}

/// TGI's context checks (`validation.rs`): the prompt must fit
/// `--max-input-tokens`, then prompt + max_tokens `--max-total-tokens`.
pub(crate) fn context_error(
    shared: &Shared,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
) -> Option<Resp> {
    let max_input = shared.args.max_input_tokens();
    let max_total = shared.args.max_model_len;
    if prompt_tokens > max_input {
        return Some(validation_error(&format!(
            "`inputs` must have less than {max_input} tokens. Given: {prompt_tokens}"
        )));
    }
    let max_new = max_tokens?;
    (u64::from(prompt_tokens) + u64::from(max_new) > u64::from(max_total)).then(|| {
        validation_error(&format!(
            "`inputs` tokens + `max_new_tokens` must be <= {max_total}. Given: {prompt_tokens} `inputs` tokens and {max_new} `max_new_tokens`"
        ))
    })
}

#[derive(Debug, Serialize)]
struct Info<'a> {
    model_id: &'a str,
    model_sha: Option<&'a str>,
    model_pipeline_tag: Option<&'a str>,
    max_concurrent_requests: u32,
    max_best_of: u32,
    max_stop_sequences: u32,
    max_input_tokens: u32,
    max_total_tokens: u32,
    validation_workers: u32,
    max_client_batch_size: u32,
    router: &'static str,
    version: &'static str,
    sha: Option<&'static str>,
    docker_label: Option<&'static str>,
}

/// `GET /info`: TGI's `Info`, field for field (a local model: no sha, no
/// pipeline tag; a build outside Docker: no label).
pub(crate) fn info(shared: &Shared) -> Resp {
    json_response(
        StatusCode::OK,
        &Info {
            model_id: &shared.served_names[0],
            model_sha: None,
            model_pipeline_tag: None,
            max_concurrent_requests: MAX_CONCURRENT_REQUESTS,
            max_best_of: MAX_BEST_OF,
            max_stop_sequences: MAX_STOP_SEQUENCES,
            max_input_tokens: shared.args.max_input_tokens(),
            max_total_tokens: shared.args.max_model_len,
            validation_workers: VALIDATION_WORKERS,
            max_client_batch_size: MAX_CLIENT_BATCH_SIZE,
            router: "text-generation-router",
            version: VERSION,
            sha: None,
            docker_label: None,
        },
    )
}

#[derive(Debug, Serialize)]
struct ModelCard<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Debug, Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: [ModelCard<'a>; 1],
}

/// `GET /v1/models`: TGI's one card, `created` 0 and owned by the model.
pub(crate) fn models(shared: &Shared) -> Resp {
    let name = shared.served_names[0].as_str();
    json_response(
        StatusCode::OK,
        &ModelList {
            object: "list",
            data: [ModelCard {
                id: name,
                object: "model",
                created: 0,
                owned_by: name,
            }],
        },
    )
}

#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    inputs: Option<String>,
}

#[derive(Debug, Serialize)]
struct SimpleToken<'a> {
    id: u32,
    text: &'a str,
    start: usize,
    stop: usize,
}

/// `POST /tokenize`: `{"inputs": TEXT}` → `[{"id","text","start","stop"}]`
/// (offsets in characters). A body without `inputs` is axum's 422 plain
/// text rejection, as TGI's `Json` extractor sends it.
pub(crate) async fn tokenize(req: Request<Incoming>) -> Resp {
    let request: TokenizeRequest = match read_json(req).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some(inputs) = request.inputs else {
        let mut response = Response::new(SimBody::full(
            "Failed to deserialize the JSON body into the target type: missing field `inputs`",
        ));
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return response;
    };
    let ids = tokenizer::encode(&inputs);
    let texts: Vec<String> = ids
        .iter()
        .map(|&id| tokenizer::token_str(id).unwrap_or_default())
        .collect();
    let mut start = 0;
    let tokens: Vec<SimpleToken<'_>> = ids
        .iter()
        .zip(&texts)
        .map(|(&id, text)| {
            let stop = start + text.chars().count();
            let token = SimpleToken {
                id,
                text,
                start,
                stop,
            };
            start = stop;
            token
        })
        .collect();
    json_response(StatusCode::OK, &tokens)
}
