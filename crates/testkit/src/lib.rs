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

/// The tag `cargo xtask llamacpp-image` gives the llama.cpp image.
pub const LLAMACPP_IMAGE: &str = "spark-llamacpp:dev";

/// The `llama-cpp-python` release whose vendored llama.cpp the xtask builds;
/// xtask's tests check that it is the xtask's own.
pub const LLAMACPP_VERSION: &str = "0.3.36";

/// What `cargo xtask llamacpp-image` leaves on the machine: the image, the
/// static `llama-server` and the tiny model, under the cache directory
/// (outside the checkout, so a fresh clone reuses them).
#[derive(Debug, Clone)]
pub struct LlamaCpp {
    /// The image tag.
    pub image: &'static str,
    /// The static llama-server binary.
    pub server: PathBuf,
    /// The tiny GGUF model.
    pub model: PathBuf,
}

/// The xtask's cache directory of this llama.cpp version.
pub fn llamacpp_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("spark-perf")
        .join(format!("llamacpp-{LLAMACPP_VERSION}"))
}

/// The llama.cpp engine for a test, or `None` (with the reason printed)
/// when it has not been built on this machine: building llama.cpp takes
/// 10 to 25 minutes on two cores, too long to start from a newcomer's first
/// `cargo test`. With `SPARK_PERF_REQUIRE_DOCKER=1` (CI, whose `.ci/run`
/// builds it first) it is built here when missing, and a failed build is a
/// failure. `needs_image` asks for the Docker image too (and so a daemon).
pub fn llamacpp(test_name: &str, needs_image: bool) -> Option<&'static LlamaCpp> {
    static BUILT: OnceLock<Result<LlamaCpp, String>> = OnceLock::new();
    let cache = llamacpp_cache_dir();
    let engine = LlamaCpp {
        image: LLAMACPP_IMAGE,
        server: cache.join("bin").join("llama-server"),
        model: cache.join("models").join("tiny.gguf"),
    };
    let present = engine.server.is_file()
        && engine.model.is_file()
        && (!needs_image || image_exists(LLAMACPP_IMAGE));
    if present {
        return BUILT.get_or_init(|| Ok(engine)).as_ref().ok();
    }
    if !docker_required() {
        eprintln!(
            "skipping {test_name}: llama.cpp is not built on this machine (run `cargo xtask llamacpp-image`, 10 to 25 minutes cold; .ci/run does it)"
        );
        return None;
    }
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args(["xtask", "llamacpp-image", "--tag", LLAMACPP_IMAGE])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("cannot run cargo xtask llamacpp-image: {err}"))?;
        if output.status.success() {
            Ok(engine)
        } else {
            Err(format!(
                "cargo xtask llamacpp-image failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    match built {
        Ok(engine) => Some(engine),
        Err(message) => panic!("{test_name}: {message}"),
    }
}

fn image_exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A compose project a test runs: on drop, every container of the project
/// is removed with its anonymous volumes, and its default network with it,
/// on every path out of the test.
#[derive(Debug)]
pub struct ProjectGuard(pub String);

impl ProjectGuard {
    /// A project name unique to this test process.
    pub fn new(name: &str) -> ProjectGuard {
        ProjectGuard(format!("spt-{name}-{}", std::process::id()))
    }

    /// The IDs of the project's containers, running or not.
    pub fn containers(&self) -> Vec<String> {
        let output = Command::new("docker")
            .args([
                "ps",
                "--all",
                "--quiet",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.0),
            ])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for ProjectGuard {
    fn drop(&mut self) {
        for id in self.containers() {
            let _ = Command::new("docker")
                .args(["rm", "--force", "--volumes", &id])
                .output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &format!("{}_default", self.0)])
            .stderr(Stdio::null())
            .output();
    }
}

/// `spark-perf run` as the Docker tests start it: the test's own compose
/// project, scenario file, output and lock directory (tests run in
/// parallel on one daemon, each holding its own run lock), quick health
/// polling, no colour and no stdin. The caller adds the compose files, the
/// health timeout and what the test is about.
pub fn run_command(
    program: &str,
    project: &ProjectGuard,
    scenario_file: &Path,
    output_dir: &Path,
    lock_dir: &Path,
) -> Command {
    let mut command = Command::new(program);
    command
        .arg("run")
        .args(["--project-name", &project.0])
        .arg("--scenario-file")
        .arg(scenario_file)
        .args(["--health-interval", "200ms"])
        .arg("--output")
        .arg(output_dir)
        .env("NO_COLOR", "1")
        .env("SPARK_PERF_LOCK_DIR", lock_dir)
        .stdin(Stdio::null());
    command
}

/// The path of the program `name` on PATH, or `None` with the reason the
/// test named `test_name` skips printed; under `SPARK_PERF_REQUIRE_DOCKER=1`
/// (CI, whose `.ci/run` installs it) a missing program is a failure.
pub fn tool(name: &str, test_name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if docker_required() => {
            panic!(
                "{test_name}: {REQUIRE_DOCKER_ENV}=1 but {name} is not installed (.ci/run installs it)"
            )
        }
        None => {
            eprintln!("skipping {test_name}: {name} is not installed");
            None
        }
    }
}

/// A spark-sim process (`spark-perf sim` or `spark-sim`) on a free loopback
/// port, killed on every path out of the test.
#[derive(Debug)]
pub struct SimProcess {
    child: std::process::Child,
    /// Its base URL, from the line it prints once listening.
    pub url: String,
}

impl SimProcess {
    /// Runs `program` with `args` (`sim`, flags…) plus `--host 127.0.0.1
    /// --port 0`, and waits for its "listening on" line.
    pub fn start(program: &Path, args: &[&str]) -> SimProcess {
        use std::io::BufRead;
        let mut child = Command::new(program)
            .args(args)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the sim starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("its listening line");
        let url = line
            .trim()
            .strip_prefix("spark-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line of the sim: {line:?}"))
            .to_owned();
        SimProcess { child, url }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory unique to this test process, created empty and
/// removed on every path out of the test.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/spark-perf-NAME-PID`, emptied first.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("spark-perf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The one run directory a `run` wrote under `output_dir` (files beside
/// it, such as history.sqlite, are not runs).
pub fn the_run_dir(output_dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(output_dir)
        .expect("report directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().expect("one run")
}
