//! Request and response bodies, shaped like vLLM's `protocol.py`.
//!
//! Field order matters to clients that compare bytes, so responses are structs
//! (serialised in declaration order), never `serde_json::Value` (sorted keys).
//! vLLM serialises non-streaming bodies with `model_dump()` (every field,
//! `null`s included) and compact separators, which these structs reproduce.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::tokenizer::ChatMessage;

#[derive(Debug, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: Option<bool>,
    #[serde(default)]
    pub(crate) continuous_usage_stats: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct ContentPart {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct InMessage {
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) content: Option<Content>,
}

impl InMessage {
    /// Joins text parts with newlines, as vLLM's "string" content format does.
    pub(crate) fn to_chat(&self) -> Result<ChatMessage, String> {
        let content = match &self.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => {
                let mut texts = Vec::new();
                for part in parts {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(text)) => texts.push(text.as_str()),
                        (kind, _) => {
                            return Err(format!(
                                "spark-sim only accepts text content parts, got `{kind}`"
                            ));
                        }
                    }
                }
                texts.join("\n")
            }
        };
        Ok(ChatMessage {
            role: self.role.clone(),
            content,
        })
    }
}

/// Fields shared by both generation endpoints.
#[derive(Debug, Deserialize)]
pub(crate) struct Sampling {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) max_tokens: Option<i64>,
    #[serde(default)]
    pub(crate) max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub(crate) min_tokens: Option<i64>,
    #[serde(default)]
    pub(crate) ignore_eos: Option<bool>,
    #[serde(default)]
    pub(crate) temperature: Option<f64>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(default)]
    pub(crate) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(crate) n: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    pub(crate) messages: Vec<InMessage>,
    #[serde(default)]
    pub(crate) add_generation_prompt: Option<bool>,
    #[serde(flatten)]
    pub(crate) sampling: Sampling,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest {
    pub(crate) prompt: Prompt,
    #[serde(flatten)]
    pub(crate) sampling: Sampling,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenizeRequest {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) prompt: Option<String>,
    #[serde(default)]
    pub(crate) messages: Option<Vec<InMessage>>,
    #[serde(default)]
    pub(crate) add_generation_prompt: Option<bool>,
    #[serde(default)]
    pub(crate) return_token_strs: Option<bool>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TokenizeResponse {
    pub(crate) count: usize,
    pub(crate) max_model_len: u32,
    pub(crate) tokens: Vec<u32>,
    pub(crate) token_strs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DetokenizeRequest {
    #[serde(default)]
    pub(crate) model: Option<String>,
    pub(crate) tokens: Vec<i64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DetokenizeResponse {
    pub(crate) prompt: String,
}

/// vLLM's `ErrorInfo`: `{"message", "type", "param", "code"}`.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorInfo {
    pub(crate) message: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) param: Option<&'static str>,
    pub(crate) code: u16,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorResponse {
    pub(crate) error: ErrorInfo,
}

/// llama.cpp's context overflow body (its JSON keeps insertion order).
#[derive(Debug, Serialize)]
pub(crate) struct LlamacppError {
    pub(crate) code: u16,
    pub(crate) message: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) n_prompt_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) n_ctx: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LlamacppErrorResponse {
    pub(crate) error: LlamacppError,
}

#[derive(Debug, Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u32,
    pub(crate) total_tokens: u32,
    pub(crate) completion_tokens: u32,
    pub(crate) prompt_tokens_details: Option<()>,
}

/// The assistant message of a non-streaming chat response; the reasoning
/// field's name is a flag, hence the hand-written `Serialize`.
#[derive(Debug)]
pub(crate) struct ChatMessageOut {
    pub(crate) content: String,
    pub(crate) reasoning_field: &'static str,
    pub(crate) reasoning: Option<String>,
}

impl Serialize for ChatMessageOut {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(8))?;
        map.serialize_entry("role", "assistant")?;
        map.serialize_entry("content", &self.content)?;
        map.serialize_entry("refusal", &None::<()>)?;
        map.serialize_entry("annotations", &None::<()>)?;
        map.serialize_entry("audio", &None::<()>)?;
        map.serialize_entry("function_call", &None::<()>)?;
        map.serialize_entry("tool_calls", &[(); 0])?;
        map.serialize_entry(self.reasoning_field, &self.reasoning)?;
        map.end()
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ChatChoice {
    pub(crate) index: u32,
    pub(crate) message: ChatMessageOut,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: Option<&'static str>,
    pub(crate) stop_reason: Option<()>,
    pub(crate) token_ids: Option<()>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChatCompletionResponse {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: String,
    pub(crate) choices: Vec<ChatChoice>,
    pub(crate) service_tier: Option<()>,
    pub(crate) system_fingerprint: Option<()>,
    pub(crate) usage: Usage,
    pub(crate) prompt_logprobs: Option<()>,
    pub(crate) prompt_token_ids: Option<()>,
    pub(crate) kv_transfer_params: Option<()>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CompletionChoice {
    pub(crate) index: u32,
    pub(crate) text: String,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: Option<&'static str>,
    pub(crate) stop_reason: Option<()>,
    pub(crate) token_ids: Option<()>,
    pub(crate) prompt_logprobs: Option<()>,
    pub(crate) prompt_token_ids: Option<()>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CompletionResponse {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: String,
    pub(crate) choices: Vec<CompletionChoice>,
    pub(crate) service_tier: Option<()>,
    pub(crate) system_fingerprint: Option<()>,
    pub(crate) usage: Usage,
    pub(crate) kv_transfer_params: Option<()>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ModelPermission {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) allow_create_engine: bool,
    pub(crate) allow_sampling: bool,
    pub(crate) allow_logprobs: bool,
    pub(crate) allow_search_indices: bool,
    pub(crate) allow_view: bool,
    pub(crate) allow_fine_tuning: bool,
    pub(crate) organization: &'static str,
    pub(crate) group: Option<()>,
    pub(crate) is_blocking: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct ModelCard {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) owned_by: &'static str,
    pub(crate) root: String,
    pub(crate) parent: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_model_len: Option<u32>,
    pub(crate) permission: Vec<ModelPermission>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ModelList {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<ModelCard>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Version {
    pub(crate) version: &'static str,
    pub(crate) spark_sim: &'static str,
}
