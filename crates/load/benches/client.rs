//! How fast and how exact the load client is: `cargo bench -p spark-load`.
//!
//! The bench re-executes itself as a spark-sim server in a child process
//! (`SPARK_LOAD_BENCH_ROLE=sim`), pinned with `taskset -c 1` where taskset
//! exists, and pins itself (the client, one `current_thread` runtime) to
//! CPU 0, so the two never share a core. It prints:
//!
//! 1. parse cost: SSE framing + chunk decoding alone, ns per chunk;
//! 2. throughput against `--profile zero` (no delays, 256 tokens per
//!    response) at concurrency 1/16/64/256: output tok/s of wall time, tok/s
//!    per client CPU-second, client CPU µs per token;
//! 3. memory: peak RSS after 10 k and after 100 k requests (flat or not);
//! 4. accuracy: with the `fp8-moe` timing profile and the sim's truth log,
//!    the client's first-token time minus the sim's send time (TTFT error)
//!    and ITL p99 error, at concurrency 1/16/64/256.
//!
//! Knobs: `SPARK_LOAD_BENCH_REQUESTS` (throughput requests per level,
//! default 8000), `SPARK_LOAD_BENCH_MEMORY_REQUESTS` (default 100000),
//! `SPARK_LOAD_BENCH_SKIP` (comma list of `parse,throughput,memory,accuracy`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spark_load::{Engine, EngineConfig, NullSink, RunOptions, Scenario};
use spark_results::{Arrival, Endpoint, RequestRecord, ScenarioConfig};
use tokio_util::sync::CancellationToken;

const ROLE: &str = "SPARK_LOAD_BENCH_ROLE";

fn main() {
    if std::env::var(ROLE).is_ok_and(|r| r == "sim") {
        serve_sim();
        return;
    }
    let skip = std::env::var("SPARK_LOAD_BENCH_SKIP").unwrap_or_default();
    let pinned = pin_self(0);
    println!("spark-load client benchmark");
    println!(
        "pinning: {}",
        if pinned {
            "client on CPU 0, sim on CPU 1 (taskset)"
        } else {
            "none (no taskset or fewer than 2 CPUs): client and sim share cores"
        }
    );
    if !skip.contains("parse") {
        parse_cost();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    if !skip.contains("throughput") {
        runtime.block_on(throughput(pinned));
    }
    if !skip.contains("memory") {
        runtime.block_on(memory(pinned));
    }
    if !skip.contains("accuracy") {
        runtime.block_on(accuracy(pinned));
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------- the sim

/// Child role: a spark-sim on one `current_thread` runtime; prints its
/// address; stops when stdin closes (the parent ended).
fn serve_sim() {
    let profile = std::env::var("SIM_PROFILE").unwrap_or_default();
    let truth = std::env::var("SIM_TRUTH").ok();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("sim runtime");
    runtime.block_on(async move {
        let mut args = spark_sim::SimArgs::defaults();
        args.host = "127.0.0.1".to_owned();
        args.port = Some(0);
        args.profile = if profile == "fp8-moe" {
            spark_sim::ProfileName::Fp8Moe
        } else {
            spark_sim::ProfileName::Zero
        };
        args.max_model_len = 100_000;
        args.truth_log = truth.map(Into::into);
        let sim = spark_sim::Sim::bind(args).await.expect("bind");
        println!("ADDR {}", sim.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            let _ = tx.send(());
        });
        sim.run(async {
            let _ = rx.await;
        })
        .await
        .expect("sim run");
    });
}

struct SimChild {
    child: Child,
    url: String,
}

impl Drop for SimChild {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(pinned: bool, profile: &str, truth: Option<&std::path::Path>) -> SimChild {
    let exe = std::env::current_exe().expect("own executable");
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("1").arg(exe);
        c
    } else {
        Command::new(exe)
    };
    command
        .env(ROLE, "sim")
        .env("SIM_PROFILE", profile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(truth) = truth {
        command.env("SIM_TRUTH", truth);
    }
    let mut child = command.spawn().expect("start the sim");
    let stdout = child.stdout.take().expect("sim stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("sim address");
    let addr = line
        .trim()
        .strip_prefix("ADDR ")
        .expect("ADDR line")
        .to_owned();
    SimChild {
        child,
        url: format!("http://{addr}"),
    }
}

/// Pins this process (all threads) to `cpu` with taskset; false when it cannot.
fn pin_self(cpu: usize) -> bool {
    let n_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n_cpus < 2 {
        return false;
    }
    Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------- measures

fn cpu_time() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// (VmRSS, VmHWM) in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn reset_peak_rss() {
    // "5" resets VmHWM to the current RSS (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn scenario(name: &str, max_tokens: u32, requests: u32, concurrency: u32) -> Scenario {
    Scenario {
        name: name.to_owned(),
        group: name.to_owned(),
        discard: false,
        config: ScenarioConfig {
            endpoint: Endpoint::Chat,
            input_tokens: 32,
            max_tokens,
            temperature: 0.0,
            requests,
            concurrency,
            arrival: Arrival::Closed,
            shared_prefix_tokens: 0,
            exact_output: true,
            duration_s: None,
        },
    }
}

async fn connect(url: &str) -> Engine {
    Engine::connect(EngineConfig::new(url))
        .await
        .expect("connect")
}

// ---------------------------------------------------------------- phases

/// A realistic vLLM chat stream of `n` tokens.
fn vllm_body(n: usize) -> Vec<u8> {
    let mut body = String::new();
    let head = r#"{"id":"chatcmpl-spark-000000000001","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen3-30B-A3B-Instruct-2507-FP8","choices":[{"index":0,"delta":{"#;
    body.push_str(&format!("data: {head}\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}],\"prompt_token_ids\":null}}\n\n"));
    let words = [
        " the", " model", " streams", ",", " tokens", " quickly", ".",
    ];
    for i in 0..n {
        body.push_str(&format!(
            "data: {head}\"content\":\"{}\"}},\"logprobs\":null,\"finish_reason\":null,\"token_ids\":null}}]}}\n\n",
            words[i % words.len()]
        ));
    }
    body.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"total_tokens\":268,\"completion_tokens\":256}}\n\ndata: [DONE]\n\n");
    body.into_bytes()
}

fn parse_cost() {
    let body = vllm_body(256);
    let chunk_bytes = body.len() / 258;
    for read_size in [body.len(), 16 * 1024, 1500] {
        let rounds = 2_000;
        let started = Instant::now();
        let mut n = 0u64;
        for _ in 0..rounds {
            n += u64::from(spark_load::bench_parse_body(
                std::hint::black_box(&body),
                read_size,
            ));
        }
        let elapsed = started.elapsed();
        assert_eq!(n, 256 * rounds);
        println!(
            "parse: {:>6.0} ns per token chunk ({chunk_bytes} B chunks, reads of {read_size} B): SSE framing + JSON, {:.1} M chunks/s",
            elapsed.as_nanos() as f64 / n as f64,
            n as f64 / elapsed.as_secs_f64() / 1e6
        );
    }
}

async fn throughput(pinned: bool) {
    let sim = start_sim(pinned, "zero", None);
    let engine = connect(&sim.url).await;
    let per_level: u32 = env_or("SPARK_LOAD_BENCH_REQUESTS", 8_000);
    println!(
        "throughput: sim --profile zero, chat, 32 in / 256 out, ignore_eos, {per_level} requests per level"
    );
    println!(
        "{:>5} {:>12} {:>16} {:>14} {:>10} {:>11} {:>10}",
        "conc",
        "tok/s wall",
        "tok/s per CPU-s",
        "CPU µs/token",
        "client CPU",
        "TTFT p50ms",
        "peak RSS"
    );
    let cancel = CancellationToken::new();
    let options = RunOptions {
        keep_records: false,
        ..RunOptions::default()
    };
    for concurrency in [1u32, 16, 64, 256] {
        let requests = if concurrency == 1 {
            per_level / 4
        } else {
            per_level
        };
        let s = scenario(&format!("c{concurrency}"), 256, requests, concurrency);
        // Warm the connection pool and allocator first.
        let warm = scenario("warm", 16, concurrency, concurrency);
        let _ = spark_load::run_scenario(&engine, &warm, &mut NullSink, &options, &cancel).await;
        let cpu_before = cpu_time();
        let started = Instant::now();
        let result = spark_load::run_scenario(&engine, &s, &mut NullSink, &options, &cancel).await;
        let wall = started.elapsed().as_secs_f64();
        let cpu = (cpu_time() - cpu_before).as_secs_f64();
        let tokens = result.aggregate.output_tokens_total as f64;
        assert_eq!(
            result.aggregate.n_ok, requests,
            "{:?}",
            result.aggregate.failures_by_class
        );
        println!(
            "{:>5} {:>12.0} {:>16.0} {:>14.3} {:>9.0}% {:>11.3} {:>8.1}MB",
            concurrency,
            tokens / wall,
            tokens / cpu,
            cpu * 1e6 / tokens,
            cpu / wall * 100.0,
            result.aggregate.ttft_ms.p50.unwrap_or(f64::NAN),
            rss_mib().1,
        );
    }
}

async fn memory(pinned: bool) {
    let sim = start_sim(pinned, "zero", None);
    let engine = connect(&sim.url).await;
    let n_requests: u32 = env_or("SPARK_LOAD_BENCH_MEMORY_REQUESTS", 100_000);
    let cancel = CancellationToken::new();
    let options = RunOptions {
        keep_records: false,
        ..RunOptions::default()
    };
    reset_peak_rss();
    let (rss_start, _) = rss_mib();
    let first = scenario("mem-10k", 16, n_requests / 10, 64);
    let _ = spark_load::run_scenario(&engine, &first, &mut NullSink, &options, &cancel).await;
    let (_, peak_10k) = rss_mib();
    let second = scenario("mem", 16, n_requests, 64);
    let started = Instant::now();
    let result = spark_load::run_scenario(&engine, &second, &mut NullSink, &options, &cancel).await;
    let (_, peak_all) = rss_mib();
    println!(
        "memory: {} requests (16 tokens each, c=64, records streamed to a sink) in {:.1} s: RSS {rss_start:.1} MB at start, peak {peak_10k:.1} MB after {} requests, peak {peak_all:.1} MB after {} more",
        result.aggregate.n_ok,
        started.elapsed().as_secs_f64(),
        n_requests / 10,
        n_requests,
    );
}

#[derive(serde::Deserialize)]
struct Truth {
    request_id: String,
    first_token_mono_ns: Option<u64>,
    token_mono_ns: Vec<u64>,
}

async fn accuracy(pinned: bool) {
    let truth_path = std::env::temp_dir().join(format!(
        "spark-load-bench-truth-{}.jsonl",
        std::process::id()
    ));
    let sim = start_sim(pinned, "fp8-moe", Some(&truth_path));
    let engine = connect(&sim.url).await;
    let cancel = CancellationToken::new();
    println!(
        "accuracy: sim --profile fp8-moe (15 ms prefill, 8 ms + 0.15 ms/seq decode), chat, 32 in / 32 out, vs the sim's truth log"
    );
    println!(
        "{:>5} {:>9} {:>15} {:>15} {:>15} {:>18}",
        "conc", "requests", "TTFT err p50", "TTFT err p99", "TTFT err max", "ITL p99 client/sim"
    );
    for concurrency in [1u32, 16, 64, 256] {
        let requests = (concurrency * 2).max(20);
        let s = scenario(&format!("acc{concurrency}"), 32, requests, concurrency);
        let mut records: Vec<RequestRecord> = Vec::new();
        let result =
            spark_load::run_scenario(&engine, &s, &mut records, &RunOptions::default(), &cancel)
                .await;
        // Wait for the sim's writer thread (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        let truth: HashMap<String, Truth> = loop {
            let text = std::fs::read_to_string(&truth_path).unwrap_or_default();
            let map: HashMap<String, Truth> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Truth>(l).ok())
                .map(|t| (t.request_id.clone(), t))
                .collect();
            let found = records
                .iter()
                .filter(|r| map.contains_key(&format!("chatcmpl-{}", r.request_id)))
                .count();
            if found == records.len() || Instant::now() > deadline {
                break map;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut errors: Vec<i64> = Vec::new();
        let mut gaps: Vec<u64> = Vec::new();
        for r in &records {
            let Some(t) = truth.get(&format!("chatcmpl-{}", r.request_id)) else {
                continue;
            };
            if let (Some(client), Some(sim_ns)) = (r.first_token_mono_ns, t.first_token_mono_ns) {
                errors.push(client as i64 - sim_ns as i64);
            }
            gaps.extend(t.token_mono_ns.windows(2).map(|w| w[1] - w[0]));
        }
        errors.sort_unstable();
        gaps.sort_unstable();
        let q = |v: &[i64], q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        let truth_itl_p99 =
            gaps[((0.99 * gaps.len() as f64).ceil() as usize).clamp(1, gaps.len()) - 1] as f64
                / 1e6;
        println!(
            "{:>5} {:>9} {:>12.1} µs {:>12.1} µs {:>12.1} µs {:>8.3}/{:.3} ms",
            concurrency,
            errors.len(),
            q(&errors, 0.5) as f64 / 1e3,
            q(&errors, 0.99) as f64 / 1e3,
            errors.last().copied().unwrap_or(0) as f64 / 1e3,
            result.aggregate.itl_ms.p99.unwrap_or(f64::NAN),
            truth_itl_p99,
        );
    }
    drop(sim);
    let _ = std::fs::remove_file(&truth_path);
}
