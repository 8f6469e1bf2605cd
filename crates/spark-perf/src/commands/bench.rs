//! `spark-perf bench --url URL`: runs scenarios against an engine that is
//! already up (no Docker) and writes the same results as `run`, a run of one
//! engine: `DIR/results.json` and the reports, `DIR/<name>/requests.jsonl`
//! as requests end and `DIR/<name>/results.json`.
//!
//! The API key is read from the environment variable named by
//! `--api-key-env`; it is never a flag value and never printed.

use std::path::PathBuf;
use std::time::Duration;

use spark_load::scenario::{self, Overrides};
use spark_load::{Engine, EngineConfig, RunOptions, Timeouts};
use spark_results::{Endpoint, EngineOutcome, EngineRun, ModelSize, Provenance};

use super::flow::{self, SuiteWriter};
use super::gpu::Gpu;
use super::telemetry::{Target, Telemetry};

/// Options of `spark-perf bench`.
///
/// Examples:
///   spark-perf bench --url http://127.0.0.1:8000
///   spark-perf bench --url http://gpu-box:8000 --api-key-env VLLM_API_KEY --scenarios throughput,long-context
///   spark-perf bench --url http://127.0.0.1:8000 --scenarios throughput --concurrency 64 --requests 256
///   spark-perf bench --url http://127.0.0.1:8000 --pid "$(pgrep -n llama-server)"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct BenchOpts {
    /// Base URL of the OpenAI-compatible engine, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub url: String,
    /// Model to request (default: the first one /v1/models lists).
    #[arg(long)]
    pub model: Option<String>,
    /// Name of the environment variable that holds the API key.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Scenarios or groups to run, comma-separated: warmup, latency,
    /// prompt-sizes, long-context, sequential, throughput, rate-sweep,
    /// concurrency-sweep (levels 1…64, stopped at saturation), or a single
    /// scenario (e.g. long-context-8k); `all` runs everything. Default: all
    /// but rate-sweep and concurrency-sweep. A warmup is always run first.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Option<Vec<String>>,
    /// A TOML scenario file that changes or adds scenarios (see docs/METRICS.md).
    #[arg(long, value_name = "FILE")]
    pub scenario_file: Option<PathBuf>,
    /// Requests in flight, for every scenario but the warmup.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Requests per scenario, for every scenario but the warmup.
    #[arg(long)]
    pub requests: Option<u32>,
    /// Output tokens per request, for every scenario but the warmup.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Endpoint for every scenario but the warmup.
    #[arg(long, value_enum)]
    pub endpoint: Option<EndpointArg>,
    /// Output directory, which must not hold results yet (default:
    /// reports/bench-<unix time>).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The engine's name in the reports and in comparisons (default: the model).
    #[arg(long)]
    pub name: Option<String>,
    /// The engine's process on this machine: its memory (VmRSS) and CPU are
    /// sampled from /proc during each scenario (without it they are N/A).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Compare with this earlier results.json (of a run or a bench) at the
    /// end; exit 1 on a regression.
    #[arg(long, value_name = "RESULTS")]
    pub baseline: Option<PathBuf>,
    /// Regression threshold for --baseline, percent.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f64,
    /// Stop a scenario (and the run) after this many consecutive failures.
    #[arg(long, default_value_t = 10)]
    pub max_consecutive_failures: u32,
    /// The engine's context length, when it does not report it (TensorRT-LLM, Ollama).
    #[arg(long)]
    pub max_model_len: Option<u32>,
    /// Connect timeout (e.g. 10s).
    #[arg(long, value_parser = super::duration_arg, default_value = "10s")]
    pub connect_timeout: Duration,
    /// Time allowed from sending a request to its first token.
    #[arg(long, value_parser = super::duration_arg, default_value = "10m")]
    pub first_token_timeout: Duration,
    /// Time allowed between two tokens.
    #[arg(long, value_parser = super::duration_arg, default_value = "60s")]
    pub between_tokens_timeout: Duration,
    /// Time allowed for a whole request.
    #[arg(long, value_parser = super::duration_arg, default_value = "30m")]
    pub request_timeout: Duration,
    /// Client threads the load runs on, each a `current_thread` runtime with
    /// its share of the connections (round-robin). Default 1: one core for
    /// the client, the rest for an engine on the same machine; raise it when
    /// the client is the limit (`cargo xtask bench-client` shows its cost).
    /// 0 runs the load as tasks of the command's own multi-thread runtime.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub client_cores: u32,
    /// Write the results as JSON to stdout (one document) instead of the tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub slo: super::slo::SloArgs,
    #[command(flatten)]
    pub history: super::history::HistoryArgs,
    #[command(flatten)]
    pub export: super::export::ExportArgs,
}

/// `--endpoint` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EndpointArg {
    /// /v1/chat/completions
    Chat,
    /// /v1/completions
    Completions,
}

pub(crate) async fn run(opts: BenchOpts) -> anyhow::Result<u8> {
    let api_key = super::api_key(opts.api_key_env.as_deref())?;
    let analysis = super::slo::Analysis::resolve(&opts.slo, opts.scenario_file.as_deref())?;
    let mut scenarios = super::run::scenarios(
        opts.scenario_file.as_deref(),
        opts.scenarios.as_deref(),
        None,
    )?;
    scenario::apply_overrides(
        &mut scenarios,
        &Overrides {
            concurrency: opts.concurrency,
            requests: opts.requests,
            max_tokens: opts.max_tokens,
            endpoint: opts.endpoint.map(|e| match e {
                EndpointArg::Chat => Endpoint::Chat,
                EndpointArg::Completions => Endpoint::Completions,
            }),
            ..Overrides::default()
        },
    );
    let dir = opts
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("reports/bench-{}", flow::unix_ms() / 1000)));

    let engine = Engine::connect(EngineConfig {
        url: opts.url.clone(),
        model: opts.model.clone(),
        api_key,
        timeouts: Timeouts {
            connect: opts.connect_timeout,
            first_token: opts.first_token_timeout,
            between_tokens: opts.between_tokens_timeout,
            total: opts.request_timeout,
        },
        probe_ignore_eos: true,
        max_model_len: opts.max_model_len,
    })
    .await?;
    let info = engine.info();
    eprintln!(
        "engine {} model {} (max_model_len {}, prompts calibrated by {:?}, ignore_eos honoured: {})",
        info.url,
        info.model,
        info.max_model_len
            .map_or("unknown".to_owned(), |n| n.to_string()),
        info.prompt_calibration,
        info.ignore_eos_honoured
            .map_or("not probed".to_owned(), |b| b.to_string()),
    );
    for note in &info.notes {
        eprintln!("note: {note}");
    }
    // The same results as `run`: a run of one engine, written as it goes by
    // the same writer, so `report` and `compare` read a bench directory.
    let service = opts.name.clone().unwrap_or_else(|| info.model.clone());
    let mut writer = SuiteWriter::create_at(&dir, format!("bench --url {}", info.url))?;
    eprintln!("writing results to {}", writer.dir().display());
    for (scenario_idx, s) in scenarios.iter().enumerate() {
        eprintln!(
            "[{}/{}] {}: {} requests, concurrency {}, {} in / {} out",
            scenario_idx + 1,
            scenarios.len(),
            s.name,
            s.config.requests,
            s.config.concurrency,
            s.config.input_tokens,
            s.config.max_tokens
        );
    }

    let cancel = flow::interrupt_token();
    let mut options = RunOptions {
        max_consecutive_failures: opts.max_consecutive_failures.max(1),
        // The records are in requests.jsonl; results.json keeps aggregates.
        keep_records: false,
        client_cores: Some(opts.client_cores),
        ..RunOptions::default()
    };
    analysis.apply(&mut options);
    let progress = flow::progress();
    let engine_dir = writer.engine_dir(&service)?;
    let gpu = Gpu::detect().await;
    writer.set_gpu(gpu.info());
    let pids: Vec<u32> = opts.pid.into_iter().collect();
    let telemetry = Telemetry::start(
        match opts.pid {
            Some(pid) => Target::Process(pid),
            None => Target::Unavailable(
                "the engine was not started by spark-perf (bench --pid PID samples its process)"
                    .to_owned(),
            ),
        },
        &gpu,
        &pids,
    );
    let beside = flow::Beside {
        progress: &progress,
        cancel: &cancel,
        telemetry: &telemetry,
        analysis: &analysis,
        client_cores: opts.client_cores,
    };
    let measured = flow::measure_engine(
        &engine,
        &scenarios,
        &engine_dir,
        &service,
        &beside,
        &options,
    )
    .await;
    let model_size = ModelSize::unavailable("bench --url does not know the engine's files");
    let telemetry = telemetry.finish(model_size, measured.as_ref().ok()).await;
    let mut run = EngineRun {
        service,
        flavor: "unknown".to_owned(),
        model: Some(info.model.clone()),
        outcome: EngineOutcome::Ok,
        startup: None,
        provenance: Some(Provenance {
            image: format!("not started by spark-perf: {}", info.url),
            engine_version: flow::engine_version(&info.url).await,
            ..Provenance::default()
        }),
        results: None,
        telemetry: Some(telemetry),
    };
    match measured {
        Ok(results) => {
            for result in &results.scenarios {
                for note in &result.notes {
                    eprintln!("  {}: note: {note}", result.name);
                }
            }
            run.outcome = flow::outcome_of(&results, &cancel);
            run.results = Some(results);
        }
        Err(err) => {
            run.outcome = EngineOutcome::Failed {
                phase: "scenarios".to_owned(),
                reason: format!("{err:#}"),
            };
        }
    }
    writer.push(run)?;
    let code = flow::finish(
        &mut writer,
        &cancel,
        opts.baseline.as_deref(),
        opts.threshold,
        opts.json,
    )?;
    let beside = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let code = super::export::after_finish(code, &opts.export, writer.suite()).await;
    super::history::after_finish(
        code,
        &opts.history,
        &beside,
        writer.suite(),
        writer.dir(),
        opts.threshold,
        opts.json,
    )
}
