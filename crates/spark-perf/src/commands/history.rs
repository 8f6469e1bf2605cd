//! `spark-perf history`: the series of runs per engine, scenario and metric,
//! with each run's verdict and the change points marked; `history import`
//! backfills run directories; and the `--history` / `--check-history` flags
//! that `run`, `bench` and `demo` share.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use spark_history::{History, Point, RunMeta};
use spark_report::nightly::{Call, changepoint};
use spark_results::SuiteResults;

use super::judge::{self, RunVerdict};

/// The history flags of `run`, `bench` and `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// The run history (SQLite) to append this run to (default:
    /// history.sqlite in the output directory).
    #[arg(long, value_name = "PATH")]
    pub history: Option<PathBuf>,
    /// Do not append this run to the history.
    #[arg(long, conflicts_with_all = ["history", "check_history"])]
    pub no_history: bool,
    /// Judge this run against the earlier comparable runs of the history
    /// (exit 1 on a regression).
    #[arg(long)]
    pub check_history: bool,
}

impl HistoryArgs {
    /// The history file, given the run's output directory.
    pub(crate) fn path(&self, output: &Path) -> Option<PathBuf> {
        (!self.no_history).then(|| {
            self.history
                .clone()
                .unwrap_or_else(|| output.join("history.sqlite"))
        })
    }
}

/// The host a run's engines ran on, for the history.
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The exit code of a finished run with its history verdict: interrupted
/// (130) and error (2) win over a regression (1). `code` is what
/// `flow::finish` returned; `beside` is the directory the history file lies
/// in by default.
pub(crate) fn after_finish(
    code: u8,
    args: &HistoryArgs,
    beside: &Path,
    suite: &SuiteResults,
    run_dir: &Path,
    threshold_percent: f64,
    json: bool,
) -> anyhow::Result<u8> {
    let verdict = record(
        args,
        beside,
        suite,
        run_dir,
        threshold_percent / 100.0,
        json,
    )?;
    Ok(match verdict {
        Some(v) if code == crate::EXIT_OK => v,
        Some(crate::EXIT_REGRESSION) if code == crate::EXIT_ERROR => code,
        _ => code,
    })
}

/// Appends the finished `suite` (its directory `run_dir`) to the history,
/// then, with `--check-history`, judges it. Returns the verdict's exit code
/// when one was asked for. A history that cannot be written is a warning:
/// the run's results are already on disk.
pub(crate) fn record(
    args: &HistoryArgs,
    output: &Path,
    suite: &SuiteResults,
    run_dir: &Path,
    threshold: f64,
    json: bool,
) -> anyhow::Result<Option<u8>> {
    let Some(path) = args.path(output) else {
        return Ok(None);
    };
    let meta = RunMeta {
        host: host_name(),
        run_dir: Some(run_dir.to_path_buf()),
        ..RunMeta::default()
    };
    let appended = History::open(&path).and_then(|mut history| {
        let id = history.append(suite, &meta)?;
        Ok((history, id))
    });
    let (history, run_id) = match appended {
        Ok(done) => done,
        Err(err) if !args.check_history => {
            eprintln!("warning: the run was not added to the history: {err}");
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    if !json {
        eprintln!("added to the history {}", path.display());
    }
    super::trends::rewrite_report(&history, suite, run_dir, threshold);
    if !args.check_history {
        return Ok(None);
    }
    let verdict = judge::judge_run(&history, run_id, threshold)?;
    eprint!("{}", render_verdict(&verdict));
    Ok(Some(verdict.exit_code()))
}

/// The verdict of a run as text: regressions and improvements, then a line
/// of counts.
pub(crate) fn render_verdict(verdict: &RunVerdict) -> String {
    let mut out = String::new();
    for engine in &verdict.failed_engines {
        out.push_str(&format!(
            "REGRESSION {engine}: failed tonight, ran before\n"
        ));
    }
    for m in &verdict.metrics {
        let word = match m.call {
            Call::Regressed => "REGRESSION",
            Call::Improved => "improved",
            Call::Unchanged => continue,
        };
        out.push_str(&format!(
            "{word} {} / {} {}: {:.4} vs {:.4} ({:+.1} %), band {:.4}–{:.4}, p {:.2e}, {} verdict from {} earlier{}\n",
            m.engine,
            m.scenario,
            m.metric,
            m.judged.value,
            m.judged.reference,
            m.judged.change * 100.0,
            m.judged.band.0,
            m.judged.band.1,
            m.judged.p_value,
            match m.judged.strength {
                spark_report::nightly::Strength::Strong => "strong",
                spark_report::nightly::Strength::Weak => "weak (too few runs: judged against the last run's requests)",
            },
            m.judged.n_reference,
            m.likely_cause
                .as_deref()
                .map(|c| format!("; likely cause: {c}"))
                .unwrap_or_default()
        ));
    }
    let regressed = verdict
        .metrics
        .iter()
        .filter(|m| m.call == Call::Regressed)
        .count();
    out.push_str(&format!(
        "history verdict: {} metrics judged, {regressed} regressed, {} engines failed, {} without comparable runs\n",
        verdict.metrics.len(),
        verdict.failed_engines.len(),
        verdict.not_comparable
    ));
    out
}

/// `spark-perf history`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  spark-perf history                                   every engine, scenario and key metric
  spark-perf history --engine vllm --metric tpot_ms.p50 --last 20
  spark-perf history --changes                         only where a metric shifted, and since when
  spark-perf history import reports/*                  backfill from run directories")]
pub struct HistoryOpts {
    /// The history file.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "reports/history.sqlite",
        global = true
    )]
    pub history: PathBuf,
    /// Only this engine (service).
    #[arg(long)]
    pub engine: Option<String>,
    /// Only this scenario.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Only this metric (NAME or NAME.STAT, e.g. ttft_ms.p50).
    #[arg(long)]
    pub metric: Option<String>,
    /// The last N runs.
    #[arg(long, default_value_t = 30)]
    pub last: usize,
    /// Only the series with a change point, and the change points.
    #[arg(long)]
    pub changes: bool,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// The practical threshold of a regression, percent.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f64,
    #[command(subcommand)]
    pub action: Option<HistoryAction>,
}

/// `spark-perf history import`.
#[derive(Debug, clap::Subcommand)]
pub enum HistoryAction {
    /// Add existing run directories (each holding a results.json).
    Import {
        /// Run directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

/// One run of a series, as shown.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) run_id: i64,
    pub(crate) started_unix_ms: u64,
    pub(crate) value: Option<f64>,
    pub(crate) image_id: Option<String>,
    pub(crate) call: Option<Call>,
    pub(crate) change_point: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Series {
    pub(crate) engine: String,
    pub(crate) scenario: String,
    pub(crate) metric: String,
    pub(crate) runs: Vec<Row>,
}

pub(crate) fn run(opts: &HistoryOpts) -> anyhow::Result<u8> {
    if let Some(HistoryAction::Import { dirs }) = &opts.action {
        let mut history = History::open(&opts.history)?;
        for dir in dirs {
            let meta = RunMeta {
                host: host_name(),
                ..RunMeta::default()
            };
            history
                .import_dir(dir, &meta)
                .with_context(|| format!("importing {}", dir.display()))?;
            eprintln!("imported {}", dir.display());
        }
        return Ok(crate::EXIT_OK);
    }
    if !opts.history.is_file() {
        anyhow::bail!(
            "no history at {}: every run, bench and demo writes one beside its run directories; pass --history PATH or import run directories with `spark-perf history import DIR…`",
            opts.history.display()
        );
    }
    let history = History::open(&opts.history)?;
    let mut all = Vec::new();
    let engines = match &opts.engine {
        Some(engine) => vec![engine.clone()],
        None => history.engines()?,
    };
    for engine in &engines {
        let scenarios = match &opts.scenario {
            Some(s) => vec![s.clone()],
            None => history.scenarios(engine)?,
        };
        for scenario in &scenarios {
            let metrics: Vec<String> = match &opts.metric {
                Some(m) => vec![m.clone()],
                None => judge::key_metric_names().map(str::to_owned).collect(),
            };
            for metric in metrics {
                let points = history.series(engine, scenario, &metric, opts.last)?;
                if points.is_empty() {
                    continue;
                }
                let series = series_of(engine, scenario, &metric, &points, opts.threshold / 100.0);
                if !opts.changes || series.runs.iter().any(|r| r.change_point.is_some()) {
                    all.push(series);
                }
            }
        }
    }
    if opts.json {
        crate::write_stdout(&(serde_json::to_string_pretty(&all)? + "\n"))?;
    } else {
        crate::write_stdout(&render_series(&all))?;
    }
    Ok(crate::EXIT_OK)
}

pub(crate) fn series_of(
    engine: &str,
    scenario: &str,
    metric: &str,
    points: &[Point],
    threshold: f64,
) -> Series {
    let with_values: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.value.map(|v| (i, v)))
        .collect();
    let values: Vec<f64> = with_values.iter().map(|&(_, v)| v).collect();
    let mut change_at = vec![None; points.len()];
    for point in changepoint::detect(&values) {
        change_at[with_values[point.index].0] = Some(point.change());
    }
    let runs = points
        .iter()
        .enumerate()
        .map(|(i, p)| Row {
            run_id: p.run_id.0,
            started_unix_ms: p.started_unix_ms,
            value: p.value,
            image_id: p.image_id.clone(),
            call: judge::call_in_series(metric, &points[..i], p, threshold),
            change_point: change_at[i],
        })
        .collect();
    Series {
        engine: engine.to_owned(),
        scenario: scenario.to_owned(),
        metric: metric.to_owned(),
        runs,
    }
}

fn render_series(all: &[Series]) -> String {
    let mut out = String::new();
    for series in all {
        out.push_str(&format!(
            "{} / {} / {}\n",
            series.engine, series.scenario, series.metric
        ));
        for row in &series.runs {
            let value = row
                .value
                .map_or_else(|| "N/A".to_owned(), |v| format!("{v:.4}"));
            let call = match row.call {
                Some(Call::Regressed) => "REGRESSION",
                Some(Call::Improved) => "improved",
                Some(Call::Unchanged) => "ok",
                None => "-",
            };
            let change = row
                .change_point
                .map(|c| format!("  ◆ change point {:+.1} %", c * 100.0))
                .unwrap_or_default();
            let image = row
                .image_id
                .as_deref()
                .map(|id| {
                    id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "  run {:>4}  {}  {:>14}  {:<10}  {}{}\n",
                row.run_id,
                utc(row.started_unix_ms),
                value,
                call,
                image,
                change
            ));
        }
    }
    if all.is_empty() {
        out.push_str("nothing in the history matches\n");
    }
    out
}

/// `YYYY-MM-DD HH:MM` UTC from Unix milliseconds (civil-from-days, Howard
/// Hinnant's algorithm), so no date crate is needed for a column.
fn utc(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00");
        assert_eq!(super::utc(1_796_212_800_000), "2026-12-02 12:00");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00");
    }
}
