//! `llama-server` built from the vendored sources with cmake: CPU backend
//! only, Release, statically linked (a `FROM scratch` image has no libraries
//! to link against), and cached by version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use super::run_checked;

/// Configure options. OpenMP, OpenSSL and curl are what make the default
/// binary link shared libraries; `GGML_NATIVE=OFF` keeps the binary runnable
/// on any x86-64 with AVX2 rather than only on the build machine.
const CMAKE_OPTIONS: &[&str] = &[
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_OPENMP=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    // The server's web UI would otherwise be fetched at configure time.
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DCMAKE_EXE_LINKER_FLAGS=-static",
];

/// The cached static `llama-server`, building it when the cache lacks it.
pub(super) fn llama_server(cache: &Path, llama_cpp: &Path) -> anyhow::Result<PathBuf> {
    let binary = cache.join("bin").join("llama-server");
    if binary.exists() {
        return Ok(binary);
    }
    let build_dir = llama_cpp.join("build");
    let started = Instant::now();
    eprintln!("building llama-server with cmake (about 8 min on two idle cores)");
    run_checked(
        Command::new("cmake")
            .arg("-S")
            .arg(llama_cpp)
            .arg("-B")
            .arg(&build_dir)
            .args(CMAKE_OPTIONS),
    )
    .context("cmake configure failed: is cmake installed (apt-get install -y cmake)?")?;
    let jobs = std::thread::available_parallelism().map_or(2, usize::from);
    run_checked(
        Command::new("cmake")
            .arg("--build")
            .arg(&build_dir)
            .args(["--target", "llama-server", "-j"])
            .arg(jobs.to_string()),
    )?;
    let built = build_dir.join("bin").join("llama-server");
    if !built.exists() {
        bail!("cmake did not produce {}", built.display());
    }
    std::fs::create_dir_all(binary.parent().unwrap_or(cache))?;
    // Copy then rename, so an interrupted copy never looks like a cached binary.
    let partial = binary.with_extension("partial");
    std::fs::copy(&built, &partial).with_context(|| format!("cannot copy {}", built.display()))?;
    run_checked(Command::new("strip").arg(&partial))?;
    std::fs::rename(&partial, &binary)?;
    eprintln!(
        "built llama-server in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(binary)
}
