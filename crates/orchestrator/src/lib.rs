//! The orchestrator: reads a docker-compose file the way `docker compose`
//! does, and starts, health-gates and stops its inference services one at a
//! time through the Docker Engine API (bollard).
//!
//! ```no_run
//! # async fn example() -> Result<(), spark_orchestrator::OrchestratorError> {
//! use spark_orchestrator::{ComposeProject, Docker, HealthOptions, LoadOptions, StartOptions};
//! let project = ComposeProject::load(&LoadOptions::with_process_env(vec!["compose/sim.yml".into()]))?;
//! let docker = Docker::connect().await?;
//! for service in project.select(&[], &[])? {
//!     docker.stop_inference_containers(&project, &service).await?;
//!     let mut running = docker.start(&project, &service, StartOptions::default()).await?;
//!     let cost = running.wait_healthy(&HealthOptions::default()).await?;
//!     // ... benchmark service.base_url ...
//!     let provenance = running.stop().await?;
//! #   let _ = (cost, provenance);
//! }
//! // What was in the way runs again.
//! for restored in docker.restore_displaced().await {
//!     println!("{}: {:?}", restored.container.container, restored.error);
//! }
//! # Ok(()) }
//! ```
//!
//! Architecture Invariant: the orchestrator knows no OpenAI protocol; a plain
//! HTTP GET on a service's health path is all it ever sends to an engine.
//!
//! Architecture Invariant: a [`Docker`] handle runs at most one inference
//! container at any moment; [`Docker::start`] refuses a second one.

// Errors carry the context a user needs (service, container, log tail), so
// the enum is large; it is returned once per failed operation, never on a
// hot path, and boxing every bollard error would only add noise.
#![allow(clippy::result_large_err)]

mod build;
mod cleanup;
pub mod compose;
mod container;
mod create_body;
mod daemon;
mod dependency_start;
mod docker;
mod emergency;
mod error;
mod hash;
mod health;
mod image_ref;
mod mask;
mod model_files;
mod redact;
mod resources;
mod running;
mod stats;
mod sweep;
mod top;

pub use compose::{
    AssignedPort, BuildSpec, Checked, ComposeProject, Dependency, DependencyCondition, Diagnostic,
    Flavor, InferenceService, LoadOptions, SecretFile, SecretValue, Selection, Service, Severity,
    parse_duration,
};
pub use daemon::canonical_host;
pub use docker::{COMPOSE_VERSION_LABEL, Docker, Provenance, StartOptions};
pub use emergency::EmergencyStop;
pub use error::OrchestratorError;
pub use health::{HealthOptions, StartupCost};
pub use model_files::{ContainerMount, ContainerMountKind, ModelFiles};
pub use running::RunningService;
pub use stats::{ContainerStats, StatsReader};
pub use sweep::{RestoreOutcome, StoppedContainer};
