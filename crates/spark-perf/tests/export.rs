//! The run's metrics into the user's monitoring, against the real tools:
//! `--openmetrics FILE` passes `promtool check metrics` (Prometheus' own
//! linter), and `--pushgateway URL` lands in a real Pushgateway on loopback
//! whose `/metrics` then shows the values. A Pushgateway that is not there
//! is a clear error that loses no report.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use spark_testkit::{SimProcess, TempDir, free_port};

const SCENARIOS: &str = r#"
[[scenario]]
name = "latency"
input_tokens = 32
max_tokens = 8
requests = 4
"#;

/// A temporary directory holding the scenario file.
fn temp_dir(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    std::fs::write(dir.0.join("scenarios.toml"), SCENARIOS).expect("scenarios");
    dir
}

fn sim() -> SimProcess {
    SimProcess::start(
        Path::new(env!("CARGO_BIN_EXE_spark-perf")),
        &["sim", "--profile", "zero"],
    )
}

fn bench(dir: &Path, url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args([
            "bench",
            "--url",
            url,
            "--name",
            "sim-engine",
            "--no-history",
        ])
        .arg("--scenario-file")
        .arg(dir.join("scenarios.toml"))
        .arg("--output")
        .arg(dir.join("bench"))
        .args(extra)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("bench runs")
}

/// The value of the sample of `family` whose labels include all of `labels`.
fn sample(text: &str, family: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with('{'))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_openmetrics_file_passes_promtool() {
    let name = "the_openmetrics_file_passes_promtool";
    let Some(promtool) = spark_testkit::tool("promtool", name) else {
        return;
    };
    let dir = temp_dir("openmetrics");
    let sim = sim();
    let file = dir.0.join("spark-perf.prom");
    let out = bench(
        &dir.0,
        &sim.url,
        &["--openmetrics", file.to_str().expect("utf-8")],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("the metrics file");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let checked = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).expect("open"))
        .output()
        .expect("promtool runs");
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // The values are the run's: TTFT p50 in seconds, as results.json has it in ms.
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.0.join("bench").join("results.json")).expect("results"),
    )
    .expect("JSON");
    let scenario = results["engines"][0]["results"]["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == "latency")
        .expect("latency")
        .clone();
    let ttft_ms = scenario["aggregate"]["ttft_ms"]["p50"]
        .as_f64()
        .expect("p50");
    let exported = sample(
        &text,
        "spark_perf_ttft_seconds",
        &[
            "engine=\"sim-engine\"",
            "scenario=\"latency\"",
            "stat=\"p50\"",
        ],
    )
    .expect("a TTFT p50 sample");
    assert!(
        (exported - ttft_ms / 1e3).abs() < 1e-9,
        "{exported} vs {ttft_ms} ms"
    );
    assert_eq!(
        sample(&text, "spark_perf_engine_up", &["engine=\"sim-engine\""]),
        Some(1.0)
    );
}

/// A Pushgateway on a loopback port, killed on drop.
struct Pushgateway {
    child: Child,
    url: String,
}

impl Pushgateway {
    fn start(program: &Path) -> Pushgateway {
        let port = free_port();
        let child = Command::new(program)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the Pushgateway starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the Pushgateway never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pushgateway { child, url }
    }

    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nhost: localhost\r\n\r\n")
            .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn metrics_pushed_to_a_pushgateway_are_served_by_it() {
    let name = "metrics_pushed_to_a_pushgateway_are_served_by_it";
    let Some(program) = spark_testkit::tool("prometheus-pushgateway", name) else {
        return;
    };
    let gateway = Pushgateway::start(&program);
    let dir = temp_dir("pushgateway");
    let sim = sim();
    let out = bench(
        &dir.0,
        &sim.url,
        &[
            "--pushgateway",
            &gateway.url,
            "--push-job",
            "nightly",
            "--push-instance",
            "gpu-box",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("pushed the run's metrics"), "{stderr}");
    let served = gateway.metrics();
    let up = sample(
        &served,
        "spark_perf_engine_up",
        &[
            "job=\"nightly\"",
            "instance=\"gpu-box\"",
            "engine=\"sim-engine\"",
        ],
    );
    assert_eq!(up, Some(1.0), "{served}");
    let rps = sample(
        &served,
        "spark_perf_request_throughput_requests_per_second",
        &["job=\"nightly\"", "scenario=\"latency\""],
    )
    .expect("request throughput");
    assert!(rps > 0.0, "{served}");
}

#[test]
fn a_pushgateway_that_is_not_there_is_a_clear_error_and_the_reports_stay() {
    let dir = temp_dir("no-pushgateway");
    let sim = sim();
    // Nothing listens on a port just freed.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = bench(&dir.0, &sim.url, &["--pushgateway", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot push the metrics") && stderr.contains("the reports are written"),
        "{stderr}"
    );
    assert!(dir.0.join("bench").join("results.json").is_file());
}
