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
mod tests {
    use super::*;

    fn chunk(data: &str) -> ChunkInfo<'_> {
        match parse(data.as_bytes()) {
            Payload::Chunk(info) => info,
            other => panic!("not a chunk: {other:?}"),
        }
    }

    #[test]
    fn vllm_role_chunk_is_not_a_token() {
        let info = chunk(
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null}"#,
        );
        assert!(!info.content && !info.reasoning);
        assert_eq!(info.finish_reason, None);
    }

    #[test]
    fn content_text_and_reasoning() {
        assert!(chunk(r#"{"choices":[{"delta":{"content":"The"}}]}"#).content);
        assert!(chunk(r#"{"choices":[{"index":0,"text":" a","logprobs":null}]}"#).content);
        assert!(!chunk(r#"{"choices":[{"text":""}]}"#).content);
        let r = chunk(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#);
        assert!(r.reasoning && !r.content);
        assert!(chunk(r#"{"choices":[{"delta":{"reasoning":"hm","content":null}}]}"#).reasoning);
        assert!(chunk(r#"{"choices":[{"delta":{"content":"\"\u00e9\n"}}]}"#).content);
    }

    #[test]
    fn finish_reason_and_usage() {
        let info = chunk(
            r#"{"choices":[{"index":0,"delta":{"content":" end"},"logprobs":null,"finish_reason":"length","stop_reason":null}]}"#,
        );
        assert_eq!(info.finish_reason.as_deref(), Some("length"));
        let info = chunk(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3}}"#,
        );
        assert_eq!(
            info.usage,
            Some(Usage {
                prompt_tokens: Some(12),
                completion_tokens: Some(3),
                completion_tokens_details: None,
            })
        );
        let info = chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":9,"completion_tokens_details":{"reasoning_tokens":5}}}"#,
        );
        let details = info.usage.and_then(|u| u.completion_tokens_details);
        assert_eq!(details.and_then(|d| d.reasoning_tokens), Some(5));
        assert!(chunk(r#"{"choices":null,"usage":null}"#).usage.is_none());
    }

    #[test]
    fn llama_server_timings_are_read_beside_usage() {
        // The final chunk of llama-server's chat stream, as it sends it.
        let info = chunk(
            r#"{"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1,"id":"chatcmpl-1","model":"tiny","system_fingerprint":"b1","object":"chat.completion.chunk","usage":{"completion_tokens":247,"prompt_tokens":1085,"total_tokens":1332},"timings":{"cache_n":0,"prompt_n":1085,"prompt_ms":203.378,"prompt_per_token_ms":0.187,"prompt_per_second":5334.8,"predicted_n":247,"predicted_ms":933.63,"predicted_per_token_ms":3.7798,"predicted_per_second":264.55}}"#,
        );
        let timings = info.timings.expect("timings").to_record();
        assert_eq!(timings.prompt_n, Some(1085));
        assert_eq!(timings.prompt_ms, Some(203.378));
        assert_eq!(timings.predicted_n, Some(247));
        assert_eq!(timings.predicted_ms, Some(933.63));
        assert_eq!(timings.cache_n, Some(0));
        assert_eq!(info.usage.and_then(|u| u.completion_tokens), Some(247));
        // llama.cpp's "unknown" counts are -1: dropped, never a huge u32.
        let info = chunk(r#"{"choices":[],"timings":{"prompt_n":-1,"prompt_ms":-1.0}}"#);
        let timings = info.timings.expect("timings").to_record();
        assert_eq!((timings.prompt_n, timings.prompt_ms), (None, None));
        assert!(chunk(r#"{"choices":[]}"#).timings.is_none());
    }

    #[test]
    fn in_band_errors() {
        let vllm = r#"{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}"#;
        assert_eq!(
            parse(vllm.as_bytes()),
            Payload::Error("Internal server error".to_owned())
        );
        let tgi = r#"{"error":"Input validation error","error_type":"validation"}"#;
        assert_eq!(
            parse(tgi.as_bytes()),
            Payload::Error("Input validation error".to_owned())
        );
        let old = r#"{"object":"error","message":"boom","type":"x","code":400}"#;
        assert_eq!(parse(old.as_bytes()), Payload::Error("boom".to_owned()));
    }

    #[test]
    fn context_overflows_are_classed_by_their_message() {
        let llama = r#"{"code":400,"message":"request (40 tokens) exceeds the available context size (32 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":40,"n_ctx":32}"#;
        let message = error_message(llama.as_bytes());
        assert!(
            message.starts_with("request (40 tokens) exceeds"),
            "{message}"
        );
        assert_eq!(
            error_class(&message, FailureClass::StreamError),
            FailureClass::ContextLength
        );
        let vllm = "This model's maximum context length is 8192 tokens. However, your request has 9000 input tokens.";
        assert_eq!(
            error_class(vllm, FailureClass::HttpStatus),
            FailureClass::ContextLength
        );
        let tgi = r#"{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 64. Given: 60 `inputs` tokens and 8 `max_new_tokens`","error_type":"validation"}"#;
        let message = error_message(tgi.as_bytes());
        assert!(message.starts_with("Input validation error"), "{message}");
        assert_eq!(
            error_class(&message, FailureClass::HttpStatus),
            FailureClass::ContextLength
        );
        assert_eq!(
            error_class(
                "Input validation error: `inputs` must have less than 63 tokens. Given: 70",
                FailureClass::HttpStatus
            ),
            FailureClass::ContextLength
        );
        assert_eq!(
            error_class("Internal server error", FailureClass::StreamError),
            FailureClass::StreamError
        );
    }

    #[test]
    fn head_is_bounded_at_a_character_boundary() {
        assert_eq!(head(b"  {\"a\":1}\n", 200), "{\"a\":1}");
        let long = "é".repeat(300);
        let cut = head(long.as_bytes(), 201);
        assert_eq!(cut, format!("{}…", "é".repeat(100)));
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for data in [
            "",
            "{",
            "[1,2]",
            "null",
            "{\"choices\":7}",
            "{\"choices\":[{\"delta\":{\"content\":5}}]}",
        ] {
            assert!(
                matches!(parse(data.as_bytes()), Payload::Invalid(_)),
                "{data:?}"
            );
        }
        assert_eq!(parse(b" [DONE] "), Payload::Done);
    }

    /// Payloads of every engine the tests know, for the agreement test.
    const SAMPLES: &[&str] = &[
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"spark-sim/sim-1","choices":[{"index":0,"delta":{"content":" the"},"logprobs":null,"finish_reason":null,"token_ids":null}],"usage":{"prompt_tokens":16,"total_tokens":17,"completion_tokens":1}}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"hm"},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":{"prompt_tokens":3,"total_tokens":9,"completion_tokens":6}}"#,
        r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" a","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null}]}"#,
        r#"{"choices":[{"delta":{"reasoning":"hm","content":null}}]}"#,
        r#"{"choices":[{"delta":{"content":"\"\u00e9\n"}}]}"#,
        r#"{"choices":[{"delta":{"content":"café \" \n"}}],"x":[1,-2.5e3,true,false,null,{"a":[]}]}"#,
        r#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3}}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":9,"completion_tokens_details":{"reasoning_tokens":5}}}"#,
        r#"{"choices":null,"usage":null}"#,
        r#"{"choices":[{"delta":{"content":""}},{"delta":{"content":"x"}}]}"#,
        r#"{"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1,"id":"chatcmpl-1","model":"tiny","object":"chat.completion.chunk","usage":{"completion_tokens":247,"prompt_tokens":1085,"total_tokens":1332},"timings":{"prompt_n":1085,"prompt_ms":203.378}}"#,
        r#"{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}"#,
        r#"{"object":"error","message":"boom","type":"x","code":400}"#,
        r#"{"id":"1","model":"m","object":"chat.completion.chunk","system_fingerprint":"3.0.1-native","created":1,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#" { "choices" : [ { "delta" : { "content" : "a" } , "finish_reason" : "stop" } ] , "usage" : { "prompt_tokens" : 0 , "completion_tokens" : 10 } } "#,
    ];

    /// Where the raw walk answers, serde answers the same, for every sample
    /// and every one-byte change, deletion and cut of it.
    #[test]
    fn skim_agrees_with_serde_wherever_it_answers() {
        fn check(data: &[u8]) {
            let trimmed = data.trim_ascii();
            if let Some(info) = skim::skim(trimmed) {
                assert_eq!(
                    Payload::Chunk(info),
                    parse_with_serde(trimmed),
                    "{:?}",
                    String::from_utf8_lossy(data)
                );
            }
        }
        let replacements: &[u8] = b"\"\\{}[],:0-.e +nx\x01\xc3\xff9";
        for sample in SAMPLES {
            let bytes = sample.as_bytes();
            check(bytes);
            for idx in 0..bytes.len() {
                check(&bytes[..idx]);
                let mut deleted = bytes.to_vec();
                deleted.remove(idx);
                check(&deleted);
                for &byte in replacements {
                    let mut changed = bytes.to_vec();
                    changed[idx] = byte;
                    check(&changed);
                }
            }
        }
    }

    /// The chunks of a vLLM-format stream take the raw walk, not serde.
    #[test]
    fn usual_chunks_take_the_fast_path() {
        for sample in &SAMPLES[..5] {
            assert!(skim::skim(sample.as_bytes()).is_some(), "{sample}");
        }
        let info = skim::skim(SAMPLES[1].as_bytes()).expect("skimmed");
        assert!(info.content);
        assert_eq!(info.usage.and_then(|u| u.completion_tokens), Some(1));
        // Errors are left to serde.
        assert!(skim::skim(SAMPLES[12].as_bytes()).is_none());
        assert!(skim::skim(SAMPLES[13].as_bytes()).is_none());
    }

    /// Where a chunk matched the previous chunk's shape, serde answers the
    /// same: for every sample the walk learns a shape from, with its varying
    /// string replaced by awkward values, and every one-byte change,
    /// deletion and cut of the sample.
    #[test]
    fn shape_agrees_with_serde_wherever_it_answers() {
        fn check(reader: &ChunkReader, data: &[u8], matched: &mut u32) {
            let trimmed = data.trim_ascii();
            if let Some(info) = reader.shape.matches(trimmed) {
                *matched += 1;
                assert_eq!(
                    Payload::Chunk(info),
                    parse_with_serde(trimmed),
                    "{:?}",
                    String::from_utf8_lossy(data)
                );
            }
        }
        let values: &[&[u8]] = &[
            b"",
            b" the",
            b"x\\\"y",
            "é".as_bytes(),
            b"\\u0041",
            b"a\\",
            b"\\",
            b"\"",
            b"a\",\"content\":\"b",
            b"a\"}],\"usage\":{\"prompt_tokens\":1},\"z\":[{\"a\":\"",
            b"\x01",
            b"\xff",
            b"\xc3",
            b"\\n\\t\\/",
            b"\\q",
        ];
        let mut learned = 0;
        let mut matched = 0;
        for sample in SAMPLES {
            let bytes = sample.as_bytes();
            let Some((_, Some(holes))) = skim::skim_with_holes(bytes.trim_ascii()) else {
                continue;
            };
            let text = holes
                .as_slice()
                .iter()
                .find(|hole| matches!(hole.kind, shape::HoleKind::Text(_)))
                .expect("a usable shape has its string");
            let mut reader = ChunkReader::default();
            reader.parse(bytes);
            learned += 1;
            let trimmed = bytes.trim_ascii();
            for value in values {
                let mut data = trimmed[..text.start].to_vec();
                data.extend_from_slice(value);
                data.extend_from_slice(&trimmed[text.end..]);
                check(&reader, &data, &mut matched);
            }
            let counts: &[&[u8]] = &[
                b"0",
                b"7",
                b"01",
                b"1.5",
                b"1e3",
                b"-1",
                b"123456789",
                b"1234567890",
                b"",
                b"12a",
                b"null",
                b" 3",
            ];
            for hole in holes.as_slice() {
                if !matches!(hole.kind, shape::HoleKind::Count(_)) {
                    continue;
                }
                for value in counts {
                    let mut data = trimmed[..hole.start].to_vec();
                    data.extend_from_slice(value);
                    data.extend_from_slice(&trimmed[hole.end..]);
                    check(&reader, &data, &mut matched);
                }
            }
            let replacements: &[u8] = b"\"\\{}[],:0-.e +nx\x01\xc3\xff9";
            for idx in 0..bytes.len() {
                check(&reader, &bytes[..idx], &mut matched);
                let mut deleted = bytes.to_vec();
                deleted.remove(idx);
                check(&reader, &deleted, &mut matched);
                for &byte in replacements {
                    let mut changed = bytes.to_vec();
                    changed[idx] = byte;
                    check(&reader, &changed, &mut matched);
                }
            }
        }
        assert!(learned >= 6, "shapes learned from {learned} samples");
        assert!(matched > 500, "{matched} chunks matched a shape");
    }

    /// A vLLM-format stream: the role chunk and each token chunk are
    /// walked or matched, and the last chunk (finish_reason, usage) is
    /// walked, never taken for the token chunks' shape.
    #[test]
    fn a_stream_matches_its_token_chunks_and_walks_the_rest() {
        let head = r#"{"id":"chatcmpl-7","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":""#;
        let tail = r#""},"logprobs":null,"finish_reason":null}]}"#;
        let token = |text: &str| format!("{head}{text}{tail}");
        let mut reader = ChunkReader::default();
        let first = token(" the");
        assert!(reader.shape.matches(first.as_bytes()).is_none());
        let Payload::Chunk(info) = reader.parse(first.as_bytes()) else {
            panic!("a chunk");
        };
        assert!(info.content);
        for text in [" cat", "", "\\\"", "é"] {
            let data = token(text);
            let info = reader.shape.matches(data.as_bytes()).expect("same shape");
            assert_eq!(info.content, !text.is_empty(), "{data}");
            assert_eq!(reader.parse(data.as_bytes()), Payload::Chunk(info));
        }
        let last = r#"{"id":"chatcmpl-7","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#;
        assert!(reader.shape.matches(last.as_bytes()).is_none());
        let Payload::Chunk(info) = reader.parse(last.as_bytes()) else {
            panic!("a chunk");
        };
        assert_eq!(info.finish_reason.as_deref(), Some("length"));
        assert_eq!(info.usage.and_then(|u| u.completion_tokens), Some(5));
        // A chunk with a finish_reason is no shape: the next token chunk is
        // matched against the one before it.
        let again = token("x");
        assert!(reader.shape.matches(again.as_bytes()).is_some());
        assert_eq!(reader.parse(b"[DONE]"), Payload::Done);

        // With continuous usage stats the counts change from chunk to chunk
        // and are read from the matched chunk.
        let counted = |text: &str, n: u32| {
            format!(
                r#"{{"id":"c","choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}],"usage":{{"prompt_tokens":16,"total_tokens":{},"completion_tokens":{n}}}}}"#,
                16 + n
            )
        };
        let mut reader = ChunkReader::default();
        reader.parse(counted("a", 1).as_bytes());
        for n in [2, 9, 10, 100, 12345] {
            let data = counted("b", n);
            let info = reader.shape.matches(data.as_bytes()).expect("same shape");
            assert_eq!(info.usage.and_then(|u| u.completion_tokens), Some(n));
            assert_eq!(info.usage.and_then(|u| u.prompt_tokens), Some(16));
            assert_eq!(Payload::Chunk(info), parse_with_serde(data.as_bytes()));
        }
    }

    #[test]
    fn only_the_first_choice_counts() {
        let info = chunk(r#"{"choices":[{"delta":{"content":""}},{"delta":{"content":"x"}}]}"#);
        assert!(!info.content);
    }
}
