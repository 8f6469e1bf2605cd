//! The engine's own figures of `spark-perf bench` against spark-sim: a
//! scenario whose prompts share a long prefix gets the prefix-cache hit rate
//! the sim served (its truth log: cached over prompt tokens of that
//! scenario's requests), one with unique prompts gets none, for the vLLM
//! flavor (its counters) and the llama.cpp flavor (its per-response timings).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use spark_testkit::{SimProcess, TempDir};

const SCENARIOS: &str = "\
[[scenario]]
name = \"unique\"
group = \"mine\"
input_tokens = 256
max_tokens = 8
requests = 6
concurrency = 1

[[scenario]]
name = \"shared\"
group = \"mine\"
input_tokens = 256
shared_prefix_tokens = 192
max_tokens = 8
requests = 6
concurrency = 1
";

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{path:?}: {err}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Runs the two scenarios against a sim of `flavor` and returns the
/// engine's figures by scenario and the hit rate the sim's truth log gives
/// for each.
fn run(flavor: &str) -> (BTreeMap<String, serde_json::Value>, BTreeMap<String, f64>) {
    let tmp = TempDir::new(&format!("engine-metrics-{flavor}"));
    let truth = tmp.0.join("truth.jsonl");
    let sim = SimProcess::start(
        Path::new(env!("CARGO_BIN_EXE_spark-perf")),
        &[
            "sim",
            "--profile",
            "fp8-moe",
            "--flavor",
            flavor,
            "--truth-log",
            truth.to_str().expect("a UTF-8 path"),
        ],
    );
    let file = tmp.0.join("scenarios.toml");
    std::fs::write(&file, SCENARIOS).expect("scenario file");
    let dir = tmp.0.join("bench");
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args([
            "bench",
            "--url",
            &sim.url,
            "--name",
            "sim",
            "--scenarios",
            "mine",
        ])
        .arg("--scenario-file")
        .arg(&file)
        .arg("--output")
        .arg(&dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("bench runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    drop(sim);
    let report = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    for row in [
        "prefix-cache hit rate (%)",
        "KV-cache usage peak (%)",
        "queued requests peak",
    ] {
        assert!(report.contains(row), "{row} in {report}");
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).expect("results"))
            .expect("JSON");
    let figures: BTreeMap<String, serde_json::Value> =
        results["engines"][0]["telemetry"]["engine_metrics"]
            .as_array()
            .unwrap_or_else(|| panic!("engine metrics in {}", results["engines"][0]["telemetry"]))
            .iter()
            .map(|f| (f["name"].as_str().expect("name").to_owned(), f.clone()))
            .collect();
    // The sim's own account of each request, by the id the client sent.
    let served: BTreeMap<String, (f64, f64)> = json_lines(&truth)
        .iter()
        .map(|t| {
            (
                t["request_id"].as_str().expect("id").to_owned(),
                (
                    t["cached_tokens"].as_f64().expect("cached"),
                    t["prompt_tokens"].as_f64().expect("prompt"),
                ),
            )
        })
        .collect();
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for record in json_lines(&dir.join("sim").join("requests.jsonl")) {
        // The sim answers with its response id: `chatcmpl-` and the client's.
        let id = record["request_id"].as_str().expect("id");
        let (cached, prompt) = *served
            .get(&format!("chatcmpl-{id}"))
            .or_else(|| served.get(id))
            .unwrap_or_else(|| panic!("request {id} is not in the truth log"));
        let sum = sums
            .entry(record["scenario"].as_str().expect("scenario").to_owned())
            .or_default();
        sum.0 += cached;
        sum.1 += prompt;
    }
    let expected = sums
        .into_iter()
        .map(|(name, (cached, prompt))| (name, cached / prompt))
        .collect();
    (figures, expected)
}

fn check(flavor: &str, source: &str) -> BTreeMap<String, serde_json::Value> {
    let (figures, expected) = run(flavor);
    let shared = &figures["shared"];
    let rate = shared["prefix_cache_hit_rate"]
        .as_f64()
        .expect("a hit rate");
    assert!(
        expected["shared"] > 0.5,
        "the sim cached the prefix: {expected:?}"
    );
    assert!(
        (rate - expected["shared"]).abs() < 1e-9,
        "{shared} against {expected:?}"
    );
    assert_eq!(shared["prefix_cache_source"], source, "{shared}");
    assert_eq!(shared["warm_prefix_cache"], false, "{shared}");
    let unique = &figures["unique"];
    let rate = unique["prefix_cache_hit_rate"]
        .as_f64()
        .expect("a hit rate");
    assert!(
        (rate - expected["unique"]).abs() < 1e-9,
        "{unique} against {expected:?}"
    );
    assert!(rate < 0.01, "unique prompts hit nothing: {unique}");
    assert_eq!(unique["warm_prefix_cache"], rate > 0.0, "{unique}");
    // The gauges are read during the scenario and at its end.
    assert!(shared["kv_cache_usage_peak"].is_f64(), "{shared}");
    assert!(shared["queued_requests_peak"].is_f64(), "{shared}");
    figures
}

#[test]
fn vllm_counters_give_the_hit_rate_the_sim_served() {
    let figures = check(
        "vllm",
        "vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total",
    );
    // vLLM exports its TTFT histogram: its mean over the scenario.
    let ttft = figures["shared"]["engine_ttft_mean_ms"]
        .as_f64()
        .expect("TTFT");
    assert!(ttft > 0.0, "{}", figures["shared"]);
}

#[test]
fn llamacpp_timings_give_the_hit_rate_the_sim_served() {
    check("llamacpp", "timings.cache_n / (cache_n + prompt_n)");
}
