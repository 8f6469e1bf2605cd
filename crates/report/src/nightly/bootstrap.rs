//! The weak verdict, for a history too short to show its own spread: one
//! baseline run against tonight, by a bootstrap over the per-request values
//! of both (the statistic recomputed on resampled requests).
//!
//! It says how surely tonight's requests are slower than the baseline's,
//! not whether tonight is slower than a typical night: the run-to-run noise
//! is unknown, so the verdict is marked [`Strength::Weak`] and every report
//! says so.

use super::rng::SplitMix64;
use super::{Direction, Judged, Strength, relative_change};

/// Resamples per verdict.
pub const RESAMPLES: usize = 2000;

/// The seed, fixed so a verdict is the same on every re-run.
const SEED: u64 = 0x005E_ED0F_B007;

/// A statistic of a sample: the median, a percentile, the mean.
pub type Statistic = fn(&mut [f64]) -> f64;

/// Judges `statistic` of tonight's per-request `current` values against the
/// baseline's `baseline` values. `None` when either side has fewer than two
/// finite values.
pub fn judge(
    baseline: &[f64],
    current: &[f64],
    statistic: Statistic,
    direction: Direction,
) -> Option<Judged> {
    let clean =
        |values: &[f64]| -> Vec<f64> { values.iter().copied().filter(|v| v.is_finite()).collect() };
    let (baseline, current) = (clean(baseline), clean(current));
    if baseline.len() < 2 || current.len() < 2 {
        return None;
    }
    let reference = statistic(&mut baseline.clone());
    let value = statistic(&mut current.clone());
    let mut rng = SplitMix64::new(SEED);
    let mut base_stats = Vec::with_capacity(RESAMPLES);
    let mut not_worse = 0usize;
    let mut a = vec![0.0; baseline.len()];
    let mut b = vec![0.0; current.len()];
    for _ in 0..RESAMPLES {
        for slot in &mut a {
            *slot = baseline[rng.below(baseline.len())];
        }
        for slot in &mut b {
            *slot = current[rng.below(current.len())];
        }
        let (sa, sb) = (statistic(&mut a), statistic(&mut b));
        base_stats.push(sa);
        let worse = match direction {
            Direction::LowerIsBetter => sb > sa,
            Direction::HigherIsBetter => sb < sa,
        };
        if !worse {
            not_worse += 1;
        }
    }
    base_stats.sort_by(f64::total_cmp);
    let at = |q: f64| base_stats[((RESAMPLES - 1) as f64 * q).round() as usize];
    Some(Judged {
        value,
        reference,
        // The baseline's own 99 % bootstrap interval.
        band: (at(0.005), at(0.995)),
        change: relative_change(value, reference),
        // The share of resamples in which tonight is not worse, with the
        // +1 that keeps a bootstrap p-value off exactly 0.
        p_value: (not_worse as f64 + 1.0) / (RESAMPLES as f64 + 1.0),
        strength: Strength::Weak,
        n_reference: baseline.len(),
    })
}

/// The median, as a [`Statistic`].
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The mean, as a [`Statistic`].
pub fn mean(values: &mut [f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The 99th percentile (nearest rank), as a [`Statistic`].
pub fn p99(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (0.99 * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nightly::Call;
    use crate::nightly::rng::SplitMix64;

    /// `n` values around `centre` with ±10 % uniform jitter.
    fn requests(n: usize, centre: f64, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| centre * (0.9 + 0.2 * (rng.next_u64() as f64 / u64::MAX as f64)))
            .collect()
    }

    #[test]
    fn a_clear_step_over_many_requests_is_a_weak_regression() {
        let base = requests(64, 100.0, 1);
        let slow = requests(64, 115.0, 2);
        let judged = judge(&base, &slow, median, Direction::LowerIsBetter).expect("judged");
        assert_eq!(judged.strength, Strength::Weak);
        assert!(judged.p_value < 0.001, "{judged:?}");
        assert_eq!(
            judged.call(Direction::LowerIsBetter, 0.05, true),
            Call::Regressed
        );
    }

    #[test]
    fn the_same_engine_twice_is_unchanged() {
        let a = requests(64, 100.0, 3);
        let b = requests(64, 100.0, 4);
        let judged = judge(&a, &b, median, Direction::LowerIsBetter).expect("judged");
        assert!(judged.p_value > 0.01, "{judged:?}");
        assert_eq!(
            judged.call(Direction::LowerIsBetter, 0.05, false),
            Call::Unchanged
        );
    }

    #[test]
    fn three_requests_cannot_prove_a_small_step() {
        let judged = judge(
            &[100.0, 90.0, 110.0],
            &[108.0, 97.0, 118.0],
            mean,
            Direction::LowerIsBetter,
        )
        .expect("judged");
        assert!(judged.p_value > 0.05, "{judged:?}");
        assert!(judge(&[1.0], &[2.0, 3.0], mean, Direction::LowerIsBetter).is_none());
    }

    #[test]
    fn the_verdict_is_the_same_on_every_run() {
        let a = requests(20, 100.0, 5);
        let b = requests(20, 104.0, 6);
        assert_eq!(
            judge(&a, &b, p99, Direction::LowerIsBetter),
            judge(&a, &b, p99, Direction::LowerIsBetter)
        );
    }
}
