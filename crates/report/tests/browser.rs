//! The HTML report in a real browser: headless Chromium loads it from disk
//! with the network off, runs its script to the end (which marks the body
//! `data-ready`), logs no script error, and takes a screenshot; a run with
//! a concurrency sweep draws its frontier and TTFT-by-load charts there.
//!
//! Where Chromium is not installed the test says so and returns, except under
//! CI (`CI` set), whose `.ci/run` installs Debian's `chromium-headless-shell`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use spark_report::render;

fn chromium() -> Option<PathBuf> {
    ["chromium-headless-shell", "chromium", "chromium-browser"]
        .iter()
        .map(|name| PathBuf::from("/usr/bin").join(name))
        .find(|path| path.exists())
}

/// Flags of every Chromium run: headless, and any fetch would fail (the
/// page must not need one).
const COMMON_ARGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--proxy-server=127.0.0.1:9",
    "--enable-logging=stderr",
    "--v=0",
];

/// Loads `page` in Chromium and returns its DOM once the script ran, after
/// checking that the script ran to the end and logged no error.
fn dump_dom(browser: &std::path::Path, url: &str) -> String {
    let dom = Command::new(browser)
        .args(COMMON_ARGS)
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    let dom_text = String::from_utf8_lossy(&dom.stdout).into_owned();
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium failed: {log}");
    assert!(
        dom_text.contains("data-ready=\"true\""),
        "the report's script did not run to the end; log:\n{log}"
    );
    for marker in ["Uncaught", "SyntaxError", "ReferenceError", "TypeError"] {
        assert!(!log.contains(marker), "script error in the console: {log}");
    }
    dom_text
}

/// Chromium, or `None` (with the reason printed) where it is not installed
/// outside CI.
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no headless Chromium is installed (.ci/run installs chromium-headless-shell)"
        );
        eprintln!("skipping {test}: no Chromium in /usr/bin");
    }
    browser
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(browser) = browser_or_skip("html_report_renders_in_headless_chromium") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("spark-perf-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let page = dir.join("report.html");
    std::fs::write(&page, render::html::render(&common::suite())).expect("write page");
    let screenshot = dir.join("report.png");
    let url = format!("file://{}", page.display());

    let dom_text = dump_dom(&browser, &url);
    assert!(
        dom_text.contains("fp8-moe") && dom_text.contains("<svg"),
        "empty page"
    );

    let shot = Command::new(&browser)
        .args(COMMON_ARGS)
        .args([
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1200,2400",
            &url,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "blank screenshot"
    );
    eprintln!("screenshot: {}", screenshot.display());
    if std::env::var_os("SPARK_PERF_KEEP_SCREENSHOT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A run with a concurrency sweep and an SLO: the frontier and TTFT-by-load
/// charts render in the browser without a console error, each with a line
/// per engine, its level labels and the SLO's region or line.
#[test]
fn sweep_charts_render_in_headless_chromium() {
    let Some(browser) = browser_or_skip("sweep_charts_render_in_headless_chromium") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("spark-perf-sweep-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let page = dir.join("report.html");
    std::fs::write(&page, render::html::render(&common::swept_suite())).expect("write page");
    let dom = dump_dom(&browser, &format!("file://{}", page.display()));
    let _ = std::fs::remove_dir_all(&dir);
    // The chart as the browser parsed it: from its id to its end.
    let chart = |id: &str| -> String {
        let start = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no element {id} in the DOM"));
        let end = dom[start..].find("</svg>").expect("the chart ends") + start;
        dom[start..end].to_owned()
    };
    let frontier = chart(render::sweep::FRONTIER_ID);
    let by_load = chart(render::sweep::TTFT_LOAD_ID);
    for chart in [&frontier, &by_load] {
        for engine in ["fp8-moe", "bf16-dense"] {
            assert!(
                chart.contains(&format!("class=\"sweep-line\" data-engine=\"{engine}\"")),
                "no line of {engine}"
            );
        }
        assert_eq!(chart.matches("<polyline").count(), 2, "one line per engine");
        assert_eq!(chart.matches("<circle").count(), 6, "a point per level");
        assert_eq!(chart.matches(">c=16</text>").count(), 2, "level labels");
        assert!(chart.contains("class=\"slo-line\""), "no SLO line");
    }
    assert!(frontier.contains("class=\"slo-region\""), "no SLO region");
    assert!(frontier.contains("SLO tpot_p90 ≤ 50.0 ms: ≥ 20.0 tok/s per user"));
    assert!(by_load.contains("SLO ttft_p90 ≤ 500 ms"));
    assert!(!dom.contains("sweep-charts-note"));
}
