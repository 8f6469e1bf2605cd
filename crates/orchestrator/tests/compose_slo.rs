//! `x-spark-perf.slo`, top-level and per service: handed over as written,
//! whatever it says (objectives are the CLI's to parse; this crate knows no
//! OpenAI protocol), and only a value that is not a string is the compose
//! file's error. No Docker needed.

use spark_orchestrator::{ComposeProject, LoadOptions};

fn load(name: &str, text: &str) -> (std::path::PathBuf, spark_orchestrator::Checked) {
    let dir = std::env::temp_dir().join(format!("spt-compose-slo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("compose.yml");
    std::fs::write(&file, text).expect("compose file");
    let checked = ComposeProject::check(&LoadOptions {
        files: vec![file.clone()],
        ..LoadOptions::default()
    });
    (dir, checked)
}

#[test]
fn the_slo_strings_are_passed_through_unparsed() {
    let (dir, checked) = load(
        "through",
        "x-spark-perf:\n  slo: \"ttft_p90=2s, not-an-objective\"\n  anchors: &a {x: 1}\nservices:\n  alpha:\n    image: spark-sim:dev\n    ports: [\"8000:8000\"]\n    x-spark-perf:\n      slo: \"tpot_p90=100ms\"\n  beta:\n    image: spark-sim:dev\n    command: [\"--port\", \"8001\"]\n    ports: [\"8001:8001\"]\n",
    );
    let _ = std::fs::remove_dir_all(dir);
    let project = checked
        .project
        .expect("valid: the strings are not judged here");
    assert_eq!(project.slo(), Some("ttft_p90=2s, not-an-objective"));
    let slo_of = |name: &str| {
        project
            .service(name)
            .and_then(|s| s.inference())
            .map(|i| i.slo.clone())
            .expect("an engine")
    };
    assert_eq!(slo_of("alpha").as_deref(), Some("tpot_p90=100ms"));
    assert_eq!(slo_of("beta"), None);
}

#[test]
fn an_slo_that_is_not_a_string_is_an_error_at_its_line() {
    let (dir, checked) = load(
        "shape",
        "x-spark-perf:\n  slo: {ttft_p90: 2s}\nservices:\n  alpha:\n    image: spark-sim:dev\n    ports: [\"8000:8000\"]\n    x-spark-perf:\n      slo: 5\n",
    );
    let _ = std::fs::remove_dir_all(dir);
    assert!(checked.project.is_none());
    let rendered: Vec<String> = checked
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        rendered
            .iter()
            .any(|d| d.contains("compose.yml:2") && d.contains("`slo` must be a string")),
        "{rendered:#?}"
    );
    assert!(
        rendered.iter().any(|d| d.contains("compose.yml:8")
            && d.contains("service alpha")
            && d.contains("`slo` must be a string")),
        "{rendered:#?}"
    );
}
