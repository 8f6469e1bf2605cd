//! Framing over a real socket: the sim's reasoning streams, and a raw
//! loopback server that writes the other framings real engines produce
//! (CRLF, pings, multi-line data, no [DONE], `event: error`, a 200 that is
//! not a stream) a few bytes at a time.

use std::time::Duration;

use spark_load::{Engine, EngineConfig, RunOptions};
use spark_results::FailureClass;
use spark_sim::ReasoningField;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common;

#[tokio::test]
async fn reasoning_counts_for_ttft_and_ttfo_is_the_first_answer() {
    let _serial = common::serial().await;
    for field in [ReasoningField::ReasoningContent, ReasoningField::Reasoning] {
        let sim = common::start(|args| {
            args.reasoning = 3;
            args.reasoning_field = field;
            // Tokens 2 ms apart, so the answer comes after the thinking.
            args.decode_ms = Some(2.0);
        });
        let engine = common::connect(&sim).await;
        let result = common::run_one(
            &engine,
            &common::scenario("think", 20, 8, 2, 1),
            &RunOptions::default(),
        )
        .await;
        let truth = sim.truth_records(3);
        for record in &result.requests {
            assert!(record.is_ok(), "{:?}", record.failure);
            assert_eq!(record.reasoning_chunks, 3, "{field:?}");
            assert_eq!(record.token_chunks, 8);
            let t = truth
                .iter()
                .find(|t| t.request_id.ends_with(&record.request_id))
                .expect("in the log");
            // TTFT is the first reasoning chunk, i.e. the sim's first token.
            let err = record.first_token_mono_ns.expect("first") as i64
                - t.first_token_mono_ns.expect("sent") as i64;
            assert!((0..5_000_000).contains(&err), "{err}");
            // TTFO is the first answer token, the sim's 4th token.
            assert_eq!(record.reasoning_tokens, Some(3), "{field:?}");
            let ttfo = record.ttfo_ms.expect("an answer after reasoning");
            assert!(ttfo > record.ttft_ms.expect("ttft"), "{ttfo}");
            let answer_ns = record.sent_mono_ns as i64 + (ttfo * 1e6) as i64;
            let err = answer_ns - t.token_mono_ns[3] as i64;
            assert!((-1_000..5_000_000).contains(&err), "{err}");
        }
        let a = &result.aggregate;
        assert_eq!(a.ttfo_ms.n, 2);
        assert_eq!(a.reasoning_tokens.mean, Some(3.0));
    }
    // Reasoning packed several tokens per chunk: tokens from usage.
    let sim = common::start(|args| {
        args.reasoning = 5;
        args.tokens_per_chunk = 2;
    });
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("think-packed", 20, 8, 1, 1),
        &RunOptions::default(),
    )
    .await;
    let record = &result.requests[0];
    assert!(record.is_ok(), "{:?}", record.failure);
    assert_eq!(record.reasoning_chunks, 3);
    assert_eq!(record.reasoning_tokens, Some(5));
    assert!(record.ttfo_ms.is_some());
    // Without reasoning there is no TTFO, and the aggregate leaves it out.
    let sim = common::start(|_| {});
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("plain", 20, 8, 1, 1),
        &RunOptions::default(),
    )
    .await;
    let record = &result.requests[0];
    assert_eq!((record.ttfo_ms, record.reasoning_tokens), (None, None));
    let json = serde_json::to_string(&result.aggregate).expect("json");
    assert!(
        !json.contains("ttfo_ms") && !json.contains("reasoning_tokens"),
        "{json}"
    );
}

/// Serves canned responses to every request on 127.0.0.1:0, `piece` bytes
/// per write; returns the base URL.
async fn raw_server(body: &'static str, piece: usize) -> String {
    raw_server_typed(body, piece, Some("text/event-stream")).await
}

/// [`raw_server`] with the generation responses' content-type (`None`: no
/// content-type header).
async fn raw_server_typed(
    body: &'static str,
    piece: usize,
    content_type: Option<&'static str>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let mut buf = vec![0u8; 1 << 16];
                let mut seen = Vec::new();
                // Read the request head and body (bounded).
                while seen.len() < 1 << 20 {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if seen.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let is_models = String::from_utf8_lossy(&seen).starts_with("GET /v1/models");
                let payload = if is_models {
                    r#"{"object":"list","data":[{"id":"raw","object":"model","max_model_len":4096}]}"#.to_owned()
                } else {
                    body.to_owned()
                };
                let content_type = if is_models {
                    Some("application/json")
                } else {
                    content_type
                };
                let content_type = content_type
                    .map(|t| format!("content-type: {t}\r\n"))
                    .unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 200 OK\r\n{content_type}connection: close\r\ncontent-length: {}\r\n\r\n",
                    payload.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                for chunk in payload.as_bytes().chunks(piece) {
                    if socket.write_all(chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

const CRLF_PINGS_MULTILINE_NO_DONE: &str = ": ping\r\n\r\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\r\n\r\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"Hmm\"}}]}\r\n\r\n\
: keep-alive\r\n\
data: {\"choices\":[{\"index\":0,\r\ndata: \"delta\":{\"content\":\"Hello\"}}]}\r\n\r\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"}}]}\r\n\r\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":\"length\"}]}\r\n\r\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\r\n\r\n";

#[tokio::test]
async fn other_framings_over_a_socket() {
    let _serial = common::serial().await;
    for piece in [1, 3, 7, 64, 4096] {
        let url = raw_server(CRLF_PINGS_MULTILINE_NO_DONE, piece).await;
        let engine = Engine::connect(EngineConfig {
            probe_ignore_eos: false,
            ..EngineConfig::new(url)
        })
        .await
        .expect("connect");
        let mut s = common::scenario("raw", 7, 3, 1, 1);
        s.config.exact_output = true;
        let result = common::run_one(&engine, &s, &RunOptions::default()).await;
        let record = &result.requests[0];
        assert!(record.is_ok(), "piece {piece}: {:?}", record.failure);
        assert_eq!(record.token_chunks, 3, "piece {piece}");
        assert_eq!(record.reasoning_chunks, 1);
        assert_eq!(record.output_tokens, Some(3));
        assert_eq!(record.input_tokens, Some(7));
        assert_eq!(record.finish_reason.as_deref(), Some("length"));
    }
}

#[tokio::test]
async fn a_stream_without_end_is_truncated_and_garbage_is_invalid() {
    let _serial = common::serial().await;
    let url = raw_server(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        5,
    )
    .await;
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(url)
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("cut", 7, 3, 1, 1),
        &RunOptions::default(),
    )
    .await;
    let failure = result.requests[0].failure.as_ref().expect("failed");
    assert_eq!(failure.class, FailureClass::Truncated, "{failure:?}");

    let url = raw_server("data: {\"choices\": [{\"delta\": \n\n", 5).await;
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(url)
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("garbage", 7, 3, 1, 1),
        &RunOptions::default(),
    )
    .await;
    let failure = result.requests[0].failure.as_ref().expect("failed");
    assert_eq!(failure.class, FailureClass::InvalidResponse, "{failure:?}");
}

async fn run_raw(url: String, name: &str) -> spark_results::RequestRecord {
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(url)
    })
    .await
    .expect("connect");
    let mut result = common::run_one(
        &engine,
        &common::scenario(name, 7, 3, 1, 1),
        &RunOptions::default(),
    )
    .await;
    result.requests.remove(0)
}

#[tokio::test]
async fn an_error_event_is_a_failure_with_the_servers_message() {
    let _serial = common::serial().await;
    // A gateway's `event: error` after a token; [DONE] and a finish_reason
    // follow, which must not turn it into a success.
    const EVENT_ERROR: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
event: error\ndata: {\"error\":{\"message\":\"upstream overloaded\",\"code\":503}}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";
    // llama-server's own field, here a context overflow: classed by its message.
    const LLAMA_CONTEXT: &str = "error: {\"code\":400,\"message\":\"request (40 tokens) exceeds the available context size (32 tokens), try increasing it\",\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":40,\"n_ctx\":32}\n\n";
    for piece in [1, 5, 4096] {
        let record = run_raw(raw_server(EVENT_ERROR, piece).await, "event-error").await;
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(failure.class, FailureClass::StreamError, "piece {piece}");
        assert_eq!(failure.message, "upstream overloaded");
        assert_eq!(record.token_chunks, 1, "measured before the error");

        let record = run_raw(raw_server(LLAMA_CONTEXT, piece).await, "llama-context").await;
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(failure.class, FailureClass::ContextLength, "piece {piece}");
        assert!(
            failure
                .message
                .contains("exceeds the available context size"),
            "{failure:?}"
        );
        assert_eq!(record.ttft_ms, None);
    }
}

#[tokio::test]
async fn a_200_that_is_not_an_event_stream_is_an_invalid_response() {
    let _serial = common::serial().await;
    // A JSON error with status 200, and an engine that ignored `stream`.
    const JSON_ERROR: &str = "{\"error\":{\"message\":\"model is loading\",\"code\":503}}";
    const NOT_STREAMED: &str = "{\"id\":\"cmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello there, this answer was not streamed at all, so it arrives in one piece and much longer than the quote will keep of it: the message keeps the start of the body only, a couple of hundred bytes, not the whole of an answer that may be thousands of tokens long.\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}";
    for (body, content_type) in [
        (JSON_ERROR, Some("application/json")),
        (NOT_STREAMED, Some("application/json; charset=utf-8")),
        (NOT_STREAMED, None),
    ] {
        let url = raw_server_typed(body, 64, content_type).await;
        let record = run_raw(url, "not-a-stream").await;
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(
            failure.class,
            FailureClass::InvalidResponse,
            "{content_type:?}: {failure:?}"
        );
        assert!(
            failure.message.contains("not an event stream"),
            "{failure:?}"
        );
        let quoted = &body[..40];
        assert!(failure.message.contains(quoted), "{failure:?}");
        assert!(failure.message.len() < 320, "bounded: {failure:?}");
        if let Some(content_type) = content_type {
            assert!(failure.message.contains(content_type), "{failure:?}");
        }
    }
    // With the right content-type and a charset parameter it is a stream.
    let url = raw_server_typed(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        64,
        Some("Text/Event-Stream; charset=utf-8"),
    )
    .await;
    let record = run_raw(url, "stream").await;
    assert!(record.is_ok(), "{:?}", record.failure);
}

#[tokio::test]
async fn input_totals_are_null_without_usage() {
    let _serial = common::serial().await;
    // An engine that sends no usage (no usage chunk, no per-chunk usage).
    let url = raw_server(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n",
        64,
    )
    .await;
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(url)
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("no-usage", 7, 3, 2, 1),
        &RunOptions::default(),
    )
    .await;
    let a = &result.aggregate;
    assert_eq!(a.n_ok, 2, "{a:?}");
    assert!(result.requests.iter().all(|r| r.input_tokens.is_none()));
    assert_eq!(a.input_tokens_total, None, "unknown, not 0");
    assert_eq!(a.input_throughput_tok_s, None);
    assert_eq!(a.output_tokens_total, 4, "counted from chunks");
    assert_eq!(a.n_estimated_output_tokens, 2);
    // With usage the total is known.
    let url = raw_server(CRLF_PINGS_MULTILINE_NO_DONE, 4096).await;
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(url)
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("usage", 7, 3, 2, 1),
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.aggregate.input_tokens_total, Some(14));
    assert!(
        result
            .aggregate
            .input_throughput_tok_s
            .is_some_and(|v| v > 0.0)
    );
}
