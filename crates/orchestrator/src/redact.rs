//! Keeps secrets out of error messages: log tails of failed containers pass
//! through a [`Redactor`] before they are stored in an error.
//!
//! Two rules: the values of the container's environment variables whose
//! names look secret (`TOKEN`, `KEY`, `SECRET`, `PASSWORD`, ...) are replaced
//! wherever they appear, and so is the value in any `NAME=value` or
//! `NAME: value` whose name looks secret, plus Hugging Face tokens (`hf_...`)
//! and `Bearer` credentials.

use std::collections::BTreeMap;

use crate::compose::{Service, is_secret_name};
use crate::mask;

/// What a masked secret is replaced by.
pub(crate) const MASK: &str = "[REDACTED]";

/// Replaces known secret values and secret-looking assignments in text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the secret-looking variables of `environment`.
    pub(crate) fn for_environment(environment: &BTreeMap<String, String>) -> Self {
        Redactor::from_values(
            environment
                .iter()
                .filter(|(name, value)| is_secret_name(name) && value.len() >= 4)
                .map(|(_, value)| value.clone())
                .collect(),
        )
    }

    /// A redactor of exactly these values (and the patterns).
    pub(crate) fn from_values(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// Also hides `more` (the secrets of the container's command).
    pub(crate) fn with(mut self, more: &[String]) -> Self {
        self.secrets.extend(more.iter().cloned());
        Redactor::from_values(self.secrets)
    }

    pub(crate) fn redact(&self, line: &str) -> String {
        mask_patterns(&self.replace_known(line))
    }

    /// Replaces the known values only, not the patterns.
    pub(crate) fn replace_known(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), MASK);
        }
        out
    }
}

/// Masks `hf_…` tokens, `Bearer …` credentials and secret-named assignments.
fn mask_patterns(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut mask_next = false;
    for (idx, word) in line.split(' ').enumerate() {
        if idx > 0 {
            out.push(' ');
        }
        if mask_next && !word.is_empty() {
            out.push_str(MASK);
            mask_next = false;
            continue;
        }
        if word.eq_ignore_ascii_case("bearer") {
            mask_next = true;
            out.push_str(word);
            continue;
        }
        // NAME=value or NAME: value (the value is then the next word).
        if let Some((name, _)) = word.split_once('=')
            && is_secret_name(name.trim_start_matches(['-', '"', '\'']))
            && !name.is_empty()
        {
            out.push_str(name);
            out.push('=');
            out.push_str(MASK);
            continue;
        }
        if let Some(name) = word.strip_suffix(':')
            && is_secret_name(
                name.trim_start_matches(['"', '\''])
                    .trim_end_matches(['"', '\'']),
            )
        {
            mask_next = true;
            out.push_str(word);
            continue;
        }
        let trimmed = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
        if trimmed.starts_with("hf_") && trimmed.len() >= 20 {
            out.push_str(&word.replace(trimmed, MASK));
            continue;
        }
        out.push_str(word);
    }
    out
}

/// Hides the service's environment values and the secrets its command
/// carries, from the compose model.
pub(crate) fn service_redactor(definition: &Service) -> Redactor {
    // The value secrets copied into the container too: an engine that
    // echoes its token file must not leak it through a log tail.
    let files: Vec<String> = definition
        .secret_files()
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.content.expose().trim().to_owned())
        .filter(|v| v.len() >= 4)
        .collect();
    Redactor::for_environment(&definition.environment)
        .with(&command_secrets(definition))
        .with(&files)
}

/// The secrets the service's command carries, from the compose model.
fn command_secrets(definition: &Service) -> Vec<String> {
    let env: Vec<String> = definition
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let parts: Vec<mask::Part<'_>> = [
        (&definition.entrypoint, &definition.raw_entrypoint),
        (&definition.command, &definition.raw_command),
    ]
    .into_iter()
    .filter_map(|(actual, raw)| {
        let actual = actual.as_deref()?;
        Some(mask::Part {
            actual,
            interpolated: Some(actual),
            raw: raw.as_deref(),
        })
    })
    .collect();
    mask::command(&parts, &env).secrets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{ComposeProject, LoadOptions};

    #[test]
    fn masks_known_values_and_patterns() {
        let env: BTreeMap<String, String> = [
            ("HF_TOKEN", "s3cr3t-value"),
            ("MODEL", "qwen"),
            ("API_KEY", "abc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let r = Redactor::for_environment(&env);
        assert_eq!(
            r.redact("using token s3cr3t-value for qwen"),
            "using token [REDACTED] for qwen"
        );
        assert_eq!(
            r.redact("HF_TOKEN=other api_key: zzz"),
            "HF_TOKEN=[REDACTED] api_key: [REDACTED]"
        );
        assert_eq!(
            r.redact("Authorization: Bearer xyz"),
            "Authorization: Bearer [REDACTED]"
        );
        assert_eq!(
            r.redact("got hf_abcdefghijklmnopqrstuv."),
            "got [REDACTED]."
        );
        assert_eq!(r.redact("plain line"), "plain line");
    }

    #[test]
    fn the_compose_model_keeps_the_command_as_written_for_masking() {
        let dir = std::env::temp_dir().join(format!("spark-mask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".env"), "VLLM_API_KEY=sk-from-dotenv-1\n").unwrap();
        std::fs::write(
            dir.join("docker-compose.yml"),
            "services:\n  vllm:\n    image: vllm/vllm-openai:v0.11.0\n    command: vllm serve ${MODEL:-m} --api-key ${VLLM_API_KEY} --hf-token hf_literal_1234\n    ports: [\"8000:8000\"]\n",
        )
        .unwrap();
        let project = ComposeProject::load(&LoadOptions {
            files: vec![dir.join("docker-compose.yml")],
            project_name: Some("mask".into()),
            ..LoadOptions::default()
        })
        .unwrap();
        let service = project.service("vllm").unwrap();
        assert_eq!(
            service.raw_command.as_deref().unwrap().join(" "),
            "vllm serve ${MODEL:-m} --api-key ${VLLM_API_KEY} --hf-token hf_literal_1234"
        );
        assert_eq!(
            command_secrets(service),
            ["hf_literal_1234", "sk-from-dotenv-1"]
        );
        let cmd = service.command.clone().unwrap();
        let masked = mask::command(
            &[mask::Part {
                actual: &cmd,
                interpolated: service.command.as_deref(),
                raw: service.raw_command.as_deref(),
            }],
            &[],
        );
        assert_eq!(
            masked.command.join(" "),
            "vllm serve ${MODEL:-m} --api-key ${VLLM_API_KEY} --hf-token [REDACTED]"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_service_redactor_masks_its_value_secrets_but_not_its_configs() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../spark-perf/tests/fixtures/compose/secrets.yml");
        let project = ComposeProject::load(&LoadOptions {
            files: vec![file],
            environment: [(
                "FIXTURE_API_KEY".to_owned(),
                "sk-fixture-env-value-4567".to_owned(),
            )]
            .into(),
            ..LoadOptions::default()
        })
        .unwrap();
        let redactor = service_redactor(project.service("vllm").unwrap());
        assert_eq!(
            redactor.redact("key sk-fixture-env-value-4567 template {{ messages }}"),
            "key [REDACTED] template {{ messages }}"
        );
    }
}
