//! `spark-perf run` leaves the box as it found it, on the real Docker daemon:
//! a bystander container (spark-sim on a test network) that holds the host
//! port of a compose service is stopped for the run, named in the report,
//! and running again afterwards; an unrelated container is never touched;
//! with `--no-restore` the bystander stays stopped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use spark_testkit::free_port;

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI runs")
}

/// Removes the test's containers, its compose project and its network on
/// every path.
struct Guard {
    project: String,
    network: String,
    containers: Vec<String>,
}

impl Guard {
    fn project_containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let output = docker(&["ps", "--all", "--quiet", "--filter", &filter]);
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for id in self.project_containers().iter().chain(&self.containers) {
            let _ = docker(&["rm", "--force", "--volumes", id]);
        }
        let _ = docker(&["network", "rm", &format!("{}_default", self.project)]);
        let _ = docker(&["network", "rm", &self.network]);
    }
}

/// `(running, started_at)` of a container.
fn state(container: &str) -> (bool, String) {
    let output = docker(&[
        "inspect",
        "--format",
        "{{.State.Running}} {{.State.StartedAt}}",
        container,
    ]);
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let (running, started) = text.split_once(' ').expect("inspect output");
    (running == "true", started.to_owned())
}

fn start_sim(name: &str, network: &str, port: u16, image: &str) {
    let publish = format!("{port}:8000");
    let output = docker(&[
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        network,
        "--publish",
        &publish,
        image,
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]);
    assert!(
        output.status.success(),
        "docker run {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const SHORT: &str = r#"
[[scenario]]
name = "latency"
input_tokens = 20
max_tokens = 4
requests = 1
"#;

fn run(dir: &Path, project: &str, port: u16, extra: &[&str]) -> (Output, PathBuf) {
    let output_dir = dir.join(format!("reports-{}", extra.len()));
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .current_dir(spark_testkit::workspace_root())
        .args(["run", "--compose", "compose/sim.yml"])
        .args(["--project-name", project, "--only", "sim-vllm-fp8-moe"])
        .arg("--scenario-file")
        .arg(dir.join("scenarios.toml"))
        .args(["--health-interval", "200ms", "--health-timeout", "60s"])
        .arg("--output")
        .arg(&output_dir)
        .args(extra)
        .env("SIM_VLLM_PORT", port.to_string())
        .env("SIM_LOAD_TIME", "1s")
        .env("NO_COLOR", "1")
        .env("SPARK_PERF_LOCK_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("spark-perf runs");
    let run_dir = std::fs::read_dir(&output_dir)
        .expect("report directory")
        .map(|entry| entry.expect("entry"))
        .find(|entry| entry.path().is_dir())
        .expect("a run")
        .path();
    (output, run_dir)
}

fn displaced_of(run_dir: &Path) -> serde_json::Value {
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("results.json")).expect("results"),
    )
    .expect("JSON");
    results["displaced"].clone()
}

#[test]
fn a_bystander_holding_the_port_runs_again_and_an_unrelated_container_is_untouched() {
    if !spark_testkit::docker_available(
        "a_bystander_holding_the_port_runs_again_and_an_unrelated_container_is_untouched",
    ) {
        return;
    }
    let image = spark_testkit::sim_image();
    let pid = std::process::id();
    let project = format!("spt-box-{pid}");
    let dir = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("scenarios.toml"), SHORT).expect("scenarios");
    let network = format!("spt-box-net-{pid}");
    let bystander = format!("spt-box-bystander-{pid}");
    let unrelated = format!("spt-box-unrelated-{pid}");
    let guard = Guard {
        project: project.clone(),
        network: network.clone(),
        containers: vec![bystander.clone(), unrelated.clone()],
    };
    assert!(docker(&["network", "create", &network]).status.success());
    let port = free_port();
    start_sim(&bystander, &network, port, image);
    start_sim(&unrelated, &network, free_port(), image);
    let (_, unrelated_started) = state(&unrelated);
    let (running, bystander_started) = state(&bystander);
    assert!(running);

    let (output, run_dir) = run(&dir, &project, port, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    // The bystander was stopped, said so, and runs again.
    assert!(
        stderr.contains(&format!(
            "stopped container {bystander} (holds host port {port}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("started container {bystander} again")),
        "{stderr}"
    );
    let (running, started) = state(&bystander);
    assert!(running, "the bystander was not started again: {stderr}");
    assert_ne!(
        started, bystander_started,
        "the bystander was never stopped"
    );
    // The unrelated container was never stopped.
    assert_eq!(state(&unrelated), (true, unrelated_started.clone()));
    let displaced = displaced_of(&run_dir);
    assert_eq!(displaced.as_array().map(Vec::len), Some(1), "{displaced}");
    assert_eq!(displaced[0]["container"], bystander.as_str());
    assert_eq!(displaced[0]["restore"], "restored");
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(
        markdown.contains("## Containers stopped for this run"),
        "{markdown}"
    );
    assert!(
        guard.project_containers().is_empty(),
        "containers left behind"
    );

    // With --no-restore it stays stopped.
    let (output, run_dir) = run(&dir, &project, port, &["--no-restore"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(!state(&bystander).0, "--no-restore restored it: {stderr}");
    assert_eq!(state(&unrelated), (true, unrelated_started));
    assert_eq!(displaced_of(&run_dir)[0]["restore"], "left_stopped");
    assert!(
        guard.project_containers().is_empty(),
        "containers left behind"
    );
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_during_the_sweep_is_heard_and_the_bystander_still_runs_again() {
    if !spark_testkit::docker_available(
        "ctrl_c_during_the_sweep_is_heard_and_the_bystander_still_runs_again",
    ) {
        return;
    }
    let image = spark_testkit::sim_image();
    let pid = std::process::id();
    let project = format!("spt-boxint-{pid}");
    let dir = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("scenarios.toml"), SHORT).expect("scenarios");
    let network = format!("spt-boxint-net-{pid}");
    let bystander = format!("spt-boxint-bystander-{pid}");
    let guard = Guard {
        project: project.clone(),
        network: network.clone(),
        containers: vec![bystander.clone()],
    };
    assert!(docker(&["network", "create", &network]).status.success());
    let port = free_port();
    // A bystander that ignores its stop signal: stopping it takes the whole
    // 10 s grace period, and the sweep is in that stop when SIGINT comes.
    let publish = format!("{port}:8000");
    let output = docker(&[
        "run",
        "--detach",
        "--name",
        &bystander,
        "--network",
        &network,
        "--publish",
        &publish,
        "--stop-signal",
        "SIGWINCH",
        image,
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output_dir = dir.join("reports");
    let child = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .current_dir(spark_testkit::workspace_root())
        .args(["run", "--compose", "compose/sim.yml"])
        .args(["--project-name", &project, "--only", "sim-vllm-fp8-moe"])
        .arg("--scenario-file")
        .arg(dir.join("scenarios.toml"))
        .args(["--health-interval", "200ms", "--health-timeout", "60s"])
        .arg("--output")
        .arg(&output_dir)
        .env("SIM_VLLM_PORT", port.to_string())
        .env("SIM_LOAD_TIME", "1s")
        .env("NO_COLOR", "1")
        .env("SPARK_PERF_LOCK_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spark-perf starts");
    // The run directory appears just before the sweep.
    let started = std::time::Instant::now();
    while std::fs::read_dir(&output_dir).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(state(&bystander).0, "the stop should still be going on");
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let output = child.wait_with_output().expect("spark-perf ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "stderr: {stderr}");
    // Heard during the sweep: the engine never started.
    let run_dir = std::fs::read_dir(&output_dir)
        .expect("reports")
        .map(|entry| entry.expect("entry"))
        .find(|entry| entry.path().is_dir())
        .expect("a run")
        .path();
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("results.json")).expect("results"),
    )
    .expect("JSON");
    let engine = &results["engines"][0];
    assert_eq!(engine["outcome"]["status"], "interrupted", "{results}");
    assert!(engine["provenance"].is_null(), "it was started: {results}");
    // The bystander's stop ran its course, and it was started again after.
    assert!(
        state(&bystander).0,
        "the bystander was left stopped: {stderr}"
    );
    assert_eq!(results["displaced"][0]["restore"], "restored", "{results}");
    assert!(
        guard.project_containers().is_empty(),
        "containers left behind"
    );
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}
