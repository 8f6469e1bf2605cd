//! `spark-perf run` on the real Docker daemon with a compose file as people
//! write them: an engine whose host port Docker assigns (`ports: ["8000"]`)
//! and whose weights a one-shot job "downloads" first
//! (`service_completed_successfully`), beside an engine whose downloader
//! fails: the first is measured on the port read back from its container,
//! the second is an N/A column naming the dependency and its exit code, and
//! nothing of the project is left behind.

use spark_testkit::{ProjectGuard, TempDir, the_run_dir};

const COMPOSE: &str = r#"
services:
  fetch-good:
    image: spark-sim:dev
    x-spark-perf: {inference: false}
    command: ["--version"]
  fetch-bad:
    image: spark-sim:dev
    x-spark-perf: {inference: false}
    command: ["--no-such-flag-for-the-download"]
  assigned:
    image: spark-sim:dev
    x-spark-perf: {inference: true}
    stop_grace_period: 5s
    command: ["--host", "0.0.0.0", "--port", "8000", "--served-model-name", "tiny"]
    ports: ["127.0.0.1::8000"]
    depends_on:
      fetch-good:
        condition: service_completed_successfully
  broken-download:
    image: spark-sim:dev
    x-spark-perf: {inference: true}
    stop_grace_period: 5s
    command: ["--host", "0.0.0.0", "--port", "8000", "--served-model-name", "tiny"]
    ports: ["127.0.0.1::8000"]
    depends_on:
      fetch-bad:
        condition: service_completed_successfully
"#;

const SCENARIOS: &str = r#"
[[scenario]]
name = "latency"
input_tokens = 20
max_tokens = 4
requests = 2
"#;

#[test]
fn an_assigned_port_engine_is_measured_and_a_failed_downloader_makes_its_engine_na() {
    if !spark_testkit::docker_available("an_assigned_port_engine_is_measured") {
        return;
    }
    spark_testkit::sim_image();
    let project = ProjectGuard::new("run-depends");
    let dir = TempDir::new(&project.0);
    std::fs::write(dir.0.join("compose.yml"), COMPOSE).expect("compose");
    std::fs::write(dir.0.join("scenarios.toml"), SCENARIOS).expect("scenarios");
    let output = spark_testkit::run_command(
        env!("CARGO_BIN_EXE_spark-perf"),
        &project,
        &dir.0.join("scenarios.toml"),
        &dir.0.join("reports"),
        &dir.0.join("locks"),
    )
    .arg("--compose")
    .arg(dir.0.join("compose.yml"))
    .args(["--health-timeout", "60s"])
    .output()
    .expect("spark-perf runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // One engine failed, so the exit code says so.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("assigned: Docker assigned host port"),
        "{stderr}"
    );
    assert!(
        project.containers().is_empty(),
        "left: {:?}",
        project.containers()
    );
    let run_dir = the_run_dir(&dir.0.join("reports"));
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("results.json")).expect("results"),
    )
    .expect("JSON");
    let engines = results["engines"].as_array().expect("engines");
    let engine = |name: &str| {
        engines
            .iter()
            .find(|e| e["service"] == name)
            .unwrap_or_else(|| panic!("{name} in {results}"))
    };
    let good = engine("assigned");
    assert_eq!(good["outcome"]["status"], "ok", "{good}");
    let latency = good["results"]["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == "latency")
        .expect("latency");
    assert_eq!(latency["aggregate"]["n_ok"], 2, "{latency}");
    let bad = engine("broken-download");
    assert_eq!(bad["outcome"]["status"], "failed", "{bad}");
    let reason = bad["outcome"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("dependency fetch-bad")
            && reason.contains("service_completed_successfully")
            && reason.contains("exited with code"),
        "{reason}"
    );
    // Its log tail says why: the sim's own words about the flag.
    assert!(reason.contains("no-such-flag-for-the-download"), "{reason}");
}
