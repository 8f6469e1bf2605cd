//! `--slo` and `--capacity`, shared by `run`, `bench` and `demo`: the
//! objectives every scenario is judged against (goodput) and the rate
//! search for the largest load within them (docs/METRICS.md).

use std::path::Path;

use anyhow::Context;
use spark_load::{CapacitySearch, RunOptions, Slo, scenario};

/// The SLO flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SloArgs {
    /// Service-level objectives, comma-separated KEY=DURATION: ttft, tpot
    /// or e2e with the percentile they are reported against (p50, p90, p95,
    /// p99), e.g. ttft_p90=2s,tpot_p90=100ms,e2e_p99=30s. Each request is
    /// judged on its own TTFT, TPOT and E2E; goodput counts those that met
    /// every objective. Overrides the scenario file's [slo] table.
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
    pub(crate) capacity: Option<CapacitySearch>,
}

impl Analysis {
    /// The flags over the scenario file's `[slo]` table.
    pub(crate) fn resolve(
        args: &SloArgs,
        scenario_file: Option<&Path>,
    ) -> anyhow::Result<Analysis> {
        let from_file = match scenario_file {
            Some(path) => scenario::slo_in_file(path)?,
            None => None,
        };
        let slo = args.slo.clone().or(from_file);
        if args.capacity && slo.is_none() {
            return Err(anyhow::anyhow!(
                "--capacity needs an SLO: give --slo (e.g. ttft_p90=2s,tpot_p90=100ms) or an [slo] table in the scenario file"
            ))
            .context("capacity");
        }
        Ok(Analysis {
            capacity: args.capacity.then(|| CapacitySearch {
                max_probes: args.capacity_probes.max(2),
                probe_duration_s: args.capacity_probe_duration.as_secs_f64().max(0.5),
            }),
            slo,
        })
    }

    /// Puts the SLO and the search into the run's options.
    pub(crate) fn apply(&self, options: &mut RunOptions) {
        options.slo = self.slo.clone();
        options.capacity = self.capacity.clone();
    }
}
