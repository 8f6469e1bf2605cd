//! The crate's one error type: one variant per operation that can fail,
//! each carrying the service, image, container or URL a user needs to act.
//!
//! Environment values never appear here: only variable names do, and log
//! tails are redacted before they are stored.

use std::path::PathBuf;
use std::time::Duration;

use crate::compose::Diagnostic;

/// Everything that can go wrong in the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The compose files have errors; each diagnostic names file, line and service.
    #[error("invalid compose project:\n{}", render_diagnostics(.diagnostics))]
    InvalidCompose { diagnostics: Vec<Diagnostic> },

    /// `--only`/`--skip` named a service the project does not have.
    #[error("Service {name} not found{}; services: {}", suggestion_text(.suggestion), .available.join(", "))]
    ServiceNotFound {
        name: String,
        suggestion: Option<String>,
        available: Vec<String>,
    },

    /// `--only`/`--skip` named a service that is not an inference engine.
    #[error(
        "service {name} is not an inference engine (mark it with `x-spark-perf: {{inference: true}}` if it is one)"
    )]
    NotAnInferenceService { name: String },

    /// No Docker daemon answered.
    #[error(
        "cannot connect to the Docker daemon at {host}: {source} (is Docker running? DOCKER_HOST selects another daemon)"
    )]
    ConnectDocker {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Starting a second inference container while one still runs.
    #[error(
        "cannot start service {requested}: service {running} is still running (at most one inference container runs at a time; stop it first)"
    )]
    AnotherServiceRunning { running: String, requested: String },

    /// A host port the service needs is taken by something that is not a container.
    #[error(
        "cannot start service {service}: host port {port} is already in use by a process outside Docker"
    )]
    HostPortInUse { service: String, port: u16 },

    /// Listing, stopping or removing the containers that were in the way.
    #[error("cannot stop container {container} (service {service}): {source}")]
    StopContainer {
        service: String,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Listing the project's containers.
    #[error("cannot list the containers of project {project}: {source}")]
    ListContainers {
        project: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// The image is not present locally and `pull` was not asked for.
    #[error(
        "service {service}: image {image} is not present locally (pass --pull to pull it, or `docker pull {image}`)"
    )]
    ImageMissing { service: String, image: String },

    /// Inspecting or pulling the image failed.
    #[error("service {service}: cannot pull image {image}: {source}")]
    PullImage {
        service: String,
        image: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Inspecting the image failed for another reason than its absence.
    #[error("service {service}: cannot inspect image {image}: {source}")]
    InspectImage {
        service: String,
        image: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Reading the build context of a service's `build:`.
    #[error("service {service}: cannot read the build context {}: {source}", .context.display())]
    BuildContext {
        service: String,
        context: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Building the image of a service's `build:`: the daemon's error and
    /// the build's last output lines (build-argument values redacted).
    #[error("service {service}: cannot build image {image} from {}: {reason}{}", .context.display(), output_tail_text(.output_tail))]
    BuildImage {
        service: String,
        image: String,
        context: PathBuf,
        reason: String,
        output_tail: Vec<String>,
    },

    /// Creating the project's network.
    #[error("service {service}: cannot create network {network}: {source}")]
    CreateNetwork {
        service: String,
        network: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// An `external: true` network or volume that does not exist.
    #[error("service {service}: external {kind} {name} does not exist (create it first)")]
    ExternalMissing {
        service: String,
        kind: &'static str,
        name: String,
    },

    /// Creating a named volume.
    #[error("service {service}: cannot create volume {volume}: {source}")]
    CreateVolume {
        service: String,
        volume: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// A container of that name exists and runs (outside this run).
    #[error("service {service}: a container named {container} is already running; stop it first")]
    ContainerExists { service: String, container: String },

    /// Creating the container.
    #[error("service {service}: cannot create container {container} from {image}: {source}")]
    CreateContainer {
        service: String,
        container: String,
        image: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Starting the container.
    #[error("service {service}: cannot start container {container}: {source}")]
    StartContainer {
        service: String,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Inspecting the container while waiting for it.
    #[error("service {service}: cannot inspect container {container}: {source}")]
    InspectContainer {
        service: String,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Reading the engine container's stats (memory, CPU) for telemetry.
    #[error("service {service}: cannot read the stats of container {container}: {reason}")]
    ReadStats {
        service: String,
        container: String,
        reason: String,
    },

    /// The container exited before it became healthy.
    #[error("service {service}: container {container} exited with code {exit_code} before it became healthy{}", log_tail_text(.log_tail))]
    ExitedBeforeHealthy {
        service: String,
        container: String,
        exit_code: i64,
        /// The last log lines, secrets redacted.
        log_tail: Vec<String>,
    },

    /// The container restarted (a crash loop under a restart policy).
    #[error("service {service}: container {container} restarted {restart_count} time(s) before it became healthy{}{}", exit_code_text(.exit_code), log_tail_text(.log_tail))]
    RestartedBeforeHealthy {
        service: String,
        container: String,
        restart_count: i64,
        /// The last exit code, when the daemon still reports it.
        exit_code: Option<i64>,
        log_tail: Vec<String>,
    },

    /// The container was removed by someone else while we waited.
    #[error("service {service}: container {container} was removed before it became healthy")]
    RemovedBeforeHealthy { service: String, container: String },

    /// The health path did not answer 200 in time.
    #[error("service {service}: {url} did not answer 200 within {:.0?} (last answer: {last}){}", .elapsed, log_tail_text(.log_tail))]
    HealthTimeout {
        service: String,
        url: String,
        elapsed: Duration,
        last: String,
        log_tail: Vec<String>,
    },

    /// Removing the container after it stopped.
    #[error("service {service}: cannot remove container {container}: {source}")]
    RemoveContainer {
        service: String,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Copying the service's secret and config files into its container.
    #[error(
        "service {service}: cannot copy its secrets and configs into container {container}: {source}"
    )]
    CopyFiles {
        service: String,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// The container runs but Docker published no host port for the
    /// engine's container port.
    #[error(
        "service {service}: Docker published no host port for container port {container_port} of container {container}"
    )]
    NoAssignedPort {
        service: String,
        container: String,
        container_port: u16,
    },

    /// A dependency (`depends_on`) did not reach its condition.
    #[error("service {service}: dependency {dependency} (container {container}) did not reach {condition}: {reason}{}", log_tail_text(.log_tail))]
    DependencyFailed {
        service: String,
        dependency: String,
        container: String,
        /// The compose condition (`service_completed_successfully`, ...).
        condition: &'static str,
        /// What happened instead: "exited with code 3", "unhealthy", ...
        reason: String,
        /// The exit code, when it exited.
        exit_code: Option<i64>,
        /// The dependency's last log lines, secrets redacted.
        log_tail: Vec<String>,
    },

    /// Reading a file the project refers to.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

fn exit_code_text(exit_code: &Option<i64>) -> String {
    match exit_code {
        Some(code) => format!(" (last exit code {code})"),
        None => String::new(),
    }
}

fn output_tail_text(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(
            "; last {} line(s) of the build:\n{}",
            lines.len(),
            lines.join("\n")
        )
    }
}

fn log_tail_text(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; last {} log line(s):\n{}", lines.len(), lines.join("\n"))
    }
}
