//! Discovery of text-generation-inference services: by image or by
//! `text-generation-launcher`, the model from `--model-id` or `MODEL_ID`,
//! the port from `--port` or `PORT` (80, the image's, otherwise), and
//! spark-sim imitating TGI through `--flavor tgi`. No Docker needed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use spark_orchestrator::{Checked, ComposeProject, Flavor, InferenceService, LoadOptions};

fn check(name: &str, text: &str) -> (PathBuf, Checked) {
    let dir = std::env::temp_dir().join(format!("spt-compose-tgi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("compose.yml");
    std::fs::write(&file, text).unwrap();
    let checked = ComposeProject::check(&LoadOptions {
        files: vec![file],
        environment: BTreeMap::new(),
        ..LoadOptions::default()
    });
    (dir, checked)
}

fn inference(checked: &Checked, name: &str) -> InferenceService {
    let project = checked.project.as_ref().unwrap_or_else(|| {
        let text: Vec<String> = checked
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect();
        panic!("{}", text.join("\n"))
    });
    project
        .service(name)
        .and_then(|s| s.inference().cloned())
        .unwrap_or_else(|| panic!("{name} is not an inference service"))
}

#[test]
fn tgi_services_are_discovered_with_model_and_port() {
    let (dir, checked) = check(
        "discover",
        "\
services:
  tgi:
    image: ghcr.io/huggingface/text-generation-inference:3.3.4
    command: [\"--model-id\", \"Qwen/Qwen2.5-0.5B-Instruct\", \"--max-total-tokens\", \"4096\"]
    ports: [\"8080:80\"]
    gpus: all
  by-env:
    image: ghcr.io/huggingface/text-generation-inference:latest-intel-cpu
    environment:
      MODEL_ID: org/from-env
      PORT: \"8001\"
    ports: [\"9001:8001\"]
  launcher:
    image: registry.example/custom:1
    entrypoint: [\"text-generation-launcher\"]
    command: [\"--model-id=org/launched\", \"--port\", \"3000\"]
    ports: [\"3000:3000\"]
    gpus: all
  sim:
    image: spark-sim:dev
    command: [\"--flavor\", \"tgi\", \"--model-id\", \"tiny\"]
    ports: [\"8090:80\"]
",
    );
    let tgi = inference(&checked, "tgi");
    assert_eq!(
        (
            tgi.flavor,
            tgi.host_port,
            tgi.base_url.as_str(),
            tgi.health_path.as_str(),
            tgi.served_model.as_deref()
        ),
        (
            Flavor::Tgi,
            8080,
            "http://127.0.0.1:8080",
            "/health",
            Some("Qwen/Qwen2.5-0.5B-Instruct")
        )
    );
    let by_env = inference(&checked, "by-env");
    assert_eq!(
        (
            by_env.flavor,
            by_env.host_port,
            by_env.served_model.as_deref()
        ),
        (Flavor::Tgi, 9001, Some("org/from-env"))
    );
    let launcher = inference(&checked, "launcher");
    assert_eq!(
        (
            launcher.flavor,
            launcher.host_port,
            launcher.served_model.as_deref()
        ),
        (Flavor::Tgi, 3000, Some("org/launched"))
    );
    let sim = inference(&checked, "sim");
    assert_eq!(
        (sim.flavor, sim.host_port, sim.served_model.as_deref()),
        (Flavor::Tgi, 8090, Some("tiny"))
    );
    // TGI is a GPU engine: without a reservation, a warning (not an error).
    let text: Vec<String> = checked
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        text.iter()
            .any(|d| d.contains("service by-env: warning: TGI image without a GPU reservation")),
        "{text:?}"
    );
    assert_eq!(text.len(), 1, "{text:?}");
    assert_eq!(Flavor::from_id("tgi"), Some(Flavor::Tgi));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_tgi_port_published_elsewhere_is_an_error_naming_port_80() {
    let (dir, checked) = check(
        "noport",
        "\
services:
  tgi:
    image: ghcr.io/huggingface/text-generation-inference:3.3.4
    command: [\"--model-id\", \"m\"]
    ports: [\"8080:8000\", \"9090:9000\"]
    gpus: all
",
    );
    let text: Vec<String> = checked
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        text.iter().any(|d| d
            .contains("inference service (TGI) has no port reachable from the host")
            && d.contains("80:80")),
        "{text:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
