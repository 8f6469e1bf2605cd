//! `depends_on` across the project: every service named exists, no cycle,
//! no engine depends on another engine (only one model fits in GPU memory);
//! and, for the Docker side, the ordered non-inference dependencies of each
//! engine ([`ComposeProject::dependencies`]).

use std::collections::BTreeMap;

use super::diagnostic::Problem;
use super::loader::Loader;
use super::locate::{Seg, ypath};
use super::project::ComposeProject;
use super::service::{Dependency, Service};
use super::units::closest;

impl Loader {
    pub(super) fn check_dependencies(&mut self, services: &[Service]) {
        let by_name: BTreeMap<&str, &Service> = services.iter().map(|s| (s.name(), s)).collect();
        for service in services {
            for dependency in service.depends_on() {
                let mut at: Vec<Seg> = ypath!["services", service.name(), "depends_on"].into();
                at.push(dependency.at.clone());
                let name = dependency.service.as_str();
                match by_name.get(name) {
                    None => {
                        let message = format!(
                            "depends_on names `{name}`, which is not a service of the project"
                        );
                        let mut problem = if dependency.required {
                            Problem::error(at, message)
                        } else {
                            Problem::warning(at, format!("{message} (required: false: ignored)"))
                        };
                        if let Some(close) = closest(name, by_name.keys().copied()) {
                            problem = problem.hint(format!("did you mean `{close}`?"));
                        }
                        self.push_service(service.name(), problem);
                    }
                    Some(other) if other.inference().is_some() && service.inference().is_some() => {
                        self.push_service(
                            service.name(),
                            Problem::error(
                                at,
                                format!(
                                    "inference service `{}` depends on inference service `{name}`: spark-perf runs one engine at a time (only one model fits in GPU memory)",
                                    service.name()
                                ),
                            )
                            .hint("remove the dependency, or mark the one that is not an engine with `x-spark-perf: {inference: false}`"),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        for service in services {
            for (idx, (target, _)) in service.links.iter().enumerate() {
                if !by_name.contains_key(target.as_str()) {
                    let mut problem = Problem::error(
                        ypath!["services", service.name(), "links", idx],
                        format!("links names `{target}`, which is not a service of the project"),
                    );
                    if let Some(close) = closest(target, by_name.keys().copied()) {
                        problem = problem.hint(format!("did you mean `{close}`?"));
                    } else {
                        problem = problem
                            .hint("a container outside the project goes under `external_links`");
                    }
                    self.push_service(service.name(), problem);
                }
            }
        }
        // Cycles: a depth-first walk from each service.
        for service in services {
            let mut trail = vec![service.name()];
            // Each service on a cycle reports it, at its own `depends_on`.
            if let Some(cycle) = find_cycle(&by_name, &mut trail) {
                self.push_service(
                    service.name(),
                    Problem::error(
                        ypath!["services", service.name(), "depends_on"],
                        format!("depends_on cycle: {}", cycle.join(" → ")),
                    )
                    .hint("compose cannot order services that depend on each other"),
                );
            }
        }
    }
}

/// A cycle back to `trail[0]` reachable from the end of `trail`, as the
/// names along it (first name repeated at the end).
fn find_cycle<'a>(
    by_name: &BTreeMap<&'a str, &'a Service>,
    trail: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    let last = *trail.last()?;
    let service = by_name.get(last)?;
    for dependency in service.depends_on() {
        let next = dependency.service.as_str();
        let Some((&next, _)) = by_name.get_key_value(next) else {
            continue;
        };
        if next == trail[0] {
            let mut cycle = trail.clone();
            cycle.push(next);
            return Some(cycle);
        }
        if trail.contains(&next) {
            continue;
        }
        trail.push(next);
        if let Some(cycle) = find_cycle(by_name, trail) {
            return Some(cycle);
        }
        trail.pop();
    }
    None
}

impl ComposeProject {
    /// The services `service` depends on, directly or through others, that
    /// are not inference engines, in the order to start them: each after its
    /// own dependencies, each once. A dependency reached twice keeps the
    /// entry (condition, required, restart) of its first dependent in
    /// `depends_on` order. Dependencies naming no service are left out (the
    /// load has reported them).
    pub fn dependencies(&self, service: &str) -> Vec<Dependency> {
        let mut ordered: Vec<Dependency> = Vec::new();
        let mut visiting = vec![service.to_owned()];
        self.visit_dependencies(service, &mut visiting, &mut ordered);
        ordered
    }

    fn visit_dependencies(
        &self,
        name: &str,
        visiting: &mut Vec<String>,
        ordered: &mut Vec<Dependency>,
    ) {
        let Some(service) = self.service(name) else {
            return;
        };
        for dependency in service.depends_on() {
            let Some(target) = self.service(&dependency.service) else {
                continue;
            };
            if target.inference().is_some()
                || visiting.contains(&dependency.service)
                || ordered.iter().any(|d| d.service == dependency.service)
            {
                continue;
            }
            visiting.push(dependency.service.clone());
            self.visit_dependencies(&dependency.service, visiting, ordered);
            visiting.pop();
            ordered.push(dependency.clone());
        }
    }
}
