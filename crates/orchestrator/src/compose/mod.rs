//! The compose model: one parser for `spark-perf run` and
//! `cargo xtask compose-validate`.
//!
//! [`ComposeProject::check`] reads the files the way `docker compose` does
//! (YAML with anchors and merge keys, interpolation, `.env`, `env_file`,
//! several `-f` files merged, profiles, the project name rules) and returns
//! every problem as a [`Diagnostic`] naming file, line and service.
//! [`ComposeProject::load`] is the same with errors turned into a failure.
//! The model behind it is hand-written (see docs/COMPOSE.md for why).
//!
//! The pipeline: [`loader`] (files, variables, merge, project name, services)
//! over [`document`] (one file's YAML and interpolation), [`tree`] (merge keys,
//! the merge of files, canonical form), [`toplevel`] (networks and volumes)
//! and [`service`] (one module per section of a service); [`project`] is the
//! result and [`diagnostic`] what is reported.

mod dependencies;
mod diagnostic;
#[cfg(test)]
mod differential;
mod discover;
mod document;
mod extends;
mod interpolate;
mod loader;
pub(crate) mod locate;
mod project;
mod secrets;
mod selection;
mod service;
mod toplevel;
mod tree;
pub(crate) mod units;

use serde_yaml::Value;

pub(crate) use diagnostic::Problem;
pub use diagnostic::{Checked, Diagnostic, Severity};
pub use discover::{AssignedPort, Flavor, InferenceService};
pub use project::{ComposeProject, LoadOptions, normalize_project_name};
pub(crate) use project::{NetworkSpec, VolumeSpec};
pub use secrets::SecretValue;
pub use selection::Selection;
pub(crate) use service::MountSpec;
pub use service::{BuildSpec, Dependency, DependencyCondition, SecretFile, Service};
pub(crate) use tree::canonical_json;
pub use units::parse_duration;

/// A scalar as text: strings as they are, numbers and booleans written out.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(tagged) => scalar_text(&tagged.value),
        Value::Null | Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// Names that look like they hold a secret.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"]
        .iter()
        .any(|word| upper.contains(word))
}
