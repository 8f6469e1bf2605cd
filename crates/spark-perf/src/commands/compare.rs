//! `spark-perf compare BASELINE CURRENT`: tells a cron job whether a run
//! regressed. Exit 0: no regression; 1: a regression; 2: an error or runs
//! that are not comparable (unless `--force`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use spark_report::compare::{CompareOptions, RunRecords, compare, render_text};
use spark_results::{
    EngineOutcome, EngineRun, RequestRecord, RunResults, SUITE_SCHEMA_VERSION, SuiteResults,
};

use crate::{EXIT_ERROR, EXIT_OK, EXIT_REGRESSION};

/// Options of `spark-perf compare`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 no regression, 1 regression, 2 error or not comparable.

Examples:
  spark-perf compare reports/2026-11-22T02-00-00/results.json reports/2026-11-23T02-00-00/results.json
  spark-perf compare --threshold 10 baseline.json current.json"
)]
pub struct CompareOpts {
    /// The baseline run's results.json (or its directory); with --history,
    /// the run to judge (its id or its run directory; default: the newest).
    #[arg(required_unless_present = "history")]
    pub baseline: Option<PathBuf>,
    /// The current run's results.json (or its directory).
    #[arg(required_unless_present = "history", conflicts_with = "history")]
    pub current: Option<PathBuf>,
    /// Judge a run against the earlier comparable runs of this history
    /// instead of one baseline: a run is one value, its verdict comes from
    /// the history's own spread.
    #[arg(long, value_name = "PATH")]
    pub history: Option<PathBuf>,
    /// Relative change, percent, in the bad direction that counts as a regression.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f64,
    /// Compare even when the runs are not comparable (other image, model or settings).
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn run(opts: &CompareOpts) -> anyhow::Result<u8> {
    if let Some(history) = &opts.history {
        return against_history(history, opts.baseline.as_deref(), opts.threshold / 100.0);
    }
    let (Some(baseline), Some(current)) = (&opts.baseline, &opts.current) else {
        anyhow::bail!("compare needs BASELINE and CURRENT, or --history PATH");
    };
    let current_dir = run_dir_of(current);
    let current = load(current)?;
    against(
        baseline,
        &current,
        Some(&current_dir),
        opts.threshold / 100.0,
        opts.force,
        TableTo::Stdout,
    )
}

/// The directory a run's files lie in: the path itself, or the directory
/// of its results.json.
pub(crate) fn run_dir_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_owned()
    } else {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// The request records of `suite`'s engines under `dir`:
/// `<dir>/<engine>/requests.jsonl`, or `<dir>/requests.jsonl` beside one
/// engine's results.json. An engine whose records are missing or unreadable
/// has none: its metrics are then judged by the threshold alone.
pub(crate) fn records_of(dir: &Path, suite: &SuiteResults) -> BTreeMap<String, Vec<RequestRecord>> {
    let mut records = BTreeMap::new();
    for engine in &suite.engines {
        let nested = dir
            .join(super::flow::dir_name_of(&engine.service))
            .join("requests.jsonl");
        let beside = dir.join("requests.jsonl");
        let file = if nested.is_file() {
            nested
        } else if suite.engines.len() == 1 && beside.is_file() {
            beside
        } else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let parsed: Vec<RequestRecord> = text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        records.insert(engine.service.clone(), parsed);
    }
    records
}

/// `compare --history PATH [RUN]`: the run (an id, a run directory, or the
/// newest) against the earlier comparable runs of the history.
fn against_history(path: &Path, run: Option<&Path>, threshold: f64) -> anyhow::Result<u8> {
    if !path.is_file() {
        anyhow::bail!(
            "no history at {}: pass the history.sqlite beside your run directories",
            path.display()
        );
    }
    let history = spark_history::History::open(path)?;
    let runs = history.runs()?;
    let run_id = match run {
        None => runs
            .last()
            .map(|r| r.id)
            .ok_or_else(|| anyhow::anyhow!("the history {} holds no run", path.display()))?,
        Some(run) => match run.to_str().and_then(|t| t.parse::<i64>().ok()) {
            Some(id) => spark_history::RunId(id),
            None => {
                let suite = load(run)?;
                history
                    .find_run(suite.started_unix_ms, &suite.source)?
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{} is not in the history {}: add it with `spark-perf history import`",
                            run.display(),
                            path.display()
                        )
                    })?
            }
        },
    };
    let verdict = super::judge::judge_run(&history, run_id, threshold)?;
    crate::write_stdout(&super::history::render_verdict(&verdict))?;
    Ok(verdict.exit_code())
}

/// Where the comparison table goes: stdout for `compare`, stderr when stdout
/// carries a JSON document (`run --json --baseline`), which must stay one
/// parseable document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableTo {
    Stdout,
    Stderr,
}

/// Compares `current` with the baseline file, prints the table, returns the
/// exit code.
pub(crate) fn against(
    baseline: &Path,
    current: &SuiteResults,
    current_dir: Option<&Path>,
    threshold: f64,
    force: bool,
    table_to: TableTo,
) -> anyhow::Result<u8> {
    let baseline_dir = run_dir_of(baseline);
    let baseline = load(baseline)?;
    let records = RunRecords {
        baseline: records_of(&baseline_dir, &baseline),
        current: current_dir
            .map(|dir| records_of(dir, current))
            .unwrap_or_default(),
    };
    let comparison = compare(
        &baseline,
        current,
        CompareOptions { threshold, force },
        &records,
    );
    let table = render_text(&comparison);
    match table_to {
        TableTo::Stdout => crate::write_stdout(&table)?,
        TableTo::Stderr => eprint!("{table}"),
    }
    if !comparison.differences.is_empty() && !force {
        eprintln!("the runs are not comparable (pass --force to compare anyway)");
        return Ok(EXIT_ERROR);
    }
    if comparison.regressed() {
        eprintln!(
            "regression beyond {:.1} % and the noise of the requests (a weak verdict: see compare --history)",
            threshold * 100.0
        );
        Ok(EXIT_REGRESSION)
    } else {
        eprintln!("no regression");
        Ok(EXIT_OK)
    }
}

/// Reads a run's results: a run's results.json, the per-engine results.json
/// inside a run directory (or a `bench` of an older spark-perf), or a
/// directory holding either.
pub(crate) fn load(path: &Path) -> anyhow::Result<SuiteResults> {
    let file = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let not_ours = || {
        format!(
            "{} is not a spark-perf run's results.json (schema in docs/results.schema.json)",
            file.display()
        )
    };
    let value: serde_json::Value = serde_json::from_str(&text).with_context(not_ours)?;
    // One engine's results have `engine` and `scenarios`; a run has `engines`.
    let is_one_engine = value.get("engines").is_none() && value.get("scenarios").is_some();
    let suite = if is_one_engine {
        let results: RunResults = serde_json::from_value(value).with_context(not_ours)?;
        check_version(&file, results.schema_version, spark_results::SCHEMA_VERSION)?;
        one_engine_suite(&file, results)
    } else {
        let suite: SuiteResults = serde_json::from_value(value).with_context(not_ours)?;
        check_version(&file, suite.schema_version, SUITE_SCHEMA_VERSION)?;
        suite
    };
    Ok(suite)
}

fn check_version(file: &Path, found: u32, expected: u32) -> anyhow::Result<()> {
    if found != expected {
        anyhow::bail!(
            "{}: schema_version {found} is not the {expected} this spark-perf reads",
            file.display(),
        );
    }
    Ok(())
}

/// One engine's results as a run of that one engine. Inside a run directory
/// (`<run>/<engine>/results.json`) the run's own entry for the engine gives
/// the service, flavor, startup and provenance; elsewhere the directory's
/// name stands for the service.
fn one_engine_suite(file: &Path, results: RunResults) -> SuiteResults {
    let engine_dir = file.parent().filter(|dir| !dir.as_os_str().is_empty());
    let dir_name = engine_dir
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned());
    let run_entry = engine_dir
        .and_then(Path::parent)
        .map(|run_dir| run_dir.join("results.json"))
        .and_then(|run_file| std::fs::read_to_string(run_file).ok())
        .and_then(|text| serde_json::from_str::<SuiteResults>(&text).ok())
        .and_then(|run| {
            run.engines
                .into_iter()
                .find(|engine| Some(super::flow::dir_name_of(&engine.service)) == dir_name)
        });
    let outcome = match &results.stopped {
        Some(reason) => EngineOutcome::Failed {
            phase: "scenarios".to_owned(),
            reason: reason.clone(),
        },
        None => EngineOutcome::Ok,
    };
    let tool = results.tool.clone();
    let started_unix_ms = results.started_unix_ms;
    let stopped = results.stopped.clone();
    let engine = match run_entry {
        Some(entry) => EngineRun {
            results: Some(results),
            ..entry
        },
        None => EngineRun {
            service: dir_name.unwrap_or_else(|| results.engine.model.clone()),
            flavor: "unknown".to_owned(),
            model: Some(results.engine.model.clone()),
            outcome,
            startup: None,
            provenance: None,
            results: Some(results),
            telemetry: None,
        },
    };
    SuiteResults {
        schema_version: SUITE_SCHEMA_VERSION,
        tool,
        started_unix_ms,
        finished_unix_ms: None,
        complete: stopped.is_none(),
        stopped,
        source: format!("{} (one engine's results)", file.display()),
        pick: None,
        displaced: Vec::new(),
        gpu: None,
        engines: vec![engine],
    }
}
