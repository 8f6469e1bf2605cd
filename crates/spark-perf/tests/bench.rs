//! `spark-perf bench --url` against a spark-sim that is already up (the
//! embedded one, as a child process): records as requests end, results and
//! a summary at the end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Kills the sim on every path.
struct Sim(std::process::Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bench_measures_an_engine_that_is_already_up() {
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let sim = Sim(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let url = line
        .trim()
        .strip_prefix("spark-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();

    let dir = std::env::temp_dir().join(format!("spark-perf-bench-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args([
            "bench",
            "--url",
            &url,
            "--scenarios",
            "latency",
            "--requests",
            "3",
        ])
        .args(["--max-tokens", "8", "--output"])
        .arg(&dir)
        .output()
        .expect("bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("[2/2] latency"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("latency"));

    let records = std::fs::read_to_string(dir.join("requests.jsonl")).expect("records");
    assert_eq!(
        records.lines().count(),
        3,
        "the warmup is not recorded: {records}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).expect("results"))
            .expect("JSON");
    let latency = &results["scenarios"][1];
    assert_eq!(latency["name"], "latency");
    assert_eq!(latency["aggregate"]["n_ok"], 3);
    assert_eq!(latency["aggregate"]["output_tokens_total"], 24);
    assert!(results["stopped"].is_null());
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
