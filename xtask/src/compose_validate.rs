//! `cargo xtask compose-validate [--env-file F] [--profile P] [FILE...]`:
//! checks compose files with the very parser `spark-perf run` uses, and
//! reports every problem as `FILE:LINE: service NAME: message` with a hint.
//!
//! Default: every `compose/*.yml` of the repository, each file its own
//! project. Exit 0 when valid (warnings allowed), 1 when any file has an
//! error, 2 when the command itself is misused.

use std::path::PathBuf;

use anyhow::{Context, bail};
use spark_orchestrator::{ComposeProject, LoadOptions, Severity};

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    env_file: Option<PathBuf>,
    profiles: Vec<String>,
    files: Vec<PathBuf>,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut parsed = Args::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--env-file" => {
                parsed.env_file = Some(args.next().context("--env-file needs a file")?.into());
            }
            "--profile" => {
                parsed
                    .profiles
                    .push(args.next().context("--profile needs a name")?.clone());
            }
            flag if flag.starts_with('-') => {
                bail!(
                    "compose-validate: unknown option `{flag}` (known: --env-file F, --profile P)"
                )
            }
            file => parsed.files.push(file.into()),
        }
    }
    Ok(parsed)
}

/// The default files: `compose/*.yml` and `compose/*.yaml`, sorted.
pub(crate) fn default_files() -> anyhow::Result<Vec<PathBuf>> {
    let dir = crate::workspace_root().join("compose");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    // Shown relative to the current directory when inside it: `compose/sim.yml:12: ...`.
    if let Ok(cwd) = std::env::current_dir() {
        for file in &mut files {
            if let Ok(relative) = file.strip_prefix(&cwd) {
                *file = relative.to_path_buf();
            }
        }
    }
    Ok(files)
}

/// The report for `files`: the lines to print and whether all are valid.
pub(crate) fn validate(
    files: &[PathBuf],
    env_file: Option<&PathBuf>,
    profiles: &[String],
) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut valid = true;
    for file in files {
        let mut options = LoadOptions::with_process_env(vec![file.clone()]);
        options.env_file = env_file.cloned();
        options.profiles = profiles.to_vec();
        let checked = ComposeProject::check(&options);
        let n_errors = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let n_warnings = checked.diagnostics.len() - n_errors;
        lines.extend(checked.diagnostics.iter().map(ToString::to_string));
        match &checked.project {
            Some(project) => {
                let n_inference = project
                    .services()
                    .iter()
                    .filter(|s| s.inference().is_some())
                    .count();
                lines.push(format!(
                    "{}: ok: project {}, {} services ({n_inference} inference), {n_warnings} warning(s)",
                    file.display(),
                    project.name(),
                    project.services().len(),
                ));
            }
            None => {
                valid = false;
                lines.push(format!(
                    "{}: {n_errors} error(s), {n_warnings} warning(s)",
                    file.display()
                ));
            }
        }
    }
    (lines, valid)
}

/// Runs the command; `Ok(false)` when a file has errors.
pub(crate) fn run(args: &[String]) -> anyhow::Result<bool> {
    let args = parse_args(args)?;
    let files = if args.files.is_empty() {
        default_files()?
    } else {
        args.files
    };
    if files.is_empty() {
        bail!("compose-validate: no compose files given and none in compose/");
    }
    let (lines, valid) = validate(&files, args.env_file.as_ref(), &args.profiles);
    for line in lines {
        println!("{line}");
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Like rust-analyzer's tidy test: `cargo test` keeps `compose/` valid.
    #[test]
    fn the_repository_compose_files_are_valid() {
        let files = default_files().unwrap();
        assert!(files.len() >= 2, "{files:?}");
        let (lines, valid) = validate(&files, None, &[]);
        assert!(valid, "{}", lines.join("\n"));
    }

    /// The CLI's compose fixtures (compose files as people write them) are
    /// valid too: what `spark-perf run --dry-run` reads in its tests.
    #[test]
    fn the_cli_compose_fixtures_are_valid() {
        let dir = crate::workspace_root().join("crates/spark-perf/tests/fixtures/compose");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}", dir.display());
        let (lines, valid) = validate(&files, None, &[]);
        assert!(valid, "{}", lines.join("\n"));
        // Every fixture has an engine, and none draws a warning.
        for (file, line) in files
            .iter()
            .zip(lines.iter().filter(|l| l.contains(": ok: ")))
        {
            assert!(
                line.ends_with("inference), 0 warning(s)") && !line.contains("(0 inference)"),
                "{}: {line}",
                file.display()
            );
        }
    }

    #[test]
    fn a_broken_file_is_reported_with_file_line_and_service() {
        let dir =
            std::env::temp_dir().join(format!("xtask-compose-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("broken.yml");
        std::fs::write(
            &file,
            "services:\n  engine:\n    image: vllm/vllm-openai:v0.11.0\n    prots:\n      - \"8000:8000\"\n",
        )
        .unwrap();
        let (lines, valid) = validate(std::slice::from_ref(&file), None, &[]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!valid);
        let text = lines.join("\n");
        assert!(
            text.contains(&format!(
                "{}:4: service engine: unknown service key `prots`\n  hint: did you mean `ports`?",
                file.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn arguments() {
        let args = parse_args(&["--env-file".into(), "e".into(), "a.yml".into()]).unwrap();
        assert_eq!(args.env_file, Some(PathBuf::from("e")));
        assert_eq!(args.files, [PathBuf::from("a.yml")]);
        assert!(parse_args(&["--nope".into()]).is_err());
        assert!(parse_args(&["--env-file".into()]).is_err());
    }
}
