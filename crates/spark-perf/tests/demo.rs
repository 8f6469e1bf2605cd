//! `spark-perf demo` end to end: the real binary starts the embedded sim as a
//! child process, streams a completion, prints what it measured and leaves no
//! process behind.

use std::process::Command;

#[test]
fn demo_measures_the_embedded_sim() {
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["demo", "--max-tokens", "16"])
        .output()
        .expect("spark-perf runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    // Usage from the server, not a count of chunks: exactly what was asked.
    assert!(
        stdout
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>() == ["output", "tokens", "16"]),
        "{stdout}"
    );
    let ttft_ms: f64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("TTFT"))
        .and_then(|rest| rest.trim().strip_suffix(" ms"))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no TTFT line in {stdout}"));
    assert!(ttft_ms > 0.0, "{stdout}");
    assert!(
        stderr.contains("started spark-sim at http://127.0.0.1:"),
        "{stderr}"
    );
}
