//! The `spark-sim` binary: parses flags, sets up logging to stderr, runs the
//! library on a Tokio runtime and turns the outcome into an exit code
//! (0 stopped, 1 unhealthy for `healthcheck`, 2 error, 3 simulated crash).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use spark_sim::SimArgs;

/// A simulated vLLM-like OpenAI-compatible engine (see docs/SIM.md).
///
/// Examples:
///   spark-sim --port 0 --profile zero
///   spark-sim --profile bf16-dense --max-num-seqs 8 --truth-log truth.jsonl
///   spark-sim healthcheck --url http://127.0.0.1:8000/health
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: SimArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exit 0 when URL answers 200, else 1 (a Docker HEALTHCHECK needing no shell).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8000/health")]
        url: String,
    },
}

async fn stop_signal() {
    // As PID 1 in a container SIGTERM has no default action, so it must be
    // handled explicitly; SIGINT covers Ctrl-C.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck { url }) = cli.command {
        return match spark_sim::healthcheck(&url, Duration::from_secs(3)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("unhealthy: {err}");
                ExitCode::from(1)
            }
        };
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the Tokio runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(spark_sim::serve(cli.serve, stop_signal()));
    // Stalled or cut connections must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(exit) => ExitCode::from(exit.code() as u8),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}
