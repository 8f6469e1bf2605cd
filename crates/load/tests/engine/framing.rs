//! Framing over a real socket: the sim's reasoning streams, and a raw
//! loopback server that writes the other framings real engines produce
//! (CRLF, pings, multi-line data, no [DONE]) a few bytes at a time.

use std::time::Duration;

use spark_load::{Engine, EngineConfig, RunOptions};
use spark_results::FailureClass;
use spark_sim::ReasoningField;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common;

#[tokio::test]
async fn reasoning_tokens_count_for_ttft() {
    let _serial = common::serial().await;
    for field in [ReasoningField::ReasoningContent, ReasoningField::Reasoning] {
        let sim = common::start(|args| {
            args.reasoning = 3;
            args.reasoning_field = field;
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
        }
    }
}

/// Serves canned responses to every request on 127.0.0.1:0, `piece` bytes
/// per write; returns the base URL.
async fn raw_server(body: &'static str, piece: usize) -> String {
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
                    "application/json"
                } else {
                    "text/event-stream"
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
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
