//! The compose model against files on disk: interpolation and its
//! precedence, merge keys, several files, profiles, project names,
//! discovery of inference services, and diagnostics naming file, line and
//! service. No Docker needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use spark_orchestrator::{
    Checked, ComposeProject, DependencyCondition, Flavor, InferenceService, LoadOptions,
    OrchestratorError, Severity,
};

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("spt-compose-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn options(files: Vec<PathBuf>, environment: BTreeMap<String, String>) -> LoadOptions {
    LoadOptions {
        files,
        environment,
        ..LoadOptions::default()
    }
}

fn check_text(name: &str, text: &str) -> (Scratch, PathBuf, Checked) {
    let scratch = Scratch::new(name);
    let file = scratch.write("compose.yml", text);
    let checked = ComposeProject::check(&options(vec![file.clone()], BTreeMap::new()));
    (scratch, file, checked)
}

fn rendered(checked: &Checked) -> String {
    checked
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../compose")
        .join(name)
}

fn inference(project: &ComposeProject, name: &str) -> InferenceService {
    project
        .service(name)
        .and_then(|s| s.inference().cloned())
        .unwrap_or_else(|| panic!("{name} is not an inference service"))
}

#[test]
fn interpolation_precedence_shell_over_dot_env_and_env_file_for_the_container() {
    let scratch = Scratch::new("precedence");
    scratch.write(".env", "TAG=from-dot-env\nPORT=9000\nONLY_DOT_ENV=dot\n");
    scratch.write("engine.env", "FROM_ENV_FILE=1\nSHARED=env-file\n");
    let file = scratch.write(
        "compose.yml",
        "services:\n  engine:\n    image: vllm/vllm-openai:${TAG}\n    env_file: engine.env\n    environment:\n      SHARED: environment\n      PORT_SEEN: $PORT\n      ESCAPED: $$HOME\n      PASSED_THROUGH:\n    ports: [\"${PORT}:8000\"]\n    command: vllm serve m\n    gpus: all\n",
    );
    let project = ComposeProject::load(&options(
        vec![file],
        env(&[("TAG", "v0.11.0"), ("PASSED_THROUGH", "p")]),
    ))
    .unwrap();
    let service = project.service("engine").unwrap();
    // The shell wins over .env.
    assert_eq!(service.image(), "vllm/vllm-openai:v0.11.0");
    // .env fills what the shell lacks, and is not the container's environment.
    let names = service.environment_names();
    assert!(!names.contains(&"ONLY_DOT_ENV".to_owned()), "{names:?}");
    assert_eq!(
        names,
        [
            "ESCAPED",
            "FROM_ENV_FILE",
            "PASSED_THROUGH",
            "PORT_SEEN",
            "SHARED"
        ]
    );
    assert_eq!(inference(&project, "engine").host_port, 9000);
}

#[test]
fn required_and_unset_variables_are_diagnosed_at_their_line() {
    let (_scratch, file, checked) = check_text(
        "required",
        "services:\n  engine:\n    image: vllm/vllm-openai:v1\n    environment:\n      HF_TOKEN: ${HF_TOKEN:?set your Hugging Face token}\n      OTHER: ${NOT_SET}\n    ports: [\"8000:8000\"]\n    gpus: all\n",
    );
    assert!(checked.has_errors());
    let text = rendered(&checked);
    let file = file.display();
    assert!(text.contains(&format!("{file}:5: service engine: required variable HF_TOKEN is missing a value: set your Hugging Face token")), "{text}");
    assert!(text.contains(&format!("{file}:6: service engine: warning: the NOT_SET variable is not set; defaulting to a blank string")), "{text}");
}

#[test]
fn merge_keys_anchors_and_extension_fields() {
    let (_scratch, _file, checked) = check_text(
        "merge",
        "x-common: &common\n  image: vllm/vllm-openai:v0.11.0\n  gpus: all\n  environment:\n    A: '1'\nx-port: &port\n  ports: [\"8001:8000\"]\nservices:\n  one:\n    <<: [*common, *port]\n    command: vllm serve org/one\n  two:\n    <<: *common\n    image: vllm/vllm-openai:v0.10.0\n    command: [vllm, serve, org/two, --port, '8002']\n    ports: ['8002:8002']\n",
    );
    let text = rendered(&checked);
    let project = checked.project.expect(&text);
    let one = inference(&project, "one");
    assert_eq!(
        (one.host_port, one.served_model.as_deref()),
        (8001, Some("org/one"))
    );
    // A key written in the service wins over the merged one.
    assert_eq!(
        project.service("two").unwrap().image(),
        "vllm/vllm-openai:v0.10.0"
    );
    assert_eq!(inference(&project, "two").host_port, 8002);
    assert_eq!(project.service("one").unwrap().environment_names(), ["A"]);
}

#[test]
fn an_undefined_anchor_is_a_yaml_error_with_line_and_column() {
    let (_scratch, file, checked) = check_text(
        "anchor",
        "services:\n  engine:\n    <<: *missing\n    image: x:1\n",
    );
    let text = rendered(&checked);
    assert!(
        text.starts_with(&format!("{}:3:", file.display())),
        "{text}"
    );
    assert!(text.contains("unknown anchor"), "{text}");
    assert!(text.contains("hint: define the anchor"), "{text}");
}

#[test]
fn yaml_syntax_errors_have_line_and_column() {
    let (_scratch, file, checked) =
        check_text("syntax", "services:\n  engine:\n    image: [unclosed\n");
    let d = &checked.diagnostics[0];
    assert_eq!(
        (d.file.as_path(), d.severity),
        (file.as_path(), Severity::Error)
    );
    assert!(d.line.is_some() && d.column.is_some(), "{d}");
    assert!(d.message.starts_with("YAML syntax error"), "{d}");
}

#[test]
fn every_validation_rule_names_file_line_and_service() {
    let (_scratch, file, checked) = check_text(
        "rules",
        "\
services:
  typo:
    image: vllm/vllm-openai:v0.11.0
    comand: vllm serve m
    ports: [\"8000:8000\"]
    gpus: all
  nothing:
    environment: {A: b}
  badport:
    image: redis:7
    ports:
      - \"80:80:80:80\"
  noport:
    image: vllm/vllm-openai:v0.11.0
    command: vllm serve m
    gpus: all
  latest:
    image: lmsysorg/sglang:latest
    container_name: shared
    ports: ['30000:30000']
    environment:
      HF_TOKEN: hf_abcdefghijklmnopqrstuvwxyz
  nogpu:
    image: vllm/vllm-openai:v0.11.0
    container_name: shared
    ports: ['8001:8000']
  built:
    build:
      context: .
      dockerfil: Dockerfile.engine
",
    );
    let text = rendered(&checked);
    let f = file.display();
    for expected in [
        format!(
            "{f}:4: service typo: unknown service key `comand`\n  hint: did you mean `command`?"
        ),
        format!("{f}:7: service nothing: the service has neither `image` nor `build`"),
        format!("{f}:12: service badport: malformed port `80:80:80:80`"),
        format!(
            "{f}:13: service noport: inference service (vLLM) has no port reachable from the host"
        ),
        format!(
            "{f}:18: service latest: warning: image `lmsysorg/sglang:latest` uses the `latest` tag"
        ),
        format!("{f}:18: service latest: warning: SGLang image without a GPU reservation"),
        format!("{f}:22: service latest: warning: HF_TOKEN holds a literal secret value"),
        format!("{f}:24: service nogpu: warning: vLLM image without a GPU reservation"),
        format!(
            "{f}:25: service nogpu: container name `shared` is also the name of service latest's container"
        ),
        format!(
            "{f}:30: service built: unknown build key `dockerfil`\n  hint: did you mean `dockerfile`?"
        ),
    ] {
        assert!(
            text.contains(&expected),
            "missing:\n{expected}\nin:\n{text}"
        );
    }
    // The secret value itself never appears in a diagnostic.
    assert!(!text.contains("hf_abcdefghijklmnopqrstuvwxyz"), "{text}");
}

#[test]
fn load_fails_with_every_error_and_select_suggests_the_closest_service() {
    let (_scratch, _file, checked) = check_text(
        "fail",
        "services:\n  a:\n    imag: x:1\n  b:\n    image: x:1\n    restart: sometimes\n",
    );
    assert_eq!(
        checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count(),
        3,
        "{}",
        rendered(&checked)
    );

    let project =
        ComposeProject::load(&options(vec![repo_file("dgx-spark.yml")], BTreeMap::new())).unwrap();
    let err = project
        .select(&["vllm-qwen3-30b-fp8".into()], &[])
        .unwrap_err();
    assert!(matches!(err, OrchestratorError::ServiceNotFound { .. }));
    let message = err.to_string();
    assert!(message.starts_with("Service vllm-qwen3-30b-fp8 not found (did you mean vllm-qwen3-30b-a3b-fp8?); services: vllm-qwen3-30b-a3b-fp8, "), "{message}");
    assert!(project.select(&[], &["nope".into()]).is_err());
    let chosen = project
        .select(&[], &["trtllm-qwen3-32b-fp4".into()])
        .unwrap();
    assert_eq!(
        chosen.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        [
            "vllm-qwen3-30b-a3b-fp8",
            "vllm-qwen3-coder-30b-awq",
            "trtllm-qwen3-30b-a3b-fp4"
        ]
    );
}

#[test]
fn discovery_on_the_reference_box_file() {
    let project =
        ComposeProject::load(&options(vec![repo_file("dgx-spark.yml")], BTreeMap::new())).unwrap();
    // No top-level `name:`: the directory names the project.
    assert_eq!(project.name(), "compose");
    let found: Vec<(String, Flavor, u16, Option<String>)> = project
        .inference_services()
        .into_iter()
        .map(|s| (s.name, s.flavor, s.host_port, s.served_model))
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        found,
        [
            (
                "vllm-qwen3-30b-a3b-fp8".into(),
                Flavor::Vllm,
                8000,
                some("Qwen/Qwen3-30B-A3B-Instruct-2507-FP8")
            ),
            (
                "vllm-qwen3-coder-30b-awq".into(),
                Flavor::Vllm,
                8104,
                some("qwen3-coder-30b-awq")
            ),
            (
                "trtllm-qwen3-30b-a3b-fp4".into(),
                Flavor::TensorRtLlm,
                8202,
                some("nvidia/Qwen3-30B-A3B-FP4")
            ),
            (
                "trtllm-qwen3-32b-fp4".into(),
                Flavor::TensorRtLlm,
                8203,
                some("nvidia/Qwen3-32B-FP4")
            ),
        ]
    );
    let first = &project.inference_services()[0];
    assert_eq!(first.base_url, "http://127.0.0.1:8000");
    assert_eq!(first.health_url(), "http://127.0.0.1:8000/health");
    assert_eq!(first.container_name, "vllm-qwen3-30b-a3b-fp8");
    assert!(project.warnings().is_empty(), "{:?}", project.warnings());
}

#[test]
fn discovery_on_the_sim_file_and_profiles() {
    let file = repo_file("sim.yml");
    let faults = repo_file("sim-faults.yml");
    let project = ComposeProject::load(&options(
        vec![file.clone(), faults.clone()],
        env(&[("SIM_TRTLLM_PORT", "19002")]),
    ))
    .unwrap();
    let enabled: Vec<String> = project
        .inference_services()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        enabled,
        [
            "sim-vllm-fp8-moe",
            "sim-trtllm-bf16-dense",
            "sim-llamacpp-q4"
        ]
    );
    let trt = inference(&project, "sim-trtllm-bf16-dense");
    assert_eq!(
        (trt.flavor, trt.host_port, trt.base_url.as_str()),
        (Flavor::TensorRtLlm, 19002, "http://127.0.0.1:19002")
    );
    assert_eq!(trt.served_model.as_deref(), Some("nvidia/Qwen3-32B-FP4"));
    let llama = inference(&project, "sim-llamacpp-q4");
    assert_eq!((llama.flavor, llama.host_port), (Flavor::LlamaCpp, 18103));
    assert_eq!(
        project
            .service("sim-vllm-fp8-moe")
            .unwrap()
            .container_name(),
        "compose-sim-vllm-fp8-moe-1"
    );

    // A service behind a profile is selectable by name, as `docker compose up NAME`.
    let crash = project.select(&["sim-crash-on-load".into()], &[]).unwrap();
    assert_eq!(crash.len(), 1);
    assert!(!crash[0].enabled);
    let with_profile = ComposeProject::load(&LoadOptions {
        profiles: vec!["faults".into()],
        ..options(vec![file.clone(), faults.clone()], BTreeMap::new())
    })
    .unwrap();
    assert_eq!(with_profile.inference_services().len(), 6);
    let from_env = ComposeProject::load(&options(
        vec![file, faults],
        env(&[("COMPOSE_PROFILES", "faults")]),
    ))
    .unwrap();
    assert_eq!(from_env.inference_services().len(), 6);
}

#[test]
fn discovery_forms_and_the_extension() {
    let (_scratch, _file, checked) = check_text(
        "forms",
        "\
services:
  host-net:
    image: vllm/vllm-openai:v0.11.0
    network_mode: host
    command: [\"--model\", \"org/m\", \"--port\", \"8123\"]
    gpus: all
  long-port:
    image: lmsysorg/sglang:v0.5.0
    command: python3 -m sglang.launch_server --model-path org/s --port 30001
    ports:
      - target: 30001
        published: \"31001\"
        host_ip: 127.0.0.2
    gpus: all
  shell:
    image: ghcr.io/ggml-org/llama.cpp:server
    entrypoint: [\"/bin/sh\", \"-c\"]
    command: [\"llama-server -m /models/q.gguf --alias q4 --port 9090 --host 0.0.0.0\"]
    ports: [\"9090:9090\"]
  ollama:
    image: ollama/ollama:0.12.0
    ports: [\"11434:11434\"]
    x-spark-perf: {max_model_len: 32768}
  custom:
    image: my/engine:1
    ports: [\"7000:80\"]
    x-spark-perf:
      inference: true
      model: mine
      health_path: /ready
  excluded:
    image: vllm/vllm-openai:v0.11.0
    x-spark-perf: {inference: false}
  redis:
    image: redis:7
    ports: [\"6379:6379\"]
",
    );
    let text = rendered(&checked);
    let project = checked.project.expect(&text);
    let host = inference(&project, "host-net");
    assert_eq!(
        (host.host_port, host.served_model.as_deref()),
        (8123, Some("org/m"))
    );
    let sglang = inference(&project, "long-port");
    assert_eq!(
        (
            sglang.flavor,
            sglang.base_url.as_str(),
            sglang.served_model.as_deref()
        ),
        (Flavor::Sglang, "http://127.0.0.2:31001", Some("org/s"))
    );
    let llama = inference(&project, "shell");
    assert_eq!(
        (llama.flavor, llama.host_port, llama.served_model.as_deref()),
        (Flavor::LlamaCpp, 9090, Some("q4"))
    );
    let ollama = inference(&project, "ollama");
    assert_eq!(
        (ollama.flavor, ollama.health_path.as_str()),
        (Flavor::Ollama, "/api/version")
    );
    assert_eq!(ollama.max_model_len, Some(32768));
    assert_eq!(llama.max_model_len, None);
    let custom = inference(&project, "custom");
    assert_eq!(
        (
            custom.flavor,
            custom.host_port,
            custom.health_path.as_str(),
            custom.served_model.as_deref()
        ),
        (Flavor::Other, 7000, "/ready", Some("mine"))
    );
    assert!(project.service("excluded").unwrap().inference().is_none());
    assert!(project.service("redis").unwrap().inference().is_none());
    assert!(matches!(
        project.select(&["redis".into()], &[]),
        Err(OrchestratorError::NotAnInferenceService { .. })
    ));
}

#[test]
fn project_name_precedence_and_normalisation() {
    let scratch = Scratch::new("Name_Dir");
    let file = scratch.write("compose.yml", "name: From-File\nservices: {}\n");
    let load = |o: LoadOptions| ComposeProject::load(&o).unwrap().name().to_owned();
    let base = options(vec![file.clone()], BTreeMap::new());
    assert_eq!(load(base.clone()), "from-file");
    assert_eq!(
        load(options(
            vec![file.clone()],
            env(&[("COMPOSE_PROJECT_NAME", "Env.Name")])
        )),
        "envname"
    );
    assert_eq!(
        load(LoadOptions {
            project_name: Some("-P_x".into()),
            ..base
        }),
        "p_x"
    );
    let unnamed = scratch.write("unnamed.yml", "services: {}\n");
    let dir_name = load(options(vec![unnamed], BTreeMap::new()));
    assert_eq!(
        dir_name,
        format!("spt-compose-name_dir-{}", std::process::id())
    );
}

#[test]
fn several_files_merge_like_compose() {
    let scratch = Scratch::new("override");
    let base = scratch.write(
        "compose.yml",
        "services:\n  engine:\n    image: vllm/vllm-openai:v0.10.0\n    command: vllm serve a\n    environment: [A=1, B=2]\n    ports: [\"8000:8000\"]\n    gpus: all\n",
    );
    let overlay = scratch.write(
        "override.yml",
        "services:\n  engine:\n    image: vllm/vllm-openai:v0.11.0\n    command: vllm serve b\n    environment: {B: 3, C: 4}\n    ports: [\"9000:9000\"]\n    x-spark-perf: {port: 9000}\n",
    );
    let project = ComposeProject::load(&options(vec![base, overlay], BTreeMap::new())).unwrap();
    let service = project.service("engine").unwrap();
    assert_eq!(service.image(), "vllm/vllm-openai:v0.11.0");
    assert_eq!(service.environment_names(), ["A", "B", "C"]);
    let engine = inference(&project, "engine");
    assert_eq!(
        (engine.served_model.as_deref(), engine.host_port),
        (Some("b"), 9000)
    );
    assert_eq!(project.config_files().len(), 2);
}

#[test]
fn the_config_hash_ignores_key_order_but_not_values() {
    let hash = |text: &str| {
        let (_scratch, _file, checked) = check_text("hash", text);
        checked
            .project
            .unwrap()
            .service("s")
            .unwrap()
            .config_hash()
            .to_owned()
    };
    let a = hash("services:\n  s:\n    image: redis:7\n    command: [a]\n");
    let b = hash("services:\n  s:\n    command: [a]\n    image: redis:7\n");
    let c = hash("services:\n  s:\n    image: redis:7\n    command: [b]\n");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 64);
}

/// A bounded random walk over compose text: mutations of real files and
/// random bytes. The parser and validator must never panic.
#[test]
fn arbitrary_compose_text_never_panics() {
    let seeds: Vec<String> = ["sim.yml", "dgx-spark.yml"]
        .iter()
        .map(|f| std::fs::read_to_string(repo_file(f)).unwrap())
        .chain([
            "services:\n  a:\n    <<: *x\n".to_owned(),
            "x: &a [*a]\n".to_owned(),
            "services: {a: {image: 'x:1', ports: [{target: 1, published: '2-3'}], volumes: ['a:b:c:d']}}".to_owned(),
        ])
        .collect();
    let alphabet: Vec<&str> = vec![
        "$",
        "${",
        "}",
        ":",
        "-",
        "<<",
        "*",
        "&",
        "\n",
        " ",
        "  ",
        "'",
        "\"",
        "[",
        "]",
        "{",
        "}",
        ",",
        "#",
        "|",
        ">",
        "ports",
        "image",
        "services",
        "x-spark-perf",
        "0",
        "65536",
        "${A:?",
        "$$",
        "\t",
        "é",
        "\0",
        "!!binary",
        "---\n",
    ];
    let scratch = Scratch::new("fuzz");
    let file = scratch.path_for("compose.yml");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for case in 0..1500 {
        let seed = &seeds[case % seeds.len()];
        let mut chars: Vec<char> = seed.chars().collect();
        let n_mutations = 1 + (next() % 8) as usize;
        for _ in 0..n_mutations {
            let pos = (next() as usize) % (chars.len() + 1);
            match next() % 4 {
                0 if !chars.is_empty() => {
                    let end = (pos + (next() % 20) as usize).min(chars.len());
                    chars.drain(pos.min(end)..end);
                }
                1 => {
                    let piece = alphabet[(next() as usize) % alphabet.len()];
                    for (offset, c) in piece.chars().enumerate() {
                        chars.insert(pos + offset, c);
                    }
                }
                2 => chars.insert(pos, char::from_u32((next() % 0x250) as u32).unwrap_or('?')),
                _ => {
                    // Duplicate a line range: repeated keys, odd indentation.
                    let text: String = chars.iter().collect();
                    let lines: Vec<&str> = text.lines().collect();
                    if !lines.is_empty() {
                        let line = lines[(next() as usize) % lines.len()];
                        let at = (next() as usize) % lines.len();
                        let mut out = lines.clone();
                        out.insert(at, line);
                        chars = out.join("\n").chars().collect();
                    }
                }
            }
        }
        let text: String = chars.into_iter().collect();
        std::fs::write(&file, &text).unwrap();
        let result = std::panic::catch_unwind(|| {
            let checked = ComposeProject::check(&options(vec![file.clone()], env(&[("A", "1")])));
            for d in &checked.diagnostics {
                let _ = d.to_string();
            }
            if let Some(project) = checked.project {
                let _ = project.select(&["x".into()], &[]);
                let _ = project.inference_services();
            }
        });
        assert!(result.is_ok(), "case {case} panicked on:\n{text}");
    }
}

impl Scratch {
    fn path_for(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

#[test]
fn selection_by_profiles_and_its_reasons() {
    let files = vec![repo_file("sim.yml"), repo_file("sim-faults.yml")];
    let picked = |profiles: &[&str], only: &[&str]| -> Vec<(String, bool, String)> {
        let project = ComposeProject::load(&LoadOptions {
            profiles: profiles.iter().map(|p| (*p).to_owned()).collect(),
            ..options(files.clone(), BTreeMap::new())
        })
        .unwrap();
        let only: Vec<String> = only.iter().map(|o| (*o).to_owned()).collect();
        project
            .selection(&only, &[])
            .unwrap()
            .into_iter()
            .map(|s| (s.service.name, s.selected, s.reason))
            .collect()
    };
    let selected = |all: &[(String, bool, String)]| -> Vec<String> {
        all.iter()
            .filter(|(_, on, _)| *on)
            .map(|(name, _, _)| name.clone())
            .collect()
    };
    // No active profile: every engine, behind a profile or not, in turn.
    let default = picked(&[], &[]);
    assert_eq!(
        selected(&default),
        [
            "sim-vllm-fp8-moe",
            "sim-trtllm-bf16-dense",
            "sim-llamacpp-q4",
            "sim-crash-on-load",
            "sim-crash-loop",
            "sim-never-ready"
        ]
    );
    let crash = default
        .iter()
        .find(|(name, _, _)| name == "sim-crash-on-load")
        .unwrap();
    assert_eq!(
        crash.2,
        "behind profile faults; engines behind profiles are benchmarked in turn by default (--profile faults benchmarks only those)"
    );
    // Naming a profile names the engines: only those in it.
    let faults = picked(&["faults"], &[]);
    assert_eq!(
        selected(&faults),
        ["sim-crash-on-load", "sim-crash-loop", "sim-never-ready"]
    );
    assert!(
        faults
            .iter()
            .any(|(name, on, why)| name == "sim-vllm-fp8-moe"
                && !on
                && why.starts_with("has no profile, and the active profiles (faults)")),
        "{faults:?}"
    );
    // --only wins over profiles.
    assert_eq!(
        selected(&picked(&["faults"], &["sim-llamacpp-q4"])),
        ["sim-llamacpp-q4"]
    );
}

#[test]
fn engines_all_behind_profiles_are_each_selected() {
    let (_scratch, _file, checked) = check_text(
        "all-profiled",
        "services:\n  a:\n    image: vllm/vllm-openai:v1\n    profiles: [a]\n    gpus: all\n    ports: [\"8000:8000\"]\n  b:\n    image: vllm/vllm-openai:v1\n    profiles: [b]\n    gpus: all\n    ports: [\"8001:8000\"]\n  db:\n    image: redis:7\n    profiles: [b]\n",
    );
    let project = checked.project.expect("valid");
    let names: Vec<String> = project
        .select(&[], &[])
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    // Compose's rules still say which services are on.
    assert!(!project.service("db").unwrap().enabled());
    assert!(project.inference_services().is_empty());
}

#[test]
fn a_port_without_a_host_port_is_assigned_by_docker() {
    let (_scratch, _file, checked) = check_text(
        "assigned",
        "services:\n  a:\n    image: spark-sim:dev\n    ports: [\"8000\"]\n  b:\n    image: spark-sim:dev\n    ports: [\"[::1]::8000\", \"9090:9090\"]\n  c:\n    image: spark-sim:dev\n    ports: [\"8001:8000\"]\n",
    );
    let project = checked.project.expect("valid");
    let a = inference(&project, "a");
    let port = a.assigned_port.clone().expect("assigned by Docker");
    assert_eq!((port.container_port, port.host_ip), (8000, None));
    assert_eq!((a.host_port, a.host_port_known()), (0, false));
    // Once read back from the container, the URL follows.
    let started = a.with_host_port(49153);
    assert_eq!(
        (started.host_port, started.base_url.as_str()),
        (49153, "http://127.0.0.1:49153")
    );
    // The engine's own port listed without a host port wins over another
    // published port; the host address stays.
    let b = inference(&project, "b");
    assert_eq!(
        b.assigned_port.clone().and_then(|p| p.host_ip).as_deref(),
        Some("::1")
    );
    assert_eq!(b.base_url.clone(), "http://[::1]:0".to_owned());
    assert_eq!(
        b.clone().with_host_port(40000).base_url,
        "http://[::1]:40000"
    );
    let c = inference(&project, "c");
    assert!(c.host_port_known());
    assert_eq!(c.host_port, 8001);
}

#[test]
fn a_key_written_twice_is_reported_at_its_second_line() {
    let (_scratch, file, checked) = check_text(
        "duplicate-service",
        "services:\n  a:\n    image: redis:7\n  b:\n    image: redis:7\n\n  a:\n    image: redis:8\n",
    );
    assert!(checked.has_errors());
    assert_eq!(
        rendered(&checked),
        format!(
            "{}:7: service a: service `a` is defined twice (first at line 2)\n  hint: YAML keeps one value per key: merge the two, or rename one",
            file.display()
        )
    );
    let (_scratch, file, checked) = check_text(
        "duplicate-env",
        "services:\n  a:\n    image: redis:7\n    ports:\n      - target: 8000\n        published: 8000\n        target: 8001\n    environment:\n      X: 1\n",
    );
    let text = rendered(&checked);
    assert!(
        text.starts_with(&format!(
            "{}:7: service a: `target` is written twice under `services.a.ports[0]` (first at line 5)",
            file.display()
        )),
        "{text}"
    );
    let (_scratch, file, checked) = check_text(
        "duplicate-top",
        "services:\n  a:\n    image: redis:7\nservices:\n  b:\n    image: redis:7\n",
    );
    let text = rendered(&checked);
    assert!(
        text.starts_with(&format!(
            "{}:4: `services` is written twice under `the top level` (first at line 1)",
            file.display()
        )),
        "{text}"
    );
}

#[test]
fn depends_on_conditions_order_and_errors() {
    let (_scratch, _file, checked) = check_text(
        "depends",
        "services:\n  engine:\n    image: vllm/vllm-openai:v1\n    gpus: all\n    ports: [\"8000:8000\"]\n    depends_on:\n      gateway:\n        condition: service_healthy\n      download:\n        condition: service_completed_successfully\n        required: false\n        restart: true\n  gateway:\n    image: nginx:1.27\n    depends_on: [download, db]\n  download:\n    image: busybox:1.36\n  db:\n    image: redis:7\n",
    );
    let project = checked.project.expect("valid");
    let direct: Vec<(String, DependencyCondition, bool, bool)> = project
        .service("engine")
        .unwrap()
        .depends_on()
        .iter()
        .map(|d| (d.service.clone(), d.condition, d.required, d.restart))
        .collect();
    assert_eq!(
        direct,
        [
            (
                "gateway".to_owned(),
                DependencyCondition::Healthy,
                true,
                false
            ),
            (
                "download".to_owned(),
                DependencyCondition::CompletedSuccessfully,
                false,
                true
            ),
        ]
    );
    // Start order: each after its own dependencies, each once.
    let order: Vec<(String, DependencyCondition)> = project
        .dependencies("engine")
        .into_iter()
        .map(|d| (d.service, d.condition))
        .collect();
    assert_eq!(
        order,
        [
            ("download".to_owned(), DependencyCondition::Started),
            ("db".to_owned(), DependencyCondition::Started),
            ("gateway".to_owned(), DependencyCondition::Healthy),
        ]
    );

    let (_scratch, file, checked) = check_text(
        "depends-bad",
        "services:\n  a:\n    image: vllm/vllm-openai:v1\n    gpus: all\n    ports: [\"8000:8000\"]\n    depends_on:\n      b:\n        condition: service_ready\n  b:\n    image: vllm/vllm-openai:v1\n    gpus: all\n    ports: [\"8001:8000\"]\n    depends_on: [c, nope]\n  c:\n    image: redis:7\n    depends_on: [b]\n",
    );
    let text = rendered(&checked);
    let f = file.display();
    for expected in [
        format!("{f}:7: service a: inference service `a` depends on inference service `b`"),
        format!("{f}:8: service a: `service_ready` is not a depends_on condition"),
        format!(
            "{f}:13: service b: depends_on names `nope`, which is not a service of the project"
        ),
        format!("{f}:13: service b: depends_on cycle: b → c → b"),
        format!("{f}:16: service c: depends_on cycle: c → b → c"),
    ] {
        assert!(text.contains(&expected), "{expected}\nin:\n{text}");
    }
}

#[test]
fn the_depends_on_fixture_orders_the_downloader_first() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../spark-perf/tests/fixtures/compose/depends-on.yml");
    let project = ComposeProject::load(&options(vec![file], BTreeMap::new())).unwrap();
    let order: Vec<(String, DependencyCondition, bool)> = project
        .dependencies("vllm")
        .into_iter()
        .map(|d| (d.service, d.condition, d.required))
        .collect();
    assert_eq!(
        order,
        [
            (
                "download".to_owned(),
                DependencyCondition::CompletedSuccessfully,
                true
            ),
            ("cache".to_owned(), DependencyCondition::Healthy, false),
        ]
    );
    assert_eq!(
        project
            .inference_services()
            .into_iter()
            .map(|s| s.name)
            .collect::<Vec<_>>(),
        ["vllm"]
    );
}

#[test]
fn host_config_keys_with_bad_values_are_errors_at_their_line() {
    let (_scratch, file, checked) = check_text(
        "host-bad",
        "services:\n  a:\n    image: redis:7\n    pids_limit: lots\n    cpu_percent: 150\n    oom_score_adj: -2000\n    mem_reservation: 1zb\n    cpu_quota: soon\n    oom_kill_disable: maybe\n    mac_address: 02:42\n",
    );
    let text = rendered(&checked);
    let f = file.display();
    for expected in [
        format!("{f}:4: service a: `pids_limit` must be a whole number from -1 to"),
        format!("{f}:5: service a: `cpu_percent` must be a whole number from 0 to 100, not `150`"),
        format!("{f}:6: service a: `oom_score_adj` must be a whole number from -1000 to 1000"),
        format!("{f}:7: service a: `1zb` is not a size"),
        format!("{f}:8: service a: `cpu_quota` must be microseconds or a duration"),
        format!("{f}:9: service a: `oom_kill_disable` must be true or false"),
        format!("{f}:10: service a: `02:42` is not a MAC address"),
    ] {
        assert!(text.contains(&expected), "{expected}\nin:\n{text}");
    }
}

#[test]
fn undeclared_and_unreadable_secrets_are_errors_without_their_values() {
    let scratch = Scratch::new("secrets-bad");
    let file = scratch.write(
        "compose.yml",
        "services:\n  a:\n    image: redis:7\n    secrets: [nope, missing_file, from_env]\nsecrets:\n  missing_file:\n    file: ./absent.txt\n  from_env:\n    environment: UNSET_FIXTURE_VAR\n  swarm:\n    external: true\n",
    );
    let checked = ComposeProject::check(&options(vec![file.clone()], BTreeMap::new()));
    let text = rendered(&checked);
    let f = file.display();
    for expected in [
        format!("{f}:4: service a: secrets `nope` is not declared under the top-level `secrets:`"),
        format!("{f}:7: secrets `missing_file`: file "),
        format!("{f}:9: secrets `from_env`: the UNSET_FIXTURE_VAR variable is not set"),
        format!("{f}:10: external secrets (swarm) are not supported by spark-perf"),
    ] {
        assert!(text.contains(&expected), "{expected}\nin:\n{text}");
    }
}

#[test]
fn extends_from_another_file_and_from_this_one() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../spark-perf/tests/fixtures/compose/extends.yml");
    let project = ComposeProject::load(&options(vec![file], BTreeMap::new())).unwrap();
    let qwen = project.service("qwen").unwrap();
    assert_eq!(qwen.image(), "vllm/vllm-openai:v0.11.0");
    assert_eq!(
        qwen.environment_names(),
        ["HF_HUB_OFFLINE", "VLLM_LOGGING_LEVEL"]
    );
    let long = inference(&project, "qwen-long");
    assert_eq!(
        (long.host_port, long.served_model.as_deref()),
        (8000, Some("qwen-long"))
    );
    // Through the chain, the environment of the other file's base.
    assert_eq!(
        project.service("qwen-long").unwrap().environment_names(),
        ["HF_HUB_OFFLINE", "VLLM_LOGGING_LEVEL"]
    );

    let (_scratch, file, checked) = check_text(
        "extends-bad",
        "services:\n  a:\n    extends: b\n    image: redis:7\n  b:\n    extends: {service: a}\n    image: redis:7\n  c:\n    extends: nope\n    image: redis:7\n",
    );
    let text = rendered(&checked);
    let f = file.display();
    for expected in [
        format!("{f}:3: service a: `extends` cycle: a → b → a"),
        format!(
            "{f}:9: service c: `extends` names service `nope`, which this project does not define"
        ),
    ] {
        assert!(text.contains(&expected), "{expected}\nin:\n{text}");
    }
}

#[test]
fn a_link_to_an_undefined_service_is_an_error() {
    let (_scratch, file, checked) = check_text(
        "links-bad",
        "services:\n  a:\n    image: redis:7\n    links: [bb]\n  b:\n    image: redis:7\n",
    );
    let text = rendered(&checked);
    assert!(
        text.contains(&format!(
            "{}:4: service a: links names `bb`, which is not a service of the project\n  hint: did you mean `b`?",
            file.display()
        )),
        "{text}"
    );
}

#[test]
fn reset_and_override_tags_in_extends_and_several_files() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../spark-perf/tests/fixtures/compose/extends.yml");
    let project = ComposeProject::load(&options(vec![file], BTreeMap::new())).unwrap();
    let own = inference(&project, "qwen-own-port");
    assert_eq!(own.host_port, 8002);
    let service = project.service("qwen-own-port").unwrap();
    assert_eq!(service.environment_names(), ["HF_HUB_OFFLINE"]);

    let scratch = Scratch::new("tags");
    let base = scratch.write(
        "compose.yml",
        "services:\n  a:\n    image: spark-sim:dev\n    ports: [\"9000:8000\", \"9001:8001\"]\n    environment: {A: \"1\", B: \"2\"}\n    labels: {x: \"1\"}\n",
    );
    let overlay = scratch.write(
        "override.yml",
        "services:\n  a:\n    ports: !override [\"9100:8000\"]\n    environment: !reset {}\n    labels: !reset null\n",
    );
    let project =
        ComposeProject::load(&options(vec![base.clone(), overlay], BTreeMap::new())).unwrap();
    let a = inference(&project, "a");
    assert_eq!(a.host_port, 9100);
    assert!(project.service("a").unwrap().environment_names().is_empty());
    // Without the tags the lists add up, as before.
    let plain = scratch.write("plain.yml", "services:\n  a:\n    ports: [\"9100:8000\"]\n");
    let project = ComposeProject::load(&options(vec![base, plain], BTreeMap::new())).unwrap();
    assert_eq!(inference(&project, "a").host_port, 9000);
}

#[test]
fn include_brings_in_another_files_services_and_rejects_a_clash() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../spark-perf/tests/fixtures/compose/include.yml");
    let project = ComposeProject::load(&options(vec![file], BTreeMap::new())).unwrap();
    let names: Vec<(String, u16)> = project
        .select(&[], &[])
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.host_port))
        .collect();
    assert_eq!(
        names,
        [
            ("included-engine".to_owned(), 18020),
            ("own-engine".to_owned(), 18021)
        ]
    );

    let scratch = Scratch::new("include-clash");
    scratch.write("other.yml", "services:\n  a:\n    image: redis:7\n");
    let file = scratch.write(
        "compose.yml",
        "include:\n  - other.yml\nservices:\n  a:\n    image: redis:8\n",
    );
    let checked = ComposeProject::check(&options(vec![file.clone()], BTreeMap::new()));
    let text = rendered(&checked);
    assert!(
        text.contains(&format!(
            "{}:4: service a: the service is also defined by the included file",
            file.display()
        )),
        "{text}"
    );
}

#[test]
fn build_short_and_long_form_relative_context_and_the_default_tag() {
    let scratch = Scratch::new("build");
    std::fs::create_dir_all(scratch.0.join("engine")).unwrap();
    let file = scratch.write(
        "compose.yml",
        "\
name: bench
services:
  short:
    build: ./engine
    x-spark-perf: {inference: false}
  long:
    image: registry.example/engine:1.2
    build:
      context: engine
      dockerfile: docker/Dockerfile.gpu
      target: runtime
      args:
        VERSION: ${ENGINE_VERSION:-0.11}
        TOKEN_FROM_SHELL:
        UNSET_ARG:
      labels: [org.example.stage=bench]
    x-spark-perf: {inference: false}
  listed:
    build:
      args: [A=1, B]
    x-spark-perf: {inference: false}
",
    );
    let project = ComposeProject::load(&options(
        vec![file],
        env(&[("TOKEN_FROM_SHELL", "tok-secret-1"), ("B", "from-env")]),
    ))
    .unwrap();
    assert!(project.warnings().is_empty(), "{:?}", project.warnings());
    let dir = std::path::absolute(&scratch.0).unwrap();

    // Without `image:`, compose v2's name: project, `-`, service (no tag,
    // so the daemon tags it `latest`).
    let short = project.service("short").unwrap();
    assert_eq!(short.image(), "bench-short");
    let build = short.build().unwrap();
    assert_eq!(build.context(), dir.join("engine"));
    assert_eq!(build.dockerfile(), "Dockerfile");
    assert_eq!(build.target(), None);
    assert!(build.arg_names().is_empty());

    // With `image:`, the build is tagged with it.
    let long = project.service("long").unwrap();
    assert_eq!(long.image(), "registry.example/engine:1.2");
    let build = long.build().unwrap();
    assert_eq!(build.context(), dir.join("engine"));
    assert_eq!(build.dockerfile(), "docker/Dockerfile.gpu");
    assert_eq!(build.target(), Some("runtime"));
    // A name without a value takes it from the environment, and is left out
    // when it has none.
    assert_eq!(build.arg_names(), ["TOKEN_FROM_SHELL", "VERSION"]);
    assert_eq!(
        build.labels().get("org.example.stage").map(String::as_str),
        Some("bench")
    );
    // A value never shows in the model's Debug.
    assert!(!format!("{build:?}").contains("tok-secret-1"), "{build:?}");

    // The long form without `context` builds the project directory.
    let listed = project.service("listed").unwrap();
    assert_eq!(listed.build().unwrap().context(), dir);
    assert_eq!(listed.build().unwrap().arg_names(), ["A", "B"]);

    // `build` counts in the config hash.
    let changed = scratch.write(
        "changed.yml",
        "name: bench\nservices:\n  short:\n    build: ./other\n    x-spark-perf: {inference: false}\n",
    );
    let same = scratch.write(
        "same.yml",
        "name: bench\nservices:\n  short:\n    build: ./engine\n    x-spark-perf: {inference: false}\n",
    );
    let hash = |file: PathBuf| {
        ComposeProject::load(&options(vec![file], BTreeMap::new()))
            .unwrap()
            .service("short")
            .unwrap()
            .config_hash()
            .to_owned()
    };
    assert_eq!(hash(same.clone()), short.config_hash());
    assert_ne!(hash(changed), hash(same));
}

#[test]
fn build_keys_spark_perf_does_not_apply_are_diagnosed() {
    let (_scratch, file, checked) = check_text(
        "build-keys",
        "\
services:
  engine:
    build:
      context: .
      targte: runtime
      ssh: [default]
      cache_from: [engine:cache]
      args: 3
    x-spark-perf: {inference: false}
  remote:
    build: https://github.com/example/engine.git#main
    x-spark-perf: {inference: false}
",
    );
    let text = rendered(&checked);
    let f = file.display();
    for expected in [
        format!(
            "{f}:5: service engine: unknown build key `targte`\n  hint: did you mean `target`?"
        ),
        format!("{f}:6: service engine: `build.ssh` is not supported by spark-perf"),
        format!("{f}:7: service engine: warning: `build.cache_from` is ignored by spark-perf"),
        format!("{f}:8: service engine: `args` must be a mapping or a list of KEY=VALUE"),
        format!(
            "{f}:11: service remote: a remote build context (`https://github.com/example/engine.git#main`) is not supported by spark-perf"
        ),
    ] {
        assert!(
            text.contains(&expected),
            "missing:\n{expected}\nin:\n{text}"
        );
    }
}
