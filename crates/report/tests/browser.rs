//! The HTML report in a real browser: headless Chromium loads it from disk
//! with the network off, runs its script to the end (which marks the body
//! `data-ready`), logs no script error, and takes a screenshot.
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

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no headless Chromium is installed (.ci/run installs chromium-headless-shell)"
        );
        eprintln!("skipping html_report_renders_in_headless_chromium: no Chromium in /usr/bin");
        return;
    };
    let dir = std::env::temp_dir().join(format!("spark-perf-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let page = dir.join("report.html");
    std::fs::write(&page, render::html::render(&common::suite())).expect("write page");
    let screenshot = dir.join("report.png");
    let url = format!("file://{}", page.display());

    let common_args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        // Any fetch would fail: the page must not need one.
        "--proxy-server=127.0.0.1:9",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let dom = Command::new(&browser)
        .args(common_args)
        .args(["--dump-dom", &url])
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium failed: {log}");
    assert!(
        dom_text.contains("data-ready=\"true\""),
        "the report's script did not run to the end; log:\n{log}"
    );
    for marker in ["Uncaught", "SyntaxError", "ReferenceError", "TypeError"] {
        assert!(!log.contains(marker), "script error in the console: {log}");
    }
    assert!(
        dom_text.contains("fp8-moe") && dom_text.contains("<svg"),
        "empty page"
    );

    let shot = Command::new(&browser)
        .args(common_args)
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
