//! `spark-perf run`: the reference flow over a compose file. Discover the
//! inference services, print the plan, stop the inference containers in the
//! way, then per service: start, wait until healthy, warm up, run the
//! scenarios, stop; finally the reports and, with `--baseline`, the verdict.
//!
//! A service that fails is recorded with its reason and the run goes on with
//! the next. Ctrl-C is heard in every phase (the sweep, the pull, create and
//! start, the health wait, the scenarios): it stops the running container
//! (the orchestrator's guard does so on every path), starts again what was
//! in the way, writes the reports from what was measured, marks the run
//! incomplete, and exits 130. A second Ctrl-C stops the container (bounded
//! by its grace period), restores what it can and exits 130 at once.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use spark_load::{ApiKey, EngineConfig, Scenario, scenario};
use spark_orchestrator::{
    ComposeProject, Docker, HealthOptions, InferenceService, LoadOptions, StartOptions,
    StoppedContainer,
};
use spark_results::{
    DisplacedContainer, EngineOutcome, EngineRun, Provenance, RestoreStatus, StartupCost,
};

mod plan;

use super::flow::{self, SuiteWriter};
use super::gpu::Gpu;
use super::lock;
use super::telemetry::{self, Target, Telemetry};
use crate::EXIT_OK;

/// Options of `spark-perf run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  spark-perf run                                   every inference service of ./docker-compose.yml
  spark-perf run --compose compose/dgx-spark.yml --only vllm-qwen3 --only trtllm-qwen3
  spark-perf run --scenarios latency,long-context --iterations 5
  spark-perf run --dry-run                         print the plan, start nothing
  spark-perf run --baseline reports/last-good/results.json   exit 1 on a regression")]
pub struct RunOpts {
    /// The compose file (default: as `docker compose` looks: COMPOSE_FILE,
    /// else compose.yaml, compose.yml, docker-compose.yaml or
    /// docker-compose.yml in the current directory). Repeat it to merge
    /// several files in order, as `docker compose -f a.yml -f b.yml`.
    #[arg(long, short = 'f')]
    pub compose: Vec<PathBuf>,
    /// The `.env` file for interpolation (default: `.env` beside the compose file).
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// Compose project name (default: COMPOSE_PROJECT_NAME, `name:`, the directory).
    #[arg(long, short = 'p')]
    pub project_name: Option<String>,
    /// Compose profiles to enable (repeatable; default: COMPOSE_PROFILES).
    /// Of the inference services, only those in these profiles are
    /// benchmarked; without any, those without profiles, or every one when
    /// all are behind profiles. The plan says which and why.
    #[arg(long)]
    pub profile: Vec<String>,
    /// Benchmark only this service (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Skip this service (repeatable).
    #[arg(long)]
    pub skip: Vec<String>,
    /// Scenarios or scenario groups, comma-separated: warmup, latency,
    /// prompt-sizes, long-context, sequential, throughput, rate-sweep,
    /// concurrency-sweep (levels 1…64, stopped at saturation), or a single
    /// scenario (e.g. sweep-c8); `all` runs everything. Default: all but
    /// rate-sweep and concurrency-sweep.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Option<Vec<String>>,
    /// A TOML scenario file replacing the built-in scenarios.
    #[arg(long)]
    pub scenario_file: Option<PathBuf>,
    /// Repetitions of each one-at-a-time scenario (latency, prompt sizes, long
    /// context, sequential); concurrent scenarios keep their request counts.
    #[arg(long)]
    pub iterations: Option<u32>,
    /// The engines' context length, for those that do not report it
    /// (TensorRT-LLM, Ollama); a service's `x-spark-perf.max_model_len` wins.
    #[arg(long)]
    pub max_model_len: Option<u32>,
    /// Give up on a service that is not healthy after this long (e.g. 30m, 90s).
    #[arg(long, value_parser = super::duration_arg, default_value = "30m")]
    pub health_timeout: Duration,
    /// Time between two health probes while the engine does not answer HTTP;
    /// once it answers (a 503 while loading) it is probed every 200 ms.
    #[arg(long, value_parser = super::duration_arg, default_value = "3s")]
    pub health_interval: Duration,
    /// Directory of the reports (one subdirectory per run).
    #[arg(long, short = 'o', default_value = "reports")]
    pub output: PathBuf,
    /// Compare with this earlier results.json at the end; exit 1 on a regression.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Regression threshold for --baseline, percent.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f64,
    /// Leave stopped containers in place instead of removing them.
    #[arg(long)]
    pub keep: bool,
    /// Pull images that are not present locally.
    #[arg(long)]
    pub pull: bool,
    /// Build the images of services with `build:` even when present
    /// locally (without it, they are built only when missing).
    #[arg(long)]
    pub build: bool,
    /// Leave the containers that were in an engine's way (another inference
    /// container of the project, a container holding a needed host port)
    /// stopped at the end, instead of starting them again.
    #[arg(long)]
    pub no_restore: bool,
    /// Print the plan and start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Client threads the load runs on, each a `current_thread` runtime with
    /// its share of the connections (round-robin). Default 1: one core for
    /// the client, the rest for an engine on the same machine; raise it when
    /// the client is the limit (`cargo xtask bench-client` shows its cost).
    /// 0 runs the load as tasks of the command's own multi-thread runtime.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub client_cores: u32,
    /// Write the results as JSON to stdout instead of the tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub slo: super::slo::SloArgs,
    #[command(flatten)]
    pub history: super::history::HistoryArgs,
    #[command(flatten)]
    pub export: super::export::ExportArgs,
    /// Name of the environment variable holding the engines' API key.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
}

pub(crate) async fn run(opts: RunOpts) -> anyhow::Result<u8> {
    let load = LoadOptions {
        env_file: opts.env_file.clone(),
        project_name: opts.project_name.clone(),
        profiles: opts.profile.clone(),
        ..LoadOptions::with_process_env(opts.compose.clone())
    };
    let project = ComposeProject::load(&load)?;
    let compose_file = if project.config_files().is_empty() {
        "docker-compose.yml".to_owned()
    } else {
        project
            .config_files()
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ")
    };
    for warning in project.warnings() {
        eprintln!("warning: {warning}");
    }
    let selection = project.selection(&opts.only, &opts.skip)?;
    let mut services: Vec<InferenceService> = selection
        .iter()
        .filter(|s| s.selected)
        .map(|s| s.service.clone())
        .collect();
    for service in &mut services {
        service.max_model_len = service.max_model_len.or(opts.max_model_len);
    }
    if services.is_empty() {
        anyhow::bail!(
            "{}: no inference service to benchmark (mark one with `x-spark-perf: {{inference: true}}`, or check --only/--skip and profiles)",
            compose_file
        );
    }
    let scenarios = scenarios(
        opts.scenario_file.as_deref(),
        opts.scenarios.as_deref(),
        opts.iterations,
    )?;
    let analyses = super::slo::Analysis::for_services(
        &opts.slo,
        opts.scenario_file.as_deref(),
        &compose_file,
        project.slo(),
        &services,
    )?;
    let api_key = super::api_key(opts.api_key_env.as_deref())?;
    plan::print_plan(&project, &selection, &scenarios, opts.build);
    for (service, analysis) in services.iter().zip(&analyses) {
        eprintln!("{}: {}", service.name, analysis.plan_line());
    }
    if opts.dry_run {
        return Ok(EXIT_OK);
    }

    let docker = Docker::connect().await?;
    let _lock = lock::acquire(&docker.daemon_identity().await)?;
    let emergency = docker.emergency_stop();
    let restore_on_exit = !opts.no_restore;
    let cancel = flow::interrupt_token_with(move || {
        for line in emergency.stop_blocking(restore_on_exit) {
            eprintln!("warning: container not started again: {line}");
        }
        if !restore_on_exit {
            for name in emergency.displaced() {
                eprintln!("left container {name} stopped (--no-restore)");
            }
        }
    });
    let source = format!("{compose_file} (project {})", project.name());
    let mut writer = SuiteWriter::create(&opts.output, source)?;
    eprintln!("writing results to {}", writer.dir().display());
    let gpu = Gpu::detect().await;
    writer.set_gpu(gpu.info());
    let progress = flow::progress();
    let health = HealthOptions {
        interval: opts.health_interval,
        timeout: opts.health_timeout,
        ..HealthOptions::default()
    };
    let start = StartOptions {
        pull: opts.pull,
        keep: opts.keep,
        // A one-shot downloader the engine depends on may take as long as
        // a first start of an engine that downloads its own weights.
        dependency_timeout: Some(opts.health_timeout),
        build: opts.build,
    };
    let benchmarked: anyhow::Result<()> = async {
        for (service, analysis) in services.iter().zip(&analyses) {
            if cancel.is_cancelled() {
                break;
            }
            // Boxed: an engine's turn holds much across its awaits.
            let engine = Box::pin(one_service(
                &docker,
                &project,
                service,
                &scenarios,
                &health,
                start,
                api_key.clone(),
                &writer,
                &progress,
                &cancel,
                analysis,
                &gpu,
                opts.client_cores,
            ))
            .await;
            writer.set_displaced(displaced(&docker.displaced(), RestoreStatus::Pending));
            writer.push(engine)?;
        }
        Ok(())
    }
    .await;
    // On every path (done, failed, Ctrl-C), what was in the way runs again.
    restore(&docker, &mut writer, opts.no_restore).await?;
    benchmarked?;
    let code = flow::finish(
        &mut writer,
        &cancel,
        opts.baseline.as_deref(),
        opts.threshold,
        opts.json,
    )?;
    let code = super::export::after_finish(code, &opts.export, writer.suite()).await;
    super::history::after_finish(
        code,
        &opts.history,
        &opts.output,
        writer.suite(),
        writer.dir(),
        opts.threshold,
        opts.json,
    )
}

/// Starts the containers that were in the way again (unless `no_restore`),
/// says so, and records it in the results.
async fn restore(
    docker: &Docker,
    writer: &mut SuiteWriter,
    no_restore: bool,
) -> anyhow::Result<()> {
    let stopped = docker.displaced();
    if stopped.is_empty() {
        return Ok(());
    }
    let records = if no_restore {
        for container in &stopped {
            eprintln!(
                "left container {} stopped (--no-restore); `docker start {}` starts it again",
                container.container, container.container
            );
        }
        displaced(&stopped, RestoreStatus::LeftStopped)
    } else {
        docker
            .restore_displaced()
            .await
            .into_iter()
            .map(|outcome| {
                let mut record = displaced(
                    std::slice::from_ref(&outcome.container),
                    RestoreStatus::Restored,
                )
                .remove(0);
                match outcome.error {
                    None => eprintln!("started container {} again", record.container),
                    Some(error) => {
                        eprintln!(
                            "warning: cannot start container {} again: {error}",
                            record.container
                        );
                        record.restore = RestoreStatus::Failed;
                        record.restore_error = Some(error);
                    }
                }
                record
            })
            .collect()
    };
    writer.set_displaced(records);
    Ok(())
}

/// The results' record of displaced containers.
fn displaced(stopped: &[StoppedContainer], restore: RestoreStatus) -> Vec<DisplacedContainer> {
    stopped
        .iter()
        .map(|s| DisplacedContainer {
            container: s.container.clone(),
            project: s.project.clone(),
            service: s.service.clone(),
            reason: s.reason.clone(),
            restore,
            restore_error: None,
        })
        .collect()
}

/// Selected and overridden scenarios.
pub(crate) fn scenarios(
    file: Option<&std::path::Path>,
    names: Option<&[String]>,
    iterations: Option<u32>,
) -> anyhow::Result<Vec<Scenario>> {
    let (all, file_names) = match file {
        Some(path) => (
            scenario::from_toml_file(path)?,
            Some(scenario::names_in_file(path)?),
        ),
        None => (scenario::builtin(), None),
    };
    // A scenario file alone runs the scenarios it defines; --scenarios picks
    // among those and the built-ins.
    let names = names.or(file_names.as_deref());
    let mut chosen = scenario::select(&all, names)?;
    // Iterations, as the reference tool meant them: how many times each
    // one-at-a-time test is repeated. Concurrent and open-loop scenarios keep
    // their request counts, which define their load.
    if let Some(iterations) = iterations {
        for scenario in chosen.iter_mut().filter(|s| {
            !s.discard
                && s.config.concurrency == 1
                && matches!(s.config.arrival, spark_results::Arrival::Closed)
        }) {
            scenario.config.requests = iterations.max(1);
        }
    }
    Ok(chosen)
}

#[allow(clippy::too_many_arguments)]
async fn one_service(
    docker: &Docker,
    project: &ComposeProject,
    service: &InferenceService,
    scenarios: &[Scenario],
    health: &HealthOptions,
    start: StartOptions,
    api_key: Option<ApiKey>,
    writer: &SuiteWriter,
    progress: &indicatif::MultiProgress,
    cancel: &tokio_util::sync::CancellationToken,
    analysis: &super::slo::Analysis,
    gpu: &Gpu,
    client_cores: u32,
) -> EngineRun {
    let mut engine = EngineRun {
        service: service.name.clone(),
        flavor: service.flavor.id().to_owned(),
        model: service.served_model.clone(),
        outcome: EngineOutcome::Ok,
        startup: None,
        provenance: None,
        results: None,
        telemetry: None,
    };
    let failed = |phase: &str, err: &dyn std::fmt::Display| EngineOutcome::Failed {
        phase: phase.to_owned(),
        reason: format!("{err:#}"),
    };
    // Every phase races Ctrl-C: a stop, a pull or a create can take long.
    let swept = tokio::select! {
        swept = docker.stop_inference_containers(project, service) => swept,
        () = cancel.cancelled() => {
            engine.outcome = EngineOutcome::Interrupted;
            return engine;
        }
    };
    match swept {
        Ok(stopped) => {
            for container in stopped {
                eprintln!(
                    "stopped container {} ({}); it is started again at the end of the run",
                    container.container, container.reason
                );
            }
        }
        Err(err) => {
            engine.outcome = failed("start", &err);
            return engine;
        }
    }
    // A build or a pull can take minutes: its output beside a spinner.
    let preparing = flow::spinner(progress, format!("{}: starting", service.name));
    let preparing_message = format!("{}: starting", service.name);
    let started = tokio::select! {
        started = docker.start_reporting(project, service, start, |line| {
            let line: String = line.chars().take(80).collect();
            preparing.set_message(format!("{preparing_message}: {line}"));
        }) => started,
        () = cancel.cancelled() => {
            // A container created while the start was cut short has no
            // owner yet: remove it here.
            docker.remove_unstarted(project, service).await;
            preparing.finish_and_clear();
            engine.outcome = EngineOutcome::Interrupted;
            return engine;
        }
    };
    preparing.finish_and_clear();
    let running = match started {
        Ok(running) => running,
        Err(err) => {
            engine.outcome = failed("start", &err);
            return engine;
        }
    };
    engine.provenance = Some(provenance(running.provenance()));
    // A host port Docker assigned (`ports: ["8000"]`) is known now.
    let assigned;
    let service = if service.host_port_known() {
        service
    } else {
        assigned = service.clone().with_host_port(running.host_port());
        eprintln!(
            "{}: Docker assigned host port {}",
            service.name,
            running.host_port()
        );
        &assigned
    };
    for dependency in running.dependencies() {
        eprintln!("{}: started dependency {dependency}", service.name);
    }
    let spinner = flow::spinner(
        progress,
        format!("{}: waiting for {}", service.name, service.health_url()),
    );
    let base_message = format!("{}: waiting for {}", service.name, service.health_url());
    // The engine's own words while it loads (downloading, loading weights,
    // compiling graphs), secrets redacted; read beside the health gate, so
    // the startup times stay exact.
    let healthy = tokio::select! {
        result = running.wait_healthy_reporting(health, |line| {
            let line: String = line.chars().take(80).collect();
            spinner.set_message(format!("{base_message}: {line}"));
        }) => Some(result),
        () = cancel.cancelled() => None,
    };
    spinner.finish_and_clear();
    let measured = match healthy {
        None => {
            engine.outcome = EngineOutcome::Interrupted;
            None
        }
        Some(Err(err)) => {
            engine.outcome = failed("health", &err);
            None
        }
        Some(Ok(cost)) => {
            engine.startup = Some(startup(cost));
            eprintln!(
                "{} is healthy after {:.1} s",
                service.name,
                cost.healthy.as_secs_f64()
            );
            if let Some(provenance) = engine.provenance.as_mut() {
                provenance.engine_version = flow::engine_version(&service.base_url).await;
            }
            // The container's memory and CPU, and the GPUs, beside each scenario.
            let pids = running.host_pids().await;
            let telemetry = Telemetry::start(Target::Container(running.stats_reader()), gpu, &pids);
            let beside = flow::Beside {
                progress,
                cancel,
                telemetry: &telemetry,
                analysis,
                client_cores,
            };
            let measured = measure(service, scenarios, api_key, writer, &beside).await;
            let model_size = telemetry::model_size(running.model_files());
            let results = measured.as_ref().ok();
            engine.telemetry = Some(telemetry.finish(model_size, results).await);
            Some(measured)
        }
    };
    match measured {
        Some(Ok(results)) => {
            engine.outcome = flow::outcome_of(&results, cancel);
            engine.model = Some(results.engine.model.clone());
            engine.results = Some(results);
        }
        Some(Err(err)) => engine.outcome = failed("scenarios", &err),
        None => {}
    }
    if let Err(err) = running.stop().await {
        eprintln!("warning: {err}");
        if engine.is_ok() {
            engine.outcome = failed("stop", &err);
        }
    }
    engine
}

async fn measure(
    service: &InferenceService,
    scenarios: &[Scenario],
    api_key: Option<ApiKey>,
    writer: &SuiteWriter,
    beside: &flow::Beside<'_>,
) -> anyhow::Result<spark_results::RunResults> {
    let mut config = EngineConfig::new(service.base_url.clone());
    config.model = service.served_model.clone();
    config.api_key = api_key;
    config.max_model_len = service.max_model_len;
    let dir = writer.engine_dir(&service.name)?;
    flow::measure(config, scenarios, &dir, &service.name, beside)
        .await
        .context("measuring")
}

fn startup(cost: spark_orchestrator::StartupCost) -> StartupCost {
    StartupCost {
        created_s: cost.create.as_secs_f64(),
        started_s: cost.start.as_secs_f64(),
        port_open_s: Some(cost.port_open.as_secs_f64()),
        healthy_s: Some(cost.healthy.as_secs_f64()),
    }
}

fn provenance(p: &spark_orchestrator::Provenance) -> Provenance {
    Provenance {
        image: p.image.clone(),
        image_id: Some(p.image_id.clone()),
        repo_digests: p.repo_digests.clone(),
        command: p.command.clone(),
        env_names: p.env_names.clone(),
        config_hash: Some(p.config_hash.clone()),
        engine_version: None,
    }
}
