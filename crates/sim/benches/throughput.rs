//! How many tokens per second spark-sim streams on one core (`--profile zero`).
//!
//! The sim runs on a `current_thread` Tokio runtime (one thread, so one core);
//! a raw-TCP HTTP/1.1 keep-alive client on another thread sends streaming
//! completions with `ignore_eos` and counts the `data: ` events. To pin them to
//! cores of their own run it under `taskset`, e.g. `taskset -c 0,1 cargo bench
//! -p spark-sim`. Environment knobs: `SIM_BENCH_SECONDS` (default 3) and
//! `SIM_BENCH_TOKENS` (tokens per request, default 8192).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

fn main() {
    let seconds: f64 = env_or("SIM_BENCH_SECONDS", 3.0);
    let tokens_per_request: u32 = env_or("SIM_BENCH_TOKENS", 8192);

    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let mut args = spark_sim::SimArgs::defaults();
            args.host = "127.0.0.1".to_owned();
            args.port = Some(0);
            args.profile = spark_sim::ProfileName::Zero;
            args.max_model_len = 10_000_000;
            let sim = spark_sim::Sim::bind(args).await.expect("bind");
            addr_tx.send(sim.local_addr()).expect("send address");
            sim.run(async {
                let _ = stop_rx.await;
            })
            .await
            .expect("sim run");
        });
    });
    let addr = addr_rx.recv().expect("sim address");

    let body = format!(
        "{{\"model\":\"spark-sim/sim-1\",\"prompt\":\"Hello\",\"max_tokens\":{tokens_per_request},\"ignore_eos\":true,\"stream\":true}}"
    );
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let end_marker: &[u8] = b"data: [DONE]\n\n\r\n0\r\n\r\n";
    let mut buf = vec![0u8; 1 << 18];
    let mut carry: Vec<u8> = Vec::with_capacity(64);
    let mut n_events = 0usize;
    let mut n_requests = 0usize;
    let mut n_bytes = 0usize;
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        stream.write_all(request.as_bytes()).expect("send request");
        carry.clear();
        loop {
            let n = stream.read(&mut buf).expect("read");
            assert!(n > 0, "the sim closed the connection");
            n_bytes += n;
            // Events may straddle reads: keep a few bytes of the previous read.
            let mut window = std::mem::take(&mut carry);
            window.extend_from_slice(&buf[..n]);
            n_events += count(&window, b"data: ");
            if window.ends_with(end_marker) {
                break;
            }
            let keep = window.len().min(end_marker.len());
            carry.extend_from_slice(&window[window.len() - keep..]);
            // Matches inside the carried bytes are counted again next read.
            n_events -= count(&carry, b"data: ");
        }
        n_requests += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Every request ends with `data: [DONE]`, which is not a token.
    let n_tokens = n_events - n_requests;
    let _ = stop_tx.send(());
    let _ = server.join();

    let tokens_per_s = n_tokens as f64 / elapsed;
    println!(
        "spark-sim --profile zero, one core: {n_tokens} tokens in {n_requests} streaming requests over {elapsed:.2} s"
    );
    println!(
        "  {:.2} M tokens/s, {:.3} µs/token, {:.0} MB/s of SSE",
        tokens_per_s / 1e6,
        1e6 / tokens_per_s,
        n_bytes as f64 / elapsed / 1e6
    );
    assert_eq!(
        n_tokens,
        n_requests * tokens_per_request as usize,
        "every request must stream exactly max_tokens events"
    );
}
