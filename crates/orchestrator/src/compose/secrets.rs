//! The top-level `secrets:` and `configs:`: where each one's content comes
//! from (a file, an environment variable, or, for configs, inline
//! `content:`). Services mount them (service/secrets.rs). A secret's value
//! never appears in a log, an error or a plan: [`SecretValue`] prints as
//! `[REDACTED]`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::diagnostic::Problem;
use super::interpolate::Vars;
use super::loader::Loader;
use super::locate::ypath;
use super::scalar_text;

/// Content that must not be shown: `Debug` prints `[REDACTED]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// The content, for writing it into the container.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Where a secret's or a config's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileSource {
    /// `file:`, absolute: bind-mounted read-only.
    File(PathBuf),
    /// `environment: VAR` (or a config's `content:`): written into the
    /// container before it starts.
    Value(SecretValue),
}

/// Which top-level section: the default mount point differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Secret,
    Config,
}

impl FileKind {
    pub(crate) fn key(self) -> &'static str {
        match self {
            FileKind::Secret => "secrets",
            FileKind::Config => "configs",
        }
    }
}

impl Loader {
    /// The top-level `secrets:` or `configs:`.
    pub(super) fn top_level_files(
        &mut self,
        doc: &Mapping,
        kind: FileKind,
        working_dir: &Path,
        vars: &Vars,
    ) -> BTreeMap<String, FileSource> {
        let section = kind.key();
        let mut found = BTreeMap::new();
        let Some(Value::Mapping(declared)) = doc.get(section) else {
            return found;
        };
        for (key, value) in declared {
            let Some(key) = scalar_text(key) else {
                continue;
            };
            let at = ypath![section, key.as_str()];
            let Value::Mapping(m) = value else {
                self.push(
                    0,
                    None,
                    Problem::error(
                        at,
                        format!("`{section}.{key}` must be a mapping (`file:` or `environment:`)"),
                    ),
                );
                continue;
            };
            for k in m.keys().filter_map(scalar_text) {
                let known: &[&str] = match kind {
                    FileKind::Secret => &[
                        "file",
                        "environment",
                        "external",
                        "name",
                        "labels",
                        "driver",
                        "driver_opts",
                        "template_driver",
                    ],
                    FileKind::Config => &[
                        "file",
                        "environment",
                        "content",
                        "external",
                        "name",
                        "labels",
                        "template_driver",
                    ],
                };
                if !known.contains(&k.as_str()) && !k.starts_with("x-") {
                    self.push(
                        0,
                        None,
                        Problem::error(
                            ypath![section, key.as_str(), k.as_str()],
                            format!("unknown {section} key `{k}`"),
                        ),
                    );
                }
            }
            let source = if let Some(file) = m.get("file").and_then(scalar_text) {
                let path = Path::new(&file);
                let full = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    let joined = working_dir.join(path);
                    std::path::absolute(&joined).unwrap_or(joined)
                };
                if !full.is_file() {
                    self.push(
                        0,
                        None,
                        Problem::error(
                            ypath![section, key.as_str(), "file"],
                            format!("{section} `{key}`: file {} does not exist", full.display()),
                        )
                        .hint("create it, or point `file:` at it (relative to the compose file)"),
                    );
                    continue;
                }
                FileSource::File(full)
            } else if let Some(var) = m.get("environment").and_then(scalar_text) {
                match vars.get(&var) {
                    Some(value) => FileSource::Value(SecretValue(value.clone())),
                    None => {
                        self.push(
                            0,
                            None,
                            Problem::error(
                                ypath![section, key.as_str(), "environment"],
                                format!("{section} `{key}`: the {var} variable is not set"),
                            )
                            .hint(format!("set {var} in the environment or in .env")),
                        );
                        continue;
                    }
                }
            } else if let (FileKind::Config, Some(content)) =
                (kind, m.get("content").and_then(scalar_text))
            {
                FileSource::Value(SecretValue(content))
            } else if m.contains_key("external") {
                self.push(
                    0,
                    None,
                    Problem::error(
                        at,
                        format!("external {section} (swarm) are not supported by spark-perf"),
                    )
                    .hint("use `file:` or `environment:`"),
                );
                continue;
            } else {
                self.push(
                    0,
                    None,
                    Problem::error(
                        at,
                        format!("{section} `{key}` has neither `file:` nor `environment:`"),
                    ),
                );
                continue;
            };
            found.insert(key, source);
        }
        found
    }
}
