//! The HTML report's trends from the history: after a second night in the
//! same history, report.html shows each key metric's series with tonight
//! marked; a first night has no trend to show.

use std::path::Path;
use std::process::{Command, Stdio};

use spark_testkit::{SimProcess, TempDir};

const SCENARIOS: &str = r#"
[[scenario]]
name = "latency"
input_tokens = 32
max_tokens = 8
requests = 3
"#;

fn night(dir: &Path, n: u32) -> String {
    let sim = SimProcess::start(
        Path::new(env!("CARGO_BIN_EXE_spark-perf")),
        &["sim", "--profile", "zero"],
    );
    let out_dir = dir.join(format!("night-{n}"));
    let out = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["bench", "--url", &sim.url, "--name", "sim"])
        .arg("--scenario-file")
        .arg(dir.join("scenarios.toml"))
        .arg("--output")
        .arg(&out_dir)
        .arg("--history")
        .arg(dir.join("history.sqlite"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("bench runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(out_dir.join("report.html")).expect("report.html")
}

#[test]
fn the_second_night_shows_the_trends_of_the_history() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("spark-perf-trends-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    std::fs::write(dir.0.join("scenarios.toml"), SCENARIOS).expect("scenarios");
    let first = night(&dir.0, 1);
    assert!(!first.contains("<h2>Trends</h2>"), "one night has no trend");
    let second = night(&dir.0, 2);
    let trends = second
        .split("<h2>Trends</h2>")
        .nth(1)
        .expect("a trends section");
    // Three key metrics of one scenario, two nights each.
    for metric in ["ttft_ms.p50", "tpot_ms.p50", "output_throughput_tok_s"] {
        assert!(trends.contains(&format!("<td>{metric}</td>")), "{trends}");
    }
    assert_eq!(trends.matches("<circle").count(), 6, "{trends}");
    // Two nights are too few for a verdict from the history's spread, and
    // the table says what was judged.
    assert!(trends.contains("<td>latency</td>"), "{trends}");
}
