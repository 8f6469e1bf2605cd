//! The size on disk of what [`locate`](super::locate) found: a file (with
//! the other parts of a split GGUF), a directory, a Hugging Face snapshot
//! (its symlinks resolved to the blobs they point to, each counted once).
//!
//! Walks are bounded in depth and in files, so a mount of `/` cannot make a
//! run crawl a disk.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

/// The deepest directory level a walk descends to.
const MAX_DEPTH: usize = 12;
/// The most files a walk counts before it gives up.
const MAX_FILES: usize = 100_000;

/// The size of a file or of the split GGUF it is a part of
/// (`model-00001-of-00003.gguf`: every part that exists).
pub(crate) fn file_size(path: &Path) -> io::Result<u64> {
    let own = std::fs::metadata(path)?.len();
    let Some((prefix, n_parts)) = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(split_gguf)
    else {
        return Ok(own);
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut total = 0;
    for part in 1..=n_parts {
        let name = format!("{prefix}-{part:05}-of-{n_parts:05}.gguf");
        if let Ok(meta) = std::fs::metadata(dir.join(name)) {
            total += meta.len();
        }
    }
    Ok(total.max(own))
}

/// `(prefix, parts)` of a split GGUF's name, `prefix-00001-of-00003.gguf`.
fn split_gguf(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".gguf")?;
    let (head, n_parts) = stem.rsplit_once("-of-")?;
    let (prefix, part) = head.rsplit_once('-')?;
    let valid = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !valid(part) || !valid(n_parts) {
        return None;
    }
    Some((prefix, n_parts.parse().ok()?))
}

/// The bytes of every file under `dir`, following symlinks to files (an HF
/// snapshot's links to its blobs) and counting each target once; symlinks
/// to directories are not followed (no cycles).
pub(crate) fn directory_size(dir: &Path) -> io::Result<u64> {
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut total = 0;
    let mut n_files = 0;
    let mut stack = vec![(dir.to_owned(), 0)];
    // The root itself must be readable; below it, what cannot be read is
    // skipped.
    std::fs::read_dir(dir)?;
    while let Some((path, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let entry_path = entry.path();
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((entry_path, depth + 1));
                }
                continue;
            }
            let Ok(meta) = std::fs::metadata(&entry_path) else {
                continue; // a dangling link: an unfinished download
            };
            if !meta.is_file() {
                continue;
            }
            let real = std::fs::canonicalize(&entry_path).unwrap_or(entry_path);
            if seen.insert(real) {
                total += meta.len();
                n_files += 1;
                if n_files >= MAX_FILES {
                    return Ok(total);
                }
            }
        }
    }
    Ok(total)
}

/// The cache directory of `repo` (`ORG/NAME` → `models--ORG--NAME`) under
/// `root`, where a cache is usually mounted: the hub itself, `HF_HOME`
/// (`hub/` below it), or a home's `.cache/huggingface`.
pub(crate) fn find_hf_repo(root: &Path, repo: &str) -> Option<PathBuf> {
    let dir_name = format!("models--{}", repo.replace('/', "--"));
    ["", "hub", "huggingface/hub", ".cache/huggingface/hub"]
        .iter()
        .map(|below| root.join(below).join(&dir_name))
        .find(|candidate| candidate.join("snapshots").is_dir())
}

/// The snapshot a repository's cache serves: the revision `refs/main` names,
/// else the only (or the most recently changed) one in `snapshots/`.
pub(crate) fn hf_snapshot(repo_dir: &Path) -> Option<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo_dir.join("refs/main")) {
        let candidate = snapshots.join(rev.trim());
        if !rev.trim().is_empty() && candidate.is_dir() {
            return Some(candidate);
        }
    }
    std::fs::read_dir(&snapshots)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_gguf_names() {
        assert_eq!(
            split_gguf("llama-70b-q4-00001-of-00003.gguf"),
            Some(("llama-70b-q4", 3))
        );
        assert_eq!(split_gguf("tiny.gguf"), None);
        assert_eq!(split_gguf("x-1-of-3.gguf"), None);
    }
}
