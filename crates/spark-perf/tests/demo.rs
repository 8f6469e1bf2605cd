//! `spark-perf demo` end to end: the real binary runs three spark-sim
//! processes in turn, measures them (a three-level concurrency sweep under
//! a default SLO among the scenarios), prints the comparison and writes
//! every report, and its results conform to the committed JSON schema.

use std::process::Command;
use std::time::{Duration, Instant};

/// The demo took about 37 s on a busy 2-core machine, in a release build
/// and in this debug one alike (its time is mostly the sims' modelled
/// prefill and decode). The bound is generous, so a busier machine does not
/// fail it: it catches a demo that grew by most of a minute.
const DEMO_BOUND: Duration = Duration::from_secs(90);

#[test]
fn demo_measures_three_simulated_engines_and_writes_every_report() {
    let output_dir =
        std::env::temp_dir().join(format!("spark-perf-demo-test-{}", std::process::id()));
    let clock = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["demo", "--output"])
        .arg(&output_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("spark-perf runs");
    let took = clock.elapsed();
    eprintln!("the demo took {:.1} s", took.as_secs_f64());
    assert!(took < DEMO_BOUND, "the demo took {took:?}");
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
    // The report opens with the pick: the summary, then one line per use
    // case, before the first comparison table.
    let pick_at = stdout.find("The pick").expect("the pick");
    let which_at = stdout.find("Which to run").expect("which to run");
    let tables_at = stdout.find("latency: ").expect("the latency table");
    assert!(pick_at < which_at && which_at < tables_at, "{stdout}");
    for use_case in ["interactive chat → ", "batch → ", "long documents → "] {
        assert!(stdout.contains(use_case), "{stdout}");
    }

    let runs: Vec<_> = std::fs::read_dir(&output_dir)
        .expect("output directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_dir())
        .collect();
    // Beside the run directory: the history the demo appended to.
    assert!(output_dir.join("history.sqlite").is_file());
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
    let use_cases = results["pick"]["use_cases"].as_array().expect("the pick");
    assert_eq!(use_cases.len(), 5, "{use_cases:?}");
    // The three healthy sims all ran latency and throughput: chat and batch
    // are decided (a winner or a tie), never N/A.
    for decided in &use_cases[..2] {
        assert_ne!(decided["verdict"], "not_available", "{decided}");
    }
    check_sweep(&stderr, run, &results);
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
    // The machine's GPUs, or why none could be read: one of the two, once.
    let gpu = &results["gpu"];
    assert_ne!(
        gpu["backend"].is_string(),
        gpu["unavailable"].is_string(),
        "{gpu}"
    );
    for engine in results["engines"].as_array().expect("engines") {
        assert_eq!(engine["outcome"]["status"], "ok", "{engine}");
        // The sim's own metrics, per scenario (vLLM's and llama.cpp's names).
        let figures = engine["telemetry"]["engine_metrics"]
            .as_array()
            .expect("engine metrics");
        assert!(
            figures.iter().any(|f| f["kv_cache_usage_peak"].is_f64()),
            "{engine}"
        );
        let healthy = engine["startup"]["healthy_s"]
            .as_f64()
            .expect("time to healthy");
        // spark-sim is told to load for 500 ms.
        assert!(healthy >= 0.5, "{engine}");
        // Its process's memory during each scenario, from /proc.
        let telemetry = &engine["telemetry"];
        assert!(
            telemetry["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("/proc/")),
            "{telemetry}"
        );
        for scenario in telemetry["scenarios"].as_array().expect("scenarios") {
            let peak = scenario["memory_peak_bytes"].as_u64().expect("peak");
            assert!((1 << 20..1 << 30).contains(&peak), "{scenario}");
        }
    }

    check_report_and_compare(run, &results);
    let _ = std::fs::remove_dir_all(&output_dir);
}

/// The sweep under the default SLO: said on stderr, run on every engine,
/// the source of each engine's output tok/s at saturation and of its
/// capacity, and drawn in the HTML report.
fn check_sweep(stderr: &str, run: &std::path::Path, results: &serde_json::Value) {
    assert!(
        stderr.contains("SLO ttft_p90=1000ms,tpot_p90=24ms (from the demo's default"),
        "{stderr}"
    );
    for engine in results["engines"].as_array().expect("engines") {
        let engine_results = &engine["results"];
        let levels = engine_results["scenarios"]
            .as_array()
            .expect("scenarios")
            .iter()
            .filter(|s| s["sweep"].is_object() && s["slo"].is_object())
            .count();
        assert!(levels >= 2, "{engine}");
        assert!(engine_results["capacity"].is_object(), "{engine}");
    }
    for row in results["pick"]["summary"].as_array().expect("summary") {
        let source = row["saturation_output_tok_s"]["source"]
            .as_str()
            .expect("a saturation figure");
        assert!(source.starts_with("sweep-c"), "{row}");
        let capacity = &row["capacity_within_slo"];
        assert!(
            capacity["value"].is_number()
                || capacity["not_available"] == "no level of the concurrency sweep met the SLO",
            "{row}"
        );
    }
    let html = std::fs::read_to_string(run.join("report.html")).expect("report.html");
    for id in ["frontier-chart", "ttft-load-chart", "slo-region"] {
        assert!(html.contains(id), "{id} missing in the HTML report");
    }
}

fn spark_perf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(args)
        .output()
        .expect("spark-perf runs")
}

/// `report` re-renders the demo's run exactly, and `compare` gives the exit
/// codes a cron job acts on: 0 for the same run, 1 for a regression, 2 for
/// runs that are not comparable.
fn check_report_and_compare(run: &std::path::Path, results: &serde_json::Value) {
    let run_arg = run.to_str().expect("UTF-8 path");
    let markdown = spark_perf(&["report", run_arg, "--format", "md"]);
    assert!(markdown.status.success());
    assert_eq!(
        String::from_utf8_lossy(&markdown.stdout),
        std::fs::read_to_string(run.join("report.md")).expect("report.md")
    );

    let baseline = run.join("results.json");
    let baseline_arg = baseline.to_str().expect("UTF-8 path");
    let same = spark_perf(&["compare", baseline_arg, baseline_arg]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );

    // The first engine's throughput TTFT three times slower: a regression.
    // The copy lies apart from the run's requests.jsonl, so its aggregates
    // (not the baseline's records) are what is compared.
    let mut slower = results.clone();
    let scenarios = slower["engines"][0]["results"]["scenarios"]
        .as_array_mut()
        .expect("scenarios");
    let throughput = scenarios
        .iter_mut()
        .find(|s| s["name"] == "throughput")
        .expect("throughput scenario");
    let p50 = throughput["aggregate"]["ttft_ms"]["p50"]
        .as_f64()
        .expect("p50");
    throughput["aggregate"]["ttft_ms"]["p50"] = serde_json::json!(p50 * 3.0);
    let slower_dir = run.join("slower");
    std::fs::create_dir_all(&slower_dir).expect("dir");
    let slower_path = slower_dir.join("results.json");
    std::fs::write(&slower_path, slower.to_string()).expect("write");
    let regressed = spark_perf(&["compare", baseline_arg, slower_path.to_str().expect("path")]);
    let table = String::from_utf8_lossy(&regressed.stdout);
    assert_eq!(regressed.status.code(), Some(1), "{table}");
    assert!(table.contains("REGRESSED"), "{table}");

    // Another command line: not comparable unless forced.
    let mut other = results.clone();
    other["engines"][0]["provenance"]["command"]
        .as_array_mut()
        .expect("command")
        .push(serde_json::json!("--max-num-seqs=8"));
    let other_path = run.join("other.json");
    std::fs::write(&other_path, other.to_string()).expect("write");
    let refused = spark_perf(&["compare", baseline_arg, other_path.to_str().expect("path")]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("command differs"));
    let forced = spark_perf(&[
        "compare",
        "--force",
        baseline_arg,
        other_path.to_str().expect("path"),
    ]);
    assert_eq!(forced.status.code(), Some(0));
}
