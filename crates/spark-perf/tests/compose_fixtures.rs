//! `spark-perf run --dry-run` over the compose fixtures of
//! `tests/fixtures/compose/`: compose files as people write them (an AMD
//! ROCm engine, ...), each read without error into the right services,
//! ports and models. `cargo xtask compose-validate` checks the same files
//! (its tests). No Docker needed: a dry run starts nothing.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compose")
        .join(name)
}

/// Runs `spark-perf run --dry-run -f FIXTURE ARGS...`: (exit code, stderr).
fn dry_run(name: &str, args: &[&str]) -> (Option<i32>, String) {
    let lock_dir = std::env::temp_dir().join(format!("spt-fixtures-lock-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .args(["run", "--dry-run", "-f"])
        .arg(fixture(name))
        .args(args)
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .env("NO_COLOR", "1")
        .env("SPARK_PERF_LOCK_DIR", &lock_dir)
        .stdin(Stdio::null())
        .output()
        .expect("spark-perf runs");
    let _ = std::fs::remove_dir_all(&lock_dir);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The plan's line for `service`.
fn plan_line<'a>(stderr: &'a str, service: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{service} ")))
        .unwrap_or_else(|| panic!("no plan line for {service}:\n{stderr}"))
}

#[test]
fn an_amd_rocm_engine_is_planned_without_a_gpu_warning() {
    let (code, stderr) = dry_run("rocm.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("plan for project rocm-fixture:"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    let line = plan_line(&stderr, "vllm-rocm");
    assert!(line.contains(" vllm "), "{line}");
    assert!(line.contains("127.0.0.1:8000"), "{line}");
    assert!(line.contains("model Qwen/Qwen3-8B"), "{line}");
}

#[test]
fn engines_behind_profiles_are_each_benchmarked_and_profile_restricts_them() {
    let (code, stderr) = dry_run("profiles.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    for (service, model) in [
        ("qwen32", "Qwen/Qwen3-32B"),
        ("llama8", "meta-llama/Llama-3.1-8B-Instruct"),
        ("gemma", "google/gemma-3-4b-it"),
    ] {
        let line = plan_line(&stderr, service);
        assert!(line.contains(&format!("model {model}")), "{line}");
    }
    assert_eq!(
        stderr.matches("selected: behind profile").count(),
        3,
        "{stderr}"
    );
    assert!(
        stderr.contains("engines behind profiles are benchmarked in turn by default"),
        "{stderr}"
    );
    assert!(stderr.contains("for 3 engines"), "{stderr}");
    assert!(!stderr.contains("webui"), "{stderr}");

    let (code, stderr) = dry_run("profiles.yml", &["--profile", "small"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        plan_line(&stderr, "gemma").contains("model google/gemma-3-4b-it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("selected: in active profile small"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not benchmarked: qwen32: behind profile qwen32, which is not active"),
        "{stderr}"
    );
    assert!(stderr.contains("not benchmarked: llama8:"), "{stderr}");
    assert!(stderr.contains("for 1 engines"), "{stderr}");
}

#[test]
fn a_container_only_port_is_planned_as_assigned_by_docker() {
    let (code, stderr) = dry_run("ephemeral-port.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    for (service, host) in [
        ("any-port", "127.0.0.1"),
        ("loopback-any-port", "127.0.0.1"),
        ("long-syntax", "127.0.0.1"),
    ] {
        let line = plan_line(&stderr, service);
        assert!(
            line.contains(&format!(
                "http://{host}:<assigned by Docker to container port 8000>"
            )),
            "{line}"
        );
        assert!(line.contains("model tiny"), "{line}");
    }
}

#[test]
fn a_service_defined_twice_is_an_error_at_its_second_line() {
    let (code, stderr) = dry_run("invalid/duplicate-service.yml", &[]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("duplicate-service.yml:10: service vllm: service `vllm` is defined twice (first at line 4)"),
        "{stderr}"
    );
}

#[test]
fn an_engine_with_dependencies_is_planned_and_an_undefined_one_is_an_error() {
    let (code, stderr) = dry_run("depends-on.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        plan_line(&stderr, "vllm").contains("model qwen3-8b"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    let (code, stderr) = dry_run("invalid/depends-on-undefined.yml", &[]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("depends-on-undefined.yml:12: service vllm: depends_on names `downlaoder`, which is not a service of the project"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `downloader`?"), "{stderr}");
}

#[test]
fn a_service_with_host_config_keys_is_planned() {
    let (code, stderr) = dry_run("host-settings.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let line = plan_line(&stderr, "engine");
    assert!(line.contains("127.0.0.1:18000"), "{line}");
    assert!(line.contains("model tiny"), "{line}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn secrets_and_configs_are_planned_without_their_values() {
    let (code, stderr) = dry_run("secrets.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        plan_line(&stderr, "vllm").contains("model Qwen/Qwen3-8B"),
        "{stderr}"
    );
    for value in ["hf_file_fixture_value_0123", "sk-fixture-env-value-4567"] {
        assert!(!stderr.contains(value), "{stderr}");
    }
}

#[test]
fn services_extending_shared_settings_are_planned() {
    let (code, stderr) = dry_run("extends.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let qwen = plan_line(&stderr, "qwen");
    assert!(
        qwen.contains("127.0.0.1:8000") && qwen.contains("model Qwen/Qwen3-8B"),
        "{qwen}"
    );
    let long = plan_line(&stderr, "qwen-long");
    assert!(
        long.contains("127.0.0.1:8000") && long.contains("model qwen-long"),
        "{long}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn a_service_with_links_is_planned() {
    let (code, stderr) = dry_run("links.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        plan_line(&stderr, "engine").contains("127.0.0.1:18010"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn an_override_tag_replaces_the_extended_port() {
    let (code, stderr) = dry_run("extends.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        plan_line(&stderr, "qwen-own-port").contains("127.0.0.1:8002"),
        "{stderr}"
    );
}

#[test]
fn included_engines_are_planned_with_the_projects_own() {
    let (code, stderr) = dry_run("include.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        plan_line(&stderr, "included-engine").contains("model included"),
        "{stderr}"
    );
    assert!(
        plan_line(&stderr, "own-engine").contains("model own"),
        "{stderr}"
    );
}

#[test]
fn an_engine_with_build_is_planned_with_the_image_it_will_build() {
    let (code, stderr) = dry_run("build.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let context = fixture("build-engine");
    let line = plan_line(&stderr, "engine");
    assert!(line.contains("(build-fixture-engine)"), "{line}");
    assert!(
        stderr.contains(&format!(
            "    image: built from {} (Dockerfile, target engine) as build-fixture-engine when not present locally (--build: always)",
            context.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "    image: built from {} (Dockerfile) as spark-sim:built-fixture when not present locally",
            context.display()
        )),
        "{stderr}"
    );
    let (code, stderr) = dry_run("build.yml", &["--build", "--only", "tagged"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("as spark-sim:built-fixture (--build)"),
        "{stderr}"
    );
}

#[test]
fn tgi_and_the_sim_imitating_it_are_planned_on_port_80() {
    let (code, stderr) = dry_run("tgi.yml", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let line = plan_line(&stderr, "tgi");
    assert!(line.contains(" tgi "), "{line}");
    assert!(line.contains("127.0.0.1:8080"), "{line}");
    assert!(line.contains("model Qwen/Qwen2.5-0.5B-Instruct"), "{line}");
    let line = plan_line(&stderr, "tgi-sim");
    assert!(line.contains(" tgi "), "{line}");
    assert!(line.contains("127.0.0.1:8081"), "{line}");
    assert!(line.contains("model tiny"), "{line}");
}
