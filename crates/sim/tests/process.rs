//! The real `spark-sim` binary: the stdout line, the loading phase, SIGTERM,
//! the crash exit code and the `healthcheck` subcommand.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_spark-sim");

struct Proc {
    child: Child,
    base: String,
}

impl Proc {
    fn spawn(extra: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(["--host", "127.0.0.1", "--port", "0", "--profile", "zero"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn spark-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let base = line
            .trim()
            .strip_prefix("spark-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Proc { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits at most `limit` for the process to exit.
    fn wait_for_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "spark-sim did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Only our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigterm_stops_within_a_second_even_with_a_stalled_stream() {
    let mut sim = Proc::spawn(&["--stall-after", "1"]);
    let client = common::client();
    let mut stalled = client
        .post(sim.url("/v1/completions"))
        .json(&json!({"prompt": "x", "max_tokens": 50, "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(common::TIMEOUT, stalled.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some());
    sim.sigterm();
    let (status, took) = sim.wait_for_exit(Duration::from_secs(3));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sigterm_cuts_a_slow_stream_within_a_second() {
    let mut sim = Proc::spawn(&["--decode-ms", "100"]);
    let mut slow = common::client()
        .post(sim.url("/v1/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100, "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(common::TIMEOUT, slow.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some());
    sim.sigterm();
    let (status, took) = sim.wait_for_exit(Duration::from_secs(3));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn exit_after_requests_exits_with_code_3() {
    let mut sim = Proc::spawn(&["--exit-after-requests", "2"]);
    let client = common::client();
    for _ in 0..2 {
        let response = client
            .post(sim.url("/v1/completions"))
            .json(&json!({"prompt": "x", "max_tokens": 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("text_completion"));
    }
    let (status, _) = sim.wait_for_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(3));
}

#[tokio::test]
async fn loading_phase_refuses_then_answers_503_then_200() {
    let mut sim = Proc::spawn(&["--load-time", "1200ms", "--load-closed-fraction", "0.5"]);
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(4) {
        let state = match client.get(sim.url("/health")).send().await {
            Err(err) if err.is_connect() => "refused".to_owned(),
            Err(err) => panic!("unexpected error {err}"),
            Ok(response) => response.status().as_u16().to_string(),
        };
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "200" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(seen, ["refused", "503", "200"]);
    assert!(started.elapsed() >= Duration::from_millis(1000));
    sim.sigterm();
    let (status, _) = sim.wait_for_exit(Duration::from_secs(2));
    assert!(status.success());
}

#[tokio::test]
async fn never_ready_stays_503_and_generation_is_refused() {
    let mut sim = Proc::spawn(&["--never-ready"]);
    let client = common::client();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client
            .get(sim.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let generation = client
        .post(sim.url("/v1/completions"))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(generation.status(), 503);
    sim.sigterm();
    sim.wait_for_exit(Duration::from_secs(2));
}

#[test]
fn healthcheck_subcommand_reports_health_by_exit_code() {
    let sim = Proc::spawn(&[]);
    let ok = Command::new(BIN)
        .args(["healthcheck", "--url", &sim.url("/health")])
        .status()
        .unwrap();
    assert_eq!(ok.code(), Some(0));
    let not_found = Command::new(BIN)
        .args(["healthcheck", "--url", &sim.url("/nope")])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(not_found.code(), Some(1));
    drop(sim);
    let closed = Command::new(BIN)
        .args(["healthcheck", "--url", "http://127.0.0.1:1/health"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(closed.code(), Some(1));
}
