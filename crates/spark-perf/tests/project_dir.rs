//! `spark-perf run` where the compose file is, as the reference script is
//! used: a directory holding only `docker-compose.yml` and `.env`, no `-f`.
//! The project name comes from the directory's name and `${PORT}` from the
//! `.env` beside the file.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use spark_testkit::free_port;

const COMPOSE: &str = r#"services:
  engine:
    image: spark-sim:dev
    stop_grace_period: 5s
    command: ["--host", "0.0.0.0", "--port", "8000", "--load-time", "${LOAD_TIME}", "--served-model-name", "tiny"]
    ports:
      - "${PORT}:8000"
"#;

const SCENARIOS: &str = r#"
[[scenario]]
name = "latency"
input_tokens = 20
max_tokens = 4
requests = 2
"#;

/// A project directory `<tmp>/spt-projdir-<tag>-<pid>/` with the compose
/// file and `.env`, removed (with its containers) on drop.
struct ProjectDir {
    dir: PathBuf,
    name: String,
    port: u16,
}

impl ProjectDir {
    fn new(tag: &str) -> ProjectDir {
        let name = format!("spt-projdir-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("project dir");
        let port = free_port();
        std::fs::write(dir.join("docker-compose.yml"), COMPOSE).expect("compose file");
        std::fs::write(dir.join(".env"), format!("PORT={port}\nLOAD_TIME=1s\n")).expect(".env");
        ProjectDir { dir, name, port }
    }

    fn spark_perf(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spark-perf"));
        command
            .current_dir(&self.dir)
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env("NO_COLOR", "1")
            .env("SPARK_PERF_LOCK_DIR", self.dir.join("locks"))
            .stdin(Stdio::null());
        command
    }

    fn containers(&self) -> Vec<String> {
        let output = Command::new("docker")
            .args(["ps", "--all", "--quiet", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.name))
            .output();
        let Ok(output) = output else {
            return Vec::new();
        };
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for ProjectDir {
    fn drop(&mut self) {
        for id in self.containers() {
            let _ = Command::new("docker").args(["rm", "--force", &id]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &format!("{}_default", self.name)])
            .stderr(Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn dry_run_with_no_flags_reads_the_compose_file_of_the_current_directory() {
    let project = ProjectDir::new("dry");
    let output = project
        .spark_perf()
        .args(["run", "--dry-run"])
        .output()
        .expect("spark-perf runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("plan for project {}:", project.name)),
        "{stderr}"
    );
    // `${PORT}` came from the `.env` beside the compose file.
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", project.port)),
        "{stderr}"
    );
}

#[test]
fn run_with_no_compose_flag_measures_the_project_of_the_current_directory() {
    if !spark_testkit::docker_available(
        "run_with_no_compose_flag_measures_the_project_of_the_current_directory",
    ) {
        return;
    }
    spark_testkit::sim_image();
    let project = ProjectDir::new("run");
    std::fs::write(project.dir.join("scenarios.toml"), SCENARIOS).expect("scenarios");
    let output = project
        .spark_perf()
        .args(["run", "--scenario-file", "scenarios.toml"])
        .args(["--health-interval", "200ms", "--health-timeout", "60s"])
        .output()
        .expect("spark-perf runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(project.containers().is_empty(), "containers left behind");
    // The reports are under ./reports/<timestamp>/ of the project directory.
    let runs: Vec<PathBuf> = std::fs::read_dir(project.dir.join("reports"))
        .expect("reports/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    // The run was added to the history beside the run directories.
    assert!(project.dir.join("reports/history.sqlite").is_file());
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs[0].join("results.json")).expect("results.json"),
    )
    .expect("JSON");
    let engine = &results["engines"][0];
    assert_eq!(engine["service"], "engine", "{results}");
    assert_eq!(engine["outcome"]["status"], "ok", "{results}");
    let source = results["source"].as_str().unwrap_or_default();
    assert!(source.contains(&project.name), "{results}");
}
