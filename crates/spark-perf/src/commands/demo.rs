//! `spark-perf demo`: the whole flow on three simulated engines, no GPU and
//! no Docker. Each engine is spark-sim run as a local process (this binary
//! re-executed as `spark-perf sim`) with a different timing profile, started,
//! health-gated, warmed up, measured with shortened scenarios (a
//! three-level concurrency sweep among them, judged against a default SLO)
//! and stopped in turn, exactly as `run` does with containers; then the same
//! reports, whose pick has a sweep-based saturation and capacity.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use spark_load::{EngineConfig, Scenario, scenario};
use spark_results::{Arrival, EngineOutcome, EngineRun, ModelSize, Provenance, StartupCost};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::flow::{self, SuiteWriter};
use super::gpu::Gpu;
use super::telemetry::{Target, Telemetry};

/// Options of `spark-perf demo`.
#[derive(Debug, clap::Args)]
pub struct DemoOpts {
    /// Directory of the reports (one subdirectory per run).
    #[arg(long, short = 'o', default_value = "reports")]
    pub output: std::path::PathBuf,
    /// Write the results as JSON to stdout instead of the tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub slo: super::slo::SloArgs,
    #[command(flatten)]
    pub history: super::history::HistoryArgs,
    #[command(flatten)]
    pub export: super::export::ExportArgs,
}

/// The demo's engines: (name, sim profile, flavor).
const ENGINES: &[(&str, &str, &str)] = &[
    ("sim-fp8-moe", "fp8-moe", "vllm"),
    ("sim-bf16-dense", "bf16-dense", "vllm"),
    ("sim-llamacpp-q4", "llamacpp-q4", "llamacpp"),
];

/// The demo's SLO where `--slo` gives none: met by the fast engines at
/// some levels of the sweep and not at others, so capacity tells them apart
/// (spark-sim's bf16-dense decodes at 20 ms + 0.4 ms per other sequence:
/// within 24 ms at c=4, not at c=16; llamacpp-q4 at 45 ms, never).
pub(crate) const DEFAULT_SLO: &str = "ttft_p90=1s,tpot_p90=24ms";

/// The levels of the demo's concurrency sweep.
const SWEEP_LEVELS: [u32; 3] = [1, 4, 16];

/// Requests of one sweep level: three rounds of the level (at least 4), the
/// fewest whose steady window (from 10 % of the span of sends to the last
/// send) still holds a whole wave of answers where nothing queues. Answers
/// are 4 tokens, so where requests queue (llamacpp-q4 serves 4 at once)
/// c=16 still takes only about 6 s.
fn sweep_requests(level: u32) -> u32 {
    (3 * level).max(4)
}

/// The reference scenarios, shortened so three engines take under a minute.
fn demo_scenarios() -> anyhow::Result<Vec<Scenario>> {
    let names: Vec<String> = [
        "warmup",
        "latency",
        "long-context-1k",
        "long-context-8k",
        "sequential",
        "throughput",
        "rate-4",
        "rate-16",
        spark_load::sweep::GROUP,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut chosen = scenario::select(&scenario::builtin(), Some(&names))?;
    chosen.retain(|s| {
        s.group != spark_load::sweep::GROUP || SWEEP_LEVELS.contains(&s.config.concurrency)
    });
    for s in &mut chosen {
        let c = &mut s.config;
        match s.group.as_str() {
            "warmup" => c.max_tokens = 8,
            "latency" => (c.requests, c.max_tokens) = (2, 16),
            "long-context" => (c.requests, c.max_tokens) = (1, 16),
            "sequential" => (c.requests, c.input_tokens, c.max_tokens) = (3, 64, 16),
            "throughput" => (c.requests, c.concurrency, c.max_tokens) = (8, 8, 16),
            spark_load::sweep::GROUP => {
                (c.requests, c.input_tokens, c.max_tokens) = (sweep_requests(c.concurrency), 64, 8);
            }
            _ if matches!(c.arrival, Arrival::Poisson { .. }) => {
                (c.requests, c.concurrency, c.max_tokens) = (4, 16, 16);
            }
            _ => {}
        }
    }
    Ok(chosen)
}

pub(crate) async fn run(opts: DemoOpts) -> anyhow::Result<u8> {
    let scenarios = demo_scenarios()?;
    let mut slo_args = opts.slo.clone();
    let defaulted = slo_args.slo.is_none();
    if defaulted {
        slo_args.slo = Some(spark_load::Slo::parse(DEFAULT_SLO).map_err(anyhow::Error::msg)?);
    }
    let mut analysis = super::slo::Analysis::resolve(&slo_args, None)?;
    if defaulted {
        analysis.slo_source = Some("the demo's default; --slo sets another".to_owned());
    }
    eprintln!("{}", analysis.plan_line());
    let exe = std::env::current_exe().context("cannot find the spark-perf executable")?;
    let cancel = flow::interrupt_token();
    let mut writer = SuiteWriter::create(
        &opts.output,
        "spark-perf demo: three spark-sim engines as local processes".to_owned(),
    )?;
    eprintln!("writing results to {}", writer.dir().display());
    let gpu = Gpu::detect().await;
    writer.set_gpu(gpu.info());
    let progress = flow::progress();
    for &(name, profile, flavor) in ENGINES {
        if cancel.is_cancelled() {
            break;
        }
        let engine = one_engine(
            &exe, name, profile, flavor, &scenarios, &writer, &progress, &cancel, &analysis, &gpu,
        )
        .await;
        writer.push(engine)?;
    }
    let code = flow::finish(&mut writer, &cancel, None, 0.0, opts.json)?;
    let code = super::export::after_finish(code, &opts.export, writer.suite()).await;
    super::history::after_finish(
        code,
        &opts.history,
        &opts.output,
        writer.suite(),
        writer.dir(),
        5.0,
        opts.json,
    )
}

#[allow(clippy::too_many_arguments)]
async fn one_engine(
    exe: &std::path::Path,
    name: &str,
    profile: &str,
    flavor: &str,
    scenarios: &[Scenario],
    writer: &SuiteWriter,
    progress: &indicatif::MultiProgress,
    cancel: &CancellationToken,
    analysis: &super::slo::Analysis,
    gpu: &Gpu,
) -> EngineRun {
    let args: Vec<String> = [
        "sim",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--profile",
        profile,
        "--flavor",
        flavor,
        "--served-model-name",
        name,
        // Small enough that the 8K long-context prompt is clamped: the demo
        // shows how a report flags it (and prefill stays short).
        "--max-model-len",
        "2048",
        "--load-time",
        "500ms",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut engine = EngineRun {
        service: name.to_owned(),
        flavor: flavor.to_owned(),
        model: Some(name.to_owned()),
        outcome: EngineOutcome::Ok,
        startup: None,
        provenance: Some(Provenance {
            image: "spark-perf sim (embedded spark-sim)".to_owned(),
            command: args.clone(),
            ..Provenance::default()
        }),
        results: None,
        telemetry: None,
    };
    let clock = Instant::now();
    let mut child = match Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            engine.outcome = EngineOutcome::Failed {
                phase: "start".to_owned(),
                reason: format!("cannot start spark-sim: {err}"),
            };
            return engine;
        }
    };
    let started_s = clock.elapsed().as_secs_f64();
    let spinner = flow::spinner(progress, format!("{name}: waiting for /health"));
    let up = tokio::select! {
        up = wait_healthy(&mut child, clock) => Some(up),
        () = cancel.cancelled() => None,
    };
    spinner.finish_and_clear();
    match up {
        None => engine.outcome = EngineOutcome::Interrupted,
        Some(Err(err)) => {
            engine.outcome = EngineOutcome::Failed {
                phase: "health".to_owned(),
                reason: format!("{err:#}"),
            };
        }
        Some(Ok((base_url, port_open, healthy))) => {
            eprintln!("{name} is healthy after {:.1} s", healthy.as_secs_f64());
            engine.startup = Some(StartupCost {
                created_s: 0.0,
                started_s,
                port_open_s: Some(port_open.as_secs_f64()),
                healthy_s: Some(healthy.as_secs_f64()),
            });
            if let Some(provenance) = engine.provenance.as_mut() {
                provenance.engine_version = flow::engine_version(&base_url).await;
            }
            let mut config = EngineConfig::new(base_url);
            config.model = Some(name.to_owned());
            // The sim process's memory and CPU beside each scenario.
            let pids: Vec<u32> = child.id().into_iter().collect();
            let telemetry = Telemetry::start(
                match child.id() {
                    Some(pid) => Target::Process(pid),
                    None => Target::Unavailable("spark-sim exited".to_owned()),
                },
                gpu,
                &pids,
            );
            let beside = flow::Beside {
                progress,
                cancel,
                telemetry: &telemetry,
                analysis,
                client_cores: 1,
            };
            let measured = match writer.engine_dir(name) {
                Ok(dir) => flow::measure(config, scenarios, &dir, name, &beside).await,
                Err(err) => Err(err),
            };
            let model_size = ModelSize::unavailable("spark-sim serves no model files");
            let results = measured.as_ref().ok();
            engine.telemetry = Some(telemetry.finish(model_size, results).await);
            match measured {
                Ok(results) => {
                    engine.outcome = flow::outcome_of(&results, cancel);
                    engine.results = Some(results);
                }
                Err(err) => {
                    engine.outcome = EngineOutcome::Failed {
                        phase: "scenarios".to_owned(),
                        reason: format!("{err:#}"),
                    };
                }
            }
        }
    }
    stop(&mut child).await;
    engine
}

/// Reads the address spark-sim prints, then polls until the port answers
/// and `/health` says 200. Returns the base URL, time to port open and time
/// to healthy (from spawning). Fails when the process exits first.
async fn wait_healthy(
    child: &mut Child,
    clock: Instant,
) -> anyhow::Result<(String, Duration, Duration)> {
    let stdout = child.stdout.take().context("no stdout from spark-sim")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("spark-sim did not say where it listens within 10 s")??
        .context("spark-sim exited before it listened")?;
    let base_url = line
        .strip_prefix("spark-sim listening on ")
        .with_context(|| format!("unexpected first line from spark-sim: {line:?}"))?
        .to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut port_open = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("spark-sim exited with {status} before it was healthy");
        }
        if let Ok(response) = client.get(format!("{base_url}/health")).send().await {
            let now = clock.elapsed();
            let port_open = *port_open.get_or_insert(now);
            if response.status().is_success() {
                return Ok((base_url, port_open, now));
            }
        }
        if Instant::now() > deadline {
            bail!("spark-sim at {base_url} was not healthy within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM first, as Docker does, then kill if it lingers.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok())
        && let Some(pid) = rustix::process::Pid::from_raw(pid)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
