//! `cargo xtask tiny-model [--out PATH]`: the deterministic tiny GGUF the
//! image serves, written by `tiny_model.py` with the vendored gguf-py.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::run_checked;

/// The vendored vocabulary-only GGUF whose tokenizer the model takes:
/// Llama 3's byte-level BPE.
const VOCAB_FILE: &str = "ggml-vocab-llama-bpe.gguf";

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut out = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => {
                out = Some(PathBuf::from(
                    args.next()
                        .context("--out needs a path, e.g. --out tiny.gguf")?,
                ));
            }
            other => bail!("tiny-model: unknown option `{other}` (known: --out PATH)"),
        }
    }
    let out = match out {
        Some(path) => path,
        None => super::default_model_path()?,
    };
    let cache = super::cache_dir()?;
    let python = super::venv_python(&cache)?;
    let llama_cpp = super::source::llama_cpp_dir(&cache, &python)?;
    write_model(&python, &llama_cpp, &out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Writes the model to `out` (through a temporary file beside it).
pub(super) fn write_model(python: &Path, llama_cpp: &Path, out: &Path) -> anyhow::Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let script = crate::workspace_root()
        .join("xtask")
        .join("src")
        .join("llamacpp")
        .join("tiny_model.py");
    let partial = out.with_extension("gguf.partial");
    run_checked(
        Command::new(python)
            .env("PYTHONPATH", llama_cpp.join("gguf-py"))
            .arg(&script)
            .arg(llama_cpp.join("models").join(VOCAB_FILE))
            .arg(&partial),
    )?;
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot move the model to {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tiny_model_is_the_same_file_every_time() {
        let name = "the_tiny_model_is_the_same_file_every_time";
        // The venv and the vendored sources come with the llama.cpp build.
        let Some(built) = spark_testkit::llamacpp(name, false) else {
            return;
        };
        let cache = super::super::cache_dir().expect("cache dir");
        let python = super::super::venv_python(&cache).expect("venv");
        let llama_cpp = super::super::source::llama_cpp_dir(&cache, &python).expect("sources");
        let dir = std::env::temp_dir().join(format!("spark-tiny-model-{}", std::process::id()));
        let out = dir.join("tiny.gguf");
        super::write_model(&python, &llama_cpp, &out).expect("writes the model");
        let written = std::fs::read(&out).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        let cached = std::fs::read(&built.model).expect("the cached model");
        assert!(written.len() > 1_000_000, "{} bytes", written.len());
        // Byte for byte the model the image and the bind mount serve.
        assert!(written == cached, "the tiny model is not deterministic");
    }
}
