//! `spark-perf report RESULTS --format txt|md|json|html`: renders a past run
//! again, to stdout.

use std::path::PathBuf;

use spark_report::render::{self, text::TextStyle};

use crate::EXIT_OK;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The text report (the `model-comparison-*.txt` file).
    Txt,
    /// Markdown, for wikis and CI summaries.
    Md,
    /// The results as JSON (docs/results.schema.json).
    Json,
    /// The self-contained HTML page with charts.
    Html,
}

/// Options of `spark-perf report`.
#[derive(Debug, clap::Args)]
pub struct ReportOpts {
    /// A run's results.json, or its directory.
    pub results: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Txt)]
    pub format: ReportFormat,
}

pub(crate) fn run(opts: &ReportOpts) -> anyhow::Result<u8> {
    let suite = super::compare::load(&opts.results)?;
    let text = match opts.format {
        ReportFormat::Txt => render::text::render(&suite, TextStyle { color: false }),
        ReportFormat::Md => render::markdown::render(&suite),
        ReportFormat::Json => render::json(&suite) + "\n",
        ReportFormat::Html => render::html::render(&suite),
    };
    crate::write_stdout(&text)?;
    Ok(EXIT_OK)
}
