//! `build:` of a service: the short form (a context path) and the long form
//! (`context`, `dockerfile`, `args`, `target`, `labels`, `no_cache`), and the
//! image name a build is tagged with (`image:`, else `<project>-<service>`,
//! as compose v2 names it).
//!
//! What is built and how is the Docker side (`crate::build`); this module
//! only says what the file asks for. Build-argument values may be secrets:
//! they are kept for the build request and never shown ([`BuildSpec`]'s
//! `Debug` prints the names only).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::super::locate::ypath;
use super::super::scalar_text;
use super::Context;
use super::keys::{Problems, as_bool, key_value_map};

/// Keys of the long form spark-perf applies.
const BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "args",
    "target",
    "labels",
    "no_cache",
];

/// Keys that only make a build faster or tag it once more: accepted with a
/// warning.
const BUILD_IGNORED: &[&str] = &["cache_from", "cache_to", "tags"];

/// Keys of the specification that change what is built, or how, and that
/// spark-perf does not implement: errors.
const BUILD_UNSUPPORTED: &[&str] = &[
    "additional_contexts",
    "dockerfile_inline",
    "entitlements",
    "extra_hosts",
    "isolation",
    "network",
    "platforms",
    "privileged",
    "pull",
    "secrets",
    "shm_size",
    "ssh",
    "ulimits",
];

/// What a service's `build:` asks for.
#[derive(Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The context directory, absolute (relative paths are taken from the
    /// project directory, as for bind mounts).
    pub(crate) context: PathBuf,
    /// The Dockerfile, relative to the context (`Dockerfile` by default).
    pub(crate) dockerfile: String,
    /// Build arguments; an argument written without a value takes it from
    /// the shell or `.env`, and is left out when neither has it.
    pub(crate) args: BTreeMap<String, String>,
    /// The stage of a multi-stage Dockerfile to build.
    pub(crate) target: Option<String>,
    /// Labels of the built image.
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) no_cache: bool,
}

impl fmt::Debug for BuildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildSpec")
            .field("context", &self.context)
            .field("dockerfile", &self.dockerfile)
            .field("arg_names", &self.arg_names())
            .field("target", &self.target)
            .field("labels", &self.labels)
            .field("no_cache", &self.no_cache)
            .finish()
    }
}

impl BuildSpec {
    /// The context directory (absolute).
    pub fn context(&self) -> &Path {
        &self.context
    }

    /// The Dockerfile's path inside the context.
    pub fn dockerfile(&self) -> &str {
        &self.dockerfile
    }

    /// The names of the build arguments (never their values: they may be
    /// secrets).
    pub fn arg_names(&self) -> Vec<String> {
        self.args.keys().cloned().collect()
    }

    /// `target:`, the stage to build.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// `labels:` of the built image.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

/// The name compose v2 tags a service's build with when there is no
/// `image:` (`api.GetImageNameOrDefault`: project and service joined by
/// `-`, no tag, so the daemon tags it `latest`).
pub(super) fn default_image_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

/// `build:`, when the service has one.
pub(super) fn parse_build(
    value: Option<&Value>,
    ctx: &Context<'_>,
    p: &mut Problems<'_>,
) -> Option<BuildSpec> {
    let value = value?;
    let mut spec = BuildSpec {
        context: PathBuf::new(),
        dockerfile: "Dockerfile".to_owned(),
        args: BTreeMap::new(),
        target: None,
        labels: BTreeMap::new(),
        no_cache: false,
    };
    let context = match value {
        Value::Mapping(m) => {
            p.unknown_keys_except(
                m,
                BUILD_KEYS,
                BUILD_IGNORED,
                BUILD_UNSUPPORTED,
                &ypath!["build"],
            );
            if let Some(dockerfile) = m.get("dockerfile") {
                match scalar_text(dockerfile).filter(|d| !d.is_empty()) {
                    Some(d) => spec.dockerfile = d,
                    None => {
                        p.error(ypath!["build", "dockerfile"], "`dockerfile` must be a path");
                    }
                }
            }
            if let Some(args) = m.get("args") {
                spec.args = parse_args(args, ctx, p);
            }
            if let Some(target) = m.get("target") {
                spec.target = scalar_text(target).filter(|t| !t.is_empty());
                if spec.target.is_none() {
                    p.error(ypath!["build", "target"], "`target` must be a stage name");
                }
            }
            if let Some(labels) = m.get("labels") {
                if !matches!(labels, Value::Mapping(_) | Value::Sequence(_)) {
                    p.error(
                        ypath!["build", "labels"],
                        "`labels` must be a mapping or a list of KEY=VALUE",
                    );
                }
                spec.labels = key_value_map(labels)
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect();
            }
            if let Some(no_cache) = m.get("no_cache") {
                match as_bool(no_cache) {
                    Some(b) => spec.no_cache = b,
                    None => {
                        p.error(
                            ypath!["build", "no_cache"],
                            "`no_cache` must be true or false",
                        );
                    }
                }
            }
            // The specification's default context is the project directory.
            match m.get("context") {
                None => Some(".".to_owned()),
                Some(c) => {
                    let text = scalar_text(c).filter(|c| !c.is_empty());
                    if text.is_none() {
                        p.error(ypath!["build", "context"], "`context` must be a directory");
                    }
                    text
                }
            }
        }
        other => {
            let text = scalar_text(other).filter(|c| !c.is_empty());
            if text.is_none() {
                p.error(
                    ypath!["build"],
                    "`build` must be a context directory or a mapping",
                )
                .set_hint(
                    "write `build: ./dir` or `build: {context: ./dir, dockerfile: Dockerfile}`",
                );
            }
            text
        }
    }?;
    let at: Vec<_> = if matches!(value, Value::Mapping(_)) {
        ypath!["build", "context"].into()
    } else {
        ypath!["build"].into()
    };
    if is_remote(&context) {
        p.error(
            at,
            format!("a remote build context (`{context}`) is not supported by spark-perf"),
        )
        .set_hint("clone it and point `context` at the directory");
        return None;
    }
    spec.context = resolve(&context, ctx);
    if Path::new(&spec.dockerfile).is_absolute() {
        // The build request names the Dockerfile inside the context's tar.
        match Path::new(&spec.dockerfile).strip_prefix(&spec.context) {
            Ok(inside) => spec.dockerfile = inside.display().to_string(),
            Err(_) => {
                p.error(
                    ypath!["build", "dockerfile"],
                    format!(
                        "the Dockerfile `{}` is outside the build context {}",
                        spec.dockerfile,
                        spec.context.display()
                    ),
                )
                .set_hint("move it into the context, or write its path relative to the context");
            }
        }
    }
    Some(spec)
}

/// `args:` as a mapping or a list of `KEY=VALUE`; a name without a value
/// takes it from the shell or `.env`, as `environment:` does.
fn parse_args(value: &Value, ctx: &Context<'_>, p: &mut Problems<'_>) -> BTreeMap<String, String> {
    if !matches!(value, Value::Mapping(_) | Value::Sequence(_)) {
        p.error(
            ypath!["build", "args"],
            "`args` must be a mapping or a list of KEY=VALUE",
        );
        return BTreeMap::new();
    }
    key_value_map(value)
        .into_iter()
        .filter_map(|(name, value)| match value {
            Some(value) => Some((name, value)),
            None => ctx.vars.get(&name).map(|value| (name, value.clone())),
        })
        .collect()
}

/// A Git URL or an HTTP(S) tarball: the daemon would fetch it, and no
/// registry or remote is reachable from a benchmark box anyway.
fn is_remote(context: &str) -> bool {
    [
        "http://",
        "https://",
        "git://",
        "git@",
        "ssh://",
        "github.com/",
    ]
    .iter()
    .any(|prefix| context.starts_with(prefix))
}

fn resolve(context: &str, ctx: &Context<'_>) -> PathBuf {
    let path = if let Some(rest) = context.strip_prefix("~/") {
        PathBuf::from(ctx.vars.get("HOME").cloned().unwrap_or_default()).join(rest)
    } else {
        ctx.working_dir.join(context)
    };
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_contexts() {
        assert!(is_remote("https://github.com/x/y.git#main"));
        assert!(is_remote("git@github.com:x/y.git"));
        assert!(!is_remote("./engine"));
        assert!(!is_remote("github"));
    }

    #[test]
    fn the_default_name_is_compose_v2s() {
        assert_eq!(default_image_name("bench", "vllm"), "bench-vllm");
    }
}
