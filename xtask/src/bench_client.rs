//! `cargo xtask bench-client`: the cost and accuracy of the shipped client,
//! measured as users run it.
//!
//! It builds the release `spark-perf` and `spark-sim`, starts
//! `spark-sim --profile zero` (no delays; 256 one-token chunks per response)
//! pinned to one CPU and the release `spark-perf bench --url …` pinned to
//! another (taskset), one concurrency level after the other, and prints per
//! level: output tokens per second counted on the server side (the sim's
//! truth log) over the steady window, the client's CPU µs per token over the
//! same window (from `/proc/<pid>/stat`), its peak RSS (`VmHWM`) and the TTFT
//! error: the client's first-token time minus the sim's send time of that
//! token, both CLOCK_MONOTONIC on this machine.
//!
//! Where `oha` is on PATH it is run against the same server with the same
//! request body in the same invocation, as the raw-HTTP ceiling (it reads
//! the bytes and parses no SSE), and the ratio is printed. Without it the
//! comparison is skipped, and the output says so.
//!
//! The steady window is the middle 60 % of the span from the first request's
//! arrival to the last response's end at the server, so ramp-up and drain are
//! left out for both clients alike.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

const USAGE: &str = "\
usage: cargo xtask bench-client [--levels 1,16,64,256] [--seconds S]
                                [--server-cpu N] [--client-cpus LIST]
                                [--client-cores N] [--no-oha] [--out DIR]
                                [--before BIN] [--bin-dir DIR]

  --levels        concurrency levels (default 1,16,64,256)
  --seconds       about how long each level runs (default 6)
  --server-cpu    the CPU spark-sim is pinned to (default 0)
  --client-cpus   the CPUs the client is pinned to (default 1)
  --client-cores  passed to spark-perf bench as --client-cores when given
  --no-oha        skip the oha comparison even where oha is on PATH
  --out           where the runs are written (default target/bench-client)
  --bin-dir       take spark-perf and spark-sim from DIR instead of building
  --before        also run this other spark-perf binary (e.g. a release build
                  of main) at each level, for a before/after in one invocation
";

/// Output tokens per response: 256 one-token chunks.
const MAX_TOKENS: u32 = 256;
/// A short prompt, so the server's prefill (and the request body) costs little.
const INPUT_TOKENS: u32 = 16;
/// Requests of the first level when no rate is known yet.
const FIRST_LEVEL_REQUESTS: u64 = 600;

struct Options {
    levels: Vec<u32>,
    seconds: f64,
    server_cpu: u32,
    client_cpus: String,
    client_cores: Option<u32>,
    oha: bool,
    out: PathBuf,
    before: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        levels: vec![1, 16, 64, 256],
        seconds: 6.0,
        server_cpu: 0,
        client_cpus: "1".to_owned(),
        client_cores: None,
        oha: true,
        out: crate::workspace_root().join("target/bench-client"),
        before: None,
        bin_dir: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--levels" => {
                options.levels = value("--levels")?
                    .split(',')
                    .map(|level| level.trim().parse::<u32>())
                    .collect::<Result<_, _>>()
                    .context("--levels: a comma-separated list of numbers")?;
            }
            "--seconds" => {
                options.seconds = value("--seconds")?.parse().context("--seconds: a number")?;
            }
            "--server-cpu" => {
                options.server_cpu = value("--server-cpu")?
                    .parse()
                    .context("--server-cpu: a CPU number")?;
            }
            "--client-cpus" => options.client_cpus = value("--client-cpus")?,
            "--client-cores" => {
                options.client_cores = Some(
                    value("--client-cores")?
                        .parse()
                        .context("--client-cores: a number")?,
                );
            }
            "--no-oha" => options.oha = false,
            "--out" => options.out = PathBuf::from(value("--out")?),
            "--bin-dir" => options.bin_dir = Some(PathBuf::from(value("--bin-dir")?)),
            "--before" => options.before = Some(PathBuf::from(value("--before")?)),
            "-h" | "--help" => {
                eprint!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if options.levels.is_empty() || options.levels.contains(&0) {
        bail!("--levels: concurrency levels must be at least 1");
    }
    Ok(options)
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let options = parse_options(args)?;
    let root = crate::workspace_root();
    let bin_dir = match &options.bin_dir {
        Some(dir) => dir.clone(),
        None => build_release(&root)?,
    };
    let spark_perf = bin_dir.join("spark-perf");
    let spark_sim = bin_dir.join("spark-sim");
    if !has_program("taskset") {
        bail!("taskset is needed to pin the server and the client to their own CPUs");
    }
    let oha = if options.oha {
        find_on_path("oha")
    } else {
        None
    };
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("create {}", options.out.display()))?;

    let mut spark_rows = Vec::new();
    let mut before_rows = Vec::new();
    let mut oha_rows = Vec::new();
    let mut requests = FIRST_LEVEL_REQUESTS;
    for &level in &options.levels {
        let dir = options.out.join(format!("spark-perf-c{level}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let n_requests = requests.max(u64::from(level) * 8);
        eprintln!("spark-perf bench, concurrency {level}, {n_requests} requests…");
        let row = run_spark_perf(&spark_perf, &spark_sim, &options, level, n_requests, &dir)?;
        // Size the next level for about `seconds` at this level's rate.
        let per_request = row.window_s / row.window_requests.max(1) as f64;
        if per_request > 0.0 {
            requests = ((options.seconds / per_request) as u64).clamp(200, 200_000);
        }
        spark_rows.push(row);
        if let Some(before) = &options.before {
            let dir = options.out.join(format!("before-c{level}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            eprintln!(
                "{}, concurrency {level}, {n_requests} requests…",
                before.display()
            );
            before_rows.push(run_spark_perf(
                before, &spark_sim, &options, level, n_requests, &dir,
            )?);
        }
        if let Some(oha) = &oha {
            let dir = options.out.join(format!("oha-c{level}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            eprintln!("oha, concurrency {level}, {} s…", options.seconds);
            oha_rows.push(run_oha(oha, &spark_sim, &options, level, &dir)?);
        }
    }

    println!(
        "client benchmark: spark-sim --profile zero pinned to CPU {}, client pinned to CPU {}; {MAX_TOKENS} one-token chunks per response, {INPUT_TOKENS}-token prompts",
        options.server_cpu, options.client_cpus
    );
    println!(
        "tok/s: output tokens the server sent over the steady window (middle 60 %); CPU µs/token: the client's CPU time over that window per token; TTFT error: client first-token time − the server's send time"
    );
    println!();
    println!(
        "{:<12} {:>6} {:>12} {:>12} {:>10} {:>14} {:>14} {:>9}",
        "client", "c", "tok/s", "CPU µs/tok", "peak MB", "TTFT err p50", "TTFT err p99", "failed"
    );
    for row in &spark_rows {
        print_row("spark-perf", row);
    }
    for row in &before_rows {
        print_row("before", row);
    }
    for row in &oha_rows {
        print_row("oha", row);
    }
    println!();
    if !before_rows.is_empty() {
        println!("spark-perf / before, output tok/s and CPU µs/token:");
        for (spark, before) in spark_rows.iter().zip(&before_rows) {
            println!(
                "  c={:<4} {:.2}× tok/s, {:.2}× CPU per token",
                spark.level,
                spark.tok_s / before.tok_s.max(f64::MIN_POSITIVE),
                spark.cpu_us_per_token / before.cpu_us_per_token.max(f64::MIN_POSITIVE)
            );
        }
    }
    match &oha {
        Some(_) => {
            println!("spark-perf / oha, output tok/s:");
            for (spark, oha) in spark_rows.iter().zip(&oha_rows) {
                println!(
                    "  c={:<4} {:.2}×",
                    spark.level,
                    spark.tok_s / oha.tok_s.max(f64::MIN_POSITIVE)
                );
            }
        }
        None if options.oha => {
            println!(
                "oha is not on PATH: the raw-HTTP comparison was skipped (`cargo install oha` to get it)"
            );
        }
        None => println!("--no-oha: the raw-HTTP comparison was skipped"),
    }
    Ok(())
}

/// Builds the release binaries; the directory they are in.
fn build_release(root: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("building the release spark-perf and spark-sim…");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(root)
        .args(["build", "--release", "-p", "spark-perf", "-p", "spark-sim"])
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release"))
}

fn print_row(client: &str, row: &Row) {
    let ms = |ns: Option<f64>| match ns {
        Some(ns) => format!("{:.3} ms", ns / 1e6),
        None => "n/a".to_owned(),
    };
    println!(
        "{:<12} {:>6} {:>12.0} {:>12.2} {:>10.1} {:>14} {:>14} {:>9}",
        client,
        row.level,
        row.tok_s,
        row.cpu_us_per_token,
        row.peak_rss_kb as f64 / 1024.0,
        ms(row.ttft_err_p50_ns),
        ms(row.ttft_err_p99_ns),
        row.failed
    );
}

/// One level of one client.
struct Row {
    level: u32,
    tok_s: f64,
    cpu_us_per_token: f64,
    peak_rss_kb: u64,
    ttft_err_p50_ns: Option<f64>,
    ttft_err_p99_ns: Option<f64>,
    failed: u64,
    window_s: f64,
    window_requests: u64,
}

/// A spark-sim child, stopped when dropped.
struct Sim {
    child: Child,
    url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        // SIGTERM lets it flush the truth log.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
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

fn start_sim(spark_sim: &Path, cpu: u32, truth: &Path) -> anyhow::Result<Sim> {
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(cpu.to_string())
        .arg(spark_sim)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--profile",
            "zero",
            "--max-model-len",
            "100000",
            "--truth-log",
        ])
        .arg(truth)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("start spark-sim")?;
    let stdout = child.stdout.take().context("spark-sim stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut sim = Sim {
        child,
        url: String::new(),
    };
    for line in lines.by_ref() {
        let line = line.context("read spark-sim's stdout")?;
        if let Some(url) = line.split("listening on ").nth(1) {
            sim.url = url.trim().to_owned();
            break;
        }
    }
    if sim.url.is_empty() {
        bail!("spark-sim exited before it was listening");
    }
    // Keep reading its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(sim)
}

/// CPU time and peak RSS of a process, sampled from /proc.
#[derive(Clone, Copy)]
struct Sample {
    mono_ns: u64,
    cpu_ns: u64,
    hwm_kb: u64,
}

fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Some(Sample {
        mono_ns: monotonic_ns(),
        cpu_ns: ticks * 10_000_000,
        hwm_kb,
    })
}

/// Runs `command`, sampling its CPU time and RSS every 20 ms until it exits.
fn run_sampled(mut command: Command) -> anyhow::Result<(std::process::ExitStatus, Vec<Sample>)> {
    let mut child = command.spawn().context("start the client")?;
    let pid = child.id();
    let mut samples = Vec::new();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, samples));
        }
        if let Some(sample) = sample(pid) {
            samples.push(sample);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The CPU time used by `t`, linearly between the samples around it.
fn cpu_at(samples: &[Sample], t: u64) -> f64 {
    let after = samples.partition_point(|s| s.mono_ns < t);
    if after == 0 {
        return samples.first().map_or(0.0, |s| s.cpu_ns as f64);
    }
    if after >= samples.len() {
        return samples.last().map_or(0.0, |s| s.cpu_ns as f64);
    }
    let (a, b) = (samples[after - 1], samples[after]);
    let span = (b.mono_ns - a.mono_ns).max(1) as f64;
    a.cpu_ns as f64 + (b.cpu_ns as f64 - a.cpu_ns as f64) * (t - a.mono_ns) as f64 / span
}

/// A truth-log line, the parts used here.
struct Truth {
    arrival_ns: u64,
    end_ns: u64,
    first_token_ns: Option<u64>,
    tokens: Vec<u64>,
    ok: bool,
    /// The client went away before the end.
    cut: bool,
}

fn read_truth(path: &Path) -> anyhow::Result<HashMap<String, Truth>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut truth = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).context("a truth-log line")?;
        // The sim names a response `chatcmpl-<x-request-id>` (`cmpl-` for completions).
        let id = value["request_id"].as_str().unwrap_or_default();
        let id = id
            .strip_prefix("chatcmpl-")
            .or_else(|| id.strip_prefix("cmpl-"))
            .unwrap_or(id)
            .to_owned();
        truth.insert(
            id,
            Truth {
                arrival_ns: value["arrival_mono_ns"].as_u64().unwrap_or(0),
                end_ns: value["end_mono_ns"].as_u64().unwrap_or(0),
                first_token_ns: value["first_token_mono_ns"].as_u64(),
                tokens: value["token_mono_ns"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
                ok: value["outcome"] == "ok",
                cut: value["outcome"] == "client_disconnect",
            },
        );
    }
    Ok(truth)
}

/// What the server saw of the measured requests, over the steady window.
struct Window {
    start_ns: u64,
    end_ns: u64,
    tokens: u64,
    requests: u64,
}

fn steady_window<'a>(requests: impl Iterator<Item = &'a Truth> + Clone) -> Window {
    let first = requests.clone().map(|t| t.arrival_ns).min().unwrap_or(0);
    let last = requests.clone().map(|t| t.end_ns).max().unwrap_or(0);
    let span = last.saturating_sub(first);
    let start_ns = first + span / 5;
    let end_ns = last - span / 5;
    let mut tokens = 0;
    let mut n_requests = 0;
    for truth in requests {
        tokens += truth
            .tokens
            .iter()
            .filter(|&&t| t >= start_ns && t < end_ns)
            .count() as u64;
        if truth.end_ns >= start_ns && truth.end_ns < end_ns {
            n_requests += 1;
        }
    }
    Window {
        start_ns,
        end_ns,
        tokens,
        requests: n_requests,
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some(sorted[idx])
}

fn row_from(
    level: u32,
    window: &Window,
    samples: &[Sample],
    ttft_err: Vec<f64>,
    failed: u64,
) -> Row {
    let window_s = (window.end_ns - window.start_ns) as f64 / 1e9;
    let cpu_ns = cpu_at(samples, window.end_ns) - cpu_at(samples, window.start_ns);
    let mut ttft_err = ttft_err;
    ttft_err.sort_by(f64::total_cmp);
    Row {
        level,
        tok_s: window.tokens as f64 / window_s.max(1e-9),
        cpu_us_per_token: cpu_ns / 1e3 / window.tokens.max(1) as f64,
        peak_rss_kb: samples.iter().map(|s| s.hwm_kb).max().unwrap_or(0),
        ttft_err_p50_ns: percentile(&ttft_err, 0.5),
        ttft_err_p99_ns: percentile(&ttft_err, 0.99),
        failed,
        window_s,
        window_requests: window.requests,
    }
}

fn run_spark_perf(
    spark_perf: &Path,
    spark_sim: &Path,
    options: &Options,
    level: u32,
    n_requests: u64,
    dir: &Path,
) -> anyhow::Result<Row> {
    let truth_path = dir.join("truth.jsonl");
    let sim = start_sim(spark_sim, options.server_cpu, &truth_path)?;
    let scenario_file = dir.join("scenario.toml");
    std::fs::write(
        &scenario_file,
        format!(
            "[[scenario]]\nname = \"client\"\ngroup = \"client\"\ninput_tokens = {INPUT_TOKENS}\nmax_tokens = {MAX_TOKENS}\nrequests = {n_requests}\nconcurrency = {level}\n"
        ),
    )?;
    let out = dir.join("run");
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(&options.client_cpus)
        .arg(spark_perf)
        .arg("bench")
        .arg("--url")
        .arg(&sim.url)
        .arg("--scenario-file")
        .arg(&scenario_file)
        .arg("--scenarios")
        .arg("client")
        .arg("--name")
        .arg("client")
        .arg("--output")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("stderr.log"))?));
    if let Some(cores) = options.client_cores {
        command.arg("--client-cores").arg(cores.to_string());
    }
    let (status, samples) = run_sampled(command)?;
    drop(sim);
    if !status.success() {
        bail!(
            "spark-perf bench exited with {status}; see {}",
            dir.join("stderr.log").display()
        );
    }
    let truth = read_truth(&truth_path)?;
    let records = std::fs::read_to_string(out.join("client/requests.jsonl"))
        .with_context(|| format!("read {}", out.join("client/requests.jsonl").display()))?;
    let mut measured = Vec::new();
    let mut failed = 0;
    for line in records.lines().filter(|l| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line).context("a requests.jsonl line")?;
        if record["scenario"] != "client" {
            continue;
        }
        if !record["failure"].is_null() {
            failed += 1;
        }
        measured.push(record);
    }
    let in_truth = measured
        .iter()
        .filter_map(|r| truth.get(r["request_id"].as_str().unwrap_or_default()));
    let window = steady_window(in_truth);
    let ttft_err = measured
        .iter()
        .filter_map(|record| {
            let truth = truth.get(record["request_id"].as_str()?)?;
            let client_first = record["first_token_mono_ns"].as_u64()?;
            let server_first = truth.first_token_ns?;
            let steady = truth.arrival_ns >= window.start_ns && truth.arrival_ns < window.end_ns;
            (steady && truth.ok).then_some(client_first as f64 - server_first as f64)
        })
        .collect();
    Ok(row_from(level, &window, &samples, ttft_err, failed))
}

fn run_oha(
    oha: &Path,
    spark_sim: &Path,
    options: &Options,
    level: u32,
    dir: &Path,
) -> anyhow::Result<Row> {
    let truth_path = dir.join("truth.jsonl");
    let sim = start_sim(spark_sim, options.server_cpu, &truth_path)?;
    // The body spark-perf sends for this scenario (a 16-token prompt is 16 words here).
    let prompt = vec!["hello"; INPUT_TOKENS as usize].join(" ");
    let body = serde_json::json!({
        "model": "spark-sim/sim-1",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "stream": true,
        "stream_options": {"include_usage": true, "continuous_usage_stats": true},
        "ignore_eos": true,
        "min_tokens": MAX_TOKENS,
    });
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(&options.client_cpus)
        .arg(oha)
        .arg("--no-tui")
        .arg("-z")
        .arg(format!("{}s", options.seconds))
        .arg("-c")
        .arg(level.to_string())
        .arg("-m")
        .arg("POST")
        .arg("-H")
        .arg("content-type: application/json")
        .arg("-d")
        .arg(body.to_string())
        .arg(format!("{}/v1/chat/completions", sim.url))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("stderr.log"))?));
    let (status, samples) = run_sampled(command)?;
    drop(sim);
    if !status.success() {
        bail!(
            "oha exited with {status}; see {}",
            dir.join("stderr.log").display()
        );
    }
    let truth = read_truth(&truth_path)?;
    // Requests oha cut at its deadline end as client disconnects: not failures.
    let failed = truth.values().filter(|t| !t.ok && !t.cut).count() as u64;
    let window = steady_window(truth.values());
    Ok(row_from(level, &window, &samples, Vec::new(), failed))
}

fn has_program(name: &str) -> bool {
    find_on_path(name).is_some()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
