//! The endpoints only llama-server has, as it answers them: `/tokenize`
//! (`{"content"}` → `{"tokens"}`, no count), `/apply-template` (the chat
//! template as text) and `/props` (the per-slot context and the slots).
//!
//! Shapes follow llama.cpp's `tools/server`: `/props` is
//! `{"default_generation_settings": {"params", "n_ctx"}, "total_slots", "model_path", …}`
//! where `n_ctx` is one slot's context (the `-c` context divided among the
//! `--parallel` slots, what a request may use), so it is the sim's
//! `--max-model-len`, and `total_slots` is `--max-num-seqs`.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};

use crate::api::{Resp, chat_messages, json_response, read_json};
use crate::protocol::InMessage;
use crate::server::Shared;
use crate::tokenizer;

#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    /// llama-server tokenizes only `content`; without it the answer is no tokens.
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenizeResponse {
    tokens: Vec<u32>,
}

/// `POST /tokenize`: special tokens in the text are parsed (llama-server's
/// `parse_special`), none is added.
pub(crate) async fn tokenize(req: Request<Incoming>) -> Resp {
    let request: TokenizeRequest = match read_json(req).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let tokens = request
        .content
        .as_deref()
        .map(tokenizer::encode)
        .unwrap_or_default();
    json_response(StatusCode::OK, &TokenizeResponse { tokens })
}

#[derive(Debug, Deserialize)]
struct ApplyTemplateRequest {
    messages: Vec<InMessage>,
}

#[derive(Debug, Serialize)]
struct ApplyTemplateResponse {
    prompt: String,
}

/// `POST /apply-template`: the prompt text a chat request would be, with the
/// generation prompt.
pub(crate) async fn apply_template(req: Request<Incoming>) -> Resp {
    let request: ApplyTemplateRequest = match read_json(req).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match chat_messages(&request.messages) {
        Ok(messages) => json_response(
            StatusCode::OK,
            &ApplyTemplateResponse {
                prompt: tokenizer::render_chat(&messages, true),
            },
        ),
        Err(resp) => *resp,
    }
}

#[derive(Debug, Serialize)]
struct Props<'a> {
    default_generation_settings: GenerationSettings,
    total_slots: u32,
    model_path: &'a str,
    build_info: &'static str,
}

#[derive(Debug, Serialize)]
struct GenerationSettings {
    params: Params,
    n_ctx: u32,
}

#[derive(Debug, Serialize)]
struct Params {
    n_predict: i32,
    temperature: f64,
}

/// `GET /props`.
pub(crate) fn props(shared: &Shared) -> Resp {
    json_response(
        StatusCode::OK,
        &Props {
            default_generation_settings: GenerationSettings {
                params: Params {
                    n_predict: -1,
                    temperature: 0.8,
                },
                n_ctx: shared.args.max_model_len,
            },
            total_slots: shared.args.timing().max_num_seqs,
            model_path: &shared.args.model,
            build_info: "b0-spark-sim",
        },
    )
}
