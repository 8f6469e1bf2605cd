//! The compose model: one parser for `spark-perf run` and
//! `cargo xtask compose-validate`.
//!
//! [`ComposeProject::check`] reads the files the way `docker compose` does
//! (YAML with anchors and merge keys, interpolation, `.env`, `env_file`,
//! several `-f` files merged, profiles, the project name rules) and returns
//! every problem as a [`Diagnostic`] naming file, line and service.
//! [`ComposeProject::load`] is the same with errors turned into a failure.
//! The model behind it is hand-written (see docs/COMPOSE.md for why).

mod discover;
mod interpolate;
pub(crate) mod locate;
mod service;
pub(crate) mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::OrchestratorError;
pub use discover::{Flavor, InferenceService};
use interpolate::Vars;
use locate::{Locator, Seg, ypath};
pub(crate) use service::MountSpec;
pub use service::Service;
pub use units::parse_duration;

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

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The project cannot be run as written.
    Error,
    /// It runs, but probably not as intended.
    Warning,
}

/// One problem in a compose file. Displays as
/// `FILE:LINE: service NAME: message` (plus `warning: ` for warnings) and an
/// indented `hint:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is not on a line (a missing file).
    pub line: Option<usize>,
    /// 1-based; YAML syntax errors only.
    pub column: Option<usize>,
    pub service: Option<String>,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(service) = &self.service {
            write!(f, "service {service}: ")?;
        }
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The outcome of [`ComposeProject::check`]: the project when it has no
/// errors, and every diagnostic (errors and warnings) in file order.
#[derive(Debug)]
pub struct Checked {
    pub project: Option<ComposeProject>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
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
    name: String,
    working_dir: PathBuf,
    config_files: Vec<PathBuf>,
    services: Vec<Service>,
    pub(crate) networks: BTreeMap<String, NetworkSpec>,
    pub(crate) volumes: BTreeMap<String, VolumeSpec>,
    profiles: Vec<String>,
    warnings: Vec<Diagnostic>,
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

    /// The inference services to benchmark: those named in `only` (any
    /// inference service, even one whose profile is off, as `docker compose
    /// up NAME` does), else every enabled one; minus those in `skip`.
    /// An unknown name is an error listing the services with the closest
    /// one.
    pub fn select(
        &self,
        only: &[String],
        skip: &[String],
    ) -> Result<Vec<InferenceService>, OrchestratorError> {
        for name in only.iter().chain(skip) {
            let Some(service) = self.service(name) else {
                let names: Vec<&str> = self.services.iter().map(Service::name).collect();
                return Err(OrchestratorError::ServiceNotFound {
                    name: name.clone(),
                    suggestion: units::closest(name, names.iter().copied()).map(str::to_owned),
                    available: names.iter().map(|s| (*s).to_owned()).collect(),
                });
            };
            if service.inference().is_none() {
                return Err(OrchestratorError::NotAnInferenceService { name: name.clone() });
            }
        }
        let chosen: Vec<InferenceService> = if only.is_empty() {
            self.inference_services()
        } else {
            self.services
                .iter()
                .filter(|s| only.iter().any(|o| o == s.name()))
                .filter_map(|s| s.inference().cloned())
                .collect()
        };
        Ok(chosen
            .into_iter()
            .filter(|s| !skip.contains(&s.name))
            .collect())
    }
}

/// The project directory: the folder of the first compose file, from its
/// canonical path. A bare `docker-compose.yml` has an empty parent and
/// `../x/compose.yml` a parent ending in `..`; neither names a folder, so
/// the path is made canonical first (absolute, without `.`, `..` or links)
/// and only falls back to the lexical absolute path for a file that does not
/// exist (its read fails with its own diagnostic).
fn project_dir(file: &Path) -> PathBuf {
    let full = std::fs::canonicalize(file)
        .or_else(|_| std::path::absolute(file))
        .unwrap_or_else(|_| file.to_path_buf());
    full.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
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

#[derive(Debug, Default)]
struct SourceFile {
    path: PathBuf,
    locator: Locator,
}

/// The state of one load: files read so far and diagnostics.
#[derive(Debug, Default)]
struct Loader {
    files: Vec<SourceFile>,
    diagnostics: Vec<Diagnostic>,
    /// For each service, the indexes of the files that define it.
    service_files: BTreeMap<String, Vec<usize>>,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs", "include", "models",
];

const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// A diagnostic being built: where it is and what it says.
pub(crate) struct Problem {
    pub(crate) path: Vec<Seg>,
    pub(crate) severity: Severity,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Problem {
    pub(crate) fn error(path: impl Into<Vec<Seg>>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            severity: Severity::Error,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn warning(path: impl Into<Vec<Seg>>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(path, message)
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl Loader {
    fn push(&mut self, file_idx: usize, service: Option<&str>, problem: Problem) {
        let Some(file) = self.files.get(file_idx) else {
            return;
        };
        let line = file.locator.line(&problem.path).map(|(line, _)| line);
        self.diagnostics.push(Diagnostic {
            file: file.path.clone(),
            line,
            column: None,
            service: service.map(str::to_owned),
            severity: problem.severity,
            message: problem.message,
            hint: problem.hint,
        });
    }

    /// Records a problem of a service in the file that writes its path
    /// (the last one that has it), else the first file defining the service.
    fn push_service(&mut self, service: &str, problem: Problem) {
        let files = self.service_files.get(service).cloned().unwrap_or_default();
        let exact = files.iter().rev().copied().find(|&idx| {
            self.files[idx]
                .locator
                .line(&problem.path)
                .is_some_and(|(_, depth)| depth == problem.path.len())
        });
        let file_idx = exact.or_else(|| files.first().copied()).unwrap_or(0);
        self.push(file_idx, Some(service), problem);
    }

    fn file_error(&mut self, path: &Path, message: String, hint: Option<String>) {
        self.diagnostics.push(Diagnostic {
            file: path.to_path_buf(),
            line: None,
            column: None,
            service: None,
            severity: Severity::Error,
            message,
            hint,
        });
    }

    fn run(&mut self, options: &LoadOptions) -> Option<ComposeProject> {
        let shell = &options.environment;
        let files = self.resolve_files(options)?;
        let working_dir = files
            .first()
            .map(|f| project_dir(f))
            .unwrap_or_else(|| PathBuf::from("."));

        // The interpolation variables: `.env`, then the shell over it.
        let mut vars: Vars = BTreeMap::new();
        let env_path = options
            .env_file
            .clone()
            .or_else(|| Some(working_dir.join(".env")).filter(|p| p.is_file()));
        if let Some(env_path) = env_path {
            match std::fs::read_to_string(&env_path) {
                Ok(text) => {
                    let (parsed, bad_lines) = interpolate::parse_env_file(&text, shell);
                    for line in bad_lines {
                        self.diagnostics.push(Diagnostic {
                            file: env_path.clone(),
                            line: Some(line),
                            column: None,
                            service: None,
                            severity: Severity::Error,
                            message: "malformed line in the env file".into(),
                            hint: Some("write KEY=VALUE".into()),
                        });
                    }
                    vars.extend(parsed);
                }
                Err(err) => {
                    self.file_error(&env_path, format!("cannot read the env file: {err}"), None);
                }
            }
        }
        for (key, value) in shell {
            vars.insert(key.clone(), value.clone());
        }

        // Read, parse, merge keys, interpolate each file.
        let mut documents: Vec<(Mapping, Mapping)> = Vec::new();
        for (file_idx, path) in files.iter().enumerate() {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(err) => {
                    self.files.push(SourceFile {
                        path: path.clone(),
                        locator: Locator::default(),
                    });
                    self.file_error(path, format!("cannot read the compose file: {err}"), None);
                    continue;
                }
            };
            self.files.push(SourceFile {
                path: path.clone(),
                locator: Locator::new(&text),
            });
            if let Some(raw) = self.parse_yaml(file_idx, &text) {
                let mut interpolated = Value::Mapping(raw.clone());
                self.interpolate_tree(file_idx, &mut interpolated, &mut Vec::new(), &vars);
                if let Value::Mapping(interpolated) = interpolated {
                    documents.push((raw, interpolated));
                }
            }
        }
        if documents.len() != files.len() {
            return None;
        }

        // Top-level keys and the merge of several files.
        let mut merged = Mapping::new();
        let mut merged_raw = Mapping::new();
        for (file_idx, (raw, doc)) in documents.into_iter().enumerate() {
            for key in doc.keys() {
                let key_text = scalar_text(key).unwrap_or_default();
                if !TOP_LEVEL_KEYS.contains(&key_text.as_str()) && !key_text.starts_with("x-") {
                    let mut problem = Problem::error(
                        ypath![key_text.as_str()],
                        format!("unknown top-level key `{key_text}`"),
                    );
                    if let Some(close) = units::closest(&key_text, TOP_LEVEL_KEYS.iter().copied()) {
                        problem = problem.hint(format!("did you mean `{close}`?"));
                    }
                    self.push(file_idx, None, problem);
                }
            }
            for unsupported in ["include", "secrets", "configs", "models"] {
                if doc.contains_key(unsupported) {
                    self.push(
                        file_idx,
                        None,
                        Problem::error(
                            ypath![unsupported],
                            format!("top-level `{unsupported}` is not supported by spark-perf"),
                        )
                        .hint("remove it, or start the engine with docker compose and use `spark-perf bench --url`"),
                    );
                }
            }
            if let Some(services) = doc.get("services") {
                match services {
                    Value::Mapping(services) => {
                        for name in services.keys() {
                            let name = scalar_text(name).unwrap_or_default();
                            self.service_files.entry(name).or_default().push(file_idx);
                        }
                    }
                    Value::Null => {}
                    _ => self.push(
                        file_idx,
                        None,
                        Problem::error(
                            ypath!["services"],
                            "`services` must be a mapping of service names to definitions",
                        ),
                    ),
                }
            }
            merge_documents(&mut merged, doc);
            merge_documents(&mut merged_raw, raw);
        }

        // The project name.
        let top_name = merged.get("name").and_then(scalar_text);
        let dir_name = working_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (raw_name, source) = if let Some(name) = &options.project_name {
            (name.clone(), "-p")
        } else if let Some(name) = vars.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
            (name.clone(), "COMPOSE_PROJECT_NAME")
        } else if let Some(name) = top_name {
            (name, "the top-level `name:`")
        } else {
            (dir_name, "the project directory's name")
        };
        let name = normalize_project_name(&raw_name);
        if name.is_empty() {
            self.push(
                0,
                None,
                Problem::error(
                    ypath!["name"],
                    format!("project name {raw_name:?} (from {source}) is empty once normalised"),
                )
                .hint("pass -p NAME with lower-case letters, digits, `-` or `_`"),
            );
        }
        let profiles: Vec<String> = if options.profiles.is_empty() {
            vars.get("COMPOSE_PROFILES")
                .map(|p| {
                    p.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            options.profiles.clone()
        };

        let networks = self.top_level_networks(&merged, &name);
        let volumes = self.top_level_volumes(&merged, &name);

        // Services.
        let mut services = Vec::new();
        let empty = Mapping::new();
        let service_values = merged
            .get("services")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        let raw_services = merged_raw
            .get("services")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        for (key, value) in service_values {
            let Some(service_name) = scalar_text(key) else {
                continue;
            };
            let raw = raw_services.get(key).unwrap_or(&Value::Null);
            let ctx = service::Context {
                project: &name,
                working_dir: &working_dir,
                vars: &vars,
                profiles: &profiles,
                networks: &networks,
                volumes: &volumes,
            };
            let (service, problems) = service::Service::parse(&service_name, value, raw, &ctx);
            for problem in problems {
                self.push_service(&service_name, problem);
            }
            if let Some(service) = service {
                services.push(service);
            }
        }

        // Two services with one container name.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for service in &services {
            if let Some(existing) = seen.insert(
                service.container_name().to_owned(),
                service.name().to_owned(),
            ) {
                self.push_service(
                    service.name(),
                    Problem::error(
                        ypath!["services", service.name(), "container_name"],
                        format!(
                            "container name `{}` is also the name of service {existing}'s container",
                            service.container_name()
                        ),
                    )
                    .hint("give each service its own container_name"),
                );
            }
        }

        let config_files = files
            .iter()
            .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()))
            .collect();
        Some(ComposeProject {
            name,
            working_dir: std::path::absolute(&working_dir).unwrap_or(working_dir),
            config_files,
            services,
            networks,
            volumes,
            profiles,
            warnings: Vec::new(),
        })
    }

    fn resolve_files(&mut self, options: &LoadOptions) -> Option<Vec<PathBuf>> {
        if !options.files.is_empty() {
            return Some(options.files.clone());
        }
        if let Some(list) = options
            .environment
            .get("COMPOSE_FILE")
            .filter(|l| !l.is_empty())
        {
            return Some(list.split(':').map(PathBuf::from).collect());
        }
        match DEFAULT_FILES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        {
            Some(found) => Some(vec![found]),
            None => {
                self.file_error(
                    Path::new("."),
                    "no compose file found".into(),
                    Some(format!(
                        "pass -f FILE or add one of {}",
                        DEFAULT_FILES.join(", ")
                    )),
                );
                None
            }
        }
    }

    /// Parses one file into a mapping with merge keys applied.
    fn parse_yaml(&mut self, file_idx: usize, text: &str) -> Option<Mapping> {
        let path = self.files[file_idx].path.clone();
        let mut value: Value = match serde_yaml::from_str(text) {
            Ok(value) => value,
            Err(err) => {
                let location = err.location();
                let message = err.to_string();
                // serde_yaml appends " at line L column C"; the location is
                // already in the prefix.
                let message = match message.find(" at line ") {
                    Some(pos) => message[..pos].to_owned(),
                    None => message,
                };
                let hint = if message.contains("unknown anchor") {
                    Some("define the anchor (`&name`) before its first use (`*name`)".to_owned())
                } else if message.contains("mapping values are not allowed") {
                    Some("check the indentation and quote values that contain `: `".to_owned())
                } else {
                    None
                };
                self.diagnostics.push(Diagnostic {
                    file: path,
                    line: location.as_ref().map(|l| l.line()),
                    column: location.as_ref().map(|l| l.column()),
                    service: None,
                    severity: Severity::Error,
                    message: format!("YAML syntax error: {message}"),
                    hint,
                });
                return None;
            }
        };
        if let Err(err) = apply_merges(&mut value) {
            let line = self.files[file_idx].locator.first_line_containing("<<");
            self.diagnostics.push(Diagnostic {
                file: path,
                line,
                column: None,
                service: None,
                severity: Severity::Error,
                message: format!("bad merge key: {err}"),
                hint: Some("`<<:` takes an alias (`*name`) of a mapping, or a list of them".into()),
            });
            return None;
        }
        match value {
            Value::Mapping(mapping) => Some(mapping),
            Value::Null => Some(Mapping::new()),
            _ => {
                self.diagnostics.push(Diagnostic {
                    file: path,
                    line: Some(1),
                    column: None,
                    service: None,
                    severity: Severity::Error,
                    message: "a compose file must be a mapping (with a `services:` key)".into(),
                    hint: None,
                });
                None
            }
        }
    }

    /// Interpolates every string value (never keys), as compose does.
    fn interpolate_tree(
        &mut self,
        file_idx: usize,
        value: &mut Value,
        at: &mut Vec<Seg>,
        vars: &Vars,
    ) {
        match value {
            Value::String(text) => match interpolate::interpolate(text, vars) {
                Ok(done) => {
                    let service = service_of(at);
                    for name in done.unset {
                        self.push(
                            file_idx,
                            service.as_deref(),
                            Problem::warning(
                                at.clone(),
                                format!("the {name} variable is not set; defaulting to a blank string"),
                            )
                            .hint(format!("set {name} in the environment or in .env, or write ${{{name}:-default}}")),
                        );
                    }
                    *text = done.value;
                }
                Err(err) => {
                    let service = service_of(at);
                    let problem = match err {
                        interpolate::TemplateError::Required { name, message } => Problem::error(
                            at.clone(),
                            format!("required variable {name} is missing a value: {message}"),
                        )
                        .hint(format!(
                            "set {name} in the environment or in .env (or pass --env-file)"
                        )),
                        interpolate::TemplateError::Invalid { template } => Problem::error(
                            at.clone(),
                            format!("invalid interpolation format in {template:?}"),
                        )
                        .hint("write $$ for a literal $"),
                    };
                    self.push(file_idx, service.as_deref(), problem);
                }
            },
            Value::Sequence(items) => {
                for (idx, item) in items.iter_mut().enumerate() {
                    at.push(Seg::Index(idx));
                    self.interpolate_tree(file_idx, item, at, vars);
                    at.pop();
                }
            }
            Value::Mapping(mapping) => {
                for (key, item) in mapping.iter_mut() {
                    at.push(Seg::Key(scalar_text(key).unwrap_or_default()));
                    self.interpolate_tree(file_idx, item, at, vars);
                    at.pop();
                }
            }
            Value::Tagged(tagged) => self.interpolate_tree(file_idx, &mut tagged.value, at, vars),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn top_level_networks(
        &mut self,
        doc: &Mapping,
        project: &str,
    ) -> BTreeMap<String, NetworkSpec> {
        let mut networks = BTreeMap::new();
        networks.insert(
            "default".to_owned(),
            NetworkSpec {
                docker_name: format!("{project}_default"),
                external: false,
                driver: None,
                key: "default".into(),
            },
        );
        let Some(Value::Mapping(declared)) = doc.get("networks") else {
            return networks;
        };
        for (key, value) in declared {
            let Some(key) = scalar_text(key) else {
                continue;
            };
            let (external, name, driver) = external_name_driver(value);
            if let Some(Value::Mapping(m)) = Some(value) {
                for k in m.keys().filter_map(scalar_text) {
                    if ![
                        "external",
                        "name",
                        "driver",
                        "driver_opts",
                        "labels",
                        "ipam",
                        "internal",
                        "attachable",
                        "enable_ipv6",
                        "enable_ipv4",
                    ]
                    .contains(&k.as_str())
                        && !k.starts_with("x-")
                    {
                        self.push(
                            0,
                            None,
                            Problem::error(
                                ypath!["networks", key.as_str(), k.as_str()],
                                format!("unknown network key `{k}`"),
                            ),
                        );
                    }
                }
            }
            let docker_name = match (name, external) {
                (Some(name), _) => name,
                (None, true) => key.clone(),
                (None, false) => format!("{project}_{key}"),
            };
            networks.insert(
                key.clone(),
                NetworkSpec {
                    docker_name,
                    external,
                    driver,
                    key,
                },
            );
        }
        networks
    }

    fn top_level_volumes(&mut self, doc: &Mapping, project: &str) -> BTreeMap<String, VolumeSpec> {
        let mut volumes = BTreeMap::new();
        let Some(Value::Mapping(declared)) = doc.get("volumes") else {
            return volumes;
        };
        for (key, value) in declared {
            let Some(key) = scalar_text(key) else {
                continue;
            };
            let (external, name, driver) = external_name_driver(value);
            let docker_name = match (name, external) {
                (Some(name), _) => name,
                (None, true) => key.clone(),
                (None, false) => format!("{project}_{key}"),
            };
            volumes.insert(
                key.clone(),
                VolumeSpec {
                    docker_name,
                    external,
                    driver,
                    key,
                },
            );
        }
        volumes
    }
}

fn external_name_driver(value: &Value) -> (bool, Option<String>, Option<String>) {
    let Value::Mapping(m) = value else {
        return (false, None, None);
    };
    let external = match m.get("external") {
        Some(Value::Bool(b)) => *b,
        // The legacy `external: {name: X}` form.
        Some(Value::Mapping(_)) => true,
        _ => false,
    };
    let legacy_name = m
        .get("external")
        .and_then(|e| e.get("name"))
        .and_then(scalar_text);
    let name = m.get("name").and_then(scalar_text).or(legacy_name);
    let driver = m.get("driver").and_then(scalar_text);
    (external, name, driver)
}

/// The service a path points into, if any.
fn service_of(at: &[Seg]) -> Option<String> {
    match at {
        [Seg::Key(top), Seg::Key(name), ..] if top == "services" => Some(name.clone()),
        _ => None,
    }
}

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

/// Applies YAML merge keys everywhere, innermost first, so that a merged
/// mapping's own `<<:` is resolved before it is copied. Bounded by the size of
/// the tree (serde_yaml already limits alias expansion).
fn apply_merges(value: &mut Value) -> Result<(), String> {
    match value {
        Value::Mapping(mapping) => {
            for (_, item) in mapping.iter_mut() {
                apply_merges(item)?;
            }
            if let Some(merge) = mapping.remove("<<") {
                let sources = match merge {
                    Value::Mapping(m) => vec![m],
                    Value::Sequence(items) => {
                        let mut sources = Vec::new();
                        for item in items {
                            match item {
                                Value::Mapping(m) => sources.push(m),
                                _ => return Err("a merge list may only hold mappings".into()),
                            }
                        }
                        sources
                    }
                    _ => return Err("the merged value is not a mapping".into()),
                };
                for source in sources {
                    for (key, item) in source {
                        if !mapping.contains_key(&key) {
                            mapping.insert(key, item);
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(items) => items.iter_mut().try_for_each(apply_merges),
        Value::Tagged(tagged) => apply_merges(&mut tagged.value),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(()),
    }
}

/// Merges a later compose file into the earlier ones: services, networks and
/// volumes by name, each definition merged key by key (see `merge_service`);
/// other keys replaced.
fn merge_documents(base: &mut Mapping, overlay: Mapping) {
    for (key, value) in overlay {
        let key_text = scalar_text(&key).unwrap_or_default();
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(existing)), Value::Mapping(entries))
                if matches!(key_text.as_str(), "services" | "networks" | "volumes") =>
            {
                for (name, definition) in entries {
                    match existing.get_mut(&name) {
                        Some(Value::Mapping(old)) if key_text == "services" => {
                            if let Value::Mapping(new) = definition {
                                merge_service(old, new);
                            }
                        }
                        _ => {
                            existing.insert(name, definition);
                        }
                    }
                }
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Keys whose lists a later file replaces rather than extends.
const REPLACED_LISTS: &[&str] = &["command", "entrypoint", "profiles"];

/// Merges one service definition into another, as compose does in the
/// common cases: mappings merge recursively, `command`/`entrypoint`
/// replace, `environment`/`labels` merge by name (list or mapping form),
/// other lists (ports, volumes, ...) are concatenated without duplicates,
/// scalars replace.
fn merge_service(base: &mut Mapping, overlay: Mapping) {
    for (key, value) in overlay {
        let key_text = scalar_text(&key).unwrap_or_default();
        let merged = match (base.remove(&key), value) {
            (Some(old), new) if matches!(key_text.as_str(), "environment" | "labels") => {
                let mut map = service::key_value_map(&old);
                map.extend(service::key_value_map(&new));
                Value::Mapping(
                    map.into_iter()
                        .map(|(k, v)| (Value::String(k), v.map_or(Value::Null, Value::String)))
                        .collect(),
                )
            }
            (Some(Value::Mapping(mut old)), Value::Mapping(new)) => {
                merge_service(&mut old, new);
                Value::Mapping(old)
            }
            (Some(Value::Sequence(mut old)), Value::Sequence(new))
                if !REPLACED_LISTS.contains(&key_text.as_str()) =>
            {
                for item in new {
                    if !old.contains(&item) {
                        old.push(item);
                    }
                }
                Value::Sequence(old)
            }
            (_, new) => new,
        };
        base.insert(key, merged);
    }
}

/// A canonical text of a value (mapping keys sorted), the input of the
/// config hash: the same definition always hashes the same, whatever the
/// key order or serde feature flags.
pub(crate) fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        Value::Sequence(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        Value::Mapping(mapping) => {
            let sorted: BTreeMap<String, &Value> = mapping
                .iter()
                .map(|(k, v)| (scalar_text(k).unwrap_or_default(), v))
                .collect();
            out.push('{');
            for (idx, (key, item)) in sorted.into_iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key).to_string());
                out.push(':');
                canonical_json(item, out);
            }
            out.push('}');
        }
        Value::Tagged(tagged) => canonical_json(&tagged.value, out),
    }
}

/// Names that look like they hold a secret.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"]
        .iter()
        .any(|word| upper.contains(word))
}
