//! What one SSE data payload of an OpenAI-compatible stream says.
//!
//! Only what the measurement needs is decoded: whether the first choice
//! carries non-empty content, text or reasoning, its `finish_reason`, the
//! usage, and in-band errors. A token chunk of the previous token chunk's
//! shape is read by `shape.rs`, which compares the bytes between the values
//! that change and reads only those; another chunk of the usual shape by
//! `skim.rs`, one walk over the raw bytes that decodes no string it does not
//! need; whatever it does not fully understand goes through serde here,
//! where strings are borrowed and the choices array is walked without
//! collecting it, so a chunk costs no allocation (except for a string with
//! escapes in a field we do read); unknown fields are skipped. A payload
//! that is not a JSON object of this shape is reported as invalid, never
//! panicked on.

mod shape;
mod skim;

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use spark_results::FailureClass;

/// The decoded payload.
#[derive(Debug, PartialEq)]
pub(crate) enum Payload<'a> {
    /// `data: [DONE]`.
    Done,
    /// A completion chunk.
    Chunk(ChunkInfo<'a>),
    /// `{"error": …}` (or `{"object": "error", …}`) inside the stream.
    Error(String),
    /// Not JSON, or not a chunk.
    Invalid(String),
}

/// The parts of a chunk the measurement uses.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ChunkInfo<'a> {
    /// Non-empty `delta.content` (chat) or `text` (completions).
    pub(crate) content: bool,
    /// Non-empty `delta.reasoning_content` or `delta.reasoning`.
    pub(crate) reasoning: bool,
    /// `finish_reason` of the first choice, when not null.
    pub(crate) finish_reason: Option<Cow<'a, str>>,
    /// `usage.prompt_tokens` and `usage.completion_tokens`.
    pub(crate) usage: Option<Usage>,
    /// llama-server's `timings` (the engine's own prefill and decode times).
    pub(crate) timings: Option<Timings>,
}

/// llama-server's `timings` object: what the engine measured itself. Its
/// counts are signed in llama.cpp (`-1` when unknown), so they are read as
/// such and negative ones dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub(crate) struct Timings {
    #[serde(default)]
    pub(crate) prompt_n: Option<i64>,
    #[serde(default)]
    pub(crate) prompt_ms: Option<f64>,
    #[serde(default)]
    pub(crate) predicted_n: Option<i64>,
    #[serde(default)]
    pub(crate) predicted_ms: Option<f64>,
    #[serde(default)]
    pub(crate) predicted_per_token_ms: Option<f64>,
    #[serde(default)]
    pub(crate) cache_n: Option<i64>,
}

impl Timings {
    /// The record's form of these timings.
    pub(crate) fn to_record(self) -> spark_results::EngineTimings {
        let count = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
        let time = |ms: Option<f64>| ms.filter(|ms| ms.is_finite() && *ms >= 0.0);
        spark_results::EngineTimings {
            prompt_n: count(self.prompt_n),
            prompt_ms: time(self.prompt_ms),
            predicted_n: count(self.predicted_n),
            predicted_ms: time(self.predicted_ms),
            predicted_per_token_ms: time(self.predicted_per_token_ms),
            cache_n: count(self.cache_n),
        }
    }
}

/// Token counts reported by the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub(crate) prompt_tokens: Option<u32>,
    #[serde(default)]
    pub(crate) completion_tokens: Option<u32>,
    /// OpenAI's `completion_tokens_details` (`reasoning_tokens`).
    #[serde(default)]
    pub(crate) completion_tokens_details: Option<TokenDetails>,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct TokenDetails {
    #[serde(default)]
    pub(crate) reasoning_tokens: Option<u32>,
}

/// Decodes one event's data.
#[cfg(test)]
pub(crate) fn parse(data: &[u8]) -> Payload<'_> {
    ChunkReader::default().parse(data)
}

/// Reads the chunks of one stream: a chunk of the previous token chunk's
/// shape is matched against it (`shape.rs`), any other is walked
/// (`skim.rs`), and what the walk does not fully understand goes to serde.
#[derive(Debug, Default)]
pub(crate) struct ChunkReader {
    shape: shape::Shape,
}

impl ChunkReader {
    /// Decodes one event's data.
    #[inline]
    pub(crate) fn parse<'a>(&mut self, data: &'a [u8]) -> Payload<'a> {
        let trimmed = data.trim_ascii();
        if let Some(info) = self.shape.matches(trimmed) {
            return Payload::Chunk(info);
        }
        if trimmed == b"[DONE]" {
            return Payload::Done;
        }
        if let Some((info, holes)) = skim::skim_with_holes(trimmed) {
            if let Some(holes) = holes {
                self.shape.learn(trimmed, holes, info.usage);
            }
            return Payload::Chunk(info);
        }
        parse_with_serde(trimmed)
    }
}

/// Decodes one event's data (trimmed, not `[DONE]`) with serde: the
/// reference `skim` agrees with, and the path of anything unusual.
fn parse_with_serde(trimmed: &[u8]) -> Payload<'_> {
    match serde_json::from_slice::<RawChunk<'_>>(trimmed) {
        Ok(raw) => {
            let is_error = raw.error.is_some() || raw.object.as_deref() == Some("error");
            if is_error {
                return Payload::Error(error_message(trimmed));
            }
            let choice = raw.choices.0.unwrap_or_default();
            let delta = choice.delta.unwrap_or_default();
            Payload::Chunk(ChunkInfo {
                content: delta.content.is_some_and(|s| s.0) || choice.text.is_some_and(|s| s.0),
                reasoning: delta.reasoning_content.is_some_and(|s| s.0)
                    || delta.reasoning.is_some_and(|s| s.0),
                finish_reason: choice.finish_reason,
                usage: raw.usage,
                timings: raw.timings,
            })
        }
        Err(err) => Payload::Invalid(format!(
            "not a completion chunk ({err}): {}",
            excerpt(trimmed)
        )),
    }
}

/// The message of an error payload, read the slow way (it happens once).
pub(crate) fn error_message(data: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return excerpt(data);
    };
    let error = value.get("error").unwrap_or(&value);
    let message = error
        .get("message")
        .or_else(|| error.get("detail"))
        .and_then(|m| m.as_str())
        .or_else(|| error.as_str());
    match message {
        Some(message) => message.to_owned(),
        None => excerpt(data),
    }
}

/// The class of an error the server explained in `message`: a prompt that
/// does not fit the context is `context_length` (llama-server: "exceeds the
/// available context size"; vLLM and OpenAI: "maximum context length",
/// `context_length_exceeded`; text-generation-inference's validation:
/// "`inputs` must have less than N tokens", "`inputs` tokens +
/// `max_new_tokens` must be <= N"), anything else `otherwise`.
pub(crate) fn error_class(message: &str, otherwise: FailureClass) -> FailureClass {
    let lower = message.to_ascii_lowercase();
    let context = [
        "context size",
        "context length",
        "context_length",
        "`inputs` must have less than",
        "`inputs` tokens + `max_new_tokens`",
    ]
    .iter()
    .any(|needle| lower.contains(needle));
    if context {
        FailureClass::ContextLength
    } else {
        otherwise
    }
}

/// The start of a body, at most `max_bytes` (cut at a character boundary),
/// for a message that quotes what came instead of a stream.
pub(crate) fn head(data: &[u8], max_bytes: usize) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(max_bytes + 4)]);
    let text = text.trim();
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// At most 300 characters of a payload, for messages.
pub(crate) fn excerpt(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[derive(Deserialize)]
struct RawChunk<'a> {
    #[serde(default)]
    choices: FirstChoice<'a>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    timings: Option<Timings>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
struct RawChoice<'a> {
    #[serde(default)]
    delta: Option<RawDelta>,
    #[serde(default)]
    text: Option<NonEmpty>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
struct RawDelta {
    #[serde(default)]
    content: Option<NonEmpty>,
    #[serde(default)]
    reasoning_content: Option<NonEmpty>,
    #[serde(default)]
    reasoning: Option<NonEmpty>,
}

/// Whether a string is non-empty, without keeping it.
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NonEmptyVisitor;
        impl Visitor<'_> for NonEmptyVisitor {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NonEmpty, E> {
                Ok(NonEmpty(!v.is_empty()))
            }
        }
        deserializer.deserialize_str(NonEmptyVisitor)
    }
}

/// The first element of `choices`; the others are skipped (we ask for n=1).
#[derive(Default)]
struct FirstChoice<'a>(Option<RawChoice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FirstVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FirstVisitor<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(FirstChoice(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<RawChoice<'a>>()?;
                // Bounded by the payload's size: each element consumes input.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        deserializer.deserialize_any(FirstVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests;
