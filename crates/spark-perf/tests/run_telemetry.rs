//! `spark-perf run` reads telemetry on the real Docker daemon: the sim
//! container's memory and CPU during each scenario, and the model's size
//! from what the service mounts: a bind-mounted GGUF (a fake few-KB file)
//! and a Hugging Face cache layout made here (`models--ORG--NAME` with a
//! snapshot of symlinks into `blobs/`). Both appear in results.json and in
//! the reports.
//!
//! Without a daemon the test prints why and passes, unless
//! SPARK_PERF_REQUIRE_DOCKER=1.

use std::path::Path;

use spark_testkit::{ProjectGuard, TempDir, free_port, the_run_dir};

const SCENARIOS: &str = r#"
[[scenario]]
name = "warmup"
discard = true
input_tokens = 20
max_tokens = 4
requests = 1

[[scenario]]
name = "throughput"
input_tokens = 200
max_tokens = 128
requests = 24
concurrency = 4
"#;

/// `hf/hub/models--acme--tiny-llm` with a 5,000-byte weights blob and a
/// 100-byte config blob linked twice; returns the snapshot's host path.
fn hf_cache(root: &Path) -> std::path::PathBuf {
    let repo = root.join("hub/models--acme--tiny-llm");
    std::fs::create_dir_all(repo.join("blobs")).expect("blobs");
    std::fs::write(repo.join("blobs/1111"), vec![1u8; 5000]).expect("blob");
    std::fs::write(repo.join("blobs/2222"), vec![2u8; 100]).expect("blob");
    std::fs::create_dir_all(repo.join("refs")).expect("refs");
    std::fs::write(repo.join("refs/main"), "abc123").expect("ref");
    let snapshot = repo.join("snapshots/abc123");
    std::fs::create_dir_all(&snapshot).expect("snapshot");
    for (blob, name) in [
        ("1111", "model.safetensors"),
        ("2222", "config.json"),
        ("2222", "generation_config.json"),
    ] {
        std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snapshot.join(name))
            .expect("symlink");
    }
    snapshot
}

fn compose(image: &str, gguf_port: u16, hf_port: u16) -> String {
    format!(
        r#"services:
  sim-gguf:
    image: {image}
    command: ["--host", "0.0.0.0", "--port", "8000", "--load-time", "1s",
              "--model", "/models/tiny.gguf", "--served-model-name", "tiny"]
    ports: ["{gguf_port}:8000"]
    volumes: ["./models:/models:ro"]
  sim-hf:
    image: {image}
    command: ["--host", "0.0.0.0", "--port", "8000", "--load-time", "1s",
              "--model", "acme/tiny-llm", "--flavor", "vllm"]
    ports: ["{hf_port}:8000"]
    volumes:
      - type: bind
        source: ./hf
        target: /root/.cache/huggingface
        read_only: true
"#
    )
}

#[test]
fn run_reads_the_containers_memory_and_the_models_size() {
    if !spark_testkit::docker_available("run_reads_the_containers_memory_and_the_models_size") {
        return;
    }
    let image = spark_testkit::sim_image();
    let dir = TempDir::new("run-telemetry");
    std::fs::create_dir_all(dir.0.join("models")).expect("models");
    std::fs::write(dir.0.join("models/tiny.gguf"), vec![0u8; 6144]).expect("gguf");
    let snapshot = hf_cache(&dir.0.join("hf"));
    let file = dir.0.join("compose.yml");
    std::fs::write(&file, compose(image, free_port(), free_port())).expect("compose");
    std::fs::write(dir.0.join("scenarios.toml"), SCENARIOS).expect("scenarios");
    let project = ProjectGuard::new("telemetry");
    let output = spark_testkit::run_command(
        env!("CARGO_BIN_EXE_spark-perf"),
        &project,
        &dir.0.join("scenarios.toml"),
        &dir.0.join("reports"),
        &dir.0.join("locks"),
    )
    .arg("--compose")
    .arg(&file)
    .args(["--health-timeout", "60s"])
    .arg("--no-history")
    .output()
    .expect("spark-perf runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(project.containers().is_empty(), "containers left behind");

    let run_dir = the_run_dir(&dir.0.join("reports"));
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("results.json")).expect("results"),
    )
    .expect("JSON");
    let engine = |name: &str| {
        results["engines"]
            .as_array()
            .expect("engines")
            .iter()
            .find(|e| e["service"] == name)
            .unwrap_or_else(|| panic!("{name} in {results}"))
            .clone()
    };
    // The machine's GPUs, or why none could be read: one of the two, once.
    let gpu = &results["gpu"];
    assert_ne!(
        gpu["backend"].is_string(),
        gpu["unavailable"].is_string(),
        "{gpu}"
    );
    for name in ["sim-gguf", "sim-hf"] {
        let telemetry = &engine(name)["telemetry"];
        assert_eq!(telemetry["source"], "docker stats", "{telemetry}");
        // The sim container's own metrics, sampled beside its scenarios.
        let figures = telemetry["engine_metrics"]
            .as_array()
            .expect("engine metrics");
        assert!(
            figures.iter().any(|f| f["name"] == "throughput"),
            "{telemetry}"
        );
        assert_eq!(telemetry["unavailable"], serde_json::Value::Null);
        let throughput = telemetry["scenarios"]
            .as_array()
            .expect("scenarios")
            .iter()
            .find(|s| s["name"] == "throughput")
            .expect("throughput")
            .clone();
        let peak = throughput["memory_peak_bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {telemetry}"));
        let mean = throughput["memory_mean_bytes"].as_u64().expect("mean");
        eprintln!("{name}: throughput peak {peak} B, mean {mean} B, {throughput}");
        // The static spark-sim serving 4 streams: more than a megabyte,
        // far less than a gigabyte.
        assert!((1 << 20..1 << 30).contains(&peak), "{throughput}");
        assert!(mean <= peak, "{throughput}");
        assert!(throughput["n_samples"].as_u64() >= Some(1), "{throughput}");
        assert!(!telemetry["samples"].as_array().expect("samples").is_empty());
    }

    let gguf = &engine("sim-gguf")["telemetry"]["model_size"];
    assert_eq!(gguf["bytes"], 6144, "{gguf}");
    assert_eq!(gguf["kind"], "gguf", "{gguf}");
    let host_gguf = dir.0.join("models/tiny.gguf").display().to_string();
    assert_eq!(gguf["path"].as_str(), Some(host_gguf.as_str()), "{gguf}");
    let hf = &engine("sim-hf")["telemetry"]["model_size"];
    assert_eq!(hf["bytes"], 5100, "{hf}");
    assert_eq!(hf["kind"], "hf_cache", "{hf}");
    let snapshot = snapshot.display().to_string();
    assert_eq!(hf["path"].as_str(), Some(snapshot.as_str()), "{hf}");

    // The reports' comparison tables show both beside the latencies.
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(
        markdown.contains("| model size | 6.0 KiB | 5.0 KiB |"),
        "{markdown}"
    );
    assert!(markdown.contains("| runtime memory peak |"), "{markdown}");
    let html = std::fs::read_to_string(run_dir.join("report.html")).expect("report.html");
    assert!(html.contains("sim-gguf: runtime memory"), "{html}");
}
