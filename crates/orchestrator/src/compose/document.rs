//! One compose file: parsed as YAML (syntax errors at their line), merge
//! keys applied, every string value interpolated.

use serde_yaml::{Mapping, Value};

use super::diagnostic::{Diagnostic, Problem, Severity};
use super::interpolate::{self, Vars};
use super::loader::Loader;
use super::locate::Seg;
use super::scalar_text;
use super::tree::apply_merges;

impl Loader {
    /// Parses one file into a mapping with merge keys applied.
    pub(super) fn parse_yaml(&mut self, file_idx: usize, text: &str) -> Option<Mapping> {
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
                if let Some(diagnostic) = self.duplicate_key(file_idx, &message) {
                    self.diagnostics.push(diagnostic);
                    return None;
                }
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

    /// serde_yaml reports a key written twice (`services: duplicate entry
    /// with key "vllm"`) at the start of the mapping; this finds the second
    /// occurrence's own line, and names the service.
    fn duplicate_key(&self, file_idx: usize, message: &str) -> Option<Diagnostic> {
        const MARK: &str = "duplicate entry with key ";
        let (at, key) = match message.split_once(&format!(": {MARK}")) {
            Some((at, key)) => (at, key),
            None => ("", message.strip_prefix(MARK)?),
        };
        let key = serde_json::from_str::<String>(key).unwrap_or_else(|_| key.to_owned());
        let parent = yaml_path(at)?;
        let file = &self.files[file_idx];
        let lines = file.locator.key_lines(&parent, &key);
        let (first, again) = (lines.first().copied(), lines.get(1).copied());
        let mut full = parent.clone();
        full.push(Seg::Key(key.clone()));
        let (service, message) = match parent.as_slice() {
            [Seg::Key(top)] if top == "services" => (
                Some(key.clone()),
                format!(
                    "service `{key}` is defined twice{}",
                    first.map_or(String::new(), |l| format!(" (first at line {l})"))
                ),
            ),
            _ => (
                service_of(&full),
                format!(
                    "`{key}` is written twice under `{}`{}",
                    if at.is_empty() { "the top level" } else { at },
                    first.map_or(String::new(), |l| format!(" (first at line {l})"))
                ),
            ),
        };
        Some(Diagnostic {
            file: file.path.clone(),
            line: again.or(first),
            column: None,
            service,
            severity: Severity::Error,
            message,
            hint: Some("YAML keeps one value per key: merge the two, or rename one".into()),
        })
    }

    /// Interpolates every string value (never keys), as compose does.
    pub(super) fn interpolate_tree(
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
}

/// The service a path points into, if any.
fn service_of(at: &[Seg]) -> Option<String> {
    match at {
        [Seg::Key(top), Seg::Key(name), ..] if top == "services" => Some(name.clone()),
        _ => None,
    }
}

/// serde_yaml's dotted path of a value (`services.vllm.ports[2]`) as
/// segments; `None` for what it cannot be (a key holding a dot is ambiguous).
fn yaml_path(at: &str) -> Option<Vec<Seg>> {
    let mut path = Vec::new();
    if at.is_empty() || at == "." {
        return Some(path);
    }
    for part in at.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(pos) => (&part[..pos], &part[pos..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            path.push(Seg::Key(key.to_owned()));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let (idx, after) = inner.split_once(']')?;
            path.push(Seg::Index(idx.parse().ok()?));
            rest = after;
        }
    }
    Some(path)
}
