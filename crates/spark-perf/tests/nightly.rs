//! Nightly verdicts from run-to-run noise, end to end: a spark-sim process
//! per night with `--run-drift-pct 3 --jitter-pct 10` and a new seed, each
//! measured by `spark-perf bench --history H --check-history`. Twelve
//! ordinary nights are never flagged once five exist; a night with a real
//! step (decode 10 % slower, TTFT 10 % slower, 10 % of requests failing) is,
//! on the metrics the step moves; `history --changes` names the night.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Prefill and decode of the simulated engine, milliseconds: long enough
/// that the scheduling delays of a busy two-core machine (a few ms per
/// wake-up) stay small beside them.
const PREFILL_MS: f64 = 200.0;
const DECODE_MS: f64 = 50.0;

/// A short warmup of our own (the default one decodes 50 tokens), then the
/// measured scenario.
const SCENARIO: &str = r#"
[[scenario]]
name = "warmup"
discard = true
input_tokens = 20
max_tokens = 2

[[scenario]]
name = "nightly"
input_tokens = 64
max_tokens = 12
concurrency = 32
requests = 128
"#;

/// What differs in a night from the ordinary ones.
#[derive(Clone, Copy)]
enum Night {
    Ordinary,
    SlowDecode,
    SlowPrefill,
    Failing,
}

struct Sim {
    child: std::process::Child,
    url: String,
}

impl Sim {
    fn start(seed: u64, night: Night) -> Sim {
        let (prefill, decode, fail_rate) = match night {
            Night::Ordinary => (PREFILL_MS, DECODE_MS, 0.0),
            Night::SlowDecode => (PREFILL_MS, DECODE_MS * 1.10, 0.0),
            Night::SlowPrefill => (PREFILL_MS * 1.10, DECODE_MS, 0.0),
            Night::Failing => (PREFILL_MS, DECODE_MS, 0.1),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
            .args([
                "sim",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--profile",
                "zero",
            ])
            .args(["--prefill-base-ms", &prefill.to_string()])
            .args(["--decode-ms", &decode.to_string()])
            .args(["--fail-rate", &fail_rate.to_string()])
            .args(["--run-drift-pct", "3", "--jitter-pct", "10"])
            .args(["--seed", &seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sim starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let url = line
            .trim()
            .strip_prefix("spark-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .to_owned();
        Sim { child, url }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spark_perf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spark-perf"));
    command.env("NO_COLOR", "1").stdin(Stdio::null());
    command
}

/// One night: a fresh sim, `bench --check-history` into `dir/night-N`.
fn night(dir: &Path, n: u64, seed: u64, kind: Night) -> Output {
    let sim = Sim::start(seed, kind);
    let out = spark_perf()
        .args(["bench", "--url", &sim.url, "--name", "sim"])
        .arg("--scenario-file")
        .arg(dir.join("scenarios.toml"))
        .arg("--output")
        .arg(dir.join(format!("night-{n:02}")))
        .arg("--history")
        .arg(dir.join("history.sqlite"))
        .arg("--check-history")
        .output()
        .expect("bench runs");
    drop(sim);
    out
}

/// The tests measure real time: one at a time, so that they do not slow
/// each other down unevenly.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs 12 ordinary nights and then 3 nights of `step`; returns the
/// verdict output of the first stepped night.
fn nights_then(name: &str, step: Night, seed_base: u64) -> (TempDir, String) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir(
        std::env::temp_dir().join(format!("spark-perf-nightly-{name}-{}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    std::fs::write(dir.0.join("scenarios.toml"), SCENARIO).expect("scenarios");
    let mut false_alarms = Vec::new();
    for n in 1..=12 {
        let out = night(&dir.0, n, seed_base + n, Night::Ordinary);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // The first night has nothing to compare with (2); the next four
        // are weak verdicts against the night before. From the sixth on,
        // each is judged against the nights before it and must pass.
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "night {n}: {stderr}"
        );
        if n > 5 && out.status.code() != Some(0) {
            false_alarms.push(format!("night {n}: {stderr}"));
        }
    }
    eprintln!(
        "{name}: {} false alarms in the 7 ordinary nights judged from their history",
        false_alarms.len()
    );
    assert!(false_alarms.is_empty(), "false alarms: {false_alarms:#?}");
    let first = night(&dir.0, 13, seed_base + 13, step);
    let verdict = String::from_utf8_lossy(&first.stderr).into_owned();
    eprintln!(
        "{name}: the step night flagged {:?}",
        regressed_metrics(&verdict)
    );
    assert_eq!(first.status.code(), Some(1), "the step night: {verdict}");
    for n in 14..=15 {
        night(&dir.0, n, seed_base + n, step);
    }
    (dir, verdict)
}

fn regressed_metrics(verdict: &str) -> Vec<String> {
    verdict
        .lines()
        .filter(|l| l.starts_with("REGRESSION sim / nightly "))
        .filter_map(|l| {
            l.strip_prefix("REGRESSION sim / nightly ")?
                .split(':')
                .next()
        })
        .map(str::to_owned)
        .collect()
}

/// The change points `history --changes --json` names for `metric`: the
/// run ids where it shifted.
fn change_points(dir: &Path, metric: &str) -> Vec<i64> {
    let out = spark_perf()
        .args(["history", "--changes", "--json", "--metric", metric])
        .arg("--history")
        .arg(dir.join("history.sqlite"))
        .output()
        .expect("history runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let series: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    series
        .as_array()
        .expect("series")
        .iter()
        .flat_map(|s| s["runs"].as_array().cloned().unwrap_or_default())
        .filter(|r| !r["change_point"].is_null())
        .map(|r| r["run_id"].as_i64().expect("id"))
        .collect()
}

#[test]
fn a_slower_decode_is_flagged_on_its_first_night_and_ordinary_nights_never_are() {
    let (dir, verdict) = nights_then("decode", Night::SlowDecode, 1000);
    let flagged = regressed_metrics(&verdict);
    for metric in [
        "tpot_ms.p50",
        "itl_ms.p50",
        "e2e_ms.p50",
        "output_throughput_tok_s",
    ] {
        assert!(
            flagged.iter().any(|m| m == metric),
            "{metric} not flagged: {verdict}"
        );
    }
    // The 13th run is the first slow one.
    assert_eq!(change_points(&dir.0, "tpot_ms.p50"), vec![13], "{verdict}");
}

#[test]
fn a_slower_prefill_is_flagged_on_ttft() {
    let (dir, verdict) = nights_then("prefill", Night::SlowPrefill, 2000);
    let flagged = regressed_metrics(&verdict);
    assert!(flagged.iter().any(|m| m == "ttft_ms.p50"), "{verdict}");
    assert!(!flagged.iter().any(|m| m == "tpot_ms.p50"), "{verdict}");
    assert_eq!(change_points(&dir.0, "ttft_ms.p50"), vec![13], "{verdict}");
}

#[test]
fn ten_percent_failures_are_flagged_on_the_failure_rate() {
    let (_dir, verdict) = nights_then("failures", Night::Failing, 3000);
    assert!(
        regressed_metrics(&verdict)
            .iter()
            .any(|m| m == "failure_rate"),
        "{verdict}"
    );
}
