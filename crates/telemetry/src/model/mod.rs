//! The size on disk of the model a service serves, found from what it runs
//! (the command) and what it mounts: a GGUF file (`-m /models/x.gguf`), a
//! model directory (`--model /models/llama`), or a Hugging Face cache
//! (`vllm serve ORG/NAME` with a cache bind-mounted, `models--ORG--NAME`).
//! Whatever cannot be found is N/A with the reason, never an error.
//!
//! [`locate`] is the pure part (what the command names, where a container
//! path is on the host); this module reads the disk.

mod locate;
mod measure;

use std::path::Path;

use spark_results::ModelSize;

pub use locate::{Located, ModelRef, Mount, MountKind, locate, model_ref};

/// The model's size, from the container's effective command (entrypoint,
/// then command) and its mounts.
pub fn size(command: &[String], mounts: &[Mount]) -> ModelSize {
    match model_ref(command) {
        None => ModelSize::unavailable(
            "the command names no model (-m, --model, --model-path, --model-id or serve ORG/NAME)",
        ),
        Some(ModelRef::Repo(repo)) => hf_cache_size(&repo, mounts),
        Some(ModelRef::Path(path)) => match locate(&path, mounts) {
            Located::Host(host) => on_host(&host, &path, None),
            Located::Volume {
                name,
                host: Some(host),
            } => on_host(&host, &path, Some(&name)),
            Located::Volume { name, host: None } => ModelSize::unavailable(format!(
                "the model {path} is in the named volume {name}, of which the daemon gave no host path"
            )),
            Located::Ephemeral(target) => ModelSize::unavailable(format!(
                "the model {path} is on {target}, a tmpfs or anonymous volume"
            )),
            Located::Image => ModelSize::unavailable(format!(
                "the model {path} is inside the image (no mount covers it)"
            )),
            Located::Relative => ModelSize::unavailable(format!(
                "the model path {path} is relative to the container's working directory"
            )),
        },
    }
}

/// A file or directory on this machine that holds the container's `path`.
fn on_host(host: &Path, path: &str, volume: Option<&str>) -> ModelSize {
    let cannot = |err: std::io::Error| {
        ModelSize::unavailable(match volume {
            Some(name) => format!(
                "the model {path} is in the named volume {name}, whose data {} cannot be read here: {err}",
                host.display()
            ),
            None => format!(
                "{} (the container's {path}) cannot be read: {err}",
                host.display()
            ),
        })
    };
    let meta = match std::fs::metadata(host) {
        Ok(meta) => meta,
        Err(err) => return cannot(err),
    };
    let (bytes, kind) = if meta.is_dir() {
        (measure::directory_size(host), "directory")
    } else if path.ends_with(".gguf") {
        (measure::file_size(host), "gguf")
    } else {
        (measure::file_size(host), "file")
    };
    match bytes {
        Ok(bytes) => ModelSize {
            bytes: Some(bytes),
            path: Some(host.display().to_string()),
            kind: Some(kind.to_owned()),
            unavailable: None,
        },
        Err(err) => cannot(err),
    }
}

/// A Hugging Face repository's snapshot in a cache under one of the mounts.
fn hf_cache_size(repo: &str, mounts: &[Mount]) -> ModelSize {
    let roots = mounts
        .iter()
        .filter(|m| matches!(m.kind, MountKind::Bind | MountKind::Volume))
        .filter_map(|m| m.source.as_deref());
    for root in roots {
        let Some(repo_dir) = measure::find_hf_repo(root, repo) else {
            continue;
        };
        let Some(snapshot) = measure::hf_snapshot(&repo_dir) else {
            continue;
        };
        return match measure::directory_size(&snapshot) {
            Ok(bytes) => ModelSize {
                bytes: Some(bytes),
                path: Some(snapshot.display().to_string()),
                kind: Some("hf_cache".to_owned()),
                unavailable: None,
            },
            Err(err) => ModelSize::unavailable(format!(
                "the Hugging Face snapshot {} cannot be read: {err}",
                snapshot.display()
            )),
        };
    }
    ModelSize::unavailable(format!(
        "no Hugging Face cache of {repo} (models--{}/snapshots) under the service's mounts",
        repo.replace('/', "--")
    ))
}
