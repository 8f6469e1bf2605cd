//! Descriptive statistics and the significance test behind `compare`.
//!
//! Percentiles use statrs' quantile estimator (Hyndman and Fan's type 8,
//! median-unbiased). On the few iterations a benchmark has, type 8 is less
//! biased than numpy's default linear interpolation (type 7); with hundreds
//! of requests the two agree to well under the run-to-run noise. The
//! definition is written into every report.

use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::statistics::{Data, OrderStatistics, Statistics};

/// What the reports say about how percentiles are computed.
pub const PERCENTILE_DEFINITION: &str = "statistics over iterations: Hyndman-Fan type 8 (median-unbiased) quantiles, sample standard deviation";

/// A summary of a sample: count, moments, extremes and percentiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for one value.
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Summarises the finite values of `values`; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    let n = finite.len();
    let mean = finite.iter().mean();
    let stddev = if n > 1 { finite.iter().std_dev() } else { 0.0 };
    let min = Statistics::min(finite.iter());
    let max = Statistics::max(finite.iter());
    let mut data = Data::new(finite);
    Some(Summary {
        n,
        mean,
        stddev,
        min,
        max,
        p50: data.quantile(0.50),
        p90: data.quantile(0.90),
        p95: data.quantile(0.95),
        p99: data.quantile(0.99),
    })
}

/// The two-sided p-value of Welch's t-test that two samples have the same
/// mean, from their summaries. `None` when either sample has fewer than two
/// values, so no variance can be estimated.
///
/// Welch's test, not Student's: a new engine build can change the spread as
/// well as the mean, and Welch's test does not assume equal variances.
pub fn welch_p_value(a: &Summary, b: &Summary) -> Option<f64> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let (na, nb) = (a.n as f64, b.n as f64);
    let (va, vb) = (a.stddev.powi(2) / na, b.stddev.powi(2) / nb);
    let standard_error = (va + vb).sqrt();
    if standard_error == 0.0 {
        // No noise at all: any difference is real, none is not.
        return Some(if a.mean == b.mean { 1.0 } else { 0.0 });
    }
    let t = (a.mean - b.mean) / standard_error;
    let dof = (va + vb).powi(2) / (va.powi(2) / (na - 1.0) + vb.powi(2) / (nb - 1.0));
    let distribution = StudentsT::new(0.0, 1.0, dof).ok()?;
    Some(2.0 * (1.0 - distribution.cdf(t.abs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_one_to_hundred() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let summary = summarize(&values).expect("non-empty");
        assert_eq!(summary.n, 100);
        assert_eq!(summary.mean, 50.5);
        assert_eq!((summary.min, summary.max), (1.0, 100.0));
        assert!((summary.stddev - 29.011_491_975_882_016).abs() < 1e-9);
        assert!((summary.p50 - 50.5).abs() < 1e-9);
        // Type 8: h = (N + 1/3) p + 1/3, so p90 sits at h = 90.6333.
        assert!((summary.p90 - 90.633_333_333).abs() < 1e-6, "{summary:?}");
        assert!((summary.p99 - 99.663_333_333).abs() < 1e-6, "{summary:?}");
    }

    #[test]
    fn summary_skips_non_finite_values_and_empty_is_none() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[f64::NAN]), None);
        let summary = summarize(&[2.0, f64::INFINITY, 4.0]).expect("two finite values");
        assert_eq!((summary.n, summary.mean), (2, 3.0));
    }

    #[test]
    fn welch_separates_a_shift_from_noise() {
        let base = summarize(&[100.0, 101.0, 99.0, 100.5, 99.5]).expect("values");
        let noisy = summarize(&[100.4, 99.2, 101.1, 99.9, 100.2]).expect("values");
        let shifted = summarize(&[110.0, 111.0, 109.0, 110.5, 109.5]).expect("values");
        let same = welch_p_value(&base, &noisy).expect("p");
        let moved = welch_p_value(&base, &shifted).expect("p");
        assert!(same > 0.5, "p = {same}");
        assert!(moved < 1e-4, "p = {moved}");
        let single = summarize(&[100.0]).expect("value");
        assert_eq!(welch_p_value(&base, &single), None);
    }
}
