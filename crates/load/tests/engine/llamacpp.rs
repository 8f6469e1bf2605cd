//! llama-server's in-stream errors, against spark-sim's `llamacpp` flavor: a
//! 200 stream that ends in an `error:` field is a failure with the server's
//! message, classed by it, never a fast short success.

use spark_load::{Engine, EngineConfig, RunOptions};
use spark_results::FailureClass;
use spark_sim::Flavor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common;

#[tokio::test]
async fn an_error_field_mid_stream_is_a_stream_error() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        args.flavor = Flavor::Llamacpp;
        args.error_after = Some(4);
    });
    let engine = common::connect(&sim).await;
    let result = common::run_one(
        &engine,
        &common::scenario("llama-error", 20, 12, 2, 1),
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.aggregate.n_ok, 0, "{:?}", result.aggregate);
    for record in &result.requests {
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(failure.class, FailureClass::StreamError, "{failure:?}");
        assert_eq!(failure.message, "Internal server error");
        assert_eq!(record.token_chunks, 4, "measured before the error");
    }
    assert_eq!(
        result.aggregate.failures_by_class.get("stream_error"),
        Some(&2)
    );
    assert_eq!(result.aggregate.itl_ms.n, 0, "no gap of a failed request");
}

#[tokio::test]
async fn a_context_overflow_in_the_stream_is_context_length() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        args.flavor = Flavor::Llamacpp;
        args.max_model_len = 64;
    });
    // A proxy that hides the context size (from /v1/models and /props) lets
    // a prompt longer than the context through (the client would clamp it
    // otherwise).
    let url = hide_max_model_len(&sim.url).await;
    let engine = Engine::connect(EngineConfig {
        probe_ignore_eos: false,
        ..EngineConfig::new(url)
    })
    .await
    .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("overflow", 100, 8, 2, 1),
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.aggregate.n_ok, 0, "{:?}", result.aggregate);
    for record in &result.requests {
        let failure = record.failure.as_ref().expect("failed");
        assert_eq!(failure.class, FailureClass::ContextLength, "{failure:?}");
        assert!(
            failure
                .message
                .contains("exceeds the available context size (64 tokens)"),
            "{failure:?}"
        );
        assert_eq!(failure.http_status, None, "a 200 stream");
        assert_eq!(record.output_tokens, None);
    }
    assert_eq!(
        result.aggregate.failures_by_class.get("context_length"),
        Some(&2)
    );
}

/// A loopback proxy in front of `upstream` that answers `GET /v1/models`
/// itself, without `max_model_len`, `GET /props` with a 404, and forwards
/// every other connection.
async fn hide_max_model_len(upstream: &str) -> String {
    let upstream = upstream
        .strip_prefix("http://")
        .expect("http URL")
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut first = vec![0u8; 1 << 16];
                let Ok(n) = client.read(&mut first).await else {
                    return;
                };
                if first[..n].starts_with(b"GET /props") {
                    // Nor does /props say it here (it would clamp the prompt).
                    let _ = client
                        .write_all(b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    let _ = client.shutdown().await;
                    return;
                }
                if first[..n].starts_with(b"GET /v1/models") {
                    let body = r#"{"object":"list","data":[{"id":"spark-sim/sim-1","object":"model","owned_by":"llamacpp"}]}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = client.write_all(head.as_bytes()).await;
                    let _ = client.write_all(body.as_bytes()).await;
                    let _ = client.shutdown().await;
                    return;
                }
                let Ok(mut server) = TcpStream::connect(upstream.as_str()).await else {
                    return;
                };
                if server.write_all(&first[..n]).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    format!("http://{addr}")
}
