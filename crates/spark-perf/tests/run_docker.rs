//! `spark-perf run` end to end on the real Docker daemon with
//! `compose/sim.yml`: two healthy engines and one that crashes while loading,
//! a run interrupted by SIGINT in the middle of a scenario (while a second
//! run is refused by the run lock), and a second SIGINT that exits at once
//! after the container's bounded stop; and spark-sim imitating
//! text-generation-inference (`tests/fixtures/compose/tgi.yml`), reached on
//! TGI's port 80 with its context read from `/info`.
//!
//! Each test uses its own compose project name and free host ports, and
//! checks that no container of its project is left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use spark_testkit::{ProjectGuard, free_port, the_run_dir};

struct Setup {
    project: ProjectGuard,
    output_dir: PathBuf,
    scenario_file: PathBuf,
}

fn setup(name: &str, scenarios: &str) -> Setup {
    let project = format!("spt-{name}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let scenario_file = dir.join("scenarios.toml");
    std::fs::write(&scenario_file, scenarios).expect("scenario file");
    Setup {
        project: ProjectGuard(project),
        output_dir: dir.join("reports"),
        scenario_file,
    }
}

/// `spark-perf run` with this test's project, scenarios, output and lock.
fn run_command(setup: &Setup) -> Command {
    spark_testkit::run_command(
        env!("CARGO_BIN_EXE_spark-perf"),
        &setup.project,
        &setup.scenario_file,
        &setup.output_dir,
        &setup.output_dir.parent().expect("parent").join("locks"),
    )
}

fn spark_perf(setup: &Setup, services: &[&str]) -> Command {
    let mut command = run_command(setup);
    command
        .current_dir(spark_testkit::workspace_root())
        .args(["--compose", "compose/sim.yml"])
        .args(["--compose", "compose/sim-faults.yml"])
        .args(["--health-timeout", "60s"])
        .env("SIM_VLLM_PORT", free_port().to_string())
        .env("SIM_TRTLLM_PORT", free_port().to_string())
        .env("SIM_LLAMACPP_PORT", free_port().to_string())
        .env("SIM_FAULT_PORT", free_port().to_string())
        .env("SIM_LOAD_TIME", "1s");
    for service in services {
        command.args(["--only", service]);
    }
    command
}

fn results(run_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).expect("results"))
        .expect("JSON")
}

const SHORT: &str = r#"
[[scenario]]
name = "warmup"
discard = true
input_tokens = 20
max_tokens = 4
requests = 1

[[scenario]]
name = "latency"
input_tokens = 50
max_tokens = 16
requests = 2
"#;

#[test]
fn run_measures_healthy_engines_and_reports_a_crashed_one_as_na() {
    if !spark_testkit::docker_available(
        "run_measures_healthy_engines_and_reports_a_crashed_one_as_na",
    ) {
        return;
    }
    spark_testkit::sim_image();
    let setup = setup("run", SHORT);
    let output: Output = spark_perf(
        &setup,
        &["sim-vllm-fp8-moe", "sim-llamacpp-q4", "sim-crash-on-load"],
    )
    .output()
    .expect("spark-perf runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Something failed, so the exit code says so.
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        setup.project.containers().is_empty(),
        "containers left behind"
    );

    let run_dir = the_run_dir(&setup.output_dir);
    let results = results(&run_dir);
    assert_eq!(results["complete"], true);
    let engines = results["engines"].as_array().expect("engines");
    assert_eq!(engines.len(), 3, "{results}");
    for healthy in &engines[..2] {
        assert_eq!(healthy["outcome"]["status"], "ok", "{healthy}");
        let scenarios = healthy["results"]["scenarios"]
            .as_array()
            .expect("scenarios");
        let latency = scenarios
            .iter()
            .find(|s| s["name"] == "latency")
            .expect("latency");
        assert_eq!(latency["aggregate"]["n_ok"], 2, "{latency}");
        assert!(
            healthy["provenance"]["image_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("sha256:"))
        );
        assert!(
            healthy["startup"]["healthy_s"]
                .as_f64()
                .is_some_and(|s| s >= 1.0)
        );
    }
    let crashed = &engines[2];
    assert_eq!(crashed["service"], "sim-crash-on-load");
    assert_eq!(crashed["outcome"]["status"], "failed", "{crashed}");
    let reason = crashed["outcome"]["reason"].as_str().expect("reason");
    assert!(reason.contains("exit"), "{reason}");
    // The crashed engine is an N/A column with its reason in every report.
    let text_report = std::fs::read_dir(&run_dir)
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with(".txt"))
        .expect("text report");
    let text = std::fs::read_to_string(text_report).expect("text");
    assert!(
        text.contains("N/A") && text.contains("sim-crash-on-load: failed in health"),
        "{text}"
    );
    assert!(stdout.contains("sim-crash-on-load"), "{stdout}");
    let _ = std::fs::remove_dir_all(setup.output_dir.parent().expect("parent"));
}

fn wait_for(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn ctrl_c_mid_scenario_stops_the_container_and_writes_partial_reports() {
    if !spark_testkit::docker_available(
        "ctrl_c_mid_scenario_stops_the_container_and_writes_partial_reports",
    ) {
        return;
    }
    spark_testkit::sim_image();
    // 2000 tokens at 8 ms each: 16 s per request, so SIGINT lands mid-scenario.
    let long = r#"
[[scenario]]
name = "long-output"
input_tokens = 50
max_tokens = 2000
requests = 4
"#;
    let setup = setup("sigint", long);
    let mut child = spark_perf(&setup, &["sim-vllm-fp8-moe", "sim-llamacpp-q4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spark-perf starts");

    // Wait until the first engine is measuring: its records file exists.
    let started = Instant::now();
    let records = loop {
        let found = std::fs::read_dir(&setup.output_dir)
            .ok()
            .and_then(|mut runs| {
                let run = runs.next()?.ok()?.path();
                let path = run.join("sim-vllm-fp8-moe").join("requests.jsonl");
                path.exists().then_some(path)
            });
        if let Some(path) = found {
            break path;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never started measuring"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "spark-perf exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // A second run on the same Docker daemon is refused while this one runs,
    // though it spells the daemon's address another way and is, by its
    // runtime directory, another user's.
    let mut second = spark_perf(&setup, &["sim-vllm-fp8-moe"]);
    if std::path::Path::new("/run/docker.sock").exists()
        && std::env::var_os("DOCKER_HOST").is_none()
    {
        second.env("DOCKER_HOST", "unix:///run/docker.sock");
    }
    let second = second
        .env(
            "XDG_RUNTIME_DIR",
            setup
                .output_dir
                .parent()
                .expect("parent")
                .join("other-user"),
        )
        .output()
        .expect("second spark-perf runs");
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{second_err}");
    assert!(
        second_err.contains("another spark-perf run is using this Docker host"),
        "{second_err}"
    );

    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");

    let status = wait_for(&mut child, Duration::from_secs(30));
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.and_then(|s| s.code()), Some(130), "stderr: {stderr}");
    assert!(
        setup.project.containers().is_empty(),
        "containers left behind"
    );
    assert!(records.exists());

    let run_dir = the_run_dir(&setup.output_dir);
    let results = results(&run_dir);
    assert_eq!(results["complete"], false, "{results}");
    let engines = results["engines"].as_array().expect("engines");
    // The second engine never started.
    assert_eq!(engines.len(), 1, "{results}");
    assert_eq!(engines[0]["outcome"]["status"], "interrupted");
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(markdown.contains("Incomplete run"), "{markdown}");
    let _ = std::fs::remove_dir_all(setup.output_dir.parent().expect("parent"));
}

#[test]
fn a_second_ctrl_c_exits_130_at_once_after_the_containers_bounded_stop() {
    if !spark_testkit::docker_available(
        "a_second_ctrl_c_exits_130_at_once_after_the_containers_bounded_stop",
    ) {
        return;
    }
    let image = spark_testkit::sim_image();
    let setup = setup("second-int", SHORT);
    let dir = setup.output_dir.parent().expect("parent").to_owned();
    // An engine that loads for a minute and ignores its stop signal: each
    // stop takes the whole 3 s grace period.
    let compose = format!(
        r#"services:
  slow-stop:
    image: {image}
    stop_signal: SIGWINCH
    stop_grace_period: 3s
    command: ["--host", "0.0.0.0", "--port", "8000", "--load-time", "60s"]
    ports: ["{port}:8000"]
"#,
        port = free_port()
    );
    std::fs::write(dir.join("docker-compose.yml"), compose).expect("compose file");
    let mut child = run_command(&setup)
        .current_dir(&dir)
        .arg("-f")
        .arg(dir.join("docker-compose.yml"))
        .args(["--health-timeout", "120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spark-perf starts");
    // Wait until the engine's container runs (the health wait).
    let started = Instant::now();
    while setup.project.containers().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "never started");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("second SIGINT");
    let status = wait_for(&mut child, Duration::from_secs(30));
    let elapsed = second.elapsed();
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.and_then(|s| s.code()), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("interrupted again"), "{stderr}");
    // Bounded by the 3 s grace period plus the daemon's work.
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert!(
        setup.project.containers().is_empty(),
        "containers left behind"
    );
    // What was measured is on disk (the first Ctrl-C may or may not have
    // got as far as the reports before the second one: both are fine).
    let run_dir = the_run_dir(&setup.output_dir);
    assert_eq!(results(&run_dir)["complete"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tgi_engine_is_run_on_port_80_with_its_context_from_info() {
    if !spark_testkit::docker_available("a_tgi_engine_is_run_on_port_80_with_its_context_from_info")
    {
        return;
    }
    spark_testkit::sim_image();
    let setup = setup("tgi", SHORT);
    let output = run_command(&setup)
        .current_dir(spark_testkit::workspace_root())
        .args([
            "--compose",
            "crates/spark-perf/tests/fixtures/compose/tgi.yml",
            "--only",
            "tgi-sim",
        ])
        .args(["--health-timeout", "60s"])
        .env("TGI_SIM_PORT", free_port().to_string())
        .output()
        .expect("spark-perf runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        setup.project.containers().is_empty(),
        "containers left behind"
    );
    let results = results(&the_run_dir(&setup.output_dir));
    let engine = &results["engines"][0];
    assert_eq!(engine["outcome"]["status"], "ok", "{engine}");
    assert_eq!(engine["results"]["engine"]["model"], "tiny", "{engine}");
    assert_eq!(
        engine["results"]["engine"]["max_model_len"], 4096,
        "{engine}"
    );
    let latency = engine["results"]["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == "latency")
        .expect("latency");
    assert_eq!(latency["aggregate"]["n_ok"], 2, "{latency}");
    let _ = std::fs::remove_dir_all(setup.output_dir.parent().expect("parent"));
}
