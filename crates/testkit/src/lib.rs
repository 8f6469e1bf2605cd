//! Test support shared by the integration tests of the workspace.
//!
//! Two things every Docker test needs and must do the same way:
//! - [`docker_available`] decides whether a Docker test runs. Where no daemon
//!   answers it prints why and the test returns early, except when
//!   `SPARK_PERF_REQUIRE_DOCKER=1` (CI sets it): then a missing daemon is a
//!   failure, so CI can never pass by skipping.
//! - [`sim_image`] builds the `spark-sim:dev` image once per test process (by
//!   running `cargo xtask sim-image`, which is itself cached), so the README's
//!   test command stays the only set-up.
//!
//! Architecture Invariant: only tests depend on this crate (as a
//! dev-dependency); it never ships in a binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The environment variable that turns a Docker skip into a failure.
pub const REQUIRE_DOCKER_ENV: &str = "SPARK_PERF_REQUIRE_DOCKER";

/// The tag `cargo xtask sim-image` gives the spark-sim image.
pub const SIM_IMAGE: &str = "spark-sim:dev";

/// Whether Docker tests must run rather than skip.
pub fn docker_required() -> bool {
    std::env::var(REQUIRE_DOCKER_ENV).is_ok_and(|value| value == "1")
}

/// Returns true when a Docker daemon answers. Otherwise prints the reason the
/// test named `test_name` is skipped and returns false, or panics when
/// `SPARK_PERF_REQUIRE_DOCKER=1`.
pub fn docker_available(test_name: &str) -> bool {
    match docker_ping() {
        Ok(()) => true,
        Err(reason) if docker_required() => {
            panic!("{test_name}: {REQUIRE_DOCKER_ENV}=1 but no Docker daemon answers: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping {test_name}: no Docker daemon answers ({reason})");
            false
        }
    }
}

fn docker_ping() -> Result<(), String> {
    let output = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run the docker CLI: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives at `<root>/crates/testkit`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds (or reuses) the `spark-sim:dev` image and returns its tag.
///
/// Panics with the build's output when the build fails: a test that needs the
/// image cannot say anything useful without it.
pub fn sim_image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args(["xtask", "sim-image", "--tag", SIM_IMAGE])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("cannot run cargo xtask sim-image: {err}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cargo xtask sim-image failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    match result {
        Ok(()) => SIM_IMAGE,
        Err(message) => panic!("{message}"),
    }
}
