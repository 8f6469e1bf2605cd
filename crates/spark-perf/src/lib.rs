//! The spark-perf command line: option parsing, logging set-up and the
//! commands, each in its own module under `commands/`.
//!
//! `main.rs` only parses [`Opts`] and calls [`main`], so integration tests run
//! the same code in-process with `Opts::try_parse_from`.
//!
//! Architecture Invariant: this is the only crate that sets up clap, tracing
//! subscribers and indicatif; the libraries only emit `tracing` events.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: everything ran and nothing regressed.
pub const EXIT_OK: u8 = 0;
/// Exit code: a regression against the baseline (`compare`, `--baseline`).
pub const EXIT_REGRESSION: u8 = 1;
/// Exit code: an error (bad input, an engine that failed, a run that stopped).
pub const EXIT_ERROR: u8 = 2;

/// Benchmark the LLM inference engines of a docker-compose file, one at a time.
///
/// Exit codes: 0 all ran and nothing regressed; 1 a regression against the
/// baseline; 2 an error (bad input, an engine that failed); 130 interrupted.
///
/// Examples:
///   spark-perf demo                          the whole flow on three simulated engines
///   spark-perf run --compose docker-compose.yml
///   spark-perf run --dry-run                 print the plan only
///   spark-perf compare BASELINE.json CURRENT.json
///   spark-perf report reports/RUN --format html > report.html
///   spark-perf sim --port 8000               serve the simulated engine (docs/SIM.md)
#[derive(Debug, Parser)]
#[command(version, about, verbatim_doc_comment, arg_required_else_help = true)]
pub struct Opts {
    /// More logging on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark every inference service of a compose file, one at a time.
    Run(Box<commands::run::RunOpts>),
    /// The whole flow on three simulated engines run as local processes (no
    /// GPU, no Docker), with shortened scenarios.
    Demo(commands::demo::DemoOpts),
    /// Run benchmark scenarios against an engine that is already up (no
    /// Docker) and write the same results and reports as `run`, into DIR.
    Bench(Box<commands::bench::BenchOpts>),
    /// Compare a run with a baseline: exit 1 on a regression.
    Compare(commands::compare::CompareOpts),
    /// Render a past run again (txt, md, json or html) to stdout.
    Report(commands::report::ReportOpts),
    /// The run history: each metric's series of runs with their verdicts and
    /// change points; `history import DIR…` backfills run directories.
    History(commands::history::HistoryOpts),
    /// Serve spark-sim, the simulated vLLM-like engine (same flags as the
    /// `spark-sim` binary; see docs/SIM.md).
    Sim(Box<spark_sim::SimArgs>),
}

/// Runs the parsed command line and maps the outcome to an exit code.
pub fn main(opts: Opts) -> ExitCode {
    init_logging(opts.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let outcome = runtime.block_on(run(opts.command));
    match outcome {
        Ok(code) => ExitCode::from(code),
        // As ripgrep does: a reader that stopped reading (`| head`) got what
        // it wanted, so a closed stdout is neither an error nor worth a word.
        // Every file was written before stdout was.
        Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_OK),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Runs one command; returns the exit code it asks for.
pub async fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(opts) => commands::run::run(*opts).await,
        Command::Demo(opts) => commands::demo::run(opts).await,
        Command::Bench(opts) => commands::bench::run(*opts).await,
        Command::Compare(opts) => commands::compare::run(&opts),
        Command::Report(opts) => commands::report::run(&opts),
        Command::History(opts) => commands::history::run(&opts),
        Command::Sim(args) => commands::sim::run(*args).await,
    }
}

/// Writes `text` to stdout and flushes. A closed pipe comes back as an
/// `io::Error` of kind `BrokenPipe`, which [`main`] turns into a quiet exit 0;
/// `print!` would panic instead.
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Whether the error (or any cause in its chain) is a closed pipe.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The exit code of a run from whether every engine was measured to the end
/// and, with a baseline, the comparison's code. An engine that failed is an
/// error (2) even when a metric also regressed: the regression alone would
/// tell cron "slower", when the truth is "broken".
pub(crate) fn run_exit_code(all_engines_ok: bool, comparison: Option<u8>) -> u8 {
    if !all_engines_ok {
        return EXIT_ERROR;
    }
    comparison.unwrap_or(EXIT_OK)
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // bollard's own debug lines carry request queries and response bodies
    // (a build's arguments, a container's environment): never by default.
    let default = match verbose {
        0 => "warn,spark_perf=info",
        1 => "debug,bollard=info",
        _ => "trace,bollard=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Logs go to stderr: stdout carries results only.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_engine_is_an_error_even_when_a_metric_regressed() {
        assert_eq!(run_exit_code(false, Some(EXIT_REGRESSION)), EXIT_ERROR);
        assert_eq!(run_exit_code(false, Some(EXIT_OK)), EXIT_ERROR);
        assert_eq!(run_exit_code(false, None), EXIT_ERROR);
        assert_eq!(run_exit_code(true, Some(EXIT_REGRESSION)), EXIT_REGRESSION);
        assert_eq!(run_exit_code(true, Some(EXIT_ERROR)), EXIT_ERROR);
        assert_eq!(run_exit_code(true, None), EXIT_OK);
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let err = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the report");
        assert!(is_broken_pipe(&err));
        let other = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!is_broken_pipe(&other));
    }
}
