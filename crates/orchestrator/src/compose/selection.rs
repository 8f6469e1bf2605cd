//! Which inference services a run benchmarks, and why: the plan prints the
//! reason of each.
//!
//! Compose's profile rules decide which services `docker compose up` starts;
//! for inference engines a profile usually means "one model at a time"
//! (`profiles: [qwen32]` keeps `up` from starting every model at once),
//! which is what spark-perf does anyway. So, for inference services:
//!
//! - `--only NAME`: exactly those (any inference service, whatever its
//!   profiles, as `docker compose up NAME`), minus `--skip`;
//! - active profiles (`--profile`, else `COMPOSE_PROFILES`): the inference
//!   services in one of them (`*`: all of them), and not those without
//!   profiles: naming profiles names the engines to benchmark;
//! - no active profile: every inference service, with or without profiles,
//!   one at a time: a profile on an engine keeps `docker compose up` from
//!   starting it beside the others, which spark-perf never does anyway, and
//!   "which should I run?" compares them all.
//!
//! Non-inference services keep compose's rules ([`Service::enabled`]).
//!
//! [`Service::enabled`]: super::Service::enabled

use super::discover::InferenceService;
use super::project::ComposeProject;
use crate::OrchestratorError;

/// One inference service of the project and whether it is benchmarked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub service: InferenceService,
    pub selected: bool,
    /// Why, in words for the plan: "in active profile qwen32",
    /// "behind profile faults, which is not active", ...
    pub reason: String,
}

impl ComposeProject {
    /// Every inference service of the project in file order, each with
    /// whether it is benchmarked and why (see the module's rules). A name in
    /// `only` or `skip` that is not an inference service is an error.
    pub fn selection(
        &self,
        only: &[String],
        skip: &[String],
    ) -> Result<Vec<Selection>, OrchestratorError> {
        for name in only.iter().chain(skip) {
            self.check_inference_name(name)?;
        }
        let active = self.profiles();
        let mut chosen = Vec::new();
        for service in self.services() {
            let Some(inference) = service.inference() else {
                continue;
            };
            let profiles = service.profiles();
            let listed = profiles.join(", ");
            let (selected, reason) = if !only.is_empty() {
                if only.iter().any(|o| o == service.name()) {
                    (true, "named with --only".to_owned())
                } else {
                    (false, "not named with --only".to_owned())
                }
            } else if !active.is_empty() {
                let matching = profiles
                    .iter()
                    .find(|p| active.contains(p) || active.iter().any(|a| a == "*"));
                match matching {
                    Some(profile) => (true, format!("in active profile {profile}")),
                    None if profiles.is_empty() => (
                        false,
                        format!(
                            "has no profile, and the active profiles ({}) name the engines to benchmark",
                            active.join(", ")
                        ),
                    ),
                    None => (
                        false,
                        format!("behind profile {listed}, which is not active"),
                    ),
                }
            } else if profiles.is_empty() {
                (true, "has no profile".to_owned())
            } else {
                (
                    true,
                    format!(
                        "behind profile {listed}; engines behind profiles are benchmarked in turn by default (--profile {} benchmarks only those)",
                        profiles[0]
                    ),
                )
            };
            let (selected, reason) = if selected && skip.iter().any(|s| s == service.name()) {
                (false, "skipped with --skip".to_owned())
            } else {
                (selected, reason)
            };
            chosen.push(Selection {
                service: inference.clone(),
                selected,
                reason,
            });
        }
        Ok(chosen)
    }
}
