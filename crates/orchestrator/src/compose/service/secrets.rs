//! A service's `secrets:` and `configs:`: short (`- hf_token`) or long
//! (`source`, `target`, `uid`, `gid`, `mode`) syntax. A file-based one is a
//! read-only bind at `/run/secrets/NAME` (secrets) or `/NAME` (configs), or
//! its `target`; one whose content is a value (an environment variable, a
//! config's `content:`) is a [`SecretFile`] the container gets before it
//! starts.

use serde_yaml::Value;

use super::super::locate::ypath;
use super::super::scalar_text;
use super::super::secrets::{FileKind, FileSource, SecretValue};
use super::super::units::closest;
use super::Context;
use super::keys::Problems;
use super::volumes::MountSpec;

/// A file to write into the container before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The top-level secret or config it comes from.
    pub source: String,
    /// The absolute path in the container.
    pub target: String,
    pub content: SecretValue,
    /// A secret (not a config): its value is masked in log tails.
    pub secret: bool,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// Permission bits (`0444` by default, as compose).
    pub mode: u32,
}

const LONG_KEYS: &[&str] = &["source", "target", "uid", "gid", "mode"];

/// Parses `secrets:` or `configs:` of a service: the binds go to `mounts`,
/// the values are returned.
pub(super) fn parse_files(
    kind: FileKind,
    value: Option<&Value>,
    ctx: &Context<'_>,
    mounts: &mut Vec<MountSpec>,
    p: &mut Problems<'_>,
) -> Vec<SecretFile> {
    let section = kind.key();
    let declared = match kind {
        FileKind::Secret => ctx.secrets,
        FileKind::Config => ctx.configs,
    };
    let mut files = Vec::new();
    let items = match value {
        None | Some(Value::Null) => return files,
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            p.error(ypath![section], format!("`{section}` must be a list"));
            return files;
        }
    };
    for (idx, item) in items.iter().enumerate() {
        let (source, target, uid, gid, mode) = match item {
            Value::Mapping(m) => {
                p.unknown_keys(m, LONG_KEYS, &ypath![section, idx], section);
                let Some(source) = m.get("source").and_then(scalar_text) else {
                    p.error(
                        ypath![section, idx],
                        format!("a long-syntax `{section}` entry needs `source`"),
                    );
                    continue;
                };
                let mode = match m.get("mode") {
                    None => None,
                    // YAML reads `0440` as an octal-looking decimal; compose
                    // reads the text as octal.
                    Some(v) => match scalar_text(v)
                        .and_then(|t| u32::from_str_radix(t.trim_start_matches("0o"), 8).ok())
                    {
                        Some(bits) if bits <= 0o7777 => Some(bits),
                        _ => {
                            p.error(
                                ypath![section, idx, "mode"],
                                "`mode` must be octal permission bits, e.g. 0440",
                            );
                            None
                        }
                    },
                };
                (
                    source,
                    m.get("target").and_then(scalar_text),
                    m.get("uid").and_then(scalar_text),
                    m.get("gid").and_then(scalar_text),
                    mode,
                )
            }
            other => match scalar_text(other) {
                Some(source) => (source, None, None, None, None),
                None => continue,
            },
        };
        let Some(origin) = declared.get(&source) else {
            let problem = p.error(
                ypath![section, idx],
                format!("{section} `{source}` is not declared under the top-level `{section}:`"),
            );
            problem.set_hint(
                match closest(&source, declared.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => {
                        format!("declare it: `{section}: {{{source}: {{file: ./{source}.txt}}}}`")
                    }
                },
            );
            continue;
        };
        let target = match (kind, target) {
            (_, Some(t)) if t.starts_with('/') => t,
            (FileKind::Secret, Some(t)) => format!("/run/secrets/{t}"),
            (FileKind::Secret, None) => format!("/run/secrets/{source}"),
            (FileKind::Config, Some(t)) => format!("/{t}"),
            (FileKind::Config, None) => format!("/{source}"),
        };
        match origin {
            FileSource::File(path) => mounts.push(MountSpec::Bind {
                source: path.display().to_string(),
                target,
                read_only: true,
            }),
            FileSource::Value(content) => files.push(SecretFile {
                source,
                target,
                content: content.clone(),
                secret: matches!(kind, FileKind::Secret),
                uid,
                gid,
                mode: mode.unwrap_or(0o444),
            }),
        }
    }
    files
}
