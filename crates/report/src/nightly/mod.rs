//! Verdicts of a nightly run against its history, where the unit of evidence
//! is a run, never a request.
//!
//! What differs from night to night (the container start, GPU clocks and
//! heat, the engine build) is absent from the spread of requests inside one
//! run, so a test over requests calls ordinary drift significant with many
//! requests and a real step noise with few. Here each earlier comparable run
//! is one value of a metric, and tonight is judged against their spread, as
//! Bencher's thresholds do:
//!
//! - [`band`]: with at least [`MIN_HISTORY`] earlier runs, tonight's value
//!   against the median ± k × robust spread of the history (a strong
//!   verdict);
//! - [`bootstrap`]: with less, against one baseline run by a bootstrap over
//!   the per-request values of both runs (a weak verdict, and it says so);
//! - [`failures`]: failure rates, as proportions;
//! - [`family`]: the p-values of all metrics of a run, controlled together
//!   (Benjamini–Hochberg), so a hundred metrics do not give five false alarms
//!   a night;
//! - [`changepoint`]: E-divisive means over a metric's series, the answer to
//!   "since when is it slower?".
//!
//! Everything here is pure and deterministic (the random draws come from
//! [`rng::SplitMix64`] with a fixed seed): the CLI reads the history and
//! hands the numbers in.

pub mod band;
pub mod bootstrap;
pub mod changepoint;
pub mod failures;
pub mod family;
pub mod rng;

/// Earlier comparable runs needed for a verdict from the history's own
/// spread; below it the verdict falls back to a baseline run.
pub const MIN_HISTORY: usize = 5;

/// Which way a metric improves.
pub use crate::compare::Direction;

/// How much a verdict can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// From the spread of at least [`MIN_HISTORY`] earlier runs.
    Strong,
    /// From one baseline run: the run-to-run noise is unknown.
    Weak,
}

/// The verdict on one metric of tonight's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// Within the noise or within the practical threshold.
    Unchanged,
    /// Better beyond both.
    Improved,
    /// Worse beyond both.
    Regressed,
}

/// One metric judged: the reference it was judged against and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Judged {
    /// Tonight's value.
    pub value: f64,
    /// What it was compared with: the history's median, or the baseline's
    /// value.
    pub reference: f64,
    /// The noise band around the reference, in the metric's unit.
    pub band: (f64, f64),
    /// (value − reference) / reference.
    pub change: f64,
    /// One-sided p-value of a move this far in the bad direction by noise
    /// alone, before the family correction.
    pub p_value: f64,
    pub strength: Strength,
    /// Earlier runs (strong) or per-request values of the baseline (weak)
    /// behind the verdict.
    pub n_reference: usize,
}

impl Judged {
    /// The call once the family correction said whether this metric's
    /// p-value is a discovery.
    pub fn call(&self, direction: Direction, threshold: f64, discovered: bool) -> Call {
        let worse = match direction {
            Direction::LowerIsBetter => self.change > threshold,
            Direction::HigherIsBetter => self.change < -threshold,
        };
        let better = match direction {
            Direction::LowerIsBetter => self.change < -threshold,
            Direction::HigherIsBetter => self.change > threshold,
        };
        let outside = self.value < self.band.0 || self.value > self.band.1;
        if worse && discovered && outside {
            Call::Regressed
        } else if better && outside {
            Call::Improved
        } else {
            Call::Unchanged
        }
    }
}

/// (value − reference) / reference, 0 when both are 0, ±∞ from a 0
/// reference.
pub(crate) fn relative_change(value: f64, reference: f64) -> f64 {
    if reference == 0.0 {
        if value == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(value)
        }
    } else {
        (value - reference) / reference.abs()
    }
}
