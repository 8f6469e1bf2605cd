//! `spark-perf demo`: the first thing a newcomer runs. It starts spark-sim as
//! a child process (this binary re-executed as `spark-perf sim`), waits for it
//! to become healthy, streams one chat completion and prints what it measured.
//!
//! This is the interim demo of the workspace issue; the run/report issue
//! replaces it with the full flow over three simulated engines.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::EXIT_OK;

const MODEL: &str = "demo-fp8-moe";

/// Options of `spark-perf demo`.
#[derive(Debug, clap::Args)]
pub struct DemoOpts {
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
}

pub(crate) async fn run(opts: DemoOpts) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("cannot find the spark-perf executable")?;
    let mut child = Command::new(exe)
        .args([
            "sim",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--profile",
            "fp8-moe",
            "--load-time",
            "1s",
            "--served-model-name",
            MODEL,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the simulated engine")?;
    let outcome = measure(&mut child, &opts).await;
    stop(&mut child).await;
    outcome
}

async fn measure(child: &mut Child, opts: &DemoOpts) -> anyhow::Result<u8> {
    let stdout = child.stdout.take().context("no stdout from spark-sim")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("spark-sim did not say where it listens within 10 s")??
        .context("spark-sim exited before it listened")?;
    let base = line
        .strip_prefix("spark-sim listening on ")
        .with_context(|| format!("unexpected first line from spark-sim: {line:?}"))?
        .to_owned();
    eprintln!("started spark-sim at {base}; waiting for /health");

    let client = reqwest::Client::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    loop {
        let healthy = client
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if healthy {
            break;
        }
        if Instant::now() > deadline {
            bail!("spark-sim at {base} was not healthy within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let time_to_healthy = started.elapsed();

    let body = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me about GPUs."}],
        "max_tokens": opts.max_tokens,
        "ignore_eos": true,
        "temperature": 0.7,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let sent = Instant::now();
    let response = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .context("the completion request failed")?;
    if !response.status().is_success() {
        bail!("the completion request got HTTP {}", response.status());
    }
    let mut stream = response.bytes_stream();
    let mut pending = String::new();
    let mut text = String::new();
    let mut first_token: Option<Duration> = None;
    let mut completion_tokens = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the stream broke")?;
        let now = sent.elapsed();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(data)?;
            if let Some(content) = value["choices"][0]["delta"]["content"].as_str() {
                if !content.is_empty() && first_token.is_none() {
                    first_token = Some(now);
                }
                text.push_str(content);
            }
            if let Some(tokens) = value["usage"]["completion_tokens"].as_u64() {
                completion_tokens = Some(tokens);
            }
        }
    }
    let e2e = sent.elapsed();
    let ttft = first_token.context("no token arrived")?;
    let n_tokens = completion_tokens.context("the stream carried no usage")?;
    let decode = e2e.saturating_sub(ttft).as_secs_f64();
    println!("model            {MODEL} (spark-sim, profile fp8-moe)");
    println!("time to healthy  {:.2} s", time_to_healthy.as_secs_f64());
    println!("TTFT             {:.1} ms", ttft.as_secs_f64() * 1e3);
    println!("E2E latency      {:.1} ms", e2e.as_secs_f64() * 1e3);
    println!("output tokens    {n_tokens}");
    if n_tokens > 1 && decode > 0.0 {
        println!(
            "decode speed     {:.1} tok/s",
            (n_tokens - 1) as f64 / decode
        );
    }
    println!("text             {}", text.trim());
    Ok(EXIT_OK)
}

/// SIGTERM first, as Docker does, then kill if it lingers.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok())
        && let Some(pid) = rustix::process::Pid::from_raw(pid)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
