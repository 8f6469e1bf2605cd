//! `--capacity`: the largest Poisson request rate at which the SLO holds,
//! by a bounded bisection (docs/METRICS.md, "Capacity").
//!
//! The bracket is [0.5 T, 2 T], T the highest request throughput the run
//! measured (a steady window's where there is one). The low end is probed
//! first (halved while it fails), then the high end, then the middle of the
//! bracket, always keeping a rate that held below one that failed. At most
//! `max_probes` probes of `probe_duration_s` of arrivals each run, so the
//! search takes at most their product plus the drains; the result is the
//! highest rate that held and the gap to the lowest that failed.

use spark_results::{Arrival, Capacity, CapacityProbe, ScenarioResult};
use tokio_util::sync::CancellationToken;

use super::{RunOptions, run_scenario};
use crate::engine::Engine;
use crate::scenario::{self, Scenario};
use crate::sink::RecordSink;

/// How the rate search is bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySearch {
    /// Probes at most.
    pub max_probes: u32,
    /// Seconds of arrivals of each probe.
    pub probe_duration_s: f64,
}

impl Default for CapacitySearch {
    fn default() -> CapacitySearch {
        CapacitySearch {
            max_probes: 6,
            probe_duration_s: 10.0,
        }
    }
}

/// Requests in flight at most during a probe: high enough that the client
/// never holds arrivals back at the rates a search reaches.
const PROBE_MAX_IN_FLIGHT: u32 = 256;

/// The highest request throughput of the run: a steady window's where the
/// scenario has one, else over its whole duration.
fn measured_rps(results: &[ScenarioResult]) -> Option<f64> {
    results
        .iter()
        .filter(|r| !r.discarded && r.not_run.is_none() && r.aggregate.n_ok > 0)
        .map(|r| {
            let steady = r
                .sweep
                .as_ref()
                .and_then(|s| s.steady_request_throughput_rps)
                .or_else(|| {
                    r.aggregate
                        .open_loop
                        .as_ref()
                        .and_then(|o| o.steady_request_throughput_rps)
                });
            steady.unwrap_or(r.aggregate.request_throughput_rps)
        })
        .filter(|rps| rps.is_finite() && *rps > 0.0)
        .max_by(f64::total_cmp)
}

/// Runs the search and fills `found`'s rate fields, probes and notes.
pub(super) async fn search(
    engine: &Engine,
    results: &[ScenarioResult],
    sink: &mut dyn RecordSink,
    options: &RunOptions,
    cancel: &CancellationToken,
    found: &mut Capacity,
) {
    let Some(bounds) = options.capacity.clone() else {
        return;
    };
    let Some(measured) = measured_rps(results) else {
        found
            .notes
            .push("no capacity search: no scenario measured a request throughput".to_owned());
        return;
    };
    // The sweep's prompt and answer lengths, else the throughput scenario's.
    let base = results
        .iter()
        .find(|r| r.sweep.is_some())
        .map(|r| r.config.clone())
        .or_else(|| {
            scenario::builtin()
                .into_iter()
                .find(|s| s.name == "throughput")
                .map(|s| s.config)
        });
    let Some(base) = base else {
        return;
    };
    let probe_options = RunOptions {
        keep_records: false,
        capacity: None,
        ..options.clone()
    };
    let max_probes = bounds.max_probes.max(2);
    let (mut lo, mut hi) = (0.5 * measured, 2.0 * measured);
    let mut held: Option<f64> = None;
    let mut failed: Option<f64> = None;
    found.notes.push(format!(
        "rate search: bracket {lo:.3}–{hi:.3} req/s (0.5–2 × the {measured:.3} req/s measured), at most {max_probes} probes of {} s of Poisson arrivals each",
        bounds.probe_duration_s
    ));
    let mut n_probes = 0;
    while n_probes < max_probes && !cancel.is_cancelled() {
        // The next rate: the low end until one holds, then the high end,
        // then the middle of what is left.
        let rate = match (held, failed) {
            (None, _) => lo,
            (Some(_), None) => hi,
            (Some(h), Some(f)) => (h + f) / 2.0,
        };
        let mut config = base.clone();
        config.arrival = Arrival::Poisson { rate_rps: rate };
        config.duration_s = Some(bounds.probe_duration_s);
        config.requests = 1_000_000;
        config.concurrency = PROBE_MAX_IN_FLIGHT;
        let probe = Scenario {
            name: format!("capacity-{rate:.3}"),
            group: "capacity".to_owned(),
            discard: false,
            config,
        };
        tracing::info!(rate_rps = rate, "capacity probe");
        let result = run_scenario(engine, &probe, sink, &probe_options, cancel).await;
        n_probes += 1;
        let slo = result.slo.as_ref();
        let met = slo.is_some_and(|s| s.met) && result.stopped.is_none();
        found.probes.push(CapacityProbe {
            rate_rps: rate,
            duration_s: bounds.probe_duration_s,
            met,
            n_requests: result.aggregate.n_requests,
            goodput_rps: slo.and_then(|s| s.goodput_rps),
            met_share: slo.and_then(|s| s.met_share),
            steady_request_throughput_rps: result
                .aggregate
                .open_loop
                .as_ref()
                .and_then(|o| o.steady_request_throughput_rps),
        });
        if result.stopped.is_some() && !met {
            found.notes.push(format!(
                "rate search stopped: probe at {rate:.3} req/s stopped"
            ));
            break;
        }
        match (met, held) {
            (true, _) => held = Some(rate),
            (false, None) => {
                failed = Some(rate);
                lo = rate / 2.0;
                hi = rate;
            }
            (false, Some(_)) => failed = Some(rate),
        }
        if held.is_some() && failed.is_none() && rate >= hi {
            break;
        }
    }
    found.max_rate_rps = held;
    found.resolution_rps = match (held, failed) {
        (Some(h), Some(f)) if f > h => Some(f - h),
        _ => None,
    };
    found.notes.push(match (held, failed) {
        (Some(h), Some(f)) => format!(
            "the SLO held at {h:.3} req/s and failed at {f:.3} req/s ({n_probes} probes)"
        ),
        (Some(h), None) => format!(
            "the SLO held even at {h:.3} req/s, the top of the bracket: a lower bound ({n_probes} probes)"
        ),
        (None, Some(f)) => format!(
            "the SLO failed at every rate probed, down to {f:.3} req/s ({n_probes} probes)"
        ),
        (None, None) => "the rate search ran no probe".to_owned(),
    });
}
