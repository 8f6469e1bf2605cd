//! `--slo` and `--capacity`, shared by `run`, `bench` and `demo`: the
//! objectives every scenario is judged against (goodput) and the rate
//! search for the largest load within them (docs/METRICS.md). An engine's
//! SLO is, first found: `--slo`, its service's `x-spark-perf.slo`, the
//! compose file's top-level `x-spark-perf.slo`, the scenario file's
//! `[slo]`. The orchestrator hands the compose strings over unparsed; they
//! are parsed here, with the flag's parser.

use std::path::Path;

use anyhow::Context;
use spark_load::{CapacitySearch, RunOptions, Slo, scenario};
use spark_orchestrator::InferenceService;

/// The SLO flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SloArgs {
    /// Service-level objectives, comma-separated KEY=DURATION: ttft, tpot
    /// or e2e with the percentile they are reported against (p50, p90, p95,
    /// p99), e.g. ttft_p90=2s,tpot_p90=100ms,e2e_p99=30s. Each request is
    /// judged on its own TTFT, TPOT and E2E; goodput counts those that met
    /// every objective. Overrides the compose file's x-spark-perf.slo (of a
    /// service, or top-level) and the scenario file's [slo] table.
    #[arg(long, value_name = "OBJECTIVES", value_parser = parse_slo)]
    pub slo: Option<Slo>,
    /// With an SLO: after the scenarios, search the largest Poisson request
    /// rate within it, by bisection between 0.5 and 2 × the highest request
    /// throughput measured (--capacity-probes probes of
    /// --capacity-probe-duration of arrivals each, at most).
    #[arg(long)]
    pub capacity: bool,
    /// Probes of the capacity search, at most (at least 2).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub capacity_probes: u32,
    /// Arrivals of each capacity probe (e.g. 10s).
    #[arg(long, value_parser = super::duration_arg, default_value = "10s", value_name = "DURATION")]
    pub capacity_probe_duration: std::time::Duration,
}

fn parse_slo(text: &str) -> Result<Slo, String> {
    Slo::parse(text)
}

/// What a run judges its scenarios against.
#[derive(Debug, Clone, Default)]
pub(crate) struct Analysis {
    pub(crate) slo: Option<Slo>,
    /// Where the SLO came from, for the plan.
    pub(crate) slo_source: Option<String>,
    pub(crate) capacity: Option<CapacitySearch>,
}

impl Analysis {
    /// The flags over the scenario file's `[slo]` table.
    pub(crate) fn resolve(
        args: &SloArgs,
        scenario_file: Option<&Path>,
    ) -> anyhow::Result<Analysis> {
        let from_file = from_scenario_file(scenario_file)?;
        let (slo, slo_source) = match (&args.slo, from_file) {
            (Some(slo), _) => (Some(slo.clone()), Some("--slo".to_owned())),
            (None, Some((slo, source))) => (Some(slo), Some(source)),
            (None, None) => (None, None),
        };
        Analysis::with(args, slo, slo_source, None)
    }

    /// One analysis per service of a compose file, in order: the flag, the
    /// service's `x-spark-perf.slo`, the top-level one (`top_level`), the
    /// scenario file's `[slo]`. A compose SLO that does not parse is an
    /// error naming the file (and the service), even where the flag wins.
    pub(crate) fn for_services(
        args: &SloArgs,
        scenario_file: Option<&Path>,
        compose_file: &str,
        top_level: Option<&str>,
        services: &[InferenceService],
    ) -> anyhow::Result<Vec<Analysis>> {
        let from_file = from_scenario_file(scenario_file)?;
        let top_level = top_level
            .map(|text| {
                Slo::parse(text).map_err(|why| {
                    anyhow::anyhow!("{compose_file}: top-level x-spark-perf.slo: {why}")
                })
            })
            .transpose()?;
        services
            .iter()
            .map(|service| {
                let own = service
                    .slo
                    .as_deref()
                    .map(|text| {
                        Slo::parse(text).map_err(|why| {
                            anyhow::anyhow!(
                                "{compose_file}: service {}: x-spark-perf.slo: {why}",
                                service.name
                            )
                        })
                    })
                    .transpose()?;
                let (slo, source) = if let Some(slo) = &args.slo {
                    (Some(slo.clone()), Some("--slo".to_owned()))
                } else if let Some(slo) = own {
                    (
                        Some(slo),
                        Some(format!("x-spark-perf.slo of service {}", service.name)),
                    )
                } else if let Some(slo) = &top_level {
                    (
                        Some(slo.clone()),
                        Some(format!("the top-level x-spark-perf.slo of {compose_file}")),
                    )
                } else {
                    match &from_file {
                        Some((slo, source)) => (Some(slo.clone()), Some(source.clone())),
                        None => (None, None),
                    }
                };
                Analysis::with(args, slo, source, Some(&service.name))
            })
            .collect()
    }

    /// The plan's line: the SLO and where it came from.
    pub(crate) fn plan_line(&self) -> String {
        match (&self.slo, &self.slo_source) {
            (Some(slo), Some(source)) => format!("SLO {slo} (from {source})"),
            (Some(slo), None) => format!("SLO {slo}"),
            (None, _) => "no SLO (--slo, x-spark-perf.slo or [slo] sets one)".to_owned(),
        }
    }

    fn with(
        args: &SloArgs,
        slo: Option<Slo>,
        slo_source: Option<String>,
        service: Option<&str>,
    ) -> anyhow::Result<Analysis> {
        if args.capacity && slo.is_none() {
            let of = service
                .map(|s| format!(" (service {s} has none)"))
                .unwrap_or_default();
            return Err(anyhow::anyhow!(
                "--capacity needs an SLO{of}: give --slo (e.g. ttft_p90=2s,tpot_p90=100ms), x-spark-perf.slo in the compose file or an [slo] table in the scenario file"
            ))
            .context("capacity");
        }
        Ok(Analysis {
            capacity: args.capacity.then(|| CapacitySearch {
                max_probes: args.capacity_probes.max(2),
                probe_duration_s: args.capacity_probe_duration.as_secs_f64().max(0.5),
            }),
            slo,
            slo_source,
        })
    }

    /// Puts the SLO and the search into the run's options.
    pub(crate) fn apply(&self, options: &mut RunOptions) {
        options.slo = self.slo.clone();
        options.capacity = self.capacity.clone();
    }
}

/// The scenario file's `[slo]`, and where it came from.
fn from_scenario_file(path: Option<&Path>) -> anyhow::Result<Option<(Slo, String)>> {
    let Some(path) = path else {
        return Ok(None);
    };
    Ok(scenario::slo_in_file(path)?.map(|slo| (slo, format!("[slo] of {}", path.display()))))
}
