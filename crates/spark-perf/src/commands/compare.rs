//! `spark-perf compare BASELINE CURRENT`: tells a cron job whether a run
//! regressed. Exit 0: no regression; 1: a regression; 2: an error or runs
//! that are not comparable (unless `--force`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use spark_report::compare::{CompareOptions, compare, render_text};
use spark_results::SuiteResults;

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
    /// The baseline run's results.json (or its directory).
    pub baseline: PathBuf,
    /// The current run's results.json (or its directory).
    pub current: PathBuf,
    /// Relative change, percent, in the bad direction that counts as a regression.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f64,
    /// Compare even when the runs are not comparable (other image, model or settings).
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn run(opts: &CompareOpts) -> anyhow::Result<u8> {
    let current = load(&opts.current)?;
    against(&opts.baseline, &current, opts.threshold / 100.0, opts.force)
}

/// Compares `current` with the baseline file, prints the table, returns the
/// exit code.
pub(crate) fn against(
    baseline: &Path,
    current: &SuiteResults,
    threshold: f64,
    force: bool,
) -> anyhow::Result<u8> {
    let baseline = load(baseline)?;
    let comparison = compare(&baseline, current, CompareOptions { threshold, force });
    print!("{}", render_text(&comparison));
    if !comparison.differences.is_empty() && !force {
        eprintln!("the runs are not comparable (pass --force to compare anyway)");
        return Ok(EXIT_ERROR);
    }
    if comparison.regressed() {
        eprintln!("regression beyond {:.1} % and the noise", threshold * 100.0);
        Ok(EXIT_REGRESSION)
    } else {
        eprintln!("no regression");
        Ok(EXIT_OK)
    }
}

/// Reads a run's results: a results.json, or a run directory holding one.
pub(crate) fn load(path: &Path) -> anyhow::Result<SuiteResults> {
    let file = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let suite: SuiteResults = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a spark-perf run's results.json (schema in docs/results.schema.json)",
            file.display()
        )
    })?;
    if suite.schema_version != spark_results::SUITE_SCHEMA_VERSION {
        anyhow::bail!(
            "{}: schema_version {} is not the {} this spark-perf reads",
            file.display(),
            suite.schema_version,
            spark_results::SUITE_SCHEMA_VERSION
        );
    }
    Ok(suite)
}
