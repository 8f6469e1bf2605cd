//! Small parsers compose shares with the Docker CLI: Go durations (`1m30s`),
//! byte sizes (`16gb`), the shell-style splitting of a string `command:`
//! (`shlex`), and "did you mean" (`strsim`'s edit distance).

use std::time::Duration;

/// Parses a Go duration as compose accepts it (`10s`, `1m30s`, `500ms`, `2h`,
/// `1.5h`). A bare number is seconds (compose-go accepts that for
/// `stop_grace_period`).
///
/// This is spark-perf's one duration grammar: compose files and every
/// command-line flag (`--health-timeout 2h`) parse with it, so a value that
/// works in one place works in the other.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * unit_seconds).ok()?;
    }
    Some(total)
}

/// Parses a byte size as Docker does (`RAMInBytes`: binary units, `b`, `k`,
/// `kb`, `m`, `g`, ... case-insensitive), or a plain number of bytes.
pub(crate) fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..number_len].parse().ok()?;
    let multiplier: f64 = match text[number_len..].trim() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * multiplier;
    // Bounded: the cast below saturates, but a size this large is a typo.
    (bytes.is_finite() && bytes < 9.0e18).then_some(bytes as i64)
}

/// Splits a command string as a POSIX shell splits words, without
/// expansion (the `shlex` crate): single quotes are literal, double quotes
/// allow `\"`, `\\`, `\$`, a backslash outside quotes escapes the next
/// character, and an unquoted `#` at the start of a word begins a comment.
/// `None` when a quote is left open or the text ends in a lone backslash.
pub(crate) fn split_shell_words(text: &str) -> Option<Vec<String>> {
    shlex::split(text)
}

/// The candidate closest to `word`, when it is close enough to be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            let distance = strsim::levenshtein(&lower, &candidate.to_ascii_lowercase());
            let contains = candidate.contains(word) || word.contains(candidate);
            (if contains { distance.min(2) } else { distance }, candidate)
        })
        .filter(|&(distance, candidate)| distance <= (candidate.len().max(word.len()) / 3).max(2))
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("10 s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("16gb"), Some(16 << 30));
        assert_eq!(parse_bytes("1G"), Some(1 << 30));
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("1e99"), None);
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            split_shell_words(r#"vllm serve "a b" 'c $d' e\ f --x="1 2""#).unwrap(),
            ["vllm", "serve", "a b", "c $d", "e f", "--x=1 2"]
        );
        assert_eq!(split_shell_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_shell_words("''").unwrap(), [""]);
        assert!(split_shell_words("'open").is_none());
        assert!(split_shell_words(r#""open"#).is_none());
        // Escapes inside double quotes, a backslash-newline continuation.
        assert_eq!(
            split_shell_words("sh -c \"echo \\\"hi\\\" \\$HOME\" a\\\nb").unwrap(),
            ["sh", "-c", "echo \"hi\" $HOME", "ab"]
        );
        // Tabs and newlines separate words like spaces.
        assert_eq!(
            split_shell_words("serve\tmodel\n--port 8000").unwrap(),
            ["serve", "model", "--port", "8000"]
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("imgae", ["image", "ports"]), Some("image"));
        assert_eq!(
            closest("vllm-qwen", ["vllm-qwen3-30b", "trtllm"]),
            Some("vllm-qwen3-30b")
        );
        assert_eq!(closest("zzz", ["image", "ports"]), None);
        // Case does not count; the nearest of several wins.
        assert_eq!(closest("PORTS", ["ports", "port"]), Some("ports"));
        assert_eq!(
            closest("netwrks", ["networks", "volumes"]),
            Some("networks")
        );
    }
}
