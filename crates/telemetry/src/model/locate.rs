//! Where a service's model is, from its command and mounts, without touching
//! the disk: the model the command names (a path or a Hugging Face
//! repository), and a path inside the container mapped back to the host
//! through the mounts.

use std::path::{Component, Path, PathBuf};

/// How a directory gets into the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// A host path (`./models:/models`).
    Bind,
    /// A named volume; its `source` is its data directory on the daemon's
    /// host when the daemon said.
    Volume,
    /// Anything else (tmpfs, an anonymous volume).
    Other,
}

/// One mount of the container, as the daemon (or the compose file) has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountKind,
    /// The host path of a bind, the data directory of a volume.
    pub source: Option<PathBuf>,
    /// The volume's name.
    pub name: Option<String>,
    /// The path inside the container.
    pub target: String,
}

/// The model a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A path inside the container (`-m /models/x.gguf`, `--model /models/llama`).
    Path(String),
    /// A Hugging Face repository (`vllm serve ORG/NAME`, `--model ORG/NAME`).
    Repo(String),
}

/// Flags whose value is the model, in the engines spark-perf knows: vLLM
/// and SGLang `--model`/`--model-path`, llama-server `-m`/`--model`,
/// TGI's `--model-id`.
const MODEL_FLAGS: &[&str] = &["-m", "--model", "--model-path", "--model-id"];

/// Words after which the next positional word is the model (`vllm serve
/// ORG/NAME`, `trtllm-serve ORG/NAME`).
const SERVE_WORDS: &[&str] = &["serve", "trtllm-serve"];

/// The model `command` (entrypoint, then command) names, if any.
pub fn model_ref(command: &[String]) -> Option<ModelRef> {
    let mut words = command.iter().map(String::as_str).peekable();
    let mut positional = None;
    let mut previous = "";
    while let Some(word) = words.next() {
        let after_python = std::mem::replace(&mut previous, word);
        if word == "-m" && is_python(after_python) {
            // `python3 -m vllm.entrypoints...`: a module, not a model.
            previous = words.next().unwrap_or_default();
            continue;
        }
        if let Some((flag, value)) = word.split_once('=')
            && MODEL_FLAGS.contains(&flag)
        {
            return Some(classify(value));
        }
        if MODEL_FLAGS.contains(&word) {
            return words.next().map(classify);
        }
        let serve = SERVE_WORDS.contains(&word)
            || Path::new(word).file_name().and_then(|n| n.to_str()) == Some("trtllm-serve");
        if serve
            && positional.is_none()
            && let Some(next) = words.peek()
            && !next.starts_with('-')
        {
            positional = Some(classify(next));
        }
    }
    positional
}

fn is_python(word: &str) -> bool {
    Path::new(word)
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("python"))
}

/// A path when it looks like one, else a repository `ORG/NAME`.
fn classify(value: &str) -> ModelRef {
    let is_repo = !value.starts_with(['/', '.', '~'])
        && !value.ends_with(".gguf")
        && value.split('/').count() == 2
        && value.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if is_repo {
        ModelRef::Repo(value.to_owned())
    } else {
        ModelRef::Path(value.to_owned())
    }
}

/// Where a path inside the container lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// On the host, through a bind mount.
    Host(PathBuf),
    /// In a named volume: its name and, when the daemon gave it, the path
    /// in its data directory.
    Volume { name: String, host: Option<PathBuf> },
    /// In a tmpfs or anonymous volume: nothing of it outlives the container.
    Ephemeral(String),
    /// No mount covers it: the image's own files.
    Image,
    /// Not an absolute path: relative to a working directory we do not map.
    Relative,
}

/// Maps `path` (inside the container) through the mount whose target is its
/// longest prefix, component by component (`/models` covers `/models/x`,
/// not `/models2/x`).
pub fn locate(path: &str, mounts: &[Mount]) -> Located {
    if !path.starts_with('/') {
        return Located::Relative;
    }
    let path = normalize(Path::new(path));
    let best = mounts
        .iter()
        .filter_map(|mount| {
            let target = normalize(Path::new(&mount.target));
            let rest = path.strip_prefix(&target).ok()?;
            Some((target.components().count(), mount, rest.to_owned()))
        })
        .max_by_key(|(depth, ..)| *depth);
    let Some((_, mount, rest)) = best else {
        return Located::Image;
    };
    let joined = |source: &Path| {
        if rest.as_os_str().is_empty() {
            source.to_owned()
        } else {
            source.join(&rest)
        }
    };
    match mount.kind {
        MountKind::Bind => match &mount.source {
            Some(source) => Located::Host(joined(source)),
            None => Located::Image,
        },
        MountKind::Volume => Located::Volume {
            name: mount.name.clone().unwrap_or_else(|| "(unnamed)".to_owned()),
            host: mount.source.as_deref().map(joined),
        },
        MountKind::Other => Located::Ephemeral(mount.target.clone()),
    }
}

/// `.` and `..` resolved lexically (the container's symlinks are not ours
/// to follow).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn bind(source: &str, target: &str) -> Mount {
        Mount {
            kind: MountKind::Bind,
            source: Some(PathBuf::from(source)),
            name: None,
            target: target.to_owned(),
        }
    }

    #[test]
    fn the_model_a_command_names() {
        let cases = [
            (
                "vllm serve meta-llama/Llama-3.1-8B --port 8000",
                ModelRef::Repo("meta-llama/Llama-3.1-8B".into()),
            ),
            (
                "python3 -m vllm.entrypoints.openai.api_server --model Qwen/Qwen2.5-0.5B",
                ModelRef::Repo("Qwen/Qwen2.5-0.5B".into()),
            ),
            (
                "/llama-server -m /models/tiny.gguf --port 8080",
                ModelRef::Path("/models/tiny.gguf".into()),
            ),
            (
                "llama-server --model=/models/x.gguf",
                ModelRef::Path("/models/x.gguf".into()),
            ),
            (
                "text-generation-launcher --model-id /data/llama",
                ModelRef::Path("/data/llama".into()),
            ),
            (
                "python3 -m sglang.launch_server --model-path org/name",
                ModelRef::Repo("org/name".into()),
            ),
            (
                "vllm serve /models/llama --tensor-parallel-size 2",
                ModelRef::Path("/models/llama".into()),
            ),
            (
                "/usr/bin/trtllm-serve nvidia/Llama-FP8",
                ModelRef::Repo("nvidia/Llama-FP8".into()),
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(model_ref(&words(command)), Some(expected), "{command}");
        }
        assert_eq!(model_ref(&words("spark-sim --port 8000")), None);
        assert_eq!(model_ref(&words("vllm serve --port 8000")), None);
        assert_eq!(model_ref(&words("python3 -m sglang.launch_server")), None);
    }

    #[test]
    fn a_container_path_maps_through_the_longest_mount() {
        let mounts = [
            bind("/srv/models", "/models"),
            bind("/srv/big", "/models/big"),
            bind("/srv/other", "/models2"),
            Mount {
                kind: MountKind::Volume,
                source: Some(PathBuf::from("/var/lib/docker/volumes/hf/_data")),
                name: Some("hf".to_owned()),
                target: "/root/.cache/huggingface".to_owned(),
            },
            Mount {
                kind: MountKind::Other,
                source: None,
                name: None,
                target: "/tmp".to_owned(),
            },
        ];
        assert_eq!(
            locate("/models/tiny.gguf", &mounts),
            Located::Host("/srv/models/tiny.gguf".into())
        );
        assert_eq!(
            locate("/models/big/x.gguf", &mounts),
            Located::Host("/srv/big/x.gguf".into())
        );
        assert_eq!(
            locate("/models2/y.gguf", &mounts),
            Located::Host("/srv/other/y.gguf".into())
        );
        assert_eq!(
            locate("/models/./sub/../tiny.gguf", &mounts),
            Located::Host("/srv/models/tiny.gguf".into())
        );
        assert_eq!(
            locate("/models", &mounts),
            Located::Host("/srv/models".into())
        );
        assert_eq!(
            locate("/root/.cache/huggingface/hub", &mounts),
            Located::Volume {
                name: "hf".to_owned(),
                host: Some("/var/lib/docker/volumes/hf/_data/hub".into())
            }
        );
        assert_eq!(
            locate("/tmp/m.gguf", &mounts),
            Located::Ephemeral("/tmp".into())
        );
        assert_eq!(locate("/opt/model.gguf", &mounts), Located::Image);
        assert_eq!(locate("models/x.gguf", &mounts), Located::Relative);
    }
}
