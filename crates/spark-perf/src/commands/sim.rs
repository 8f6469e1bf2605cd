//! `spark-perf sim`: the embedded spark-sim engine, so the demo (and a user
//! without the `spark-sim` binary) can run simulated engines as processes.

use crate::{EXIT_ERROR, EXIT_OK};

pub(crate) async fn run(args: spark_sim::SimArgs) -> anyhow::Result<u8> {
    let exit = spark_sim::serve(args, stop_signal()).await?;
    Ok(match exit {
        spark_sim::SimExit::Stopped => EXIT_OK,
        // A simulated crash keeps spark-sim's own exit code, so callers
        // (the orchestrator, tests) see the same thing from either binary.
        crashed => u8::try_from(crashed.code()).unwrap_or(EXIT_ERROR),
    })
}

/// Completes on SIGTERM (how containers and parents stop us) or Ctrl-C.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
