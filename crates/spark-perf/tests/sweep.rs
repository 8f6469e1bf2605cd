//! The concurrency sweep, goodput and the capacity search against spark-sim
//! processes whose batch is capped (`--max-num-seqs`): each finds its knee,
//! and the rate search brackets the rate at which the SLO starts failing;
//! the pick of both together differs by use case.
//!
//! A request of the small engine is 5 ms of prefill and 11 gaps of 10 ms
//! (12 tokens), of the large one 15 ms of prefill and the same gaps, with no
//! slowdown per running sequence, so below the cap throughput grows with
//! the level and latency stays flat, and above it throughput is flat while
//! requests queue for a slot. Bounds are generous: the machine is busy.

use std::process::{Command, Stdio};

use serde_json::Value;
use spark_testkit::{SimProcess, TempDir};

fn sim(max_num_seqs: u32, prefill_ms: &str, decode_ms: &str) -> SimProcess {
    let seqs = max_num_seqs.to_string();
    SimProcess::start(
        env!("CARGO_BIN_EXE_spark-perf").as_ref(),
        &[
            "sim",
            "--profile",
            "fp8-moe",
            "--max-num-seqs",
            &seqs,
            "--prefill-base-ms",
            prefill_ms,
            "--prefill-us-per-token",
            "0",
            "--prefill-ns-per-token-sq",
            "0",
            "--decode-ms",
            decode_ms,
            "--decode-ms-per-seq",
            "0",
        ],
    )
}

/// One user's latency (for the pick), then the sweep (levels 1 … 32, 12
/// tokens out), with an SLO.
const SCENARIOS: &str = "\
[[scenario]]
name = \"latency\"
input_tokens = 16
max_tokens = 12
requests = 5

[sweep]
levels = [1, 2, 4, 8, 16, 32]
rounds = 16
input_tokens = 16
max_tokens = 12

[slo]
ttft_p90 = \"60ms\"
";

/// `bench --json` of [`SCENARIOS`] with `extra` flags: the suite of the one
/// engine, named `name`.
fn bench(sim: &SimProcess, dir: &TempDir, name: &str, extra: &[&str]) -> Value {
    let file = dir.0.join("sweep.toml");
    std::fs::write(&file, SCENARIOS).expect("scenario file");
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["bench", "--url", &sim.url, "--name", name, "--json"])
        .args(["--scenario-file", file.to_str().expect("utf-8")])
        .args(["--scenarios", "latency,concurrency-sweep"])
        .args(["--output", dir.0.join("out").to_str().expect("utf-8")])
        .args(extra)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("bench runs");
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

/// (level, saturated_at) of every level that ran.
fn levels(results: &Value) -> Vec<(u64, Option<u64>)> {
    results["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter(|s| s["sweep"].is_object())
        .map(|s| {
            (
                s["sweep"]["level"].as_u64().expect("level"),
                s["sweep"]["saturated_at"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn the_sweep_finds_each_knee_and_the_capacity_search_brackets_the_slo() {
    let dir = TempDir::new("sweep-4");
    let small = sim(4, "5", "10");
    let small_suite = bench(
        &small,
        &dir,
        "small",
        &[
            "--capacity",
            "--capacity-probes",
            "6",
            "--capacity-probe-duration",
            "2s",
        ],
    );
    let results = &small_suite["engines"][0]["results"];
    let ran = levels(results);
    let knee = ran[0].1.expect("the sweep saturated");
    assert!(
        (4..=8).contains(&knee),
        "knee of max-num-seqs 4 at {knee}: {ran:?}"
    );
    assert!(ran.iter().all(|&(_, at)| at == Some(knee)), "{ran:?}");
    // It stopped after the level that showed saturation.
    let last = ran.last().expect("levels").0;
    assert!(last <= 16 && last > knee, "{ran:?}");

    // Goodput: below the cap every request met the TTFT bound; at 8 in
    // flight half of them wait a whole request for a slot.
    let scenario = |name: &str| {
        results["scenarios"]
            .as_array()
            .expect("scenarios")
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} ran"))
    };
    let c2 = scenario("sweep-c2");
    assert_eq!(c2["slo"]["met"], true, "{}", c2["slo"]);
    assert!(
        c2["slo"]["met_share"].as_f64().expect("share") > 0.8,
        "{}",
        c2["slo"]
    );
    let c8 = scenario("sweep-c8");
    assert_eq!(c8["slo"]["met"], false, "{}", c8["slo"]);
    let share = c8["slo"]["met_share"].as_f64().expect("share");
    assert!(share < 0.8, "{}", c8["slo"]);
    let goodput = c8["slo"]["goodput_rps"].as_f64().expect("goodput");
    let rps = c8["aggregate"]["request_throughput_rps"]
        .as_f64()
        .expect("rps");
    assert!(goodput < rps, "goodput {goodput} ≥ throughput {rps}");

    let capacity = &results["capacity"];
    assert_eq!(capacity["max_concurrency"], 4, "{capacity}");
    // The rate search: 4 slots of ~115 ms serve about 35 requests/s.
    let probes = capacity["probes"].as_array().expect("probes");
    assert!(probes.len() <= 6 && probes.len() >= 3, "{capacity}");
    let max_rate = capacity["max_rate_rps"].as_f64().expect("a rate held");
    let resolution = capacity["resolution_rps"].as_f64().expect("a rate failed");
    assert!(max_rate > 5.0 && max_rate < 45.0, "{capacity}");
    let met_at = |rate: f64| {
        probes
            .iter()
            .find(|p| (p["rate_rps"].as_f64().expect("rate") - rate).abs() < 1e-9)
            .map(|p| p["met"].as_bool().expect("met"))
    };
    assert_eq!(met_at(max_rate), Some(true), "{capacity}");
    assert_eq!(met_at(max_rate + resolution), Some(false), "{capacity}");
    // Six probes over a bracket of 1.5 T leave at most 1.5 T / 8.
    assert!(resolution <= 0.25 * max_rate.max(10.0) + 1e-9, "{capacity}");
    // Every rate that held lies below every rate that failed.
    let held = probes.iter().filter(|p| p["met"] == true);
    let lowest_fail = probes
        .iter()
        .filter(|p| p["met"] == false)
        .filter_map(|p| p["rate_rps"].as_f64())
        .fold(f64::INFINITY, f64::min);
    assert!(
        held.filter_map(|p| p["rate_rps"].as_f64())
            .all(|r| r < lowest_fail),
        "{capacity}"
    );

    // A larger batch saturates later.
    let dir = TempDir::new("sweep-16");
    let large = sim(16, "15", "10");
    let large_suite = bench(&large, &dir, "large", &[]);
    let results = &large_suite["engines"][0]["results"];
    let ran = levels(results);
    let late_knee = ran[0]
        .1
        .unwrap_or_else(|| panic!("the sweep saturated: {ran:?} {}", results["scenarios"]));
    assert!(
        (16..=32).contains(&late_knee),
        "knee of max-num-seqs 16 at {late_knee}: {ran:?}"
    );
    assert!(
        results["capacity"]["max_concurrency"]
            .as_u64()
            .expect("a level met")
            >= 16
    );
    assert!(results["capacity"]["max_rate_rps"].is_null());

    // Both engines in one run: the small one answers one user sooner, the
    // large one serves more at saturation and within the SLO.
    let mut both = small_suite.clone();
    both["engines"]
        .as_array_mut()
        .expect("engines")
        .push(large_suite["engines"][0].clone());
    let run = dir.0.join("both");
    std::fs::create_dir_all(&run).expect("run dir");
    std::fs::write(run.join("results.json"), both.to_string()).expect("results.json");
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["report", run.to_str().expect("utf-8"), "--format", "json"])
        .output()
        .expect("report runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let pick = |use_case: &str| {
        let verdict = report["pick"]["use_cases"]
            .as_array()
            .expect("use cases")
            .iter()
            .find(|u| u["use_case"] == use_case)
            .unwrap_or_else(|| panic!("{use_case} in {}", report["pick"]))
            .clone();
        assert_eq!(verdict["verdict"], "winner", "{verdict}");
        verdict["best"].as_str().expect("best").to_owned()
    };
    assert_eq!(pick("interactive chat"), "small");
    assert_eq!(pick("batch"), "large");
    assert_eq!(pick("capacity"), "large");
}

#[test]
fn a_bad_slo_is_a_usage_error_that_names_the_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args([
            "bench",
            "--url",
            "http://127.0.0.1:9",
            "--slo",
            "ttft_p90=2s,itl_p90=5ms",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("itl_p90"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["bench", "--url", "http://127.0.0.1:9", "--capacity"])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--capacity needs an SLO"), "{stderr}");
}
