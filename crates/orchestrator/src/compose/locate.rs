//! Line numbers for diagnostics.
//!
//! serde_yaml's `Value` keeps no positions, so a light scan of the raw text
//! finds the line of a key path (`services` → `vllm` → `ports` → item 2) by
//! indentation. It understands block-style YAML, which is what compose files
//! are written in; for anything else (flow mappings, keys brought in by a
//! merge key) it answers with the nearest ancestor it found.

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(key: &str) -> Self {
        Seg::Key(key.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(idx: usize) -> Self {
        Seg::Index(idx)
    }
}

/// Builds a path (an array) from keys and indexes:
/// `ypath!["services", name, "ports", 2]`.
macro_rules! ypath {
    ($($seg:expr),* $(,)?) => {
        [$($crate::compose::locate::Seg::from($seg)),*]
    };
}
pub(crate) use ypath;

#[derive(Debug, Clone)]
struct Line {
    indent: usize,
    /// The line's text after its indentation; empty for blank and comment lines.
    content: String,
}

/// The raw lines of one compose file, for finding where a key is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Locator {
    lines: Vec<Line>,
}

impl Locator {
    pub(crate) fn new(text: &str) -> Self {
        let lines = text
            .lines()
            .map(|raw| {
                let trimmed = raw.trim_start_matches(' ');
                let indent = raw.len() - trimmed.len();
                let content = if trimmed.trim().is_empty() || trimmed.starts_with('#') {
                    String::new()
                } else {
                    trimmed.trim_end().to_owned()
                };
                Line { indent, content }
            })
            .collect();
        Locator { lines }
    }

    /// The first line whose text contains `needle`.
    pub(crate) fn first_line_containing(&self, needle: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| l.content.contains(needle))
            .map(|idx| idx + 1)
    }

    /// The 1-based line of `path`, or of its deepest ancestor that was found,
    /// with the number of path segments matched.
    pub(crate) fn line(&self, path: &[Seg]) -> Option<(usize, usize)> {
        let mut found = None;
        let mut start = 0;
        let mut end = self.lines.len();
        // Indentation of the parent; children are more indented.
        let mut parent_indent: Option<usize> = None;
        for (depth, seg) in path.iter().enumerate() {
            let child_indent = self.lines[start..end]
                .iter()
                .filter(|l| !l.content.is_empty())
                .map(|l| l.indent)
                .find(|&indent| parent_indent.is_none_or(|p| indent > p));
            // A sequence may sit at its parent key's indentation.
            let child_indent = match (child_indent, seg, parent_indent) {
                (None, Seg::Index(_), Some(p)) => p,
                (Some(c), _, _) => c,
                (None, _, _) => return found,
            };
            let mut hit = None;
            let mut n_items = 0;
            for idx in start..end {
                let line = &self.lines[idx];
                if line.content.is_empty() || line.indent != child_indent {
                    continue;
                }
                match seg {
                    Seg::Key(key) => {
                        if is_key_line(&line.content, key) {
                            hit = Some(idx);
                            break;
                        }
                    }
                    Seg::Index(want) => {
                        if line.content == "-" || line.content.starts_with("- ") {
                            if n_items == *want {
                                hit = Some(idx);
                                break;
                            }
                            n_items += 1;
                        }
                    }
                }
            }
            let Some(idx) = hit else { return found };
            found = Some((idx + 1, depth + 1));
            // The block of this key: following lines more indented than it
            // (or, for a list item, more indented than its dash).
            let own_indent = child_indent;
            let block_end = (idx + 1..end)
                .find(|&j| {
                    let l = &self.lines[j];
                    !l.content.is_empty()
                        && (l.indent < own_indent
                            || (l.indent == own_indent
                                && (matches!(seg, Seg::Index(_)) || !l.content.starts_with('-'))))
                })
                .unwrap_or(end);
            start = idx + 1;
            end = block_end;
            parent_indent = Some(match seg {
                // Keys of a mapping inside a list item are at dash + 2; the
                // first of them shares the dash's line and is not searched.
                Seg::Index(_) => own_indent + 1,
                Seg::Key(_) => own_indent,
            });
        }
        found
    }
}

impl Locator {
    /// The 1-based lines where `key` is written directly under `parent` (the
    /// top level when `parent` is empty), in order: more than one when a
    /// mapping repeats a key.
    pub(crate) fn key_lines(&self, parent: &[Seg], key: &str) -> Vec<usize> {
        let (start, parent_indent) = if parent.is_empty() {
            (0, None)
        } else {
            match self.line(parent) {
                Some((line, depth)) if depth == parent.len() => {
                    (line, Some(self.lines[line - 1].indent))
                }
                _ => return Vec::new(),
            }
        };
        let end = (start..self.lines.len())
            .find(|&j| {
                let l = &self.lines[j];
                !l.content.is_empty() && parent_indent.is_some_and(|p| l.indent <= p)
            })
            .unwrap_or(self.lines.len());
        let Some(child_indent) = self.lines[start..end]
            .iter()
            .find(|l| !l.content.is_empty())
            .map(|l| l.indent)
        else {
            return Vec::new();
        };
        // The first key of a mapping in a list item shares the dash's line.
        let first = match parent.last() {
            Some(Seg::Index(_)) => start.saturating_sub(1),
            _ => start,
        };
        (first..end)
            .filter(|&j| {
                let l = &self.lines[j];
                (l.indent == child_indent || j < start) && is_key_line(&l.content, key)
            })
            .map(|j| j + 1)
            .collect()
    }
}

fn is_key_line(content: &str, key: &str) -> bool {
    let content = content.strip_prefix("- ").unwrap_or(content);
    for quote in ["", "\"", "'"] {
        if let Some(rest) = content
            .strip_prefix(quote)
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix(quote))
            && (rest.starts_with(':') && (rest.len() == 1 || rest[1..].starts_with([' ', '\t'])))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
x-base: &base
  image: a
services:
  # a comment
  web:
    <<: *base
    ports:
      - \"80:80\"
      - target: 81
        published: 8081
    command: [\"x\"]
  \"db\":
    image: b
";

    #[test]
    fn finds_keys_items_and_ancestors() {
        let loc = Locator::new(TEXT);
        let line = |path: &[Seg]| loc.line(path).map(|(line, _)| line);
        assert_eq!(line(&ypath!["services"]), Some(3));
        assert_eq!(line(&ypath!["services", "web"]), Some(5));
        assert_eq!(line(&ypath!["services", "web", "ports"]), Some(7));
        assert_eq!(line(&ypath!["services", "web", "ports", 0]), Some(8));
        assert_eq!(line(&ypath!["services", "web", "ports", 1]), Some(9));
        assert_eq!(
            line(&ypath!["services", "web", "ports", 1, "published"]),
            Some(10)
        );
        assert_eq!(line(&ypath!["services", "web", "command"]), Some(11));
        assert_eq!(line(&ypath!["services", "db", "image"]), Some(13));
        // `image` of web comes from the merge key: the service line answers.
        assert_eq!(line(&ypath!["services", "web", "image"]), Some(5));
        assert_eq!(line(&ypath!["volumes"]), None);
    }
}
