//! The plan `run` prints before it starts anything (and all `--dry-run`
//! prints): each engine with its flavor, URL, model and image, why it was
//! selected and how its image is built, the engines left out and why, the
//! scenarios, and a rough floor for how long it takes.

use spark_load::Scenario;
use spark_orchestrator::{ComposeProject, Selection};

pub(super) fn print_plan(
    project: &ComposeProject,
    selection: &[Selection],
    scenarios: &[Scenario],
    always_build: bool,
) {
    eprintln!("plan for project {}:", project.name());
    let mut n_engines = 0u64;
    for Selection {
        service,
        selected,
        reason,
    } in selection
    {
        if !selected {
            continue;
        }
        n_engines += 1;
        // A host port Docker picks is only known once the container runs.
        let url = match &service.assigned_port {
            Some(port) => format!(
                "{}:<assigned by Docker to container port {}>",
                service
                    .base_url
                    .rsplit_once(':')
                    .map_or(service.base_url.as_str(), |(prefix, _)| prefix),
                port.container_port
            ),
            None => service.base_url.clone(),
        };
        eprintln!(
            "  {:<24} {:<9} {} model {} ({})",
            service.name,
            service.flavor.id(),
            url,
            service
                .served_model
                .as_deref()
                .unwrap_or("(first listed by /v1/models)"),
            service.image
        );
        eprintln!("    selected: {reason}");
        if let Some(build) = project.service(&service.name).and_then(|s| s.build()) {
            let target = build
                .target()
                .map(|t| format!(", target {t}"))
                .unwrap_or_default();
            eprintln!(
                "    image: built from {} ({}{target}) as {}{}",
                build.context().display(),
                build.dockerfile(),
                service.image,
                if always_build {
                    " (--build)"
                } else {
                    " when not present locally (--build: always)"
                }
            );
        }
    }
    for Selection {
        service, reason, ..
    } in selection.iter().filter(|s| !s.selected)
    {
        eprintln!("  not benchmarked: {}: {reason}", service.name);
    }
    let mut n_tokens = 0u64;
    eprintln!("scenarios:");
    for scenario in scenarios {
        let config = &scenario.config;
        n_tokens += u64::from(config.requests) * u64::from(config.max_tokens)
            / u64::from(config.concurrency.max(1));
        eprintln!(
            "  {:<20} {:>4} requests, concurrency {:>3}, {:>6} → {:>4} tokens{}",
            scenario.name,
            config.requests,
            config.concurrency,
            config.input_tokens,
            config.max_tokens,
            if scenario.discard { " (discarded)" } else { "" }
        );
    }
    // A rough floor, stated with its assumption: decoding at 50 tok/s per
    // request, plus startup, which only the first run of a model tells.
    let per_engine_s = n_tokens.div_ceil(50);
    eprintln!(
        "estimated: at least {} s of measuring per engine ({} s for {} engines) at 50 tok/s per request, plus each engine's startup (up to the health timeout)",
        per_engine_s,
        per_engine_s * n_engines,
        n_engines
    );
}
