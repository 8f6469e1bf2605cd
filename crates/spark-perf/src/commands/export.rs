//! Into the user's monitoring: `--openmetrics FILE` writes the run's key
//! metrics for node_exporter's textfile collector, `--pushgateway URL`
//! pushes them to a Prometheus Pushgateway. Both happen after the reports
//! are written, so a failure here never loses a measurement; it makes the
//! exit code 2 and says what to do.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use spark_report::render::openmetrics;
use spark_results::SuiteResults;

/// The export flags of `run`, `bench` and `demo`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExportArgs {
    /// Write the run's key metrics in the OpenMetrics text format to FILE
    /// (atomically: node_exporter's textfile collector never reads half a
    /// file), e.g. /var/lib/node_exporter/textfile/spark-perf.prom.
    #[arg(long, value_name = "FILE")]
    pub openmetrics: Option<PathBuf>,
    /// Push the run's key metrics to this Prometheus Pushgateway, e.g.
    /// http://127.0.0.1:9091 (grouped by --push-job and --push-instance).
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// The Pushgateway's `job` label.
    #[arg(long, value_name = "JOB", default_value = "spark-perf")]
    pub push_job: String,
    /// The Pushgateway's `instance` label (default: this host's name).
    #[arg(long, value_name = "INSTANCE")]
    pub push_instance: Option<String>,
}

/// Writes and pushes what was asked for; returns `code`, or the error exit
/// code when an export failed (the reason on stderr).
pub(crate) async fn after_finish(code: u8, args: &ExportArgs, suite: &SuiteResults) -> u8 {
    let mut failed = false;
    if let Some(file) = &args.openmetrics {
        match write_atomically(file, &openmetrics::render(suite)) {
            Ok(()) => eprintln!("wrote the run's metrics to {}", file.display()),
            Err(err) => {
                eprintln!("error: {err:#}");
                failed = true;
            }
        }
    }
    if let Some(url) = &args.pushgateway {
        let instance = args.push_instance.clone().unwrap_or_else(host_name);
        match push(url, &args.push_job, &instance, suite).await {
            Ok(target) => eprintln!("pushed the run's metrics to {target}"),
            Err(err) => {
                eprintln!("error: {err:#}");
                failed = true;
            }
        }
    }
    if failed && code == crate::EXIT_OK {
        crate::EXIT_ERROR
    } else {
        code
    }
}

/// Writes `text` to a temporary file beside `file`, then renames it over
/// `file`, so a reader sees the old file or the new one, never a part.
fn write_atomically(file: &Path, text: &str) -> anyhow::Result<()> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let name = file
        .file_name()
        .with_context(|| format!("--openmetrics {}: not a file name", file.display()))?;
    // node_exporter reads only *.prom: the temporary name is not one.
    let partial = dir.join(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut out = std::fs::File::create(&partial)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&partial, file)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(err).with_context(|| {
            format!(
                "cannot write the metrics to {} (is its directory there and writable?)",
                file.display()
            )
        });
    }
    Ok(())
}

/// A path segment of the Pushgateway's grouping key: `@base64` encoding
/// would be needed for a `/`; other bytes are percent-encoded.
fn segment(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

/// PUTs the run's families to `url` under `job` and `instance` (replacing
/// what the group held); returns the group's URL.
async fn push(
    url: &str,
    job: &str,
    instance: &str,
    suite: &SuiteResults,
) -> anyhow::Result<String> {
    let base = url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        anyhow::bail!("--pushgateway {url}: not an http:// or https:// URL");
    }
    if job.is_empty() || instance.is_empty() {
        anyhow::bail!("--push-job and --push-instance cannot be empty");
    }
    let target = format!(
        "{base}/metrics/job/{}/instance/{}",
        segment(job),
        segment(instance)
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .put(&target)
        .header(
            reqwest::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(openmetrics::prometheus_text(suite))
        .send()
        .await
        .with_context(|| {
            format!("cannot push the metrics to {target} (is the Pushgateway up?); the reports are written")
        })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!(
            "the Pushgateway at {target} answered HTTP {}: {}; the reports are written",
            status.as_u16(),
            body.trim().chars().take(300).collect::<String>()
        );
    }
    Ok(target)
}

/// This host's name, the default `instance`.
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_key_segments_are_escaped() {
        assert_eq!(segment("gpu-box_1.lan"), "gpu-box_1.lan");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("spark-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("spark-perf.prom");
        write_atomically(&file, "old\n").expect("first");
        write_atomically(&file, "new\n").expect("second");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "new\n");
        let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(left.len(), 1, "no partial file left");
        let err = write_atomically(&dir.join("missing").join("x.prom"), "x")
            .expect_err("no such directory");
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
