//! Compose files as people write them, started for real on the Docker daemon
//! with the spark-sim image: a ROCm-style service (device nodes, group_add,
//! capabilities, seccomp, ipc, shm), a host port Docker assigns, secrets and
//! configs (a file, an environment value, inline content), `extends`, and
//! `depends_on` with a one-shot downloader and a healthy helper, and a
//! downloader that fails.
//!
//! Each test writes its compose file into a temporary directory and uses
//! its own project name; a guard removes whatever the project left. Without
//! a daemon the tests print why and pass, unless SPARK_PERF_REQUIRE_DOCKER=1.

use std::process::{Command, Stdio};
use std::time::Duration;

use spark_orchestrator::{
    ComposeProject, Docker, HealthOptions, InferenceService, LoadOptions, OrchestratorError,
    RunningService, StartOptions,
};
use spark_testkit::{ProjectGuard, TempDir, free_port};

fn docker_ready(test: &str) -> bool {
    if !spark_testkit::docker_available(test) {
        return false;
    }
    spark_testkit::sim_image();
    true
}

/// A project from `compose` (with `{PORT}` replaced by a free port) in a
/// temporary directory, plus `files` beside it.
struct Project {
    project: ComposeProject,
    guard: ProjectGuard,
    _dir: TempDir,
}

fn project(test: &str, compose: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Project {
    let guard = ProjectGuard::new(test);
    let dir = TempDir::new(&guard.0);
    let compose = compose.replace("{PORT}", &free_port().to_string());
    std::fs::write(dir.0.join("compose.yml"), compose).expect("compose file");
    for (name, content) in files {
        let path = dir.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("dir");
        }
        std::fs::write(path, content).expect("file");
    }
    let mut options = LoadOptions::with_process_env(vec![dir.0.join("compose.yml")]);
    options.project_name = Some(guard.0.clone());
    for (k, v) in env {
        options.environment.insert((*k).into(), (*v).into());
    }
    let project = ComposeProject::load(&options).unwrap_or_else(|err| panic!("{err}"));
    Project {
        project,
        guard,
        _dir: dir,
    }
}

fn engine(project: &ComposeProject, name: &str) -> InferenceService {
    project
        .select(&[name.to_owned()], &[])
        .expect("service exists")
        .remove(0)
}

fn health() -> HealthOptions {
    HealthOptions {
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(60),
        ..HealthOptions::default()
    }
}

fn docker_cli(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// GET `path` on loopback `port`; the status code.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A file of the container, read with `docker cp`: its content and mode.
fn container_file(container: &str, path: &str) -> (String, u32) {
    let output = Command::new("docker")
        .args(["cp", &format!("{container}:{path}"), "-"])
        .stdin(Stdio::null())
        .output()
        .expect("docker cp");
    assert!(
        output.status.success(),
        "docker cp {path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tar = output.stdout;
    // One ustar entry: mode at 100 (octal text), size at 124, data at 512.
    let field = |at: usize, len: usize| {
        String::from_utf8_lossy(&tar[at..at + len])
            .trim_matches(|c: char| c == '\0' || c == ' ')
            .to_owned()
    };
    let mode = u32::from_str_radix(&field(100, 8), 8).expect("mode");
    let size = usize::from_str_radix(&field(124, 12), 8).expect("size");
    let content = String::from_utf8_lossy(&tar[512..512 + size]).into_owned();
    (content, mode & 0o7777)
}

async fn start_healthy(docker: &Docker, p: &Project, name: &str) -> RunningService {
    let service = engine(&p.project, name);
    let running = docker
        .start(&p.project, &service, StartOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    running
        .wait_healthy(&health())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rocm_style_service_starts_with_its_devices_groups_and_capabilities() {
    if !docker_ready("a_rocm_style_service_starts") {
        return;
    }
    // The ROCm images' documented flags, on the sim: no AMD GPU here, so
    // the device nodes are stand-ins at the paths ROCm uses; the image has
    // no /etc/group, so a config provides one for the group names.
    let p = project(
        "rocm",
        r#"
services:
  vllm-rocm:
    image: spark-sim:dev
    x-spark-perf: {inference: true}
    command: ["--host", "0.0.0.0", "--port", "8000", "--served-model-name", "tiny"]
    ports: ["{PORT}:8000"]
    devices:
      - /dev/null:/dev/kfd
      - /dev/zero:/dev/dri/renderD128
    group_add: [video, "109"]
    ipc: host
    cap_add: [SYS_PTRACE]
    security_opt: [seccomp=unconfined]
    shm_size: 1g
    configs:
      - source: groups
        target: /etc/group
configs:
  groups:
    content: "root:x:0:\nvideo:x:44:\n"
"#,
        &[],
        &[],
    );
    let docker = Docker::connect().await.unwrap();
    let running = start_healthy(&docker, &p, "vllm-rocm").await;
    let name = running.container_name().to_owned();
    let host = docker_cli(&[
        "inspect",
        "-f",
        "{{json .HostConfig.GroupAdd}} {{json .HostConfig.CapAdd}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.IpcMode}} {{.HostConfig.ShmSize}} {{range .HostConfig.Devices}}{{.PathInContainer}},{{end}}",
        &name,
    ]);
    // The daemon may add `label=disable` to the security options.
    let host = host.replace(r#","label=disable""#, "");
    assert_eq!(
        host,
        r#"["video","109"] ["SYS_PTRACE"] ["seccomp=unconfined"] host 1073741824 /dev/kfd,/dev/dri/renderD128,"#
    );
    running.stop().await.unwrap();
    assert!(p.guard.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_docker_assigns_is_read_back_and_served_on() {
    if !docker_ready("a_host_port_docker_assigns") {
        return;
    }
    let p = project(
        "ephemeral",
        r#"
services:
  any-port:
    image: spark-sim:dev
    x-spark-perf: {inference: true}
    command: ["--host", "0.0.0.0", "--port", "8000", "--served-model-name", "tiny"]
    ports: ["127.0.0.1::8000"]
"#,
        &[],
        &[],
    );
    let service = engine(&p.project, "any-port");
    assert!(!service.host_port_known());
    let docker = Docker::connect().await.unwrap();
    let running = start_healthy(&docker, &p, "any-port").await;
    let port = running.host_port();
    let published = docker_cli(&["port", running.container_name(), "8000/tcp"]);
    assert_eq!(published, format!("127.0.0.1:{port}"));
    assert_eq!(http_status(port, "/v1/models"), Some(200));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_configs_are_in_the_container_with_their_modes_and_never_in_its_config() {
    if !docker_ready("secrets_and_configs_are_in_the_container") {
        return;
    }
    let p = project(
        "secrets",
        r#"
services:
  engine:
    image: spark-sim:dev
    x-spark-perf: {inference: true}
    command: ["--host", "0.0.0.0", "--port", "8000", "--served-model-name", "tiny"]
    ports: ["{PORT}:8000"]
    secrets:
      - hf_token
      - source: api_key
        target: engine_api_key
        mode: 0400
    configs:
      - source: chat_template
        target: /templates/chat.jinja
secrets:
  hf_token:
    file: ./hf_token.txt
  api_key:
    environment: TEST_SECRET_API_KEY
configs:
  chat_template:
    content: "{{ messages }}"
"#,
        &[("hf_token.txt", "hf_file_token_value_0000")],
        &[("TEST_SECRET_API_KEY", "sk-env-secret-value-9876")],
    );
    let docker = Docker::connect().await.unwrap();
    let running = start_healthy(&docker, &p, "engine").await;
    let name = running.container_name().to_owned();
    assert_eq!(
        container_file(&name, "/run/secrets/hf_token").0,
        "hf_file_token_value_0000"
    );
    assert_eq!(
        container_file(&name, "/run/secrets/engine_api_key"),
        ("sk-env-secret-value-9876".to_owned(), 0o400)
    );
    assert_eq!(
        container_file(&name, "/templates/chat.jinja"),
        ("{{ messages }}".to_owned(), 0o444)
    );
    // Copied in, not passed: the value is nowhere in the container's config.
    let config = docker_cli(&["inspect", &name]);
    assert!(!config.contains("sk-env-secret-value-9876"), "{config}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_service_runs_with_the_merged_settings() {
    if !docker_ready("an_extended_service_runs") {
        return;
    }
    let p = project(
        "extends",
        r#"
services:
  engine:
    extends:
      file: common.yml
      service: sim-base
    command: ["--host", "0.0.0.0", "--port", "8000", "--served-model-name", "extended"]
    ports: ["{PORT}:8000"]
    environment:
      OWN_SETTING: "child"
"#,
        &[(
            "common.yml",
            "services:\n  sim-base:\n    image: spark-sim:dev\n    x-spark-perf: {inference: true}\n    stop_grace_period: 3s\n    environment:\n      BASE_SETTING: base\n      OWN_SETTING: base\n",
        )],
        &[],
    );
    let docker = Docker::connect().await.unwrap();
    let running = start_healthy(&docker, &p, "engine").await;
    let name = running.container_name().to_owned();
    let env = docker_cli(&["inspect", "-f", "{{json .Config.Env}}", &name]);
    assert!(env.contains("\"BASE_SETTING=base\""), "{env}");
    assert!(env.contains("\"OWN_SETTING=child\""), "{env}");
    let cmd = docker_cli(&["inspect", "-f", "{{json .Config.Cmd}}", &name]);
    assert!(cmd.contains("\"extended\""), "{cmd}");
    assert_eq!(
        docker_cli(&["inspect", "-f", "{{.Config.StopTimeout}}", &name]),
        "3"
    );
    running.stop().await.unwrap();
}

const DEPENDS: &str = r#"
services:
  download:
    image: spark-sim:dev
    x-spark-perf: {inference: false}
    command: ["{DOWNLOAD}"]
  cache:
    image: spark-sim:dev
    x-spark-perf: {inference: false}
    command: ["--host", "0.0.0.0", "--port", "8000"]
    healthcheck:
      test: ["CMD", "/spark-sim", "healthcheck", "--url", "http://127.0.0.1:8000/health"]
      interval: 1s
      start_period: 30s
    depends_on:
      download:
        condition: service_completed_successfully
  engine:
    image: spark-sim:dev
    x-spark-perf: {inference: true}
    command: ["--host", "0.0.0.0", "--port", "8000", "--served-model-name", "tiny"]
    ports: ["{PORT}:8000"]
    depends_on:
      cache:
        condition: service_healthy
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_start_first_reach_their_conditions_and_stop_with_the_engine() {
    if !docker_ready("dependencies_start_first") {
        return;
    }
    let p = project(
        "depends",
        &DEPENDS.replace("{DOWNLOAD}", "--version"),
        &[],
        &[],
    );
    let docker = Docker::connect().await.unwrap();
    let running = start_healthy(&docker, &p, "engine").await;
    assert_eq!(running.dependencies(), ["download", "cache"]);
    let state = |service: &str| {
        docker_cli(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            &format!("{}-{service}-1", p.guard.0),
        ])
    };
    // The downloader ran to completion before the cache, which was
    // healthy before the engine was created.
    // (The image's own healthcheck calls the exited downloader unhealthy.)
    assert!(
        state("download").starts_with("exited 0"),
        "{}",
        state("download")
    );
    assert_eq!(state("cache"), "running 0 healthy");
    let started = |service: &str| {
        docker_cli(&[
            "inspect",
            "-f",
            "{{.State.StartedAt}}",
            &format!("{}-{service}-1", p.guard.0),
        ])
    };
    let finished = docker_cli(&[
        "inspect",
        "-f",
        "{{.State.FinishedAt}}",
        &format!("{}-download-1", p.guard.0),
    ]);
    assert!(
        finished <= started("cache"),
        "{finished} {}",
        started("cache")
    );
    assert!(started("cache") < started("engine"));
    running.stop().await.unwrap();
    assert!(
        p.guard.containers().is_empty(),
        "left: {:?}",
        p.guard.containers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_downloader_fails_the_engine_with_its_exit_code_and_log_and_leaves_nothing() {
    if !docker_ready("a_failed_downloader_fails_the_engine") {
        return;
    }
    let p = project(
        "depends-fail",
        &DEPENDS.replace("{DOWNLOAD}", "--no-such-flag-for-the-test"),
        &[],
        &[],
    );
    let docker = Docker::connect().await.unwrap();
    let service = engine(&p.project, "engine");
    let err = docker
        .start(&p.project, &service, StartOptions::default())
        .await
        .expect_err("the downloader fails");
    match &err {
        OrchestratorError::DependencyFailed {
            service,
            dependency,
            condition,
            exit_code,
            log_tail,
            ..
        } => {
            assert_eq!(service, "engine");
            assert_eq!(dependency, "download");
            assert_eq!(*condition, "service_completed_successfully");
            assert!(exit_code.is_some_and(|c| c != 0), "{err}");
            assert!(
                log_tail
                    .iter()
                    .any(|l| l.contains("no-such-flag-for-the-test")),
                "{err}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    // Neither the downloader nor anything after it is left, and the slot
    // is free for the next engine.
    assert!(
        p.guard.containers().is_empty(),
        "left: {:?}",
        p.guard.containers()
    );
    assert_eq!(docker.running_service(), None);
}
