//! What `run` and `demo` share: the run directory and the results written as
//! they are measured, measuring one engine with progress bars, the reports
//! at the end, and Ctrl-C.
//!
//! Results are never held only in memory: every request record is appended
//! to `<run>/<engine>/requests.jsonl` when it ends, and `results.json` is
//! rewritten (atomically, through a temporary file) after every engine, so a
//! crash, a kill or a power cut loses at most the requests in flight.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use spark_load::{Engine, EngineConfig, JsonlSink, RecordSink, RunOptions, Scenario};
use spark_report::render::{self, file_timestamp, text::TextStyle};
use spark_results::{
    DisplacedContainer, EngineOutcome, EngineRun, RequestRecord, RunResults, SUITE_SCHEMA_VERSION,
    SuiteResults,
};
use tokio_util::sync::CancellationToken;

use super::telemetry::Telemetry;

/// The exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Milliseconds since the Unix epoch (report metadata only).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A cancellation token that SIGINT (Ctrl-C) and SIGTERM cancel; a second
/// signal exits 130 at once.
pub(crate) fn interrupt_token() -> CancellationToken {
    interrupt_token_with(|| {})
}

/// [`interrupt_token`], running `on_second` (bounded clean-up: stop the
/// container) before the exit of a second signal.
pub(crate) fn interrupt_token_with(on_second: impl FnOnce() + Send + 'static) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        let mut next_signal = async || {
            let terminated = async {
                match term.as_mut() {
                    Some(term) => {
                        term.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let interrupted = async {
                match int.as_mut() {
                    Some(int) => {
                        int.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = interrupted => {}
                () = terminated => {}
            }
        };
        next_signal().await;
        eprintln!(
            "\ninterrupted: stopping the engine and writing what was measured (Ctrl-C again to exit at once)"
        );
        cancel.cancel();
        next_signal().await;
        eprintln!("interrupted again: stopping the container, then exiting");
        // The clean-up blocks (bounded); off the runtime's workers.
        let _ = tokio::task::spawn_blocking(on_second).await;
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    token
}

/// The reports of one run, written as the run goes.
#[derive(Debug)]
pub(crate) struct SuiteWriter {
    dir: PathBuf,
    suite: SuiteResults,
}

impl SuiteWriter {
    /// Creates `<output>/<timestamp>[-N]/` and writes a first, empty,
    /// incomplete `results.json`.
    pub(crate) fn create(output: &Path, source: String) -> anyhow::Result<SuiteWriter> {
        let started = unix_ms();
        let stamp = file_timestamp(started);
        let mut dir = output.join(&stamp);
        let mut n_tries = 1;
        while dir.exists() {
            n_tries += 1;
            dir = output.join(format!("{stamp}-{n_tries}"));
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
        SuiteWriter::start(dir, started, source)
    }

    /// Writes the run into `dir` itself (created), as `bench --output DIR`
    /// does; refuses a directory that already holds a run, which would be
    /// overwritten.
    pub(crate) fn create_at(dir: &Path, source: String) -> anyhow::Result<SuiteWriter> {
        let existing = dir.join("results.json");
        if existing.exists() {
            anyhow::bail!(
                "{} already holds results; pass another --output (or remove it)",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
        SuiteWriter::start(dir.to_owned(), unix_ms(), source)
    }

    fn start(dir: PathBuf, started: u64, source: String) -> anyhow::Result<SuiteWriter> {
        let writer = SuiteWriter {
            dir,
            suite: SuiteResults {
                schema_version: SUITE_SCHEMA_VERSION,
                tool: format!("spark-perf {}", env!("CARGO_PKG_VERSION")),
                started_unix_ms: started,
                finished_unix_ms: None,
                complete: false,
                stopped: Some("the run is still going on, or spark-perf was killed".to_owned()),
                source,
                pick: None,
                displaced: Vec::new(),
                gpu: None,
                engines: Vec::new(),
            },
        };
        writer.save()?;
        Ok(writer)
    }

    /// The run's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of one engine's files (created).
    pub(crate) fn engine_dir(&self, service: &str) -> anyhow::Result<PathBuf> {
        let dir = self.dir.join(dir_name_of(service));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// Records one engine's turn (saying on stderr when it failed) and saves
    /// at once.
    pub(crate) fn push(&mut self, engine: EngineRun) -> anyhow::Result<()> {
        if let EngineOutcome::Failed { phase, reason } = &engine.outcome {
            eprintln!("{} failed in {phase}: {reason}", engine.service);
        }
        if let Some(results) = &engine.results {
            let dir = self.engine_dir(&engine.service)?;
            write_atomically(&dir.join("results.json"), &json_of(results))?;
        }
        self.suite.engines.push(engine);
        self.save()
    }

    /// Records the containers stopped because they were in the way (saved
    /// with the next engine, and by `finish`).
    pub(crate) fn set_displaced(&mut self, displaced: Vec<DisplacedContainer>) {
        self.suite.displaced = displaced;
    }

    /// Records the machine's GPUs, or why there are none (saved with the
    /// next engine, and by `finish`).
    pub(crate) fn set_gpu(&mut self, gpu: spark_results::GpuInfo) {
        self.suite.gpu = Some(gpu);
    }

    /// The results so far.
    pub(crate) fn suite(&self) -> &SuiteResults {
        &self.suite
    }

    fn save(&self) -> anyhow::Result<()> {
        write_atomically(&self.dir.join("results.json"), &render::json(&self.suite))
    }

    /// Marks the run finished (or stopped) and writes every report. Returns
    /// the paths written.
    pub(crate) fn finish(&mut self, stopped: Option<String>) -> anyhow::Result<Vec<PathBuf>> {
        self.suite.finished_unix_ms = Some(unix_ms());
        self.suite.complete = stopped.is_none();
        self.suite.stopped = stopped;
        self.save()?;
        write_reports(&self.dir, &self.suite)
    }
}

/// The name of an engine's directory inside a run: the service name with
/// anything but `[A-Za-z0-9._-]` replaced, so no name escapes the run.
pub(crate) fn dir_name_of(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Ends a run of `run`, `bench` or `demo`: writes the reports, then
/// judges the suite against the baseline. Interrupted wins over every other
/// outcome (exit 130).
pub(crate) fn finish(
    writer: &mut SuiteWriter,
    cancel: &CancellationToken,
    baseline: Option<&Path>,
    threshold_percent: f64,
    json: bool,
) -> anyhow::Result<u8> {
    if conclude(writer, cancel, json)? {
        return Ok(EXIT_INTERRUPTED);
    }
    verdict(
        writer.suite(),
        Some(writer.dir()),
        baseline,
        threshold_percent,
        json,
    )
}

/// Ends a run: writes every report (marked incomplete when `cancel` fired)
/// and prints the tables, or the JSON with `json`. Returns whether the run
/// was interrupted.
fn conclude(
    writer: &mut SuiteWriter,
    cancel: &CancellationToken,
    json: bool,
) -> anyhow::Result<bool> {
    let stopped = cancel
        .is_cancelled()
        .then(|| "interrupted (Ctrl-C or SIGTERM)".to_owned());
    let interrupted = stopped.is_some();
    let paths = writer.finish(stopped)?;
    if json {
        crate::write_stdout(&(render::json(writer.suite()) + "\n"))?;
        for path in &paths {
            eprintln!("wrote {}", path.display());
        }
    } else {
        print_summary(writer.suite(), &paths)?;
    }
    Ok(interrupted)
}

/// The exit code at the end of a run (`run`, `bench`): compares with the
/// baseline when there is one (the table on stderr under `--json`, so stdout
/// stays one JSON document), names the engines that failed, and says both
/// when an engine failed and a metric regressed.
fn verdict(
    suite: &SuiteResults,
    current_dir: Option<&Path>,
    baseline: Option<&Path>,
    threshold_percent: f64,
    json: bool,
) -> anyhow::Result<u8> {
    let comparison = match baseline {
        Some(baseline) => Some(super::compare::against(
            baseline,
            suite,
            current_dir,
            threshold_percent / 100.0,
            false,
            if json {
                super::compare::TableTo::Stderr
            } else {
                super::compare::TableTo::Stdout
            },
        )?),
        None => None,
    };
    let failed: Vec<&str> = suite
        .engines
        .iter()
        .filter(|engine| !engine.is_ok())
        .map(|engine| engine.service.as_str())
        .collect();
    let all_ok = failed.is_empty();
    if !all_ok {
        let regressed = if comparison == Some(crate::EXIT_REGRESSION) {
            ", and a metric regressed against the baseline"
        } else {
            ""
        };
        eprintln!(
            "error: {} of {} engines failed ({}){regressed}",
            failed.len(),
            suite.engines.len(),
            failed.join(", ")
        );
    }
    Ok(crate::run_exit_code(all_ok, comparison))
}

/// Writes the text, Markdown and HTML reports of `suite` into `dir`.
pub(crate) fn write_reports(dir: &Path, suite: &SuiteResults) -> anyhow::Result<Vec<PathBuf>> {
    let stamp = file_timestamp(suite.started_unix_ms);
    let reports = [
        (
            format!("model-comparison-{stamp}.txt"),
            render::text::render(suite, TextStyle { color: false }),
        ),
        ("report.md".to_owned(), render::markdown::render(suite)),
        ("report.html".to_owned(), render::html::render(suite)),
    ];
    let mut paths = vec![dir.join("results.json")];
    for (name, text) in reports {
        let path = dir.join(name);
        write_atomically(&path, &text)?;
        paths.push(path);
    }
    Ok(paths)
}

fn json_of(results: &RunResults) -> String {
    serde_json::to_string_pretty(results).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
}

/// Writes through a temporary file and a rename, so a reader (or a crash)
/// never sees half a file.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Progress bars to stderr; hidden when stderr is not a terminal.
pub(crate) fn progress() -> MultiProgress {
    use std::io::IsTerminal as _;
    if std::io::stderr().is_terminal() {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    }
}

/// A spinner with elapsed time, for waiting on an engine.
pub(crate) fn spinner(progress: &MultiProgress, message: String) -> ProgressBar {
    let bar = progress.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The record sink of a measured engine: appends every record to the
/// engine's `requests.jsonl` and moves a progress bar per scenario.
struct ProgressSink<'a> {
    file: JsonlSink,
    telemetry: &'a Telemetry,
    progress: &'a MultiProgress,
    service: &'a str,
    scenarios: &'a [Scenario],
    bar: Option<(String, ProgressBar, Instant, u64)>,
}

/// When a record's scenario started: the record ended just now, and it ended
/// `start_ms + e2e_ms` after the scenario's start. The bar is created at the
/// first record, so timing from the bar's creation would make a scenario's
/// first tokens look instantaneous (one request on a 22 tok/s engine read
/// `500000 tok/s`).
fn scenario_start(now: Instant, start_ms: f64, e2e_ms: f64) -> Instant {
    let since_start_ms = start_ms + e2e_ms;
    let since_start = Duration::try_from_secs_f64(since_start_ms / 1e3).unwrap_or_default();
    now.checked_sub(since_start).unwrap_or(now)
}

/// The bar's live rate: output tokens per second of wall time since the
/// scenario started (a dash until a millisecond has passed).
fn rate_message(n_tokens: u64, since_start: Duration) -> String {
    let secs = since_start.as_secs_f64();
    if secs < 1e-3 {
        return "- tok/s".to_owned();
    }
    format!("{:.1} tok/s", n_tokens as f64 / secs)
}

impl RecordSink for ProgressSink<'_> {
    fn write(&mut self, record: &RequestRecord) -> std::io::Result<()> {
        let same = self
            .bar
            .as_ref()
            .is_some_and(|(name, ..)| *name == record.scenario);
        if !same {
            if let Some((_, bar, ..)) = self.bar.take() {
                bar.finish_and_clear();
            }
            let total = self
                .scenarios
                .iter()
                .find(|s| s.name == record.scenario)
                .map_or(0, |s| u64::from(s.config.requests));
            let bar = self.progress.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template("  {prefix} {bar:30} {pos}/{len} requests {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(format!("{} / {}", self.service, record.scenario));
            let started = scenario_start(Instant::now(), record.start_ms, record.e2e_ms);
            self.bar = Some((record.scenario.clone(), bar, started, 0));
        }
        if let Some((_, bar, _, tokens)) = self.bar.as_mut() {
            *tokens += u64::from(record.output_tokens.unwrap_or(0));
            bar.inc(1);
        }
        self.telemetry.record(record);
        self.file.write(record)
    }

    /// After each batch of records: the bar's rate, and the file written.
    fn flush(&mut self) -> std::io::Result<()> {
        if let Some((_, bar, started, tokens)) = self.bar.as_ref() {
            bar.set_message(rate_message(*tokens, started.elapsed()));
        }
        self.file.flush()
    }

    fn scenario_started(&mut self, name: &str) {
        self.telemetry.scenario_started(name);
    }

    fn scenario_ended(&mut self, name: &str) {
        self.telemetry.scenario_ended(name);
    }
}

impl Drop for ProgressSink<'_> {
    fn drop(&mut self) {
        if let Some((_, bar, ..)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Connects to an engine that is up and runs the scenarios, appending every
/// record to `dir/requests.jsonl` as it ends, with what runs beside them.
pub(crate) async fn measure(
    config: EngineConfig,
    scenarios: &[Scenario],
    dir: &Path,
    service: &str,
    beside: &Beside<'_>,
) -> anyhow::Result<RunResults> {
    let engine = Engine::connect(config)
        .await
        .with_context(|| format!("service {service}: cannot use the engine"))?;
    let mut options = RunOptions {
        // The records are in requests.jsonl; results.json keeps aggregates.
        keep_records: false,
        client_cores: Some(beside.client_cores),
        ..RunOptions::default()
    };
    beside.analysis.apply(&mut options);
    measure_engine(&engine, scenarios, dir, service, beside, &options).await
}

/// What runs beside the scenarios: the progress bars, Ctrl-C, telemetry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Beside<'a> {
    pub(crate) progress: &'a MultiProgress,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) telemetry: &'a Telemetry,
    /// The SLO, when one is set: goodput per scenario.
    pub(crate) analysis: &'a super::slo::Analysis,
    /// Client threads of the load (`--client-cores`).
    pub(crate) client_cores: u32,
}

/// Runs the scenarios on a connected engine, appending every record to
/// `dir/requests.jsonl` as it ends, with a progress bar per scenario.
pub(crate) async fn measure_engine(
    engine: &Engine,
    scenarios: &[Scenario],
    dir: &Path,
    service: &str,
    beside: &Beside<'_>,
    options: &RunOptions,
) -> anyhow::Result<RunResults> {
    let file = JsonlSink::create(&dir.join("requests.jsonl"))?;
    beside.telemetry.watch_engine(engine);
    let mut sink = ProgressSink {
        file,
        telemetry: beside.telemetry,
        progress: beside.progress,
        service,
        scenarios,
        bar: None,
    };
    Ok(spark_load::run(engine, scenarios, &mut sink, options, beside.cancel).await)
}

/// The engine's version from `/version` (vLLM, SGLang, spark-sim), if it
/// answers within a second.
pub(crate) async fn engine_version(base_url: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .ok()?;
    let body: serde_json::Value = client
        .get(format!("{base_url}/version"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body.get("version")?.as_str().map(str::to_owned)
}

/// The outcome recorded for an engine whose scenarios ran: interrupted when
/// cancelled, failed when the load engine stopped early, else ok.
pub(crate) fn outcome_of(results: &RunResults, cancel: &CancellationToken) -> EngineOutcome {
    if cancel.is_cancelled() {
        EngineOutcome::Interrupted
    } else if let Some(stopped) = &results.stopped {
        EngineOutcome::Failed {
            phase: "scenarios".to_owned(),
            reason: stopped.clone(),
        }
    } else {
        EngineOutcome::Ok
    }
}

/// Prints the comparison tables to stdout (colour only on a terminal without
/// `NO_COLOR`) and where the reports are, to stderr.
pub(crate) fn print_summary(suite: &SuiteResults, paths: &[PathBuf]) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let text = render::text::render(suite, TextStyle { color });
    crate::write_stdout(&text)?;
    eprintln!("\nreports:");
    for path in paths {
        eprintln!("  {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_rate_counts_from_the_scenario_start() {
        // One request of 44 tokens that took 2 s on a 22 tok/s engine: the
        // bar appears when it ends, and must still say 22 tok/s.
        let now = Instant::now() + Duration::from_secs(10);
        let started = scenario_start(now, 0.0, 2000.0);
        assert_eq!(now - started, Duration::from_secs(2));
        assert_eq!(rate_message(44, now - started), "22.0 tok/s");
        // A request sent 1 s into the scenario and ending at 3 s.
        assert_eq!(
            now - scenario_start(now, 1000.0, 2000.0),
            Duration::from_secs(3)
        );
        assert_eq!(rate_message(0, Duration::ZERO), "- tok/s");
    }
}
