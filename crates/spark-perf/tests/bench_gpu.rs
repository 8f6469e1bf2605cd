//! GPU telemetry of `spark-perf bench`: with a stand-in `nvidia-smi` that
//! prints what a DGX Spark (GB10) prints, memory `[N/A]`, results.json has
//! the power, the memory labelled unified host memory and the energy per
//! output token; on a machine without a GPU every report says so once and
//! the run succeeds.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use spark_testkit::{SimProcess, TempDir};

/// The power the stand-in reports at every reading, watts.
const POWER_W: f64 = 11.25;

/// A `bench` of one latency scenario whose GPU detection looks only in
/// `tools_dir` and loads an NVML library that does not exist.
fn bench(sim: &SimProcess, dir: &Path, tools_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["bench", "--url", &sim.url, "--name", "sim"])
        .args([
            "--scenarios",
            "latency",
            "--requests",
            "4",
            "--max-tokens",
            "16",
        ])
        .arg("--output")
        .arg(dir)
        .env("NO_COLOR", "1")
        .env("SPARK_PERF_GPU_TOOLS_DIR", tools_dir)
        .env(
            "SPARK_PERF_NVML_LIBRARY",
            dir.with_file_name("libnvidia-ml-absent.so.1"),
        )
        .stdin(Stdio::null())
        .output()
        .expect("bench runs")
}

fn sim() -> SimProcess {
    SimProcess::start(
        Path::new(env!("CARGO_BIN_EXE_spark-perf")),
        &["sim", "--profile", "fp8-moe"],
    )
}

fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
    serde_json::from_str(&text).expect("JSON")
}

fn assert_schema_valid(results: &serde_json::Value) {
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
        .iter_errors(results)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// Writes an executable `nvidia-smi` into `dir` that answers the query as
/// GB10 does: power and temperature, memory not supported.
fn gb10_nvidia_smi(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("tools dir");
    let path = dir.join("nvidia-smi");
    // name, driver_version, power.draw, temperature.gpu, utilization.gpu,
    // memory.used, memory.total, as `--format=csv,noheader,nounits` prints them.
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho 'NVIDIA GB10, 580.95.05, {POWER_W}, 47, 96, [N/A], [N/A]'\n"),
    )
    .expect("write the stand-in");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_gb10_reports_power_unified_memory_and_energy_per_token() {
    let sim = sim();
    let tmp = TempDir::new("bench-gpu-gb10");
    let tools = tmp.0.join("tools");
    gb10_nvidia_smi(&tools);
    let dir = tmp.0.join("bench");
    let output = bench(&sim, &dir, &tools);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results = json_file(&dir.join("results.json"));
    assert_schema_valid(&results);
    let gpu = &results["gpu"];
    assert_eq!(gpu["backend"], "nvidia_smi", "{gpu}");
    assert_eq!(gpu["devices"], serde_json::json!(["NVIDIA GB10"]), "{gpu}");
    assert_eq!(gpu["driver_version"], "580.95.05", "{gpu}");
    assert_eq!(gpu["unavailable"], serde_json::Value::Null, "{gpu}");

    let engine = &results["engines"][0];
    let scenario = engine["telemetry"]["gpu"]["scenarios"]
        .as_array()
        .expect("GPU scenarios")
        .iter()
        .find(|s| s["name"] == "latency")
        .expect("the latency scenario")
        .clone();
    let device = &scenario["devices"][0];
    assert_eq!(device["name"], "NVIDIA GB10", "{device}");
    assert_eq!(device["power_mean_w"], POWER_W, "{device}");
    assert_eq!(device["power_peak_w"], POWER_W, "{device}");
    assert_eq!(device["temperature_peak_c"], 47.0, "{device}");
    assert_eq!(device["utilization_mean_pct"], 96.0, "{device}");
    // GB10 has no memory of its own: the host's, labelled so, never VRAM.
    assert_eq!(device["memory_kind"], "unified_host", "{device}");
    assert!(
        device["memory_peak_mib"].as_f64().expect("memory") > 0.0,
        "{device}"
    );

    // Constant power over the scenario's window, integrated: P × duration.
    let duration_s =
        scenario["end_s"].as_f64().expect("end") - scenario["start_s"].as_f64().expect("start");
    let energy_j = scenario["energy_j"].as_f64().expect("energy");
    assert_eq!(scenario["energy_method"], "integrated_power", "{scenario}");
    assert!(
        (energy_j - POWER_W * duration_s).abs() < 1e-6 * energy_j.max(1.0),
        "{energy_j} J over {duration_s} s"
    );
    let n_tokens = engine["results"]["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == "latency")
        .expect("latency results")["aggregate"]["output_tokens_total"]
        .as_f64()
        .expect("output tokens");
    assert!(n_tokens > 0.0);
    let per_token = scenario["joules_per_output_token"]
        .as_f64()
        .expect("J/token");
    assert!((per_token - energy_j / n_tokens).abs() < 1e-9, "{scenario}");
    let per_joule = scenario["output_tokens_per_joule"].as_f64().expect("tok/J");
    assert!((per_joule - n_tokens / energy_j).abs() < 1e-6, "{scenario}");

    // Every renderer shows the rows and the device.
    let run_files: Vec<String> = ["report.md", "report.html"]
        .iter()
        .map(|name| std::fs::read_to_string(dir.join(name)).expect("report"))
        .chain([stdout.to_string()])
        .collect();
    for text in &run_files {
        assert!(text.contains("GPU: NVIDIA GB10"), "{text}");
        assert!(text.contains("GPU power mean (W)"), "{text}");
        assert!(text.contains("GPU temperature peak (°C)"), "{text}");
        assert!(
            text.contains("GPU memory peak (unified host memory)"),
            "{text}"
        );
        assert!(text.contains("energy per output token (J/token)"), "{text}");
        assert!(!text.contains("GPU: N/A"), "{text}");
    }
    let html = &run_files[1];
    assert!(html.contains("sim: GPU power"), "the power chart");
}

#[test]
fn without_a_gpu_every_report_says_so_once_and_the_run_succeeds() {
    let sim = sim();
    let tmp = TempDir::new("bench-gpu-none");
    let tools = tmp.0.join("no-tools");
    std::fs::create_dir_all(&tools).expect("tools dir");
    let dir = tmp.0.join("bench");
    let output = bench(&sim, &dir, &tools);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results = json_file(&dir.join("results.json"));
    assert_schema_valid(&results);
    let why = results["gpu"]["unavailable"].as_str().expect("the reason");
    assert!(why.starts_with("no NVIDIA driver ("), "{why}");
    assert!(why.contains("nvidia-smi: not found"), "{why}");
    assert!(
        why.contains("no AMD tools (amd-smi: not found; rocm-smi: not found)"),
        "{why}"
    );
    assert!(
        results["gpu"]["devices"]
            .as_array()
            .expect("devices")
            .is_empty()
    );
    let telemetry = &results["engines"][0]["telemetry"];
    assert!(telemetry.get("gpu").is_none(), "{telemetry}");

    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let reports = ["report.md", "report.html"]
        .iter()
        .map(|name| std::fs::read_to_string(dir.join(name)).expect("report"))
        .chain([stdout]);
    for text in reports {
        assert_eq!(
            text.matches("GPU: N/A (no NVIDIA driver").count(),
            1,
            "{text}"
        );
        assert!(!text.contains("GPU power"), "no GPU rows: {text}");
    }
}
