//! The build context as the daemon wants it: an uncompressed tar of the
//! context directory, less what its `.dockerignore` excludes.
//!
//! `.dockerignore` is read as the docker CLI reads it: one pattern a line,
//! `#` comments, `!` exceptions (the last matching line wins), `*`, `?` and
//! `**` (any number of directories), paths relative to the context whether
//! or not they start with `/`; a pattern that matches a directory excludes
//! everything below it. Character classes (`[a-z]`) and escapes are not
//! implemented: such a line is taken literally. The Dockerfile and
//! `.dockerignore` are sent even when excluded, as the CLI sends them.
//!
//! The tar is written on a blocking thread into a bounded channel, so a
//! context of model weights is streamed, never held in memory.

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use tokio::sync::mpsc;

/// The size of one chunk of the tar sent to the daemon.
const CHUNK_BYTES: usize = 64 * 1024;

/// The patterns of a `.dockerignore`.
#[derive(Debug, Default)]
pub(crate) struct Ignore {
    /// (pattern split at `/`, is an exception), in file order.
    patterns: Vec<(Vec<String>, bool)>,
}

impl Ignore {
    /// The patterns of `.dockerignore` text.
    pub(crate) fn parse(text: &str) -> Ignore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let segments: Vec<String> = pattern
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_owned)
                    .collect();
                (!segments.is_empty()).then_some((segments, exception))
            })
            .collect();
        Ignore { patterns }
    }

    /// Whether `relative` (a path inside the context, `/`-separated) is
    /// excluded: the last pattern matching it or one of its parents decides.
    pub(crate) fn excludes(&self, relative: &str) -> bool {
        let path: Vec<&str> = relative.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for (pattern, exception) in &self.patterns {
            let matched = (1..=path.len()).any(|n| match_segments(pattern, &path[..n]));
            if matched {
                excluded = !exception;
            }
        }
        excluded
    }
}

/// Whether the pattern's segments match the path's, `**` matching any
/// number of segments.
fn match_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                match_glob(first.as_bytes(), segment.as_bytes()) && match_segments(rest, path_rest)
            }
            None => false,
        },
    }
}

/// `*` and `?` within one path segment.
fn match_glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && match_glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && match_glob(rest, &text[1..]),
    }
}

/// The files of the context to send, relative to it, in a stable order
/// (directories before their contents).
pub(crate) fn list(context: &Path, dockerfile: &str) -> io::Result<Vec<PathBuf>> {
    let ignore = match std::fs::read_to_string(context.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ignore::default(),
        Err(err) => return Err(err),
    };
    let always: Vec<String> = [normalize(dockerfile), ".dockerignore".to_owned()].into();
    let mut entries = Vec::new();
    walk(context, Path::new(""), &ignore, &always, &mut entries)?;
    Ok(entries)
}

/// `./a/../b` as `b`: how a path inside the context is compared.
fn normalize(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

fn walk(
    root: &Path,
    relative: &Path,
    ignore: &Ignore,
    always: &[String],
    out: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let mut children: Vec<_> = std::fs::read_dir(root.join(relative))?
        .collect::<io::Result<Vec<_>>>()?
        .into_iter()
        .map(|entry| entry.file_name())
        .collect();
    children.sort();
    for name in children {
        let child = relative.join(&name);
        let text = child.to_string_lossy().replace('\\', "/");
        let kept = always.contains(&text);
        let file_type = std::fs::symlink_metadata(root.join(&child))?.file_type();
        if file_type.is_dir() {
            // An excluded directory may still hold an exception (`!dir/keep`),
            // so it is only pruned when no exception could reach below it.
            let excluded = ignore.excludes(&text);
            if excluded && !ignore.has_exceptions() {
                continue;
            }
            if !excluded {
                out.push(child.clone());
            }
            walk(root, &child, ignore, always, out)?;
        } else if kept || !ignore.excludes(&text) {
            out.push(child);
        }
    }
    Ok(())
}

impl Ignore {
    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(_, exception)| *exception)
    }
}

/// Writes the tar of `entries` (relative to `context`) into `out`.
/// Symbolic links are sent as links, as the docker CLI sends them.
pub(crate) fn write_tar(context: &Path, entries: &[PathBuf], out: impl Write) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in entries {
        tar.append_path_with_name(context.join(entry), entry)?;
    }
    tar.into_inner()?.flush()
}

/// A `Write` that sends full chunks down a channel; dropped by the reader,
/// it fails the write, which ends the tar thread.
struct ChunkSender {
    chunk: Vec<u8>,
    sender: mpsc::Sender<io::Result<Vec<u8>>>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the build request ended"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK_BYTES - self.chunk.len();
        let n = buf.len().min(room);
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Streams the tar of the context: the receiver yields chunks, then an
/// error if the tar could not be written (a file vanished, no permission).
/// The returned handle says how the writing ended.
pub(crate) fn stream(
    context: PathBuf,
    entries: Vec<PathBuf>,
) -> (
    mpsc::Receiver<io::Result<Vec<u8>>>,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let (sender, receiver) = mpsc::channel(4);
    let handle = tokio::task::spawn_blocking(move || {
        let mut writer = ChunkSender {
            chunk: Vec::with_capacity(CHUNK_BYTES),
            sender: sender.clone(),
        };
        let result = write_tar(&context, &entries, &mut writer);
        if let Err(err) = &result {
            let _ = sender.blocking_send(Err(io::Error::new(err.kind(), err.to_string())));
        }
        result
    });
    (receiver, handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns() {
        let ignore = Ignore::parse(
            "# comment\n\n*.md\n!README.md\n/models\n**/*.tmp\ncache/\nsecret?.txt\n",
        );
        for (path, excluded) in [
            ("notes.md", true),
            ("README.md", false),
            ("docs/notes.md", false),
            ("models", true),
            ("models/weights.bin", true),
            ("a/b/c.tmp", true),
            ("x.tmp", true),
            ("cache/blob", true),
            ("secret1.txt", true),
            ("secret12.txt", false),
            ("Dockerfile", false),
        ] {
            assert_eq!(ignore.excludes(path), excluded, "{path}");
        }
    }

    #[test]
    fn the_context_leaves_out_what_dockerignore_excludes_but_keeps_the_dockerfile() {
        let dir = std::env::temp_dir().join(format!("spt-context-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("models")).unwrap();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        for (file, text) in [
            ("Dockerfile.engine", "FROM scratch\n"),
            (".dockerignore", "models\n*.log\nDockerfile.engine\n"),
            ("models/big.bin", "weights"),
            ("src/main.py", "print()"),
            ("build.log", "noise"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let entries = list(&dir, "./Dockerfile.engine").unwrap();
        let names: Vec<String> = entries.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [".dockerignore", "Dockerfile.engine", "src", "src/main.py"]
        );
        let mut tar = Vec::new();
        write_tar(&dir, &entries, &mut tar).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let in_tar: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(in_tar, names);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
