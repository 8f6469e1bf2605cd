//! A differential check against the compose CLI: for every file in
//! `compose/` and in the CLI's fixtures, what spark-perf derives (services,
//! images, commands, environment names, ports, mount targets, the build's
//! context, Dockerfile, target and argument names) agrees with
//! `docker-compose config` (v1, 1.29 on these machines). Skipped, with the
//! reason printed, when no `docker-compose` is installed.
//!
//! Known compose-version differences, listed with the reason: compose v1
//! predates parts of the compose specification and rejects files that use
//! them, so those files are checked only for being rejected by v1 (a newer
//! v1 that reads them fails the test, and the entry goes).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

use super::units::split_shell_words;
use super::{ComposeProject, LoadOptions, MountSpec, scalar_text};

/// Files v1 cannot read, and why.
const V1_REJECTS: &[(&str, &str)] = &[
    (
        "llamacpp.yml",
        "a nested default with `~` came after compose v1",
    ),
    ("profiles.yml", "`gpus:` came after compose v1"),
    (
        "depends-on.yml",
        "`name:` and `gpus:` came after compose v1",
    ),
    (
        "host-settings.yml",
        "`name:` and `uts:` came after compose v1",
    ),
    (
        "secrets.yml",
        "environment secrets and config `content:` came after v1",
    ),
    (
        "extends.yml",
        "the `!override` and `!reset` tags came after compose v1",
    ),
    (
        "include.yml",
        "the top-level `include:` came after compose v1",
    ),
];

/// Files compared with their top-level `name:` line left out of the copy
/// v1 reads (v1 predates the key; no compared field depends on it).
const V1_WITHOUT_NAME: &[&str] = &[
    "rocm.yml",
    "ephemeral-port.yml",
    "links.yml",
    "build.yml",
    "tgi.yml",
];

fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["compose", "crates/spark-perf/tests/fixtures/compose"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        files.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml")),
        );
    }
    files.sort();
    files
}

/// One service as compared: (image, command words, environment names,
/// (published, target) ports, mount targets, build).
type Derived = (
    String,
    Option<Vec<String>>,
    Vec<String>,
    Vec<(Option<u16>, u16)>,
    Vec<String>,
    Option<Build>,
);

/// A build as compared: (context, Dockerfile, target, argument names).
type Build = (PathBuf, String, Option<String>, Vec<String>);

fn ours(project: &ComposeProject, name: &str) -> Derived {
    let s = project.service(name).expect("service");
    let mut ports: Vec<(Option<u16>, u16)> =
        s.ports.iter().map(|p| (p.published, p.target)).collect();
    ports.sort_unstable();
    let mut mounts: Vec<String> = s
        .mounts
        .iter()
        .map(|m| match m {
            MountSpec::Bind { target, .. }
            | MountSpec::Volume { target, .. }
            | MountSpec::Anonymous { target }
            | MountSpec::Tmpfs { target } => target.clone(),
        })
        .collect();
    mounts.sort();
    let build = s.build.as_ref().map(|b| {
        (
            b.context.clone(),
            b.dockerfile.clone(),
            b.target.clone(),
            b.arg_names(),
        )
    });
    // v1 names a build without `image:` `<project>_<service>` and does not
    // write it in `config`; compose v2's `<project>-<service>` is checked
    // by the model's tests.
    let default_tag = format!("{}-{}", project.name(), s.name);
    let image = if s.build.is_some() && s.image == default_tag {
        String::new()
    } else {
        s.image.clone()
    };
    (
        image,
        s.command.clone(),
        s.environment_names(),
        ports,
        mounts,
        build,
    )
}

fn theirs(service: &Value) -> Derived {
    let text = |k: &str| service.get(k).and_then(scalar_text);
    let command = match service.get("command") {
        None => None,
        Some(Value::Sequence(items)) => Some(items.iter().filter_map(scalar_text).collect()),
        Some(other) => scalar_text(other).and_then(|t| split_shell_words(&t)),
    };
    let mut environment: Vec<String> = match service.get("environment") {
        Some(Value::Mapping(m)) => m.keys().filter_map(scalar_text).collect(),
        _ => Vec::new(),
    };
    environment.sort();
    let mut ports: Vec<(Option<u16>, u16)> = match service.get("ports") {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|p| {
                // v1 writes `IP:PUBLISHED:TARGET/PROTO` when there is a host IP.
                if let Some(short) = p.as_str() {
                    let short = short.split('/').next()?;
                    let parts: Vec<&str> = short.rsplitn(3, ':').collect();
                    let target = parts.first()?.parse().ok()?;
                    let published = parts.get(1).and_then(|p| p.parse().ok());
                    return Some((published, target));
                }
                let target = p.get("target").and_then(scalar_text)?.parse().ok()?;
                let published = p
                    .get("published")
                    .and_then(scalar_text)
                    .and_then(|t| t.parse().ok());
                Some((published, target))
            })
            .collect(),
        _ => Vec::new(),
    };
    ports.sort_unstable();
    let mut mounts: Vec<String> = match service.get("volumes") {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::Mapping(m) => m.get("target").and_then(scalar_text),
                other => scalar_text(other).and_then(|t| {
                    let parts: Vec<&str> = t.split(':').collect();
                    match parts.as_slice() {
                        [target] => Some((*target).to_owned()),
                        [_, target, ..] => Some((*target).to_owned()),
                        [] => None,
                    }
                }),
            })
            .collect(),
        _ => Vec::new(),
    };
    mounts.extend(
        service
            .get("tmpfs")
            .map(|t| match t {
                Value::Sequence(items) => items.iter().filter_map(scalar_text).collect(),
                other => scalar_text(other).into_iter().collect::<Vec<_>>(),
            })
            .unwrap_or_default(),
    );
    mounts.sort();
    let build = service.get("build").map(|b| {
        let get = |k: &str| b.get(k).and_then(scalar_text);
        let mut args: Vec<String> = match b.get("args") {
            Some(Value::Mapping(m)) => m.keys().filter_map(scalar_text).collect(),
            _ => Vec::new(),
        };
        args.sort();
        (
            PathBuf::from(get("context").unwrap_or_default()),
            get("dockerfile").unwrap_or_else(|| "Dockerfile".to_owned()),
            get("target"),
            args,
        )
    });
    (
        text("image").unwrap_or_default(),
        command,
        environment,
        ports,
        mounts,
        build,
    )
}

#[test]
fn what_spark_perf_derives_agrees_with_docker_compose_config() {
    let Ok(version) = Command::new("docker-compose").arg("version").output() else {
        eprintln!("skipped: no docker-compose on PATH");
        return;
    };
    if !version.status.success() {
        eprintln!("skipped: docker-compose does not run");
        return;
    }
    let mut compared = 0;
    for file in files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let dir = file.parent().unwrap();
        // Beside the file, so that relative paths (a build context) resolve
        // as they do for the original; not `.yml`, so no listing picks it up.
        let scratch = dir.join(format!(".{name}.spt-v1-{}", std::process::id()));
        let v1_file = if V1_WITHOUT_NAME.contains(&name.as_str()) {
            let text = std::fs::read_to_string(&file).unwrap();
            let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("name:")).collect();
            std::fs::write(&scratch, kept.join("\n")).unwrap();
            scratch.clone()
        } else {
            file.clone()
        };
        let output = Command::new("docker-compose")
            .arg("-f")
            .arg(&v1_file)
            .args(["config"])
            .current_dir(dir)
            .env_remove("COMPOSE_PROFILES")
            .env_remove("COMPOSE_FILE")
            .output()
            .expect("docker-compose runs");
        let _ = std::fs::remove_file(&scratch);
        let known = V1_REJECTS.iter().find(|(f, _)| *f == name);
        if let Some((_, why)) = known {
            assert!(
                !output.status.success(),
                "{name}: listed as rejected by compose v1 ({why}), but v1 reads it: drop the entry"
            );
            continue;
        }
        assert!(
            output.status.success(),
            "{name}: docker-compose config failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let config: Value = serde_yaml::from_slice(&output.stdout).expect("compose prints YAML");
        let project = ComposeProject::load(&LoadOptions {
            files: vec![file.clone()],
            environment: std::env::vars()
                .filter(|(k, _)| !k.starts_with("COMPOSE_"))
                .collect(),
            ..LoadOptions::default()
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(Value::Mapping(services)) = config.get("services") else {
            panic!("{name}: no services in the compose output");
        };
        let mut their_names: Vec<String> = services.keys().filter_map(scalar_text).collect();
        their_names.sort();
        let mut our_names: Vec<String> = project
            .services()
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        our_names.sort();
        assert_eq!(our_names, their_names, "{name}: services");
        for (key, service) in services {
            let service_name = scalar_text(key).unwrap();
            assert_eq!(
                ours(&project, &service_name),
                theirs(service),
                "{name}: service {service_name}: (image, command, environment names, ports, mount targets, build)"
            );
        }
        compared += 1;
    }
    assert!(compared >= 1, "no file was compared");
}
