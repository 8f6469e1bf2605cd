//! `spark-perf demo` end to end: the real binary runs three spark-sim
//! processes in turn, measures them, prints the comparison and writes every
//! report, and its results conform to the committed JSON schema.

use std::process::Command;

#[test]
fn demo_measures_three_simulated_engines_and_writes_every_report() {
    let output_dir =
        std::env::temp_dir().join(format!("spark-perf-demo-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["demo", "--output"])
        .arg(&output_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("spark-perf runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );

    // The comparison names the three engines and a winner per metric.
    for engine in ["sim-fp8-moe", "sim-bf16-dense", "sim-llamacpp-q4"] {
        assert!(stdout.contains(engine), "{stdout}");
    }
    assert!(stdout.contains("🏆"), "{stdout}");
    // The clamped 8K prompt is flagged, not hidden.
    assert!(stdout.contains("clamped"), "{stdout}");

    let runs: Vec<_> = std::fs::read_dir(&output_dir)
        .expect("output directory")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    let names: Vec<String> = std::fs::read_dir(run)
        .expect("run directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for expected in ["results.json", "report.md", "report.html", "sim-fp8-moe"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing in {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("model-comparison-") && n.ends_with(".txt"))
    );
    let requests = std::fs::read_to_string(run.join("sim-fp8-moe").join("requests.jsonl"))
        .expect("per-request records");
    assert!(requests.lines().count() >= 10, "{requests}");

    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("results.json")).expect("results.json"),
    )
    .expect("JSON");
    assert_eq!(results["complete"], true);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/results.schema.json"
        ))
        .expect("schema"),
    )
    .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&results)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    for engine in results["engines"].as_array().expect("engines") {
        assert_eq!(engine["outcome"]["status"], "ok", "{engine}");
        let healthy = engine["startup"]["healthy_s"]
            .as_f64()
            .expect("time to healthy");
        // spark-sim is told to load for 1 s.
        assert!(healthy >= 1.0, "{engine}");
    }
    let _ = std::fs::remove_dir_all(&output_dir);
}
