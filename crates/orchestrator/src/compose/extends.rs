//! `extends:`: a service built on another one's definition, in the same
//! file (`extends: base` or `{service: base}`) or another (`{file:
//! common.yml, service: base}`, relative to the project directory). The
//! base is resolved first (it may extend too), then the service's own keys
//! are merged over it with the rules of several `-f` files. Relative paths
//! written in another file's base are taken from the project directory, not
//! that file's (a documented difference).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::diagnostic::Problem;
use super::interpolate::Vars;
use super::loader::{Loader, SourceFile};
use super::locate::{Locator, ypath};
use super::scalar_text;
use super::tree::{apply_merges, merge_service};

/// The files read for `extends: {file: ...}`: (raw, interpolated) services.
#[derive(Debug, Default)]
pub(super) struct ExtendedFiles {
    files: BTreeMap<PathBuf, Option<(Mapping, Mapping)>>,
}

/// Which tree is being resolved: the interpolated one or the raw one (the
/// provenance of command words); problems are reported on the first only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tree {
    Interpolated,
    Raw,
}

impl Loader {
    /// Resolves `extends` in the `services:` of `doc` (the merged project).
    pub(super) fn resolve_extends(
        &mut self,
        doc: &mut Mapping,
        tree: Tree,
        working_dir: &Path,
        vars: &Vars,
        cache: &mut ExtendedFiles,
    ) {
        let Some(Value::Mapping(services)) = doc.get("services").cloned() else {
            return;
        };
        let mut resolved = services.clone();
        for (key, _) in &services {
            let Some(name) = scalar_text(key) else {
                continue;
            };
            let mut chain = vec![(None, name.clone())];
            if let Some(def) = self.resolve_one(
                &services,
                None,
                &name,
                tree,
                working_dir,
                vars,
                cache,
                &mut chain,
            ) {
                resolved.insert(key.clone(), Value::Mapping(def));
            }
        }
        doc.insert(Value::String("services".into()), Value::Mapping(resolved));
    }

    /// The definition of `name` in `services` (of `file`, `None`: the
    /// project) with its `extends` resolved; `None` when it is not a mapping.
    #[allow(clippy::too_many_arguments)]
    fn resolve_one(
        &mut self,
        services: &Mapping,
        file: Option<&Path>,
        name: &str,
        tree: Tree,
        working_dir: &Path,
        vars: &Vars,
        cache: &mut ExtendedFiles,
        chain: &mut Vec<(Option<PathBuf>, String)>,
    ) -> Option<Mapping> {
        let Some(Value::Mapping(def)) = services.get(name) else {
            return None;
        };
        let mut def = def.clone();
        let Some(extends) = def.remove("extends") else {
            return Some(def);
        };
        let report = tree == Tree::Interpolated && file.is_none() && chain.len() == 1;
        let at = ypath!["services", name, "extends"];
        let (base_name, base_file) = match &extends {
            Value::Mapping(m) => (
                m.get("service").and_then(scalar_text),
                m.get("file").and_then(scalar_text),
            ),
            other => (scalar_text(other), None),
        };
        let Some(base_name) = base_name else {
            if report {
                self.push_service(
                    name,
                    Problem::error(at, "`extends` needs a `service`")
                        .hint("write `extends: {service: NAME}` or `extends: NAME`"),
                );
            }
            return Some(def);
        };
        let (base_services, base_path) = match &base_file {
            None => (services.clone(), file.map(Path::to_path_buf)),
            Some(relative) => {
                let path = working_dir.join(relative);
                match self.extended_file(&path, vars, cache) {
                    Some((raw, interpolated)) => (
                        if tree == Tree::Raw { raw } else { interpolated },
                        Some(path),
                    ),
                    None => {
                        if report {
                            self.push_service(
                                name,
                                Problem::error(
                                    at,
                                    format!("`extends` cannot read {}", path.display()),
                                ),
                            );
                        }
                        return Some(def);
                    }
                }
            }
        };
        let link = (base_path.clone(), base_name.clone());
        if chain.contains(&link) {
            // Reported once per service on the cycle, at its own `extends`.
            if tree == Tree::Interpolated {
                let names: Vec<&str> = chain.iter().map(|(_, n)| n.as_str()).collect();
                let root = chain[0].1.clone();
                self.push_service(
                    &root,
                    Problem::error(
                        ypath!["services", root.as_str(), "extends"],
                        format!("`extends` cycle: {} → {base_name}", names.join(" → ")),
                    ),
                );
            }
            return Some(def);
        }
        if !base_services.contains_key(base_name.as_str()) {
            if report {
                let where_ = base_file
                    .as_deref()
                    .map_or_else(|| "this project".to_owned(), str::to_owned);
                self.push_service(
                    name,
                    Problem::error(
                        at,
                        format!(
                            "`extends` names service `{base_name}`, which {where_} does not define"
                        ),
                    ),
                );
            }
            return Some(def);
        }
        chain.push(link);
        let base = self.resolve_one(
            &base_services,
            base_path.as_deref(),
            &base_name,
            tree,
            working_dir,
            vars,
            cache,
            chain,
        );
        chain.pop();
        let mut merged = base.unwrap_or_default();
        merge_service(&mut merged, def);
        Some(merged)
    }

    /// The services of another compose file, raw and interpolated, read once.
    fn extended_file(
        &mut self,
        path: &Path,
        vars: &Vars,
        cache: &mut ExtendedFiles,
    ) -> Option<(Mapping, Mapping)> {
        if let Some(done) = cache.files.get(path) {
            return done.clone();
        }
        let loaded = self.read_extended(path, vars);
        cache.files.insert(path.to_path_buf(), loaded.clone());
        loaded
    }

    fn read_extended(&mut self, path: &Path, vars: &Vars) -> Option<(Mapping, Mapping)> {
        let text = std::fs::read_to_string(path).ok()?;
        let file_idx = self.files.len();
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            locator: Locator::new(&text),
        });
        let mut raw = Value::Mapping(self.parse_yaml(file_idx, &text)?);
        apply_merges(&mut raw).ok()?;
        let mut interpolated = raw.clone();
        self.interpolate_tree(file_idx, &mut interpolated, &mut Vec::new(), vars);
        let services = |v: &Value| match v.get("services") {
            Some(Value::Mapping(m)) => m.clone(),
            _ => Mapping::new(),
        };
        Some((services(&raw), services(&interpolated)))
    }
}
