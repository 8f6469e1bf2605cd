//! The command line's contracts that hold whatever is measured: one duration
//! grammar for every flag, and a closed stdout (`spark-perf … | head`)
//! that ends the command quietly with exit code 0.

use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser as _;
use spark_perf::{Command as Sub, Opts};

#[path = "../../report/tests/common/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod common;

fn health_timeout(value: &str) -> Result<Duration, clap::Error> {
    let opts = Opts::try_parse_from(["spark-perf", "run", "--health-timeout", value])?;
    match opts.command {
        Sub::Run(run) => Ok(run.health_timeout),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn every_duration_flag_takes_hours_and_compound_durations() {
    assert_eq!(health_timeout("2h").unwrap(), Duration::from_secs(7200));
    assert_eq!(health_timeout("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(health_timeout("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(health_timeout("1.5h").unwrap(), Duration::from_secs(5400));
    assert_eq!(health_timeout("500ms").unwrap(), Duration::from_millis(500));
    let err = health_timeout("soon").unwrap_err().to_string();
    assert!(err.contains("`soon` is not a duration"), "{err}");

    let opts = Opts::try_parse_from([
        "spark-perf",
        "bench",
        "--url",
        "http://127.0.0.1:8000",
        "--request-timeout",
        "1h30m",
        "--first-token-timeout",
        "2h",
    ])
    .unwrap();
    match opts.command {
        Sub::Bench(bench) => {
            assert_eq!(bench.request_timeout, Duration::from_secs(5400));
            assert_eq!(bench.first_token_timeout, Duration::from_secs(7200));
        }
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn a_closed_stdout_exits_0_quietly() {
    let dir = std::env::temp_dir().join(format!("spark-perf-pipe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let results = dir.join("results.json");
    std::fs::write(
        &results,
        serde_json::to_string(&common::suite()).expect("JSON"),
    )
    .expect("fixture");
    for args in [
        vec!["compare", "BASELINE", "BASELINE"],
        vec!["report", "BASELINE", "--format", "json"],
        vec!["report", "BASELINE", "--format", "html"],
    ] {
        // The reader is gone before the command writes: every write to
        // stdout fails with EPIPE, as under `| head` once head has exited.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
            .args(args.iter().map(|arg| {
                if *arg == "BASELINE" {
                    results.as_os_str()
                } else {
                    std::ffi::OsStr::new(arg)
                }
            }))
            .stdin(Stdio::null())
            .stdout(writer)
            .output()
            .expect("spark-perf runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
