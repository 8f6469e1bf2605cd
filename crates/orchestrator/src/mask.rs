//! Keeps secrets out of the provenance `command`: the entrypoint and command
//! the daemon reports are interpolated (`--api-key ${VLLM_API_KEY}` arrives
//! as the key itself), and they end up in `results.json`, every report and
//! the terminal table, and so in cron mail.
//!
//! Three rules, in this order:
//! - a word that came from a variable is shown as written in the compose
//!   file (`${VLLM_API_KEY}`), since the compose model keeps the text before
//!   interpolation;
//! - the value of a secret-looking flag (`--api-key`, `--token`,
//!   `--hf-token`, `--password`, `--secret`, ..., also `--api-key=VALUE`) is
//!   masked;
//! - a word (or `--flag=` value) equal to an environment value of the
//!   container is masked, and a secret-named variable's value is masked
//!   wherever it appears inside a word.
//!
//! The values masked by the last two rules, and those of secret-named
//! variables behind the first, are also handed to the log [`Redactor`], so a
//! crashing engine that prints its arguments (vLLM logs its non-default
//! args) does not put them into an error either.

use std::collections::BTreeMap;

use crate::compose::is_secret_name;
use crate::redact::{MASK, Redactor};

/// Values shorter than this are not secrets worth a mask (`1`, `on`).
const MIN_MASKED_LEN: usize = 4;

/// Environment values shorter than this are not masked where a command word
/// equals them: `info`, `all`, `8000` are settings, not secrets, and masking
/// them would hide half the command line.
const MIN_ENV_EQUAL_LEN: usize = 6;

/// The words of one part of the command (entrypoint or command), as the
/// daemon reports them and as the compose file writes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part<'a> {
    /// What the daemon reports (interpolated).
    pub(crate) actual: &'a [String],
    /// What compose sent (interpolated), when the compose file sets it.
    pub(crate) interpolated: Option<&'a [String]>,
    /// The same before interpolation.
    pub(crate) raw: Option<&'a [String]>,
}

/// A masked command, and the secret values it hid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Masked {
    pub(crate) command: Vec<String>,
    /// Values a log redactor must hide too.
    pub(crate) secrets: Vec<String>,
}

/// Masks `parts` (entrypoint, then command) given the container's
/// environment (`NAME=value`, as the daemon reports it).
pub(crate) fn command(parts: &[Part<'_>], env: &[String]) -> Masked {
    let env: BTreeMap<&str, &str> = env.iter().filter_map(|kv| kv.split_once('=')).collect();
    let mut masker = Masker {
        env_values: env
            .values()
            .copied()
            .filter(|v| v.len() >= MIN_ENV_EQUAL_LEN)
            .collect(),
        env_secrets: Redactor::from_values(
            env.iter()
                .filter(|(name, value)| is_secret_name(name) && value.len() >= MIN_MASKED_LEN)
                .map(|(_, value)| (*value).to_owned())
                .collect(),
        ),
        value_next: false,
        masked: Masked::default(),
    };
    for part in parts {
        match templates_of(part) {
            Templates::PerWord(templates) => {
                for (word, template) in part.actual.iter().zip(templates) {
                    masker.word(word, template);
                }
            }
            Templates::Unaligned(raw) => {
                // A value with spaces split into more words: the words cannot
                // be paired, so the part is shown as written, and what the
                // actual words would hide still reaches the log redactor.
                let shown = std::mem::take(&mut masker.masked.command);
                let value_next = masker.value_next;
                for word in part.actual {
                    masker.word(word, None);
                }
                masker.masked.command = shown;
                masker.value_next = value_next;
                for word in raw {
                    masker.word(word, None);
                }
            }
        }
    }
    let mut masked = masker.masked;
    masked.secrets.retain(|s| s.len() >= MIN_MASKED_LEN);
    masked.secrets.sort();
    masked.secrets.dedup();
    masked
}

struct Masker<'a> {
    env_values: Vec<&'a str>,
    env_secrets: Redactor,
    /// Whether the previous word was a secret flag expecting its value.
    value_next: bool,
    masked: Masked,
}

impl Masker<'_> {
    /// Adds one word; `template` is how it is written when it came from a
    /// variable.
    fn word(&mut self, word: &str, template: Option<&str>) {
        let secret_flag_value = std::mem::take(&mut self.value_next);
        let masked = &mut self.masked;
        if let Some(template) = template {
            // From a variable: shown as written. Its value is a secret for
            // the logs when the flag or the variable's name says so.
            if secret_flag_value || template_names(template).any(is_secret_name) {
                masked.secrets.push(word.to_owned());
            }
            self.value_next = is_secret_flag(template) && !template.contains('=');
            masked.command.push(template.to_owned());
            return;
        }
        if secret_flag_value && !word.starts_with("--") {
            masked.secrets.push(word.to_owned());
            masked.command.push(MASK.to_owned());
            return;
        }
        if let Some((flag, value)) = word.split_once('=')
            && flag.starts_with('-')
            && (is_secret_flag(flag) || self.env_values.contains(&value))
        {
            masked.secrets.push(value.to_owned());
            masked.command.push(format!("{flag}={MASK}"));
            return;
        }
        if self.env_values.contains(&word) {
            masked.secrets.push(word.to_owned());
            masked.command.push(MASK.to_owned());
            return;
        }
        self.value_next = is_secret_flag(word) && !word.contains('=');
        masked.command.push(self.env_secrets.replace_known(word));
    }
}

/// How the words the daemon reports relate to the compose file's.
enum Templates<'a> {
    /// Word by word: `Some(raw)` for a word that came from a variable, `None`
    /// for a literal one (or a part the compose file does not set, such as
    /// the image's own entrypoint).
    PerWord(Vec<Option<&'a str>>),
    /// The compose file sets the part, but interpolation changed the number
    /// of words: these are the words as written.
    Unaligned(&'a [String]),
}

fn templates_of<'a>(part: &Part<'a>) -> Templates<'a> {
    let literal = || Templates::PerWord(vec![None; part.actual.len()]);
    let (Some(interpolated), Some(raw)) = (part.interpolated, part.raw) else {
        return literal();
    };
    if interpolated != part.actual {
        return literal();
    }
    if raw.len() != interpolated.len() {
        return Templates::Unaligned(raw);
    }
    Templates::PerWord(
        raw.iter()
            .zip(interpolated)
            .map(|(raw, actual)| (has_variable(raw) && raw != actual).then_some(raw.as_str()))
            .collect(),
    )
}

/// Whether `word` refers to a variable (`$NAME`, `${NAME...}`), not only to
/// an escaped dollar (`$$`).
fn has_variable(word: &str) -> bool {
    let bytes = word.as_bytes();
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx] == b'$' {
            match bytes.get(idx + 1) {
                Some(b'$') => idx += 2,
                Some(b'{') => return true,
                Some(c) if c.is_ascii_alphabetic() || *c == b'_' => return true,
                _ => idx += 1,
            }
        } else {
            idx += 1;
        }
    }
    false
}

/// The variable names a template refers to.
fn template_names(template: &str) -> impl Iterator<Item = &str> {
    template.split('$').skip(1).filter_map(|rest| {
        let rest = rest.strip_prefix('{').unwrap_or(rest);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    })
}

/// Whether `word` is a flag whose value is a secret: its last part is
/// `key`, `token`, `secret`, `password`, ... (`--api-key`, `--hf-token`,
/// `--auth-token`, `--password`), with or without `=VALUE`. Flags that only
/// mention tokens (`--max-num-batched-tokens`, `--tokenizer`) are not.
pub(crate) fn is_secret_flag(word: &str) -> bool {
    let Some(name) = word.strip_prefix('-') else {
        return false;
    };
    let name = name.trim_start_matches('-');
    let name = name.split_once('=').map_or(name, |(name, _)| name);
    let last = name
        .rsplit(['-', '_', '.'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    [
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pass",
        "credential",
        "credentials",
    ]
    .contains(&last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    fn mask(actual: &str, raw: Option<&str>, env: &[&str]) -> Masked {
        let actual = words(actual);
        let raw = raw.map(words);
        let env: Vec<String> = env.iter().map(|s| (*s).to_owned()).collect();
        command(
            &[Part {
                actual: &actual,
                interpolated: raw.as_ref().map(|_| actual.as_slice()),
                raw: raw.as_deref(),
            }],
            &env,
        )
    }

    #[test]
    fn a_word_from_a_variable_is_shown_as_written() {
        let masked = mask(
            "vllm serve Qwen/Qwen3 --api-key sk-live-123 --hf-token hf_abcdef --port 8000",
            Some(
                "vllm serve ${MODEL} --api-key ${VLLM_API_KEY} --hf-token ${HF_TOKEN} --port 8000",
            ),
            &[],
        );
        assert_eq!(
            masked.command.join(" "),
            "vllm serve ${MODEL} --api-key ${VLLM_API_KEY} --hf-token ${HF_TOKEN} --port 8000"
        );
        // Both flagged values go to the log redactor; the model does not.
        assert_eq!(masked.secrets, ["hf_abcdef", "sk-live-123"]);
    }

    #[test]
    fn the_value_of_a_secret_flag_is_masked_in_both_forms() {
        let masked = mask(
            "serve m --api-key sk-1234 --token=tok-5678 --password hunter22 --secret s3cr3t --max-num-batched-tokens 8192 --tokenizer t --max-tokens=512",
            None,
            &[],
        );
        assert_eq!(
            masked.command.join(" "),
            "serve m --api-key [REDACTED] --token=[REDACTED] --password [REDACTED] --secret [REDACTED] --max-num-batched-tokens 8192 --tokenizer t --max-tokens=512"
        );
        assert_eq!(
            masked.secrets,
            ["hunter22", "s3cr3t", "sk-1234", "tok-5678"]
        );
    }

    #[test]
    fn a_value_equal_to_an_environment_value_is_masked() {
        let masked = mask(
            "serve m --header X-Auth:abcd-efgh --url=abcd-efgh --log info --bearer=prefix-SEKRET-suffix",
            None,
            &[
                "AUTH=abcd-efgh",
                "RUST_LOG=info",
                "MY_SECRET=SEKRET",
                "PATH=/bin",
            ],
        );
        assert_eq!(
            masked.command.join(" "),
            "serve m --header X-Auth:abcd-efgh --url=[REDACTED] --log info --bearer=prefix-[REDACTED]-suffix"
        );
    }

    #[test]
    fn a_word_equal_to_an_environment_value_is_masked() {
        let masked = mask("serve m --auth abcd-efgh", None, &["AUTH=abcd-efgh"]);
        assert_eq!(masked.command.join(" "), "serve m --auth [REDACTED]");
        assert_eq!(masked.secrets, ["abcd-efgh"]);
    }

    #[test]
    fn the_image_entrypoint_is_masked_by_value_only() {
        let entrypoint = words("/spark-sim");
        let cmd = words("--port 8000 --api-key sk-xyz-1");
        let raw = words("--port 8000 --api-key ${KEY}");
        let masked = command(
            &[
                Part {
                    actual: &entrypoint,
                    interpolated: None,
                    raw: None,
                },
                Part {
                    actual: &cmd,
                    interpolated: Some(&cmd),
                    raw: Some(&raw),
                },
            ],
            &[],
        );
        assert_eq!(
            masked.command.join(" "),
            "/spark-sim --port 8000 --api-key ${KEY}"
        );
        assert_eq!(masked.secrets, ["sk-xyz-1"]);
    }

    #[test]
    fn a_variable_with_spaces_shows_the_whole_part_as_written() {
        let actual = words("serve --api-key a b");
        let raw = words("serve --api-key ${TWO_WORDS}");
        let masked = command(
            &[Part {
                actual: &actual,
                interpolated: Some(&actual),
                raw: Some(&raw),
            }],
            &[],
        );
        assert!(!masked.command.iter().any(|w| w == "a" || w == "b"));
        assert_eq!(masked.command.join(" "), "serve --api-key [REDACTED]");
    }

    #[test]
    fn escaped_dollars_are_literal() {
        assert!(!has_variable("cost$$5"));
        assert!(has_variable("x${A}"));
        assert!(has_variable("$A"));
        assert_eq!(
            template_names("${A:-x}-$B_C").collect::<Vec<_>>(),
            ["A", "B_C"]
        );
    }
}
