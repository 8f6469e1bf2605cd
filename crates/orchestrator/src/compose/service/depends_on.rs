//! `depends_on:` of a service, list or mapping form, with compose's
//! conditions (`service_started`, `service_healthy`,
//! `service_completed_successfully`), `required` and `restart`. Whether the
//! services named exist, are not engines and form no cycle is checked for
//! the whole project (the loader's `check_dependencies`).

use serde_yaml::Value;

use super::super::locate::{Seg, ypath};
use super::super::scalar_text;
use super::keys::{Problems, as_bool};

/// What a dependency must reach before its dependent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyCondition {
    /// `service_started` (the list form's meaning): the container runs.
    Started,
    /// `service_healthy`: its healthcheck passes.
    Healthy,
    /// `service_completed_successfully`: it exited with status 0 (a one-shot
    /// job such as a model downloader).
    CompletedSuccessfully,
}

impl DependencyCondition {
    /// The compose spelling.
    pub fn id(self) -> &'static str {
        match self {
            DependencyCondition::Started => "service_started",
            DependencyCondition::Healthy => "service_healthy",
            DependencyCondition::CompletedSuccessfully => "service_completed_successfully",
        }
    }

    fn from_id(id: &str) -> Option<Self> {
        [
            DependencyCondition::Started,
            DependencyCondition::Healthy,
            DependencyCondition::CompletedSuccessfully,
        ]
        .into_iter()
        .find(|c| c.id() == id)
    }
}

/// One entry of `depends_on:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The service depended on.
    pub service: String,
    pub condition: DependencyCondition,
    /// `required: false`: a missing or failing dependency is a warning, not a
    /// failure of the dependent.
    pub required: bool,
    /// `restart: true`: the dependent restarts when this one is updated.
    pub restart: bool,
    /// Where it is written, under `depends_on` (for diagnostics).
    pub(crate) at: Seg,
}

const DEPENDENCY_KEYS: &[&str] = &["condition", "required", "restart"];

pub(super) fn parse_depends_on(value: Option<&Value>, p: &mut Problems<'_>) -> Vec<Dependency> {
    let mut dependencies = Vec::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for (idx, item) in items.iter().enumerate() {
                match scalar_text(item) {
                    Some(service) => dependencies.push(Dependency {
                        service,
                        condition: DependencyCondition::Started,
                        required: true,
                        restart: false,
                        at: Seg::Index(idx),
                    }),
                    None => {
                        p.error(
                            ypath!["depends_on", idx],
                            "a `depends_on` list holds service names",
                        );
                    }
                }
            }
        }
        Some(Value::Mapping(m)) => {
            for (name, settings) in m {
                let Some(service) = scalar_text(name) else {
                    continue;
                };
                let at = ypath!["depends_on", service.as_str()];
                let mut dependency = Dependency {
                    service: service.clone(),
                    condition: DependencyCondition::Started,
                    required: true,
                    restart: false,
                    at: Seg::Key(service.clone()),
                };
                match settings {
                    Value::Null => {}
                    Value::Mapping(settings) => {
                        p.unknown_keys(settings, DEPENDENCY_KEYS, &at, "depends_on");
                        if let Some(text) = settings.get("condition").and_then(scalar_text) {
                            match DependencyCondition::from_id(&text) {
                                Some(c) => dependency.condition = c,
                                None => {
                                    p.error(
                                        ypath!["depends_on", service.as_str(), "condition"],
                                        format!("`{text}` is not a depends_on condition"),
                                    )
                                    .set_hint("use service_started, service_healthy or service_completed_successfully");
                                }
                            }
                        }
                        for (key, slot) in [
                            ("required", &mut dependency.required),
                            ("restart", &mut dependency.restart),
                        ] {
                            if let Some(v) = settings.get(key) {
                                match as_bool(v) {
                                    Some(b) => *slot = b,
                                    None => {
                                        p.error(
                                            ypath!["depends_on", service.as_str(), key],
                                            format!("`{key}` must be true or false"),
                                        );
                                    }
                                }
                            }
                        }
                    }
                    _ => {
                        p.error(
                            at,
                            "a `depends_on` entry is a mapping (`condition`, `required`, `restart`)",
                        );
                        continue;
                    }
                }
                dependencies.push(dependency);
            }
        }
        Some(_) => {
            p.error(
                ypath!["depends_on"],
                "`depends_on` must be a list of services or a mapping",
            );
        }
    }
    dependencies
}
