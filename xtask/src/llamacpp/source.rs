//! The llama.cpp sources: the `llama-cpp-python` sdist fetched with pip,
//! checked against a pinned sha256 and unpacked into the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::{VERSION, run_checked};

/// sha256 of `llama_cpp_python-0.3.36.tar.gz` (76,589,250 bytes) as pip
/// downloaded it from PyPI.
const SDIST_SHA256: &str = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e";

/// The unpacked `vendor/llama.cpp` directory, fetching and verifying the
/// sdist first when the cache lacks it.
pub(super) fn llama_cpp_dir(cache: &Path, python: &Path) -> anyhow::Result<PathBuf> {
    let unpacked = cache
        .join("src")
        .join(format!("llama_cpp_python-{VERSION}"));
    let vendored = unpacked.join("vendor").join("llama.cpp");
    let stamp = cache.join("src").join(".verified");
    if stamp.exists() && vendored.join("CMakeLists.txt").exists() {
        return Ok(vendored);
    }
    let sdist = fetch_sdist(cache, python)?;
    let digest = sha256(&sdist)?;
    if digest != SDIST_SHA256 {
        bail!(
            "{} has sha256 {digest}, expected {SDIST_SHA256}: remove it and run again",
            sdist.display()
        );
    }
    let src = cache.join("src");
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked)
            .with_context(|| format!("cannot remove {}", unpacked.display()))?;
    }
    std::fs::create_dir_all(&src)?;
    eprintln!("unpacking {}", sdist.display());
    run_checked(
        Command::new("tar")
            .arg("xzf")
            .arg(&sdist)
            .arg("-C")
            .arg(&src),
    )?;
    std::fs::write(&stamp, SDIST_SHA256)?;
    Ok(vendored)
}

fn fetch_sdist(cache: &Path, python: &Path) -> anyhow::Result<PathBuf> {
    let download_dir = cache.join("dl");
    let sdist = download_dir.join(format!("llama_cpp_python-{VERSION}.tar.gz"));
    if sdist.exists() {
        return Ok(sdist);
    }
    eprintln!("downloading the llama-cpp-python {VERSION} sdist with pip (76.6 MB)");
    // pip's metadata step of an sdist runs its build backend: scikit-build-core
    // from the venv (--no-build-isolation) and a cmake on PATH.
    run_checked(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-deps", "--no-binary", ":all:", "--no-build-isolation"])
            .arg("--dest")
            .arg(&download_dir)
            .arg(format!("llama-cpp-python=={VERSION}")),
    )
    .context("pip download failed: is cmake installed (apt-get install -y cmake)?")?;
    if !sdist.exists() {
        bail!("pip download did not write {}", sdist.display());
    }
    Ok(sdist)
}

/// The file's sha256 as lowercase hex, from coreutils' `sha256sum`.
fn sha256(path: &Path) -> anyhow::Result<String> {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("cannot run sha256sum")?;
    if !output.status.success() {
        bail!("sha256sum {} failed ({})", path.display(), output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}
