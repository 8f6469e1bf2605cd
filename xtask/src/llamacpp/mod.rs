//! `cargo xtask llamacpp-image` and `cargo xtask tiny-model`: a real
//! llama.cpp engine for the tests, built from a registry package.
//!
//! The `llama-cpp-python` source distribution on PyPI vendors the whole of
//! llama.cpp (the server, `gguf-py`, vocabulary-only GGUF files of real
//! tokenizers), so pip is the only registry needed: no Git host, no image
//! registry. Everything slow is cached by version outside the checkout, under
//! `${XDG_CACHE_HOME:-~/.cache}/spark-perf/llamacpp-VERSION/`, so a second
//! build on the same machine costs seconds.

mod image;
mod model;
mod server;
mod source;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub(crate) use image::run as image;
pub(crate) use model::run as tiny_model;

/// The pinned `llama-cpp-python` release whose sdist vendors llama.cpp.
const VERSION: &str = "0.3.36";

/// Python packages the xtask's venv needs: scikit-build-core for pip's
/// metadata step of the sdist download, numpy and PyYAML for gguf-py.
const VENV_PACKAGES: &[&str] = &["scikit-build-core==1.1.2", "numpy==2.4.6", "PyYAML==6.0.4"];

/// The cache directory of this version: outside the checkout, so that a
/// fresh clone on the same machine reuses it.
fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?,
        )
        .join(".cache"),
    };
    let dir = base.join("spark-perf").join(format!("llamacpp-{VERSION}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The default path `tiny-model` writes to and the compose file's
/// bind-mounted service reads from.
fn default_model_path() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join("models").join("tiny.gguf"))
}

/// The venv's python, creating the venv and installing its packages once.
fn venv_python(cache: &Path) -> anyhow::Result<PathBuf> {
    let venv = cache.join("venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join(".spark-perf-packages");
    let wanted = VENV_PACKAGES.join(" ");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    if !python.exists() {
        eprintln!("creating the python venv {}", venv.display());
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    eprintln!("installing {wanted} into the venv");
    run_checked(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(VENV_PACKAGES),
    )?;
    std::fs::write(&stamp, wanted).context("cannot write the venv's stamp")?;
    Ok(python)
}

/// Runs a command with inherited output; an error names it and its status.
fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tests_look_for_the_version_and_the_cache_the_xtask_builds() {
        assert_eq!(spark_testkit::LLAMACPP_VERSION, super::VERSION);
        let ours = super::cache_dir().expect("cache dir");
        assert_eq!(spark_testkit::llamacpp_cache_dir(), ours);
    }
}
