//! A real engine in the loop: llama.cpp's llama-server, built from source by
//! `cargo xtask llamacpp-image`, serving the tiny generated model.
//!
//! - `spark-perf run -f compose/llamacpp.yml` end to end on the Docker
//!   daemon: llama-server's loading phase, exact prompts from its
//!   `/tokenize`, the context from `/props` (the targets that do not fit
//!   clamped with a note), `timings` and `llamacpp:` counters, startup cost,
//!   no failure, no container left behind.
//! - the same image serving the model from a bind mount (the compose file's
//!   second service).
//! - `spark-perf bench --url` against a llama-server process (no Docker),
//!   where a prompt over the context is llama.cpp's own `context_length`
//!   error.
//!
//! They skip with the reason printed where llama.cpp is not built (it takes
//! 10 to 25 minutes), except under `SPARK_PERF_REQUIRE_DOCKER=1`, where
//! they build it (.ci/run builds it first, cached outside the checkout).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use spark_testkit::{ProjectGuard, free_port, the_run_dir};

/// The built-in scenarios at sizes a CPU and a tiny model run in about a
/// minute: every default group, long context past the context.
const SCENARIOS: &str = r#"
[[scenario]]
name = "warmup"
discard = true
input_tokens = 32
max_tokens = 8
requests = 1

[[scenario]]
name = "latency"
input_tokens = 50
max_tokens = 24
requests = 3

[[scenario]]
name = "prompt-short"
input_tokens = 20
max_tokens = 16
requests = 2

[[scenario]]
name = "prompt-long"
input_tokens = 200
max_tokens = 16
requests = 2

[[scenario]]
name = "long-context-512"
group = "long-context"
input_tokens = 512
max_tokens = 16
requests = 2
concurrency = 1

[[scenario]]
name = "long-context-1k"
input_tokens = 1024
max_tokens = 16
requests = 1

[[scenario]]
name = "long-context-8k"
input_tokens = 8192
max_tokens = 16
requests = 1

[[scenario]]
name = "sequential"
input_tokens = 64
max_tokens = 24
requests = 3

[[scenario]]
name = "throughput"
input_tokens = 64
max_tokens = 24
requests = 8
concurrency = 4
temperature = 0.0
"#;

struct Setup {
    project: ProjectGuard,
    dir: PathBuf,
    output_dir: PathBuf,
    scenario_file: PathBuf,
}

fn setup(name: &str, scenarios: &str) -> Setup {
    let project = ProjectGuard::new(name);
    let dir = std::env::temp_dir().join(&project.0);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let scenario_file = dir.join("scenarios.toml");
    std::fs::write(&scenario_file, scenarios).expect("scenario file");
    Setup {
        project,
        output_dir: dir.join("reports"),
        dir,
        scenario_file,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_compose(setup: &Setup, extra: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = spark_testkit::run_command(
        env!("CARGO_BIN_EXE_spark-perf"),
        &setup.project,
        &setup.scenario_file,
        &setup.output_dir,
        &setup.dir.join("locks"),
    );
    command
        .current_dir(spark_testkit::workspace_root())
        .args(["-f", "compose/llamacpp.yml"])
        .args(["--health-timeout", "120s"])
        .args(extra)
        .env("LLAMACPP_PORT", free_port().to_string());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("spark-perf runs")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("requests.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record"))
        .collect()
}

fn scenario<'a>(results: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    results["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {results}"))
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The engine-timings cross-check over a set of records: client TTFT is
/// never below llama-server's own `prompt_ms`, and client TPOT agrees with
/// the engine's (`predicted_ms / (predicted_n − 1)`). Returns the TTFT −
/// `prompt_ms` values for the figures.
fn check_engine_timings(records: &[serde_json::Value]) -> Vec<f64> {
    let mut over = Vec::new();
    let mut ratios = Vec::new();
    for record in records {
        let timings = &record["engine_timings"];
        assert!(timings.is_object(), "llama-server sent timings: {record}");
        let prompt_ms = timings["prompt_ms"].as_f64().expect("prompt_ms");
        let ttft = record["ttft_ms"].as_f64().expect("ttft");
        assert!(
            ttft >= prompt_ms,
            "TTFT {ttft} ms below llama-server's prompt_ms {prompt_ms}: {record}"
        );
        over.push(ttft - prompt_ms);
        assert_eq!(
            timings["predicted_n"], record["output_tokens"],
            "llama-server's count is the usage's: {record}"
        );
        let n = timings["predicted_n"].as_f64().expect("predicted_n");
        if let (Some(tpot), Some(predicted_ms)) =
            (record["tpot_ms"].as_f64(), timings["predicted_ms"].as_f64())
            && n >= 8.0
        {
            ratios.push(tpot / (predicted_ms / (n - 1.0)));
        }
    }
    // Stated bounds (docs/LLAMACPP.md): what the client adds to the
    // engine's prefill is under 50 ms at the median and under 1 s at p99
    // on a busy two-core machine; client TPOT is within 10 % of the
    // engine's at the median and within 50 % at p90. Not for every
    // request: a client stalled by another process for a whole answer
    // reads it in one go (the kernel merges the queued segments), and
    // that request's TPOT is 0 (seen once in CI).
    let p50 = quantile(&mut over.clone(), 0.5);
    let p99 = quantile(&mut over.clone(), 0.99);
    assert!(p50 < 50.0, "TTFT − prompt_ms p50 {p50} ms: {over:?}");
    assert!(p99 < 1000.0, "TTFT − prompt_ms p99 {p99} ms: {over:?}");
    assert!(!ratios.is_empty(), "requests long enough to compare TPOT");
    let ratio_p50 = quantile(&mut ratios.clone(), 0.5);
    assert!(
        (0.9..=1.1).contains(&ratio_p50),
        "client/engine TPOT p50 {ratio_p50}: {ratios:?}"
    );
    let outside = ratios.iter().filter(|r| !(0.5..=1.5).contains(*r)).count();
    assert!(
        outside * 10 <= ratios.len(),
        "client/engine TPOT outside 0.5..1.5 for {outside} of {} requests (at most 10 %): {ratios:?}",
        ratios.len()
    );
    eprintln!(
        "TTFT − llama-server prompt_ms over {} requests: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms; client/engine TPOT p50 {ratio_p50:.3}",
        over.len(),
        over.iter().copied().fold(0.0, f64::max)
    );
    over
}

#[test]
fn run_measures_llama_server_from_compose_end_to_end() {
    let name = "run_measures_llama_server_from_compose_end_to_end";
    if !spark_testkit::docker_available(name) {
        return;
    }
    let Some(_llamacpp) = spark_testkit::llamacpp(name, true) else {
        return;
    };
    let setup = setup("llama", SCENARIOS);
    let started = Instant::now();
    let output = run_compose(&setup, &["--only", "llamacpp-tiny"], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    eprintln!("the run took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        setup.project.containers().is_empty(),
        "containers left behind"
    );
    let run_dir = the_run_dir(&setup.output_dir);
    let suite = read_json(&run_dir.join("results.json"));
    let engines = suite["engines"].as_array().expect("engines");
    assert_eq!(
        engines.len(),
        1,
        "--only names the image's engine, not the bind-mounted one"
    );
    let engine = &engines[0];
    assert_eq!(engine["service"], "llamacpp-tiny");
    assert_eq!(engine["flavor"], "llamacpp", "{engine}");
    assert_eq!(engine["outcome"]["status"], "ok", "{engine}");
    // Startup cost: llama-server answered 503 "Loading model" first.
    let healthy_s = engine["startup"]["healthy_s"].as_f64().expect("healthy_s");
    assert!(healthy_s > 0.0, "{engine}");
    let results = &engine["results"];
    assert_eq!(
        results["engine"]["prompt_calibration"], "tokenize",
        "{results}"
    );
    assert_eq!(results["engine"]["ignore_eos_honoured"], true, "{results}");
    let context = results["engine"]["max_model_len"]
        .as_u64()
        .expect("the context from /props");
    assert!((512..8192).contains(&context), "context {context}");

    // No request failed, anywhere.
    for scenario in results["scenarios"].as_array().expect("scenarios") {
        assert_eq!(scenario["aggregate"]["n_failed"], 0, "{scenario}");
        assert!(scenario["not_run"].is_null(), "{scenario}");
    }
    // Long context: the targets that fit are exact by llama.cpp's own
    // count; the one that does not is clamped to the context, with a note.
    let fits = scenario(results, "long-context-512");
    assert_eq!(fits["config"]["input_tokens"], 512, "{fits}");
    let too_long = scenario(results, "long-context-8k");
    let clamped = too_long["config"]["input_tokens"].as_u64().expect("tokens");
    assert!(clamped < context, "{too_long}");
    assert!(
        too_long["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("clamp"))),
        "{too_long}"
    );
    let records = records(&run_dir.join("llamacpp-tiny").join("requests.jsonl"));
    assert!(records.len() >= 20, "{} records", records.len());
    for record in &records {
        assert!(record["failure"].is_null(), "{record}");
        assert_eq!(
            record["input_tokens"], record["requested_input_tokens"],
            "llama.cpp counted exactly the prompt asked for: {record}"
        );
        assert_eq!(
            record["output_tokens"], record["requested_output_tokens"],
            "ignore_eos honoured: {record}"
        );
    }
    check_engine_timings(&records);
    // llama-server's counters rose by what the scenario received.
    let throughput = scenario(results, "throughput");
    let counters = &throughput["engine_counters"];
    let delta = |name: &str| {
        counters["after"][name].as_f64().expect("after")
            - counters["before"][name].as_f64().expect("before")
    };
    assert_eq!(
        delta("llamacpp:tokens_predicted_total"),
        throughput["aggregate"]["output_tokens_total"]
            .as_f64()
            .expect("output"),
        "{counters}"
    );
    assert!(delta("llamacpp:prompt_tokens_total") > 0.0, "{counters}");
    // The reports show the engine's own figures beside ours.
    let text_report = std::fs::read_dir(&run_dir)
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with(".txt"))
        .expect("text report");
    let text = std::fs::read_to_string(text_report).expect("text");
    assert!(text.contains("engine-reported prefill p50"), "{text}");

    // The container's memory was read through Docker's stats during the
    // run: llama-server with its model loaded holds megabytes.
    let telemetry = &engine["telemetry"];
    assert_eq!(telemetry["source"], "docker stats", "{telemetry}");
    let usage = telemetry["scenarios"]
        .as_array()
        .expect("telemetry scenarios")
        .iter()
        .find(|s| s["name"] == "throughput")
        .expect("throughput telemetry");
    let peak = usage["memory_peak_bytes"].as_u64().expect("memory peak");
    assert!((1 << 20..1 << 34).contains(&peak), "{usage}");
    assert!(text.contains("runtime memory peak"), "{text}");
    // The model is inside the image: its size is N/A with the reason.
    let model_size = &telemetry["model_size"];
    assert!(model_size["bytes"].is_null(), "{model_size}");
    assert!(model_size["unavailable"].is_string(), "{model_size}");
    // llama-server's own figures: the prefix-cache hit rate from its
    // timings, none for prompts that share no prefix.
    let figures = telemetry["engine_metrics"]
        .as_array()
        .expect("engine metrics")
        .iter()
        .find(|f| f["name"] == "throughput")
        .expect("throughput figures");
    assert_eq!(
        figures["prefix_cache_source"], "timings.cache_n / (cache_n + prompt_n)",
        "{figures}"
    );
    assert!(
        figures["prefix_cache_hit_rate"].as_f64().expect("hit rate") < 0.2,
        "{figures}"
    );
}

#[test]
fn the_bind_mounted_model_is_served_too() {
    let name = "the_bind_mounted_model_is_served_too";
    if !spark_testkit::docker_available(name) {
        return;
    }
    let Some(llamacpp) = spark_testkit::llamacpp(name, true) else {
        return;
    };
    let short = r#"
[[scenario]]
name = "latency"
input_tokens = 40
max_tokens = 12
requests = 2
"#;
    let setup = setup("llama-mount", short);
    let model_dir = llamacpp.model.parent().expect("model dir");
    let output = run_compose(
        &setup,
        &["--profile", "bind-mount", "--only", "llamacpp-tiny-mounted"],
        &[("LLAMACPP_MODEL_DIR", model_dir)],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(setup.project.containers().is_empty());
    let run_dir = the_run_dir(&setup.output_dir);
    let suite = read_json(&run_dir.join("results.json"));
    let engine = &suite["engines"][0];
    assert_eq!(engine["service"], "llamacpp-tiny-mounted");
    assert_eq!(
        scenario(&engine["results"], "latency")["aggregate"]["n_ok"],
        2
    );
    // The bind-mounted GGUF is found on the host and measured.
    let model_size = &engine["telemetry"]["model_size"];
    let on_disk = std::fs::metadata(&llamacpp.model).expect("the model").len();
    assert_eq!(model_size["bytes"], on_disk, "{model_size}");
    assert_eq!(model_size["kind"], "gguf", "{model_size}");
}

/// Waits for llama-server's `/health` to answer 200 (it answers 503
/// "Loading model" while it loads).
fn wait_healthy(port: u16, limit: Duration) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + limit;
    loop {
        let status = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(
                b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
            )?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head)?;
            Ok(head)
        });
        if status.is_ok_and(|head| head.ends_with(b"200")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "llama-server never became healthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// llama-server as a plain process on a free loopback port, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bench_measures_a_llama_server_process_and_an_overlong_prompt_is_context_length() {
    let name = "bench_measures_a_llama_server_process_and_an_overlong_prompt_is_context_length";
    let Some(llamacpp) = spark_testkit::llamacpp(name, false) else {
        return;
    };
    let port = free_port();
    let server = Server(
        Command::new(&llamacpp.server)
            .arg("-m")
            .arg(&llamacpp.model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "-c",
                "1024",
                "--parallel",
                "1",
                "--metrics",
                "--alias",
                "tiny",
            ])
            .args(["--threads", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("llama-server starts"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let scenarios = r#"
[[scenario]]
name = "latency"
input_tokens = 60
max_tokens = 16
requests = 2

[[scenario]]
name = "overflow"
input_tokens = 1500
max_tokens = 8
requests = 1
"#;
    let setup = setup("llama-bench", scenarios);
    wait_healthy(port, Duration::from_secs(60));
    let out = setup.dir.join("bench");
    // --max-model-len above llama-server's real context: the client then
    // does not clamp, and the engine itself refuses the prompt.
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["bench", "--url", &url, "--max-model-len", "8192"])
        .arg("--scenario-file")
        .arg(&setup.scenario_file)
        .arg("--output")
        .arg(&out)
        .arg("--no-history")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    drop(server);
    let results = read_json(&out.join("results.json"));
    let engine = &results["engines"][0]["results"];
    assert_eq!(
        engine["engine"]["prompt_calibration"], "tokenize",
        "{engine}\n{stderr}"
    );
    let latency = scenario(engine, "latency");
    assert_eq!(
        latency["aggregate"]["n_ok"], 2,
        "{latency}\n{stdout}\n{stderr}"
    );
    let overflow = scenario(engine, "overflow");
    assert_eq!(
        overflow["aggregate"]["failures_by_class"]["context_length"], 1,
        "{overflow}\n{stderr}"
    );
    let records: Vec<serde_json::Value> = std::fs::read_dir(&out)
        .expect("bench dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .flat_map(|dir| records(&dir.join("requests.jsonl")))
        .collect();
    let failure = records
        .iter()
        .find(|r| r["scenario"] == "overflow")
        .map(|r| &r["failure"])
        .expect("the overflow record");
    assert_eq!(failure["class"], "context_length", "{failure}");
    let message = failure["message"].as_str().expect("message");
    assert!(
        message.contains("exceeds the available context size"),
        "llama.cpp's own message: {message}"
    );
    check_engine_timings(
        &records
            .iter()
            .filter(|r| r["scenario"] == "latency")
            .cloned()
            .collect::<Vec<_>>(),
    );
    // A failed request is a result, not an error of the run.
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
}
