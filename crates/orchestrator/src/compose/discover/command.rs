//! The words a service runs (entrypoint and command, `sh -c` strings split
//! too) and the flags read from them: `--flag VALUE`, `--flag=VALUE` and the
//! model named after `serve`.

use crate::compose::service::Service;
use crate::compose::units::split_shell_words;

/// The words of entrypoint + command, with `sh -c "..."` strings split too.
pub(super) fn command_words(service: &Service) -> Vec<String> {
    let mut words: Vec<String> = service
        .entrypoint
        .iter()
        .chain(service.command.iter())
        .flatten()
        .cloned()
        .collect();
    let nested: Vec<String> = words
        .iter()
        .filter(|w| w.contains(char::is_whitespace))
        .filter_map(|w| split_shell_words(w))
        .flatten()
        .collect();
    words.extend(nested);
    words
}

/// The value of `--flag VALUE` or `--flag=VALUE`.
pub(super) fn flag_value(words: &[String], flags: &[&str]) -> Option<String> {
    for (idx, word) in words.iter().enumerate() {
        for flag in flags {
            if word == flag {
                if let Some(value) = words.get(idx + 1).filter(|v| !v.starts_with('-')) {
                    return Some(value.clone());
                }
            } else if let Some(value) = word.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return Some(value.to_owned());
            }
        }
    }
    None
}

/// The first positional word after `serve` (`vllm serve MODEL`,
/// `trtllm-serve MODEL`, `trtllm-serve serve MODEL`).
pub(super) fn positional_after_serve(words: &[String]) -> Option<String> {
    let serve = words
        .iter()
        .rposition(|w| w == "serve" || w.rsplit('/').next() == Some("trtllm-serve"))?;
    words
        .get(serve + 1)
        .filter(|w| !w.starts_with('-'))
        .cloned()
}
