//! No secret in any output of `spark-perf run`, on the real Docker daemon.
//!
//! Secrets sit where users put them: in `command` (through a variable of the
//! shell and of `.env`, and literally after `--api-key`), in `environment`,
//! in an `env_file` and in `.env`. One engine is healthy and measured; the
//! other crashes while starting and prints a secret in its log (spark-sim,
//! like any clap program, quotes an invalid value). None of the secrets may
//! appear in any file of the run directory, on stdout or on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use spark_testkit::{ProjectGuard, free_port};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

const SCENARIOS: &str = r#"
[[scenario]]
name = "latency"
input_tokens = 20
max_tokens = 4
requests = 1
"#;

#[test]
fn no_secret_reaches_results_reports_stdout_or_stderr() {
    if !spark_testkit::docker_available("no_secret_reaches_results_reports_stdout_or_stderr") {
        return;
    }
    let image = spark_testkit::sim_image();
    let pid = std::process::id();
    let project = ProjectGuard(format!("spt-secrets-{pid}"));
    let dir = std::env::temp_dir().join(&project.0);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");

    let shell = format!("shell-secret-{pid}-a1");
    let dotenv = format!("dotenv-secret-{pid}-b2");
    let env_file = format!("envfile-secret-{pid}-c3");
    let literal_env = format!("literal-env-secret-{pid}-d4");
    let literal_cmd = format!("literal-cmd-secret-{pid}-e5");
    let secrets = [&shell, &dotenv, &env_file, &literal_env, &literal_cmd];

    std::fs::write(dir.join(".env"), format!("DOTENV_SECRET={dotenv}\n")).expect(".env");
    std::fs::write(dir.join("secrets.env"), format!("FILE_TOKEN={env_file}\n")).expect("env_file");
    std::fs::write(dir.join("scenarios.toml"), SCENARIOS).expect("scenarios");
    let compose = format!(
        r#"services:
  healthy:
    image: {image}
    stop_grace_period: 2s
    command: ["--host", "0.0.0.0", "--port", "8000", "--load-time", "1s",
              "--api-key", "${{SHELL_SECRET}}", "--served-model-name", "m"]
    environment:
      LITERAL_KEY: {literal_env}
      DOTENV_PASSWORD: ${{DOTENV_SECRET}}
      # spark-sim takes its key from here too: the same as --api-key.
      VLLM_API_KEY: ${{SHELL_SECRET}}
    env_file: [secrets.env]
    ports: ["{healthy_port}:8000"]
  crashing:
    image: {image}
    stop_grace_period: 2s
    # The invalid value is printed by the engine as it exits.
    command: ["--host", "0.0.0.0", "--port", "8000", "--api-key", "{literal_cmd}",
              "--max-model-len", "${{DOTENV_SECRET}}"]
    ports: ["{crashing_port}:8000"]
"#,
        healthy_port = free_port(),
        crashing_port = free_port(),
    );
    std::fs::write(dir.join("docker-compose.yml"), compose).expect("compose file");

    let output = Command::new(env!("CARGO_BIN_EXE_spark-perf"))
        .current_dir(&dir)
        .args(["run", "-f"])
        .arg(dir.join("docker-compose.yml"))
        .args(["--project-name", &project.0])
        .args(["--scenario-file", "scenarios.toml"])
        .args(["--health-interval", "200ms", "--health-timeout", "60s"])
        .args(["--api-key-env", "SHELL_SECRET", "--output", "reports"])
        .env("SHELL_SECRET", &shell)
        .env("NO_COLOR", "1")
        .env("SPARK_PERF_LOCK_DIR", &dir)
        .stdin(Stdio::null())
        .output()
        .expect("spark-perf runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The crashed engine makes the run an error, and it was really measured
    // beside it.
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(project.containers().is_empty(), "containers left behind");

    let reports = dir.join("reports");
    let files = files_under(&reports);
    assert!(files.len() >= 5, "{files:?}");
    // The history is among the files searched.
    assert!(
        files.iter().any(|f| f.ends_with("history.sqlite")),
        "{files:?}"
    );
    let results = files
        .iter()
        .find(|p| p.parent() != Some(reports.as_path()) && p.ends_with("results.json"))
        .map(|p| p.parent().expect("engine dir").parent().expect("run dir"))
        .expect("an engine's results.json");
    let suite: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("results.json")).expect("results"),
    )
    .expect("JSON");
    let engine = |name: &str| {
        suite["engines"]
            .as_array()
            .expect("engines")
            .iter()
            .find(|e| e["service"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no engine {name}: {suite}"))
    };
    let healthy = engine("healthy");
    assert_eq!(healthy["outcome"]["status"], "ok", "{suite}");
    let command: Vec<&str> = healthy["provenance"]["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    // The variable is shown as written in the compose file.
    assert!(command.contains(&"${SHELL_SECRET}"), "{command:?}");
    let crashing = engine("crashing");
    let reason = crashing["outcome"]["reason"].as_str().expect("reason");
    // The engine's log reached the reason, with the secret masked.
    assert!(
        reason.contains("invalid value") && reason.contains("[REDACTED]"),
        "{reason}"
    );

    for secret in secrets {
        assert!(!stdout.contains(secret.as_str()), "{secret} on stdout");
        assert!(!stderr.contains(secret.as_str()), "{secret} on stderr");
        for file in &files {
            let bytes = std::fs::read(file).expect("readable");
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(secret.as_str()),
                "{secret} in {}",
                file.display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
