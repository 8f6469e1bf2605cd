//! A loaded project ([`ComposeProject`]): its name, files, services,
//! networks and volumes, and the choice of the services to benchmark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::diagnostic::{Checked, Diagnostic, Severity};
use super::discover::InferenceService;
use super::loader::Loader;
use super::service::Service;
use super::units;
use crate::OrchestratorError;

/// What to read and with which environment, as the `docker compose` flags
/// `-f`, `--env-file`, `-p` and `--profile` say.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Compose files, merged in order. Empty: `COMPOSE_FILE` (split on `:`),
    /// else the first of `compose.yaml`, `compose.yml`,
    /// `docker-compose.yaml`, `docker-compose.yml` in the current directory.
    pub files: Vec<PathBuf>,
    /// The `.env` file for interpolation. Default: `.env` in the project
    /// directory (the first file's directory), when it exists.
    pub env_file: Option<PathBuf>,
    /// `-p`: wins over `COMPOSE_PROJECT_NAME` and the top-level `name:`.
    pub project_name: Option<String>,
    /// `--profile`: when empty, `COMPOSE_PROFILES` (comma-separated).
    pub profiles: Vec<String>,
    /// The shell environment. It wins over `.env`. Use
    /// [`LoadOptions::with_process_env`] for the real one; tests pass their own.
    pub environment: BTreeMap<String, String>,
}

impl LoadOptions {
    /// Options for `files` with this process's environment.
    pub fn with_process_env(files: Vec<PathBuf>) -> Self {
        LoadOptions {
            files,
            environment: std::env::vars().collect(),
            ..LoadOptions::default()
        }
    }
}

/// A top-level network of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkSpec {
    /// The Docker name: `<project>_<key>`, or `name:`, or the key when external.
    pub(crate) docker_name: String,
    pub(crate) external: bool,
    pub(crate) driver: Option<String>,
    /// The key under `networks:` (the `com.docker.compose.network` label).
    pub(crate) key: String,
}

/// A top-level named volume of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeSpec {
    pub(crate) docker_name: String,
    pub(crate) external: bool,
    pub(crate) driver: Option<String>,
    pub(crate) key: String,
}

/// A loaded compose project: its name, files and services.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    pub(super) name: String,
    pub(super) working_dir: PathBuf,
    pub(super) config_files: Vec<PathBuf>,
    pub(super) services: Vec<Service>,
    pub(crate) networks: BTreeMap<String, NetworkSpec>,
    pub(crate) volumes: BTreeMap<String, VolumeSpec>,
    pub(super) profiles: Vec<String>,
    /// The top-level `x-spark-perf.slo`, unparsed.
    pub(super) slo: Option<String>,
    pub(super) warnings: Vec<Diagnostic>,
}

impl ComposeProject {
    /// Reads and checks the project; fails with every error found.
    pub fn load(options: &LoadOptions) -> Result<ComposeProject, OrchestratorError> {
        let checked = Self::check(options);
        match checked.project {
            Some(project) => Ok(project),
            None => Err(OrchestratorError::InvalidCompose {
                diagnostics: checked
                    .diagnostics
                    .into_iter()
                    .filter(|d| d.severity == Severity::Error)
                    .collect(),
            }),
        }
    }

    /// Reads and checks the project, returning every diagnostic. Never
    /// panics, whatever the input.
    pub fn check(options: &LoadOptions) -> Checked {
        let mut loader = Loader::default();
        let project = loader.run(options);
        let mut diagnostics = loader.diagnostics;
        // Stable order: by file (in load order), then line.
        let file_rank: Vec<PathBuf> = loader.files.iter().map(|f| f.path.clone()).collect();
        diagnostics.sort_by_key(|d| {
            (
                file_rank
                    .iter()
                    .position(|p| *p == d.file)
                    .unwrap_or(usize::MAX),
                d.line.unwrap_or(0),
            )
        });
        diagnostics.dedup();
        let has_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
        let project = project.filter(|_| !has_errors).map(|mut project| {
            project.warnings = diagnostics.clone();
            project
        });
        Checked {
            project,
            diagnostics,
        }
    }

    /// The top-level `x-spark-perf.slo` as written (`ttft_p90=2s,…`), the
    /// SLO of every engine without its own; the CLI parses it.
    pub fn slo(&self) -> Option<&str> {
        self.slo.as_deref()
    }

    /// The project name (the `com.docker.compose.project` label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The project directory: the first compose file's directory.
    pub fn working_dir(&self) -> &Path {
        &self.working_dir
    }

    /// The compose files, absolute, in merge order.
    pub fn config_files(&self) -> &[PathBuf] {
        &self.config_files
    }

    /// The active profiles.
    pub fn profiles(&self) -> &[String] {
        &self.profiles
    }

    /// Warnings found while loading.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Every service in file order, including those whose profile is off.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name() == name)
    }

    /// The inference services enabled by the active profiles, in file order.
    pub fn inference_services(&self) -> Vec<InferenceService> {
        self.services
            .iter()
            .filter(|s| s.enabled())
            .filter_map(|s| s.inference().cloned())
            .collect()
    }

    /// The inference services to benchmark, in file order: see
    /// [`ComposeProject::selection`] for the rules.
    pub fn select(
        &self,
        only: &[String],
        skip: &[String],
    ) -> Result<Vec<InferenceService>, OrchestratorError> {
        Ok(self
            .selection(only, skip)?
            .into_iter()
            .filter(|s| s.selected)
            .map(|s| s.service)
            .collect())
    }

    /// Checks that `name` is an inference service of the project; an unknown
    /// name is an error listing the services with the closest one.
    pub(super) fn check_inference_name(&self, name: &str) -> Result<(), OrchestratorError> {
        let Some(service) = self.service(name) else {
            let names: Vec<&str> = self.services.iter().map(Service::name).collect();
            return Err(OrchestratorError::ServiceNotFound {
                name: name.to_owned(),
                suggestion: units::closest(name, names.iter().copied()).map(str::to_owned),
                available: names.iter().map(|s| (*s).to_owned()).collect(),
            });
        };
        if service.inference().is_none() {
            return Err(OrchestratorError::NotAnInferenceService {
                name: name.to_owned(),
            });
        }
        Ok(())
    }
}

/// Normalises a project name as compose v2 does: lower case, keep only
/// `[a-z0-9_-]`, no leading `_` or `-`.
pub fn normalize_project_name(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}
