//! Where an engine's SLO comes from, as `run --dry-run` plans it: `--slo`
//! over the service's `x-spark-perf.slo` over the compose file's top-level
//! `x-spark-perf.slo` over the scenario file's `[slo]`; a compose SLO that
//! does not parse is an error naming the file and the service. No Docker
//! needed: a dry run starts nothing.

use std::process::{Command, Stdio};

use spark_testkit::TempDir;

/// A compose file of two spark-sim engines, `alpha` with `alpha_slo` as its
/// own `x-spark-perf.slo` (unless `None`), and `top_slo` top-level.
fn compose(dir: &TempDir, top_slo: Option<&str>, alpha_slo: Option<&str>) -> String {
    let mut text = String::from("name: slo-sources\n");
    if let Some(slo) = top_slo {
        text.push_str(&format!("x-spark-perf:\n  slo: \"{slo}\"\n"));
    }
    text.push_str("services:\n");
    for (name, port, slo) in [("alpha", 8000, alpha_slo), ("beta", 8001, None)] {
        text.push_str(&format!(
            "  {name}:\n    image: spark-sim:dev\n    command: [\"--port\", \"{port}\"]\n    ports: [\"{port}:{port}\"]\n"
        ));
        if let Some(slo) = slo {
            text.push_str(&format!("    x-spark-perf:\n      slo: \"{slo}\"\n"));
        }
    }
    let path = dir.0.join("docker-compose.yml");
    std::fs::write(&path, text).expect("compose file");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// `spark-perf run --dry-run -f FILE ARGS...`: (exit code, stderr).
fn dry_run(dir: &TempDir, file: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["run", "--dry-run", "-f", file])
        .args(args)
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .env("NO_COLOR", "1")
        .env("SPARK_PERF_LOCK_DIR", dir.0.join("locks"))
        .stdin(Stdio::null())
        .output()
        .expect("spark-perf runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The plan's SLO line of `service`.
fn slo_line<'a>(stderr: &'a str, service: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.starts_with(&format!("{service}: ")))
        .unwrap_or_else(|| panic!("no SLO line for {service}:\n{stderr}"))
}

fn scenario_file(dir: &TempDir) -> String {
    let path = dir.0.join("scenarios.toml");
    std::fs::write(&path, "[slo]\ne2e_p99 = \"30s\"\n").expect("scenario file");
    path.to_str().expect("UTF-8 path").to_owned()
}

#[test]
fn a_services_own_slo_is_over_the_top_level_one_and_both_over_the_scenario_file() {
    let dir = TempDir::new("slo-compose");
    let file = compose(
        &dir,
        Some("ttft_p90=2s"),
        Some("ttft_p90=500ms,tpot_p90=40ms"),
    );
    let scenarios = scenario_file(&dir);
    let (code, stderr) = dry_run(&dir, &file, &["--scenario-file", &scenarios]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        slo_line(&stderr, "alpha"),
        "alpha: SLO ttft_p90=500ms,tpot_p90=40ms (from x-spark-perf.slo of service alpha)"
    );
    assert_eq!(
        slo_line(&stderr, "beta"),
        format!("beta: SLO ttft_p90=2000ms (from the top-level x-spark-perf.slo of {file})")
    );

    // Without any SLO in the compose file, the scenario file's holds.
    let file = compose(&dir, None, None);
    let (code, stderr) = dry_run(&dir, &file, &["--scenario-file", &scenarios]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        slo_line(&stderr, "beta"),
        format!("beta: SLO e2e_p99=30000ms (from [slo] of {scenarios})")
    );
    // And without that, none.
    let (_, stderr) = dry_run(&dir, &file, &[]);
    assert!(
        slo_line(&stderr, "alpha").starts_with("alpha: no SLO"),
        "{stderr}"
    );
}

#[test]
fn the_slo_flag_wins_over_every_file() {
    let dir = TempDir::new("slo-flag");
    let file = compose(&dir, Some("ttft_p90=2s"), Some("ttft_p90=500ms"));
    let scenarios = scenario_file(&dir);
    let (code, stderr) = dry_run(
        &dir,
        &file,
        &["--slo", "tpot_p99=80ms", "--scenario-file", &scenarios],
    );
    assert_eq!(code, Some(0), "{stderr}");
    for service in ["alpha", "beta"] {
        assert_eq!(
            slo_line(&stderr, service),
            format!("{service}: SLO tpot_p99=80ms (from --slo)")
        );
    }
}

#[test]
fn a_bad_compose_slo_is_an_error_naming_the_file_and_the_service() {
    let dir = TempDir::new("slo-bad");
    // A bad key of a service's SLO: an error even where --slo would win.
    let file = compose(&dir, None, Some("ttft_p91=2s"));
    for args in [&[][..], &["--slo", "ttft_p90=1s"][..]] {
        let (code, stderr) = dry_run(&dir, &file, args);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{file}: service alpha: x-spark-perf.slo: "))
                && stderr.contains("ttft_p91"),
            "{stderr}"
        );
    }
    // A value without a unit at the top level.
    let file = compose(&dir, Some("ttft_p90=2"), None);
    let (code, stderr) = dry_run(&dir, &file, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{file}: top-level x-spark-perf.slo: ")),
        "{stderr}"
    );
    // Not a string: the compose file's own diagnostic, with its line.
    let path = dir.0.join("docker-compose.yml");
    std::fs::write(
        &path,
        "services:\n  alpha:\n    image: spark-sim:dev\n    ports: [\"8000:8000\"]\n    x-spark-perf:\n      slo: [ttft_p90]\n",
    )
    .expect("compose file");
    let (code, stderr) = dry_run(&dir, path.to_str().expect("path"), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("docker-compose.yml:6")
            && stderr.contains("service alpha")
            && stderr.contains("`slo` must be a string"),
        "{stderr}"
    );
}

#[test]
fn capacity_needs_an_slo_for_every_engine() {
    let dir = TempDir::new("slo-capacity");
    let file = compose(&dir, None, Some("ttft_p90=500ms"));
    let (code, stderr) = dry_run(&dir, &file, &["--capacity"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("service beta has none"), "{stderr}");
    let file = compose(&dir, Some("ttft_p90=2s"), Some("ttft_p90=500ms"));
    let (code, stderr) = dry_run(&dir, &file, &["--capacity"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn scenarios_help_names_the_concurrency_sweep() {
    for command in ["run", "bench"] {
        let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
            .args([command, "--help"])
            .output()
            .expect("spark-perf runs");
        let help = String::from_utf8_lossy(&output.stdout);
        let scenarios = help
            .split("--scenarios")
            .nth(1)
            .expect("--scenarios in the help");
        let until_next = scenarios.split("\n      --").next().unwrap_or_default();
        assert!(
            until_next.contains("concurrency-sweep"),
            "{command}: {help}"
        );
    }
}
