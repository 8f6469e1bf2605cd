//! `spark-perf bench --url URL`: runs scenarios against an engine that is
//! already up (no Docker), prints a summary and writes `DIR/results.json`
//! at the end and `DIR/requests.jsonl` as requests end.
//!
//! The API key is read from the environment variable named by
//! `--api-key-env`; it is never a flag value and never printed.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use spark_load::scenario::{self, Overrides};
use spark_load::{Engine, EngineConfig, JsonlSink, RunOptions, Timeouts};
use spark_results::{Endpoint, RunResults, ScenarioResult};

use crate::{EXIT_ERROR, EXIT_OK};

/// Options of `spark-perf bench`.
///
/// Examples:
///   spark-perf bench --url http://127.0.0.1:8000
///   spark-perf bench --url http://gpu-box:8000 --api-key-env VLLM_API_KEY --scenarios throughput,long-context
///   spark-perf bench --url http://127.0.0.1:8000 --scenarios throughput --concurrency 64 --requests 256
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
    /// prompt-sizes, long-context, sequential, throughput, rate-sweep, or a
    /// single scenario (e.g. long-context-8k); `all` runs everything. Default:
    /// all but rate-sweep. A warmup is always run first.
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
    /// Output directory (default: reports/bench-<unix time>).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Stop a scenario (and the run) after this many consecutive failures.
    #[arg(long, default_value_t = 10)]
    pub max_consecutive_failures: u32,
    /// Connect timeout (e.g. 10s).
    #[arg(long, value_parser = spark_sim::parse_duration, default_value = "10s")]
    pub connect_timeout: Duration,
    /// Time allowed from sending a request to its first token.
    #[arg(long, value_parser = spark_sim::parse_duration, default_value = "10m")]
    pub first_token_timeout: Duration,
    /// Time allowed between two tokens.
    #[arg(long, value_parser = spark_sim::parse_duration, default_value = "60s")]
    pub between_tokens_timeout: Duration,
    /// Time allowed for a whole request.
    #[arg(long, value_parser = spark_sim::parse_duration, default_value = "30m")]
    pub request_timeout: Duration,
    /// Print the results JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
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
        },
    );
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let dir = opts
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("reports/bench-{}", started_unix_ms / 1000)));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut sink = JsonlSink::create(&dir.join("requests.jsonl"))?;

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

    let cancel = super::flow::interrupt_token();
    let options = RunOptions {
        max_consecutive_failures: opts.max_consecutive_failures.max(1),
        keep_records: true,
        seed: 0,
    };
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
    let run = spark_load::run(&engine, &scenarios, &mut sink, &options, &cancel).await;
    for result in &run.scenarios {
        for note in &result.notes {
            eprintln!("  {}: note: {note}", result.name);
        }
    }
    if let Some(stopped) = &run.stopped {
        eprintln!("stopped: {stopped}");
    }
    let path = dir.join("results.json");
    let json = serde_json::to_string_pretty(&run).context("cannot serialise the results")?;
    std::fs::write(&path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    if opts.json {
        println!("{json}");
    } else {
        print_summary(&run);
    }
    eprintln!("wrote {} and {}", path.display(), sink.path().display());
    Ok(if run.stopped.is_some() {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// A plain table on stdout; the report command renders the full one.
fn print_summary(run: &RunResults) {
    println!(
        "{:<20} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7}",
        "scenario",
        "ok/n",
        "in",
        "out",
        "TTFT p50",
        "TTFT p99",
        "TPOT p50",
        "ITL p99",
        "E2E p50",
        "out tok/s",
        "req/s"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for s in run.scenarios.iter().filter(|s| !s.discarded) {
        let a = &s.aggregate;
        let mean_tokens = |total: u64| {
            if a.n_ok > 0 {
                format!("{:.0}", total as f64 / f64::from(a.n_ok))
            } else {
                "-".to_owned()
            }
        };
        println!(
            "{:<20} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10.1} {:>7.2}",
            s.name,
            format!("{}/{}", a.n_ok, a.n_requests),
            mean_tokens(a.input_tokens_total),
            mean_tokens(a.output_tokens_total),
            ms(a.ttft_ms.p50),
            ms(a.ttft_ms.p99),
            ms(a.tpot_ms.p50),
            ms(a.itl_ms.p99),
            ms(a.e2e_ms.p50),
            a.output_throughput_tok_s,
            a.request_throughput_rps,
        );
        print_failures(s);
    }
    println!("times in ms; in/out are mean tokens per successful request (engine usage)");
    if let Some(why) = &run.stopped {
        println!("stopped early: {why}");
    }
}

fn print_failures(s: &ScenarioResult) {
    for (class, n) in &s.aggregate.failures_by_class {
        let example = s
            .requests
            .iter()
            .filter_map(|r| r.failure.as_ref())
            .find(|f| f.class.as_str() == class)
            .map(|f| match f.http_status {
                Some(status) => format!("HTTP {status}: {}", f.message),
                None => f.message.clone(),
            })
            .unwrap_or_default();
        println!("  {n} failed ({class}), e.g. {example}");
    }
}
