//! The strong verdict: tonight's value against the spread of the earlier
//! comparable runs themselves.
//!
//! The centre is the median, so one bad night in the window does not move
//! it. The spread σ is the standard deviation of the runs within
//! [`TRIM`] robust σ (1.4826 × MAD) of the median: the bad night does not
//! widen the band either, and the estimate of σ from 5 to 15 runs is about
//! 1.6 times as precise as the MAD itself (the MAD of few runs is often far
//! too small, and a too-narrow band is a false alarm). The band is
//! median ± q × σ × √(1 + π/2n), where q is the [`BAND_QUANTILE`] quantile of
//! Student's t with n − 1 degrees of freedom (4.6 for 5 runs, 3.1 for 12,
//! 2.9 for 20: few runs give a wide band) and the last factor is the
//! uncertainty of a median of n runs. The p-value is one-sided, of a move at
//! least this far in the bad direction, from the same t distribution.
//!
//! Measured with the noise model of the nightly test (each night one drift
//! factor uniform in ±3 % and the p50 of 128 requests each jittered uniformly
//! by ±10 %), over 1,000 simulated histories: a false alarm in any of the
//! seven nights judged from 5 to 11 earlier ones in 0.3 % of them, and a 10 %
//! step seen on the 13th night in 92 % (with the MAD and a fixed ±3σ: 1.4 %
//! and 94 %; with 32 requests a night, 7.8 % and 75 %). The test
//! `the_band_holds_its_false_alarm_and_detection_rates` below reruns that.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{Direction, Judged, Strength, relative_change};

/// The one-sided confidence of the band's edges.
pub const BAND_QUANTILE: f64 = 0.995;

/// Runs further than this many robust σ from the median are left out of σ.
pub const TRIM: f64 = 3.5;

/// Floor of the spread of a central metric (a median, a throughput),
/// relative to the median: a spread below 1.5 % is what a few nights of an
/// unusually quiet machine show, not the night-to-night noise of a real box
/// (a busy CI machine moves a p50 by 2–5 %), and identical values (a
/// deterministic engine) would otherwise make every wobble infinitely
/// significant.
pub const MIN_RELATIVE_SPREAD: f64 = 0.015;

/// The same floor for a tail (a p99): one late wake-up of the machine moves
/// a tail by more than a p50, so its band is at least ±9 %.
pub const MIN_RELATIVE_SPREAD_TAIL: f64 = 0.03;

/// The median of `values` (not empty, finite).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median and σ of `values`: the standard deviation of those within
/// [`TRIM`] robust σ (1.4826 × MAD) of the median, floored at
/// `min_relative_spread` of the median.
pub fn robust_spread(values: &[f64], min_relative_spread: f64) -> (f64, f64) {
    let centre = median(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    let floor = (centre.abs() * min_relative_spread).max(f64::MIN_POSITIVE);
    let mad_sigma = (1.4826 * median(&deviations)).max(floor);
    let kept: Vec<f64> = values
        .iter()
        .copied()
        .filter(|v| (v - centre).abs() <= TRIM * mad_sigma)
        .collect();
    let sigma = if kept.len() >= 3 {
        let mean = kept.iter().sum::<f64>() / kept.len() as f64;
        let var = kept.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (kept.len() - 1) as f64;
        var.sqrt()
    } else {
        mad_sigma
    };
    (centre, sigma.max(floor))
}

/// Judges `value` against `history` (the earlier comparable runs' values,
/// at least two), with the spread floored at `min_relative_spread`
/// ([`MIN_RELATIVE_SPREAD`], or [`MIN_RELATIVE_SPREAD_TAIL`] for a tail).
/// Non-finite history values are ignored; `None` when fewer than two remain
/// or `value` is not finite.
pub fn judge(
    history: &[f64],
    value: f64,
    direction: Direction,
    min_relative_spread: f64,
) -> Option<Judged> {
    let history: Vec<f64> = history.iter().copied().filter(|v| v.is_finite()).collect();
    if history.len() < 2 || !value.is_finite() {
        return None;
    }
    let n = history.len();
    let (centre, sigma) = robust_spread(&history, min_relative_spread);
    let scale = sigma * (1.0 + std::f64::consts::PI / (2.0 * n as f64)).sqrt();
    let z = (value - centre) / scale;
    let bad_z = match direction {
        Direction::LowerIsBetter => z,
        Direction::HigherIsBetter => -z,
    };
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    let q = t.inverse_cdf(BAND_QUANTILE);
    Some(Judged {
        value,
        reference: centre,
        band: (centre - q * scale, centre + q * scale),
        change: relative_change(value, centre),
        p_value: t.sf(bad_z),
        strength: Strength::Strong,
        n_reference: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nightly::Call;

    const NIGHTS: [f64; 8] = [100.0, 102.0, 98.5, 101.0, 99.0, 100.5, 97.8, 101.6];

    #[test]
    fn a_ten_percent_step_is_a_regression_and_drift_is_not() {
        let slow = judge(
            &NIGHTS,
            110.0,
            Direction::LowerIsBetter,
            MIN_RELATIVE_SPREAD,
        )
        .expect("judged");
        assert!(slow.p_value < 0.01, "{slow:?}");
        assert_eq!(
            slow.call(Direction::LowerIsBetter, 0.05, true),
            Call::Regressed
        );
        // 3 % is inside the band and the threshold.
        let drift = judge(
            &NIGHTS,
            103.0,
            Direction::LowerIsBetter,
            MIN_RELATIVE_SPREAD,
        )
        .expect("judged");
        assert_eq!(
            drift.call(Direction::LowerIsBetter, 0.05, true),
            Call::Unchanged
        );
        assert!(drift.p_value > 0.05, "{drift:?}");
        // The same step on a throughput is an improvement, not a regression.
        let faster = judge(
            &NIGHTS,
            110.0,
            Direction::HigherIsBetter,
            MIN_RELATIVE_SPREAD,
        )
        .expect("judged");
        assert!(faster.p_value > 0.99);
        assert_eq!(
            faster.call(Direction::HigherIsBetter, 0.05, false),
            Call::Improved
        );
    }

    #[test]
    fn one_wild_night_in_the_window_does_not_widen_the_band() {
        let mut nights = NIGHTS.to_vec();
        nights.push(180.0);
        let slow = judge(
            &nights,
            110.0,
            Direction::LowerIsBetter,
            MIN_RELATIVE_SPREAD,
        )
        .expect("judged");
        assert!(slow.band.1 < 110.0, "{slow:?}");
        assert_eq!(
            slow.call(Direction::LowerIsBetter, 0.05, true),
            Call::Regressed
        );
    }

    #[test]
    fn a_noisy_history_calls_a_ten_percent_move_noise() {
        let noisy = [100.0, 120.0, 85.0, 110.0, 92.0, 125.0, 80.0];
        let judged =
            judge(&noisy, 110.0, Direction::LowerIsBetter, MIN_RELATIVE_SPREAD).expect("judged");
        assert!(judged.band.1 > 110.0, "{judged:?}");
        assert_eq!(
            judged.call(Direction::LowerIsBetter, 0.05, true),
            Call::Unchanged
        );
    }

    #[test]
    fn quiet_nights_do_not_make_a_busy_night_a_regression() {
        // Five nights within 0.3 % of each other (a quiet machine), then a
        // night 4 % slower (a busy one): inside the floored band.
        let quiet = [100.0, 100.2, 99.9, 100.1, 100.3];
        let busy =
            judge(&quiet, 104.0, Direction::LowerIsBetter, MIN_RELATIVE_SPREAD).expect("judged");
        assert!(busy.band.1 > 104.0, "{busy:?}");
        // A tail gets a wider band: 8 % on a p99 is a busy machine too.
        let tail = judge(
            &quiet,
            108.0,
            Direction::LowerIsBetter,
            MIN_RELATIVE_SPREAD_TAIL,
        )
        .expect("judged");
        assert!(tail.band.1 > 108.0, "{tail:?}");
        // A real 10 % step on a median still leaves the band.
        let step =
            judge(&quiet, 110.0, Direction::LowerIsBetter, MIN_RELATIVE_SPREAD).expect("judged");
        assert_eq!(
            step.call(Direction::LowerIsBetter, 0.05, true),
            Call::Regressed
        );
    }

    #[test]
    fn identical_nights_get_the_floored_band() {
        let flat = [50.0; 6];
        let small =
            judge(&flat, 51.0, Direction::LowerIsBetter, MIN_RELATIVE_SPREAD).expect("judged");
        // σ is floored at 1.5 % of 50: the band is 50 ± q × 0.75 × √(1 + π/12)
        // with q Student's t 99.5 % quantile for 5 degrees of freedom.
        let q = 4.032_142_983_557_536;
        let half = q * 0.75 * (1.0 + std::f64::consts::PI / 12.0).sqrt();
        assert!((small.band.1 - (50.0 + half)).abs() < 1e-9, "{small:?}");
        assert_eq!(
            small.call(Direction::LowerIsBetter, 0.05, true),
            Call::Unchanged
        );
        assert!(judge(&[1.0], 2.0, Direction::LowerIsBetter, MIN_RELATIVE_SPREAD).is_none());
        assert!(
            judge(
                &flat,
                f64::NAN,
                Direction::LowerIsBetter,
                MIN_RELATIVE_SPREAD
            )
            .is_none()
        );
    }

    /// The rates the module comment states, on the nightly test's noise
    /// model, with a fixed seed (so the figures are the same on every run).
    #[test]
    fn the_band_holds_its_false_alarm_and_detection_rates() {
        let mut rng = crate::nightly::rng::SplitMix64::new(20261203);
        let mut uniform = |half: f64| {
            let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            1.0 + (unit * 2.0 - 1.0) * half
        };
        let mut night = |step: f64| {
            let drift = uniform(0.03);
            let mut jitters: Vec<f64> = (0..128).map(|_| uniform(0.10)).collect();
            jitters.sort_by(f64::total_cmp);
            100.0 * drift * (jitters[63] + jitters[64]) / 2.0 * step
        };
        let regressed = |history: &[f64], value: f64| {
            judge(
                history,
                value,
                Direction::LowerIsBetter,
                MIN_RELATIVE_SPREAD,
            )
            .expect("judged")
            .call(Direction::LowerIsBetter, 0.05, true)
                == Call::Regressed
        };
        let trials = 1000;
        let (mut false_alarms, mut detected) = (0, 0);
        for _ in 0..trials {
            let nights: Vec<f64> = (0..12).map(|_| night(1.0)).collect();
            if (5..12).any(|i| regressed(&nights[..i], nights[i])) {
                false_alarms += 1;
            }
            if regressed(&nights, night(1.10)) {
                detected += 1;
            }
        }
        let (fa, det) = (
            f64::from(false_alarms) / f64::from(trials),
            f64::from(detected) / f64::from(trials),
        );
        eprintln!("false alarms in 7 nights: {fa:.3}; a 10 % step detected: {det:.3}");
        // The MAD with a fixed ±3σ gives about 0.014 here.
        assert!(fa <= 0.008, "false alarms {fa}");
        assert!(det >= 0.88, "detection {det}");
    }
}
