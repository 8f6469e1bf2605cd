//! llama-server (cpp-httplib) closes the connection after every streamed
//! response while its headers still say `keep-alive`, so a client's pooled
//! connection is dead when the next request is written on it. A proxy in
//! front of spark-sim does the same here: no request may be lost to it.
//! The workers spread over client threads lose none either.

use spark_load::RunOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common;

/// A proxy to `upstream` that closes the client's connection right after a
/// chunked response ends (`0\r\n\r\n`), as llama-server does after a stream.
async fn closing_after_streams(upstream: &str) -> String {
    let upstream = upstream
        .strip_prefix("http://")
        .expect("http URL")
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
                return;
            };
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                // What the client sends after the stream ended is read and
                // dropped (the server never answers it).
                let mut buf = vec![0u8; 1 << 16];
                let mut tail: Vec<u8> = Vec::new();
                while let Ok(n) = server_read.read(&mut buf).await {
                    if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    let keep = tail.len().saturating_sub(5);
                    tail.drain(..keep);
                    if tail == b"0\r\n\r\n" {
                        // The stream ended: close, whatever the headers
                        // said, a moment later (as llama-server's thread
                        // does), so that the client has written its next
                        // request on the connection by then; it is dropped.
                        requests.abort();
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        break;
                    }
                }
                requests.abort();
                let _ = client_write.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_server_that_closes_after_each_stream_loses_no_request() {
    let _serial = common::serial().await;
    let sim = common::start(|args| args.flavor = spark_sim::Flavor::Llamacpp);
    let url = closing_after_streams(&sim.url).await;
    let engine = spark_load::Engine::connect(spark_load::EngineConfig::new(url))
        .await
        .expect("connect");
    let result = common::run_one(
        &engine,
        &common::scenario("sequential", 24, 8, 12, 1),
        &RunOptions::default(),
    )
    .await;
    let failures: Vec<_> = result
        .requests
        .iter()
        .filter_map(|r| r.failure.as_ref())
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(result.aggregate.n_ok, 12);
    // The engine's counters were read on the same kind of connection.
    let counters = result.engine_counters.as_ref().expect("counters");
    assert_eq!(counters.error, None, "{counters:?}");
}

/// The load spread over client threads (`--client-cores`) sends every
/// request once and measures it whole.
#[tokio::test]
async fn client_threads_share_the_requests() {
    let _serial = common::serial().await;
    let sim = common::start(|_| {});
    let engine = spark_load::Engine::connect(spark_load::EngineConfig::new(sim.url.clone()))
        .await
        .expect("connect");
    for client_cores in [None, Some(1), Some(3)] {
        let options = RunOptions {
            client_cores,
            ..RunOptions::default()
        };
        let result = common::run_one(
            &engine,
            &common::scenario("throughput", 16, 32, 40, 8),
            &options,
        )
        .await;
        let failures: Vec<_> = result
            .requests
            .iter()
            .filter_map(|r| r.failure.as_ref())
            .collect();
        assert!(failures.is_empty(), "{client_cores:?}: {failures:#?}");
        assert_eq!(result.aggregate.n_ok, 40, "{client_cores:?}");
        let mut idx: Vec<u32> = result.requests.iter().map(|r| r.request_idx).collect();
        idx.sort_unstable();
        assert_eq!(idx, (0..40).collect::<Vec<_>>(), "{client_cores:?}");
        assert!(result.requests.iter().all(|r| r.output_tokens == Some(32)));
    }
}

/// A proxy to `upstream` that holds back the end of each chunked response
/// (`0\r\n\r\n`, after `[DONE]`): for `delay`, or for good with `None`.
/// Returns its URL and the number of its connections that carried a
/// completion request.
async fn withholding_the_end(
    upstream: &str,
    delay: Option<std::time::Duration>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let upstream = upstream
        .strip_prefix("http://")
        .expect("http URL")
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let completions = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = completions.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    let mut seen = false;
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if !seen && text.contains("/v1/chat/completions") {
                            seen = true;
                            counted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                // A read that ends with a response's end is forwarded
                // without it; the end follows `delay` later.
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = server_read.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let data = &buf[..n];
                    let Some(body) = data.strip_suffix(b"0\r\n\r\n") else {
                        if client_write.write_all(data).await.is_err() {
                            break;
                        }
                        continue;
                    };
                    if client_write.write_all(body).await.is_err() {
                        break;
                    }
                    let Some(delay) = delay else {
                        // Never: the client gives the connection up.
                        continue;
                    };
                    tokio::time::sleep(delay).await;
                    if client_write.write_all(b"0\r\n\r\n").await.is_err() {
                        break;
                    }
                }
                requests.abort();
            });
        }
    });
    (format!("http://{addr}"), completions)
}

/// After `[DONE]` the measurement is complete: a body that lingers is read
/// for a short while so that the connection can be reused, and one that
/// never ends costs the connection, never the request.
#[tokio::test]
async fn a_body_that_lingers_after_done_costs_no_request() {
    use std::sync::atomic::Ordering;
    let _serial = common::serial().await;
    let sim = common::start(|_| {});
    for (delay, reused) in [
        (Some(std::time::Duration::from_millis(40)), true),
        (None, false),
    ] {
        let (url, connections) = withholding_the_end(&sim.url, delay).await;
        let engine = spark_load::Engine::connect(spark_load::EngineConfig::new(url))
            .await
            .expect("connect");
        let before = connections.load(Ordering::SeqCst);
        let started = std::time::Instant::now();
        let result = common::run_one(
            &engine,
            &common::scenario("sequential", 16, 8, 6, 1),
            &RunOptions::default(),
        )
        .await;
        let failures: Vec<_> = result
            .requests
            .iter()
            .filter_map(|r| r.failure.as_ref())
            .collect();
        assert!(failures.is_empty(), "{delay:?}: {failures:#?}");
        assert_eq!(result.aggregate.n_ok, 6, "{delay:?}");
        assert!(result.requests.iter().all(|r| r.output_tokens == Some(8)));
        let used = connections.load(Ordering::SeqCst) - before;
        if reused {
            // The end came 40 ms late: the connection was kept.
            assert!(used <= 2, "{used} connections for 6 requests");
        } else {
            // It never came: each request gave its connection up after a
            // short wait, not after a timeout.
            assert!(used >= 6, "{used} connections for 6 requests");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{:?}",
                started.elapsed()
            );
        }
    }
}
