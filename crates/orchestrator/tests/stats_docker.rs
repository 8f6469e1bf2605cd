//! What telemetry reads through the orchestrator on the real daemon: the
//! sim container's memory and CPU from the stats API, and its effective
//! command and mounts (a bind-mounted model directory) from the inspect
//! after the start.
//!
//! Without a daemon the test prints why and passes, unless
//! SPARK_PERF_REQUIRE_DOCKER=1.

use std::time::Duration;

use spark_orchestrator::{
    ComposeProject, ContainerMountKind, Docker, HealthOptions, LoadOptions, StartOptions,
};
use spark_testkit::{ProjectGuard, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_containers_stats_and_mounts_are_read() {
    if !spark_testkit::docker_available("the_sim_containers_stats_and_mounts_are_read") {
        return;
    }
    let image = spark_testkit::sim_image();
    let dir = TempDir::new("orchestrator-stats");
    let models = dir.0.join("models");
    std::fs::create_dir_all(&models).expect("models dir");
    std::fs::write(models.join("tiny.gguf"), vec![1u8; 4096]).expect("gguf");
    let port = spark_testkit::free_port();
    let compose = format!(
        "services:\n  sim:\n    image: {image}\n    command: [\"--host\", \"0.0.0.0\", \"--port\", \"8000\", \"--model\", \"/models/tiny.gguf\", \"--served-model-name\", \"tiny\"]\n    ports: [\"{port}:8000\"]\n    volumes: [\"./models:/models:ro\"]\n"
    );
    let file = dir.0.join("compose.yml");
    std::fs::write(&file, compose).expect("compose file");
    let guard = ProjectGuard::new("stats");
    let mut options = LoadOptions::with_process_env(vec![file]);
    options.project_name = Some(guard.0.clone());
    let project = ComposeProject::load(&options).expect("compose file loads");
    let service = project.select(&[], &[]).expect("the sim").remove(0);

    let docker = Docker::connect().await.expect("daemon");
    let running = docker
        .start(&project, &service, StartOptions::default())
        .await
        .expect("start");
    running
        .wait_healthy(&HealthOptions {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(30),
            ..HealthOptions::default()
        })
        .await
        .expect("healthy");

    let files = running.model_files();
    assert!(
        files
            .command()
            .windows(2)
            .any(|w| w == ["--model", "/models/tiny.gguf"]),
        "{files:?}"
    );
    let bind = files
        .mounts()
        .iter()
        .find(|m| m.target == "/models")
        .expect("the /models mount");
    assert_eq!(bind.kind, ContainerMountKind::Bind);
    assert_eq!(
        bind.source.as_deref().map(std::path::Path::new),
        Some(models.as_path())
    );

    let mut reader = running.stats_reader();
    let first = reader.read().await.expect("stats");
    let memory = first.memory_bytes.expect("memory");
    eprintln!("sim container: {memory} bytes, first reading {first:?}");
    // A static Rust binary idle: hundreds of KiB to tens of MiB.
    assert!((100 << 10..1 << 30).contains(&memory), "{memory}");
    // The daemon publishes once a second: the next reading waits for it.
    let started = std::time::Instant::now();
    let second = reader.read().await.expect("stats");
    assert!(started.elapsed() < Duration::from_secs(3));
    let cpu = second
        .cpu_percent
        .expect("a delta from the previous sample");
    assert!((0.0..=100.0 * 64.0).contains(&cpu), "{cpu}");

    running.stop().await.expect("stop");
    let gone = reader.read().await;
    assert!(gone.is_err(), "{gone:?}");
}
