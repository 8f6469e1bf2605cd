//! The chunk reader against serde: every sample, every one-byte change,
//! deletion and cut, and the shape match on awkward strings and counts.

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
