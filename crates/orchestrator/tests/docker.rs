//! The lifecycle on the real Docker daemon with the spark-sim image:
//! healthy start with compose's names and labels (checked with the docker and
//! compose CLIs), a crash while loading, a crash loop, a never-ready engine,
//! a missing image, an image built from `build:`, the one-container
//! invariant, and a real interrupted run.
//!
//! Each test uses its own project name (`spt-<test>-<pid>`) and free host
//! ports, and a guard removes whatever the project left, even on failure.
//! Without a daemon the tests print why and pass, unless
//! SPARK_PERF_REQUIRE_DOCKER=1.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spark_orchestrator::{
    ComposeProject, Docker, HealthOptions, InferenceService, LoadOptions, OrchestratorError,
    StartOptions,
};

fn sim_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compose/sim.yml")
}

/// The sim's failing engines, beside `sim_file`.
fn faults_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compose/sim-faults.yml")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn docker_cli(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Removes every container and network of a project when dropped.
struct ProjectGuard(String);

impl ProjectGuard {
    fn containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.0);
        docker_cli(&["ps", "-aq", "--filter", &filter])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for ProjectGuard {
    fn drop(&mut self) {
        for id in self.containers() {
            docker_cli(&["rm", "-f", &id]);
        }
        let filter = format!("label=com.docker.compose.project={}", self.0);
        for id in docker_cli(&["network", "ls", "-q", "--filter", &filter]).lines() {
            docker_cli(&["network", "rm", id]);
        }
    }
}

/// The sim project under a test's own name, with free ports.
fn sim_project(test: &str, extra_env: &[(&str, &str)]) -> (ComposeProject, ProjectGuard) {
    let name = format!("spt-{test}-{}", std::process::id());
    let mut options = LoadOptions::with_process_env(vec![sim_file(), faults_file()]);
    options.project_name = Some(name.clone());
    options.profiles = vec!["faults".into()];
    for var in [
        "SIM_VLLM_PORT",
        "SIM_TRTLLM_PORT",
        "SIM_LLAMACPP_PORT",
        "SIM_FAULT_PORT",
    ] {
        options
            .environment
            .insert(var.into(), free_port().to_string());
    }
    options
        .environment
        .insert("SIM_LOAD_TIME".into(), "1s".into());
    for (k, v) in extra_env {
        options.environment.insert((*k).into(), (*v).into());
    }
    let project = ComposeProject::load(&options).expect("compose/sim.yml loads");
    (project, ProjectGuard(name))
}

fn service(project: &ComposeProject, name: &str) -> InferenceService {
    project
        .select(&[name.to_owned()], &[])
        .expect("service exists")
        .remove(0)
}

fn fast_health(timeout: Duration) -> HealthOptions {
    HealthOptions {
        interval: Duration::from_millis(200),
        timeout,
        ..HealthOptions::default()
    }
}

/// Skips (or fails under SPARK_PERF_REQUIRE_DOCKER=1) without a daemon, and
/// builds the spark-sim image once.
fn docker_ready(test: &str) -> bool {
    if !spark_testkit::docker_available(test) {
        return false;
    }
    spark_testkit::sim_image();
    true
}

/// `docker compose` (v2) or `docker-compose` (v1), whichever is installed.
fn compose_cli() -> Option<Vec<&'static str>> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works("docker", &["compose", "version"]) {
        Some(vec!["docker", "compose"])
    } else if works("docker-compose", &["version"]) {
        Some(vec!["docker-compose"])
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sim_service_becomes_healthy_with_compose_names_and_labels_then_is_removed() {
    if !docker_ready("a_sim_service_becomes_healthy") {
        return;
    }
    let (project, guard) = sim_project("healthy", &[("HF_TOKEN", "hf_secretsecretsecretsecret")]);
    let target = service(&project, "sim-vllm-fp8-moe");
    let docker = Docker::connect().await.unwrap();
    let stopped = docker
        .stop_inference_containers(&project, &target)
        .await
        .unwrap();
    assert!(stopped.is_empty(), "{stopped:?}");

    let running = docker
        .start(&project, &target, StartOptions::default())
        .await
        .unwrap();
    let expected_name = format!("{}-sim-vllm-fp8-moe-1", project.name());
    assert_eq!(running.container_name(), expected_name);
    let cost = running
        .wait_healthy(&fast_health(Duration::from_secs(30)))
        .await
        .unwrap();
    eprintln!("startup cost: {cost:?}");
    assert!(
        cost.create <= cost.start && cost.start <= cost.port_open && cost.port_open <= cost.healthy,
        "{cost:?}"
    );
    // The sim loads for 1 s.
    assert!(cost.healthy >= Duration::from_millis(900), "{cost:?}");
    // What `run` shows beside its spinner: the engine's last line of output.
    let last_line = running.last_log_line().await;
    assert!(
        last_line.as_deref().is_some_and(|line| !line.is_empty()),
        "{last_line:?}"
    );

    // Labels and name as compose writes them, read back with the docker CLI.
    let labels = docker_cli(&["inspect", "-f", "{{json .Config.Labels}}", &expected_name]);
    let labels: BTreeMap<String, String> = serde_json_lite(&labels);
    let hash = project.service("sim-vllm-fp8-moe").unwrap().config_hash();
    for (key, value) in [
        ("com.docker.compose.project", project.name()),
        ("com.docker.compose.service", "sim-vllm-fp8-moe"),
        ("com.docker.compose.oneoff", "False"),
        ("com.docker.compose.container-number", "1"),
        ("com.docker.compose.config-hash", hash),
        (
            "com.docker.compose.project.working_dir",
            &project.working_dir().display().to_string(),
        ),
        (
            "com.docker.compose.project.config_files",
            // Every file, comma-separated, as compose writes it.
            &project
                .config_files()
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ] {
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "{key} in {labels:?}"
        );
    }
    assert!(labels.contains_key("com.docker.compose.version"));
    let network = docker_cli(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.Aliases}}{{end}}",
        &expected_name,
    ]);
    assert!(
        network.starts_with(&format!("{}_default [", project.name()))
            && network.contains("sim-vllm-fp8-moe"),
        "{network}"
    );

    // The compose CLI sees what spark-perf started.
    match compose_cli() {
        Some(cli) => {
            let mut args: Vec<String> = cli[1..].iter().map(|s| (*s).to_owned()).collect();
            args.extend([
                "-f".into(),
                sim_file().display().to_string(),
                "-f".into(),
                faults_file().display().to_string(),
                "-p".into(),
                project.name().to_owned(),
                "ps".into(),
            ]);
            let output = Command::new(cli[0])
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                text.contains(&expected_name),
                "{} ps:\n{text}",
                cli.join(" ")
            );
        }
        None => eprintln!(
            "skipping the compose CLI check: neither `docker compose` nor `docker-compose` is installed"
        ),
    }

    let provenance = running.provenance().clone();
    assert!(provenance.image_id.starts_with("sha256:"), "{provenance:?}");
    assert_eq!(provenance.config_hash, hash);
    assert!(
        provenance.command.contains(&"--profile=fp8-moe".to_owned()),
        "{provenance:?}"
    );
    assert!(
        provenance.env_names.contains(&"RUST_LOG".to_owned()),
        "{provenance:?}"
    );
    assert!(!format!("{provenance:?}").contains("hf_secret"));

    let stopped_provenance = running.stop().await.unwrap();
    assert_eq!(stopped_provenance, provenance);
    assert!(guard.containers().is_empty(), "container left behind");
    assert_eq!(docker.running_service(), None);
}

/// A tiny reader for `{"k":"v",...}` without a serde_json dev-dependency.
fn serde_json_lite(text: &str) -> BTreeMap<String, String> {
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    let mut map = BTreeMap::new();
    let mut rest = inner;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(key_end) = after.find('"') else {
            break;
        };
        let key = &after[..key_end];
        let after = &after[key_end + 1..];
        let Some(value_start) = after.find('"') else {
            break;
        };
        let after_value = &after[value_start + 1..];
        let Some(value_end) = after_value.find('"') else {
            break;
        };
        map.insert(key.to_owned(), after_value[..value_end].to_owned());
        rest = &after_value[value_end + 1..];
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_exits_while_loading_fails_within_2s_with_its_log_tail() {
    if !docker_ready("a_service_that_exits_while_loading") {
        return;
    }
    let (project, guard) = sim_project("crash", &[]);
    let target = service(&project, "sim-crash-on-load");
    let docker = Docker::connect().await.unwrap();
    let running = docker
        .start(&project, &target, StartOptions::default())
        .await
        .unwrap();
    let clock = Instant::now();
    let err = running
        .wait_healthy(&fast_health(Duration::from_secs(60)))
        .await
        .unwrap_err();
    let elapsed = clock.elapsed();
    eprintln!("crash while loading detected after {elapsed:?}: {err}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    match &err {
        OrchestratorError::ExitedBeforeHealthy {
            exit_code,
            log_tail,
            ..
        } => {
            assert_eq!(*exit_code, 2);
            assert!(
                log_tail.iter().any(|l| l.contains("--crash-while-loading")),
                "{log_tail:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    running.stop().await.unwrap();
    assert!(guard.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_under_a_restart_policy_fails_fast() {
    if !docker_ready("a_crash_loop_under_a_restart_policy") {
        return;
    }
    let (project, guard) = sim_project("loop", &[]);
    let target = service(&project, "sim-crash-loop");
    let docker = Docker::connect().await.unwrap();
    let running = docker
        .start(&project, &target, StartOptions::default())
        .await
        .unwrap();
    let clock = Instant::now();
    let err = running
        .wait_healthy(&fast_health(Duration::from_secs(60)))
        .await
        .unwrap_err();
    eprintln!("crash loop detected after {:?}: {err}", clock.elapsed());
    assert!(clock.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(
            err,
            OrchestratorError::RestartedBeforeHealthy { .. }
                | OrchestratorError::ExitedBeforeHealthy { .. }
        ),
        "{err:?}"
    );
    running.stop().await.unwrap();
    assert!(guard.containers().is_empty());
}

/// Measures the exit-detection latency: the container is killed from outside
/// at a known instant while the gate waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_noticed_within_2s() {
    if !docker_ready("a_killed_container_is_noticed") {
        return;
    }
    let (project, guard) = sim_project("killed", &[]);
    let target = service(&project, "sim-never-ready");
    let docker = Docker::connect().await.unwrap();
    let running = docker
        .start(&project, &target, StartOptions::default())
        .await
        .unwrap();
    let name = running.container_name().to_owned();
    let killer = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let killed_at = Instant::now();
        docker_cli(&["kill", "--signal", "KILL", &name]);
        killed_at
    });
    let err = running
        .wait_healthy(&fast_health(Duration::from_secs(60)))
        .await
        .unwrap_err();
    let noticed_at = Instant::now();
    let killed_at = killer.await.unwrap();
    let latency = noticed_at.saturating_duration_since(killed_at);
    eprintln!("exit-detection latency: {latency:?} ({err})");
    assert!(
        matches!(
            err,
            OrchestratorError::ExitedBeforeHealthy { exit_code: 137, .. }
        ),
        "{err:?}"
    );
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    drop(running);
    assert!(guard.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ready_service_times_out_and_is_removed() {
    if !docker_ready("a_never_ready_service_times_out") {
        return;
    }
    let (project, guard) = sim_project("never", &[]);
    let target = service(&project, "sim-never-ready");
    let docker = Docker::connect().await.unwrap();
    let running = docker
        .start(&project, &target, StartOptions::default())
        .await
        .unwrap();
    let clock = Instant::now();
    let err = running
        .wait_healthy(&fast_health(Duration::from_millis(1500)))
        .await
        .unwrap_err();
    assert!(
        clock.elapsed() < Duration::from_secs(4),
        "{:?}",
        clock.elapsed()
    );
    match &err {
        OrchestratorError::HealthTimeout { url, last, .. } => {
            assert_eq!(url, &target.health_url());
            assert_eq!(last, "HTTP 503");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Dropped without stop(): the guard stops and removes the container.
    drop(running);
    assert!(guard.containers().is_empty(), "container left behind");
    assert_eq!(docker.running_service(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_clear_error() {
    if !spark_testkit::docker_available("a_missing_image_is_a_clear_error") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("spt-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("compose.yml");
    std::fs::write(
        &file,
        format!("services:\n  engine:\n    image: vllm/vllm-openai:v0.0.0-spark-perf-missing\n    command: vllm serve m\n    ports: [\"{}:8000\"]\n", free_port()),
    )
    .unwrap();
    let name = format!("spt-missing-{}", std::process::id());
    let guard = ProjectGuard(name.clone());
    let mut options = LoadOptions::with_process_env(vec![file]);
    options.project_name = Some(name);
    let project = ComposeProject::load(&options).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let target = service(&project, "engine");
    let docker = Docker::connect().await.unwrap();
    let err = docker
        .start(&project, &target, StartOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "service engine: image vllm/vllm-openai:v0.0.0-spark-perf-missing is not present locally (pass --pull to pull it, or `docker pull vllm/vllm-openai:v0.0.0-spark-perf-missing`)"
    );
    // The failed start holds no slot and left nothing behind.
    assert_eq!(docker.running_service(), None);
    assert!(guard.containers().is_empty());
}

/// Removes, when dropped, every image carrying the label `KEY=VALUE`: a
/// test's builds, with the intermediate images of a failed one, which no
/// tag holds. Children go before parents, so a few passes.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let filter = format!("label={}", self.0);
        for _ in 0..5 {
            let ids = docker_cli(&["images", "-a", "-q", "--filter", &filter]);
            if ids.is_empty() {
                break;
            }
            for id in ids.lines() {
                docker_cli(&["rmi", "-f", id]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_with_build_is_built_tagged_and_started_and_a_failed_build_says_why() {
    if !docker_ready("a_service_with_build_is_built") {
        return;
    }
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("spt-build-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("engine/models")).unwrap();
    // `target: engine` stops before the stage that cannot build (the image
    // has no shell); without a target, that stage fails the build.
    std::fs::write(
        dir.join("engine/Dockerfile.sim"),
        format!(
            "FROM {} AS base\nLABEL spark-perf.test.run={pid}\nARG SIM_LABEL=unset\nLABEL spark-perf.test.arg=$SIM_LABEL\n\nFROM base AS engine\nLABEL spark-perf.test.stage=engine\n\nFROM base AS debug\nRUN [\"/bin/false\"]\n",
            spark_testkit::SIM_IMAGE
        ),
    )
    .unwrap();
    std::fs::write(dir.join("engine/.dockerignore"), "models\n").unwrap();
    std::fs::write(dir.join("engine/models/weights.bin"), "not sent").unwrap();
    let (port, broken_port) = (free_port(), free_port());
    let file = dir.join("compose.yml");
    std::fs::write(
        &file,
        format!(
            "services:
  engine:
    build:
      context: ./engine
      dockerfile: Dockerfile.sim
      target: engine
      args:
        SIM_LABEL: ${{SIM_LABEL}}
        API_TOKEN: tok-build-secret-{pid}
    command: [--host=0.0.0.0, --port=8000, --load-time=1s, --served-model-name=built]
    ports: [\"{port}:8000\"]
    x-spark-perf: {{inference: true, flavor: vllm}}
  broken:
    build:
      context: ./engine
      dockerfile: Dockerfile.sim
      args:
        API_TOKEN: tok-build-secret-{pid}
    command: [--host=0.0.0.0, --port=8000]
    ports: [\"{broken_port}:8000\"]
    x-spark-perf: {{inference: true, flavor: vllm}}
"
        ),
    )
    .unwrap();
    let name = format!("spt-build-{pid}");
    let tag = format!("{name}-engine");
    let broken_tag = format!("{name}-broken");
    let images = ImageGuard(format!("spark-perf.test.run={pid}"));
    let guard = ProjectGuard(name.clone());
    let mut options = LoadOptions::with_process_env(vec![file]);
    options.project_name = Some(name);
    let label = format!("from-the-build-arg-{pid}");
    options
        .environment
        .insert("SIM_LABEL".into(), label.clone());
    let project = ComposeProject::load(&options).unwrap();

    let docker = Docker::connect().await.unwrap();
    let target = service(&project, "engine");
    let mut lines = Vec::new();
    let running = docker
        .start_reporting(&project, &target, StartOptions::default(), |line| {
            lines.push(line.to_owned());
        })
        .await
        .unwrap();
    let output = lines.join("\n");
    assert!(output.contains("Step 1/"), "{output}");
    assert!(
        !output.contains(&format!("tok-build-secret-{pid}")),
        "{output}"
    );
    // Tagged as compose v2 tags it, with the label from the build argument
    // and the stage's own.
    let labels = docker_cli(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        &format!("{tag}:latest"),
    ]);
    let labels = serde_json_lite(&labels);
    assert_eq!(
        labels.get("spark-perf.test.arg").map(String::as_str),
        Some(label.as_str()),
        "{labels:?}"
    );
    assert_eq!(
        labels.get("spark-perf.test.stage").map(String::as_str),
        Some("engine"),
        "{labels:?}"
    );
    running
        .wait_healthy(&fast_health(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(running.provenance().image, tag);
    running.stop().await.unwrap();
    assert!(guard.containers().is_empty(), "container left behind");

    // A failed build names the service, the context and its last lines,
    // and leaves no container.
    let err = docker
        .start(
            &project,
            &service(&project, "broken"),
            StartOptions::default(),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    match &err {
        OrchestratorError::BuildImage {
            service,
            context,
            output_tail,
            ..
        } => {
            assert_eq!(service, "broken");
            assert_eq!(context, &std::path::absolute(dir.join("engine")).unwrap());
            assert!(
                output_tail
                    .iter()
                    .any(|l| l.contains("RUN [\"/bin/false\"]")),
                "{text}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!text.contains(&format!("tok-build-secret-{pid}")), "{text}");
    assert_eq!(docker.running_service(), None);
    assert!(guard.containers().is_empty(), "container left behind");
    let _ = std::fs::remove_dir_all(&dir);
    drop(images);
    assert_eq!(
        docker_cli(&[
            "images",
            "-a",
            "-q",
            "--filter",
            &format!("label=spark-perf.test.run={pid}")
        ]),
        "",
        "images left behind"
    );
    assert_eq!(docker_cli(&["images", "-q", &broken_tag]), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inference_services_never_run_at_once() {
    if !docker_ready("two_inference_services_never_run_at_once") {
        return;
    }
    let (project, guard) = sim_project("one", &[("SIM_LOAD_TIME", "0s")]);
    let first = service(&project, "sim-vllm-fp8-moe");
    let second = service(&project, "sim-trtllm-bf16-dense");
    let docker = Docker::connect().await.unwrap();
    let running = docker
        .start(&project, &first, StartOptions::default())
        .await
        .unwrap();

    // The same handle refuses a second container.
    let err = docker
        .start(&project, &second, StartOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OrchestratorError::AnotherServiceRunning { running, requested } if running == "sim-vllm-fp8-moe" && requested == "sim-trtllm-bf16-dense"),
        "{err:?}"
    );
    // So does another handle (another process would see the same): the daemon
    // already runs an inference container of the project.
    let other = Docker::connect().await.unwrap();
    let err = other
        .start(&project, &second, StartOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, OrchestratorError::AnotherServiceRunning { .. }),
        "{err:?}"
    );
    assert_eq!(other.running_service(), None);

    running
        .wait_healthy(&fast_health(Duration::from_secs(30)))
        .await
        .unwrap();
    // Before the next service, everything of the project in the way is stopped.
    let stopped = other
        .stop_inference_containers(&project, &second)
        .await
        .unwrap();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0].service.as_deref(), Some("sim-vllm-fp8-moe"));
    running.stop().await.unwrap();

    let running = docker
        .start(&project, &second, StartOptions::default())
        .await
        .unwrap();
    assert_eq!(
        docker.running_service().as_deref(),
        Some("sim-trtllm-bf16-dense")
    );
    running.stop().await.unwrap();
    assert!(guard.containers().is_empty());
}

/// The child half of the interrupt test: starts a service that never gets
/// ready and waits like `spark-perf run` does, until SIGINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_run_child() {
    let Ok(project_name) = std::env::var("SPT_INTERRUPT_CHILD") else {
        return;
    };
    let mut sigint =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).unwrap();
    let mut options = LoadOptions::with_process_env(vec![sim_file(), faults_file()]);
    options.project_name = Some(project_name);
    options.profiles = vec!["faults".into()];
    let project = ComposeProject::load(&options).unwrap();
    let target = service(&project, "sim-never-ready");
    let docker = Docker::connect().await.unwrap();
    let running = docker
        .start(&project, &target, StartOptions::default())
        .await
        .unwrap();
    println!("CHILD-STARTED {}", running.container_name());
    let health = HealthOptions::default();
    tokio::select! {
        _ = sigint.recv() => println!("CHILD-INTERRUPTED"),
        result = running.wait_healthy(&health) => println!("CHILD-UNEXPECTED {result:?}"),
    }
    // Like the CLI: the run's future is gone, the guard cleans up.
    drop(running);
    println!("CHILD-CLEANED");
}

#[test]
fn an_interrupted_run_leaves_no_container_behind() {
    if !docker_ready("an_interrupted_run_leaves_no_container_behind") {
        return;
    }
    let name = format!("spt-interrupt-{}", std::process::id());
    let guard = ProjectGuard(name.clone());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "interrupted_run_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPT_INTERRUPT_CHILD", &name)
        .env("SIM_FAULT_PORT", free_port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |marker: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines_rx.recv_timeout(left) {
                // libtest prints `test NAME ... ` before the test's own output.
                Ok(line) if line.contains(marker) => {
                    return line[line.find(marker).unwrap_or(0) + marker.len()..]
                        .trim()
                        .to_owned();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("the child never printed {marker}");
    };
    let container = wait_for("CHILD-STARTED");
    assert_eq!(
        docker_cli(&["inspect", "-f", "{{.State.Running}}", &container]),
        "true"
    );

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("CHILD-CLEANED");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the child did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        guard.containers().is_empty(),
        "the interrupted run left a container"
    );
}
