//! The loader pipeline: which files, the interpolation variables, each file
//! read and interpolated (document.rs), the top-level keys checked and the
//! files merged (tree.rs), the project name and profiles, the top-level
//! networks and volumes (toplevel.rs), then each service (service/).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::diagnostic::{Diagnostic, Problem, Severity};
use super::extends::{ExtendedFiles, Tree};
use super::interpolate::{self, Vars};
use super::locate::{Locator, ypath};
use super::project::{ComposeProject, LoadOptions, normalize_project_name};
use super::secrets::FileKind;
use super::tree::{merge_documents, strip_merge_tags};
use super::{scalar_text, service, units};

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

#[derive(Debug, Default)]
pub(super) struct SourceFile {
    pub(super) path: PathBuf,
    pub(super) locator: Locator,
}

/// The state of one load: files read so far and diagnostics.
#[derive(Debug, Default)]
pub(super) struct Loader {
    pub(super) files: Vec<SourceFile>,
    pub(super) diagnostics: Vec<Diagnostic>,
    /// For each service, the indexes of the files that define it.
    pub(super) service_files: BTreeMap<String, Vec<usize>>,
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

impl Loader {
    pub(super) fn push(&mut self, file_idx: usize, service: Option<&str>, problem: Problem) {
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
    pub(super) fn push_service(&mut self, service: &str, problem: Problem) {
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

    pub(super) fn file_error(&mut self, path: &Path, message: String, hint: Option<String>) {
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

    pub(super) fn run(&mut self, options: &LoadOptions) -> Option<ComposeProject> {
        let files = self.resolve_files(options)?;
        let working_dir = files
            .first()
            .map(|f| project_dir(f))
            .unwrap_or_else(|| PathBuf::from("."));
        let vars = self.variables(options, &working_dir);
        let documents = self.read_documents(&files, &vars)?;
        let (mut merged, mut merged_raw) = self.merge(documents);
        let mut extended = ExtendedFiles::default();
        self.resolve_extends(
            &mut merged,
            Tree::Interpolated,
            &working_dir,
            &vars,
            &mut extended,
        );
        self.resolve_extends(
            &mut merged_raw,
            Tree::Raw,
            &working_dir,
            &vars,
            &mut extended,
        );
        // `!reset` and `!override` that nothing was merged into.
        let merged = strip_tags(merged);
        let merged_raw = strip_tags(merged_raw);
        let name = self.project_name(options, &vars, &merged, &working_dir);
        let profiles = active_profiles(options, &vars);
        let networks = self.top_level_networks(&merged, &name);
        let volumes = self.top_level_volumes(&merged, &name);
        let slo = self.top_level_slo(&merged);
        let secrets = self.top_level_files(&merged, FileKind::Secret, &working_dir, &vars);
        let configs = self.top_level_files(&merged, FileKind::Config, &working_dir, &vars);
        let ctx = service::Context {
            project: &name,
            working_dir: &working_dir,
            vars: &vars,
            profiles: &profiles,
            networks: &networks,
            volumes: &volumes,
            secrets: &secrets,
            configs: &configs,
        };
        let services = self.services(&merged, &merged_raw, &ctx);
        self.check_container_names(&services);
        self.check_dependencies(&services);
        let mut services = services;
        resolve_links(&mut services);

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
            slo,
            warnings: Vec::new(),
        })
    }

    /// The interpolation variables: `.env` (or `--env-file`), then the
    /// shell over it.
    fn variables(&mut self, options: &LoadOptions, working_dir: &Path) -> Vars {
        let shell = &options.environment;
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
        vars
    }

    /// Reads, parses and interpolates each file, as (raw, interpolated);
    /// `None` when any of them could not be read or parsed.
    fn read_documents(
        &mut self,
        files: &[PathBuf],
        vars: &Vars,
    ) -> Option<Vec<(usize, Mapping, Mapping)>> {
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
                self.interpolate_tree(file_idx, &mut interpolated, &mut Vec::new(), vars);
                if let Value::Mapping(interpolated) = interpolated {
                    documents.push((raw, interpolated));
                }
            }
        }
        if documents.len() != files.len() {
            return None;
        }
        // Top-level `include:`: the included files' documents come first.
        let mut all = Vec::new();
        for (idx, (raw, interpolated)) in documents.into_iter().enumerate() {
            let dir = project_dir(&files[idx]);
            all.extend(self.included(idx, &interpolated, &dir, vars, 0)?);
            all.push((idx, raw, interpolated));
        }
        Some(all)
    }

    /// The documents `include:` of file `file_idx` brings in (recursively,
    /// first), paths relative to `dir`. A service both included and defined
    /// by the including file is an error, as compose says.
    fn included(
        &mut self,
        file_idx: usize,
        doc: &Mapping,
        dir: &Path,
        vars: &Vars,
        depth: usize,
    ) -> Option<Vec<(usize, Mapping, Mapping)>> {
        let Some(include) = doc.get("include") else {
            return Some(Vec::new());
        };
        let entries: Vec<String> = match include {
            Value::Sequence(items) => items
                .iter()
                .flat_map(|item| match item {
                    Value::Mapping(m) => match m.get("path") {
                        Some(Value::Sequence(paths)) => {
                            paths.iter().filter_map(scalar_text).collect()
                        }
                        Some(other) => scalar_text(other).into_iter().collect(),
                        None => Vec::new(),
                    },
                    other => scalar_text(other).into_iter().collect(),
                })
                .collect(),
            _ => {
                self.push(
                    file_idx,
                    None,
                    Problem::error(ypath!["include"], "`include` must be a list of files"),
                );
                return None;
            }
        };
        if depth > 8 {
            self.push(
                file_idx,
                None,
                Problem::error(
                    ypath!["include"],
                    "`include` nests more than 8 levels (a cycle?)",
                ),
            );
            return None;
        }
        let own: Vec<String> = doc
            .get("services")
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(scalar_text).collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for entry in entries {
            let path = dir.join(&entry);
            let Ok(text) = std::fs::read_to_string(&path) else {
                self.push(
                    file_idx,
                    None,
                    Problem::error(
                        ypath!["include"],
                        format!("cannot read the included file {}", path.display()),
                    ),
                );
                return None;
            };
            let idx = self.files.len();
            self.files.push(SourceFile {
                path: path.clone(),
                locator: Locator::new(&text),
            });
            let raw = self.parse_yaml(idx, &text)?;
            let mut interpolated = Value::Mapping(raw.clone());
            self.interpolate_tree(idx, &mut interpolated, &mut Vec::new(), vars);
            let Value::Mapping(interpolated) = interpolated else {
                return None;
            };
            let inner_dir = project_dir(&path);
            out.extend(self.included(idx, &interpolated, &inner_dir, vars, depth + 1)?);
            if let Some(Value::Mapping(services)) = interpolated.get("services") {
                for name in services.keys().filter_map(scalar_text) {
                    if own.contains(&name) {
                        self.push(
                            file_idx,
                            Some(&name),
                            Problem::error(
                                ypath!["services", name.as_str()],
                                format!("the service is also defined by the included file {}", path.display()),
                            )
                            .hint("define it in one place, or extend the included one (`extends: {file: ..., service: ...}`)"),
                        );
                    }
                }
            }
            out.push((idx, raw, interpolated));
        }
        Some(out)
    }

    /// Checks each file's top-level keys and merges the files in order:
    /// the interpolated tree and the raw one.
    fn merge(&mut self, documents: Vec<(usize, Mapping, Mapping)>) -> (Mapping, Mapping) {
        let mut merged = Mapping::new();
        let mut merged_raw = Mapping::new();
        for (file_idx, raw, doc) in documents {
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
            for unsupported in ["models"] {
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
        (merged, merged_raw)
    }

    /// The project name: `-p`, `COMPOSE_PROJECT_NAME`, the top-level
    /// `name:`, else the project directory's name; normalised.
    fn project_name(
        &mut self,
        options: &LoadOptions,
        vars: &Vars,
        merged: &Mapping,
        working_dir: &Path,
    ) -> String {
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
        name
    }

    /// Parses each service of the merged tree.
    fn services(
        &mut self,
        merged: &Mapping,
        merged_raw: &Mapping,
        ctx: &service::Context<'_>,
    ) -> Vec<service::Service> {
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
            let (service, problems) = service::Service::parse(&service_name, value, raw, ctx);
            for problem in problems {
                self.push_service(&service_name, problem);
            }
            if let Some(service) = service {
                services.push(service);
            }
        }
        services
    }

    /// Two services with one container name.
    fn check_container_names(&mut self, services: &[service::Service]) {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for service in services {
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
}

/// `--profile`, else `COMPOSE_PROFILES` (comma-separated).
fn active_profiles(options: &LoadOptions, vars: &Vars) -> Vec<String> {
    if options.profiles.is_empty() {
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
    }
}

/// `links` and `external_links` as `CONTAINER:ALIAS`: a linked service by
/// its container's name (unknown ones were reported).
fn resolve_links(services: &mut [service::Service]) {
    let containers: BTreeMap<String, String> = services
        .iter()
        .map(|s| (s.name().to_owned(), s.container_name().to_owned()))
        .collect();
    for service in services {
        let mut entries: Vec<String> = service
            .links
            .iter()
            .filter_map(|(target, alias)| containers.get(target).map(|c| format!("{c}:{alias}")))
            .collect();
        entries.extend(
            service
                .external_links
                .iter()
                .map(|(container, alias)| format!("{container}:{alias}")),
        );
        service.endpoint_links = entries;
    }
}

fn strip_tags(doc: Mapping) -> Mapping {
    match strip_merge_tags(Value::Mapping(doc)) {
        Value::Mapping(m) => m,
        _ => Mapping::new(),
    }
}
