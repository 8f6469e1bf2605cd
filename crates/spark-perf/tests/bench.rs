//! `spark-perf bench --url` against a spark-sim that is already up (the
//! embedded one, as a child process): the same results as `run` (a run of
//! one engine), which `report` and `compare` read, and `--json` that stays
//! one JSON document with a baseline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A spark-sim process, killed on every path.
struct Sim {
    child: std::process::Child,
    url: String,
}

impl Sim {
    fn start() -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
            .args(["sim", "--host", "127.0.0.1", "--port", "0"])
            .args(["--profile", "zero"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sim starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
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

/// A temporary directory, removed on every path.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("spark-perf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spark_perf(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spark-perf"));
    command.args(args).env("NO_COLOR", "1").stdin(Stdio::null());
    command
}

/// `bench` of three 8-token latency requests into `dir`, named `sim`.
fn bench(sim: &Sim, dir: &Path, extra: &[&str]) -> Output {
    spark_perf(&["bench", "--url", &sim.url, "--name", "sim"])
        .args([
            "--scenarios",
            "latency",
            "--requests",
            "3",
            "--max-tokens",
            "8",
        ])
        .args(extra)
        .arg("--output")
        .arg(dir)
        .output()
        .expect("bench runs")
}

fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn bench_measures_an_engine_that_is_already_up() {
    let sim = Sim::start();
    let tmp = TempDir::new("bench-test");
    let dir = tmp.0.join("bench");
    let output = bench(&sim, &dir, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("[2/2] latency"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("latency") && stdout.contains("sim"),
        "{stdout}"
    );

    let records = std::fs::read_to_string(dir.join("sim").join("requests.jsonl")).expect("records");
    assert_eq!(
        records.lines().count(),
        3,
        "the warmup is not recorded: {records}"
    );
    // The run's results, exactly as `run` writes them: one engine.
    let suite = json_file(&dir.join("results.json"));
    assert_eq!(suite["complete"], true);
    assert_eq!(suite["engines"].as_array().map(Vec::len), Some(1));
    let engine = &suite["engines"][0];
    assert_eq!(engine["service"], "sim");
    assert_eq!(engine["outcome"]["status"], "ok");
    let latency = &engine["results"]["scenarios"][1];
    assert_eq!(latency["name"], "latency");
    assert_eq!(latency["aggregate"]["n_ok"], 3);
    assert_eq!(latency["aggregate"]["output_tokens_total"], 24);
    assert!(engine["results"]["stopped"].is_null());
    // The engine's own results.json and the reports beside it.
    assert_eq!(
        json_file(&dir.join("sim").join("results.json")),
        engine["results"]
    );
    assert!(dir.join("report.md").is_file() && dir.join("report.html").is_file());

    // Without --pid, runtime memory is N/A, and why, once.
    let telemetry = &engine["telemetry"];
    assert!(
        telemetry["unavailable"]
            .as_str()
            .is_some_and(|why| why.contains("--pid")),
        "{telemetry}"
    );
    assert!(
        std::fs::read_to_string(dir.join("report.md"))
            .expect("report.md")
            .contains("runtime memory and CPU N/A for sim")
    );

    // A second bench into the same directory would overwrite the first.
    let again = bench(&sim, &dir, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds results"));
}

#[test]
fn report_and_compare_read_a_bench_directory_and_one_engines_results() {
    let sim = Sim::start();
    let tmp = TempDir::new("bench-read-test");
    let dir = tmp.0.join("bench");
    let output = bench(&sim, &dir, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let engine_file = dir.join("sim").join("results.json");
    for source in [dir.clone(), dir.join("results.json"), engine_file.clone()] {
        let report = spark_perf(&["report", "--format", "md"])
            .arg(&source)
            .output()
            .expect("report runs");
        let stderr = String::from_utf8_lossy(&report.stderr);
        assert!(report.status.success(), "{source:?}: {stderr}");
        let text = String::from_utf8_lossy(&report.stdout);
        assert!(text.contains("sim") && text.contains("latency"), "{text}");
    }
    // The engine's results.json is the same run as the directory's: same
    // engine, same numbers, so nothing changed.
    let compare = spark_perf(&["compare"])
        .arg(&dir)
        .arg(&engine_file)
        .output()
        .expect("compare runs");
    let stdout = String::from_utf8_lossy(&compare.stdout);
    let stderr = String::from_utf8_lossy(&compare.stderr);
    assert_eq!(compare.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("latency"), "{stdout}");
    assert!(stderr.contains("no regression"), "{stderr}");
}

#[test]
fn json_with_a_baseline_stays_one_json_document() {
    let sim = Sim::start();
    let tmp = TempDir::new("bench-json-test");
    let baseline = tmp.0.join("baseline");
    let first = bench(&sim, &baseline, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let baseline_file = baseline.join("results.json");
    let current = tmp.0.join("current");
    let output = bench(
        &sim,
        &current,
        &[
            "--json",
            "--baseline",
            baseline_file.to_str().expect("utf-8"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The zero-latency sim is all noise: a regression (1) may be declared,
    // an error (2) may not.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{stdout}\n{stderr}"
    );
    // Exactly one document: trailing text after it fails to parse.
    let document: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("stdout is not one JSON document ({err}): {stdout}"));
    assert_eq!(document, json_file(&current.join("results.json")));
    // The comparison went to stderr.
    assert!(
        stderr.contains("verdict") && stderr.contains("TTFT p50"),
        "{stderr}"
    );
    // Both runs' requests.jsonl were read: the TTFT verdict has the
    // bootstrap's p-value, not `-` (the threshold alone).
    let ttft = stderr
        .lines()
        .find(|l| l.contains("TTFT p50"))
        .expect("a TTFT p50 line");
    let tokens: Vec<&str> = ttft.split_whitespace().collect();
    let change = tokens
        .iter()
        .position(|t| t.ends_with('%'))
        .expect("a change column");
    assert!(tokens[change + 1].parse::<f64>().is_ok(), "{ttft}");
}

#[test]
fn bench_with_a_pid_samples_the_engines_process() {
    let sim = Sim::start();
    let tmp = TempDir::new("bench-pid");
    let dir = tmp.0.join("bench");
    let pid = sim.child.id().to_string();
    let output = bench(&sim, &dir, &["--pid", &pid]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let suite = json_file(&dir.join("results.json"));
    let telemetry = &suite["engines"][0]["telemetry"];
    assert_eq!(telemetry["source"], format!("/proc/{pid}"), "{telemetry}");
    let latency = telemetry["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == "latency")
        .expect("latency")
        .clone();
    // The spark-sim process's resident set: megabytes.
    let peak = latency["memory_peak_bytes"].as_u64().expect("peak");
    assert!((1 << 20..1 << 30).contains(&peak), "{latency}");
}
