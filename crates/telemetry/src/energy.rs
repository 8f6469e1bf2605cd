//! Energy over a sampled window and per-token ratios: pure functions over numbers.
//!
//! The preferred source is a cumulative energy counter (NVML's
//! `nvmlDeviceGetTotalEnergyConsumption`, in millijoules since the driver was
//! loaded): the delta between the first and the last reading of a window is
//! exact whatever the sampling rate, which is why vLLM's energy meter uses it.
//! Where a device has no counter, the power samples are integrated with the
//! trapezoid rule, which misses whatever happens between two samples.

use serde::{Deserialize, Serialize};

/// How an energy figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyMethod {
    /// The delta of the device's cumulative energy counter.
    Counter,
    /// Power samples integrated over time (trapezoid rule).
    IntegratedPower,
}

/// The energy a device used over a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    pub energy_j: f64,
    pub method: EnergyMethod,
}

/// Joules between the first and the last reading of a cumulative counter in millijoules.
///
/// `None` with fewer than two readings, or when the counter went backwards
/// (a driver reload resets it), since the delta then means nothing.
pub fn energy_from_counter(readings_mj: &[u64]) -> Option<f64> {
    let (first, last) = (readings_mj.first()?, readings_mj.last()?);
    if readings_mj.len() < 2 || readings_mj.windows(2).any(|w| w[1] < w[0]) {
        return None;
    }
    Some((last - first) as f64 / 1000.0)
}

/// Joules from `(seconds, watts)` points by the trapezoid rule.
///
/// `None` with fewer than two points; points are taken in the order given,
/// and a pair whose time does not increase adds nothing.
pub fn integrate_power(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let energy_j = points
        .windows(2)
        .map(|w| {
            let ((t0, p0), (t1, p1)) = (w[0], w[1]);
            let dt = (t1 - t0).max(0.0);
            dt * (p0 + p1) / 2.0
        })
        .sum();
    Some(energy_j)
}

/// The energy of a window: the counter's delta when it has one, else integrated power.
pub fn window_energy(counter_mj: &[u64], power_points: &[(f64, f64)]) -> Option<Energy> {
    if let Some(energy_j) = energy_from_counter(counter_mj) {
        return Some(Energy {
            energy_j,
            method: EnergyMethod::Counter,
        });
    }
    integrate_power(power_points).map(|energy_j| Energy {
        energy_j,
        method: EnergyMethod::IntegratedPower,
    })
}

/// The value at `t_s` of a series taken as linear between its points, and
/// the index of the last point at or before `t_s`; `None` outside the series.
fn value_at(points: &[(f64, f64)], t_s: f64) -> Option<(f64, usize)> {
    let (first, last) = (points.first()?, points.last()?);
    if t_s < first.0 || t_s > last.0 {
        return None;
    }
    let idx = points.iter().rposition(|&(t, _)| t <= t_s)?;
    let (t0, v0) = points[idx];
    let value = match points.get(idx + 1) {
        Some(&(t1, v1)) if t1 > t0 => v0 + (v1 - v0) * (t_s - t0) / (t1 - t0),
        _ => v0,
    };
    Some((value, idx))
}

/// Joules by the trapezoid rule over `[start_s, end_s]` only, the power at
/// each edge interpolated between the samples around it: a scenario shorter
/// than the sampling interval still gets its share of the energy. An edge
/// outside the samples (the sampler's first reading came just after the
/// scenario started) takes the nearest sample's power.
///
/// `None` without a sample.
pub fn integrate_power_within(points: &[(f64, f64)], start_s: f64, end_s: f64) -> Option<f64> {
    if end_s < start_s {
        return None;
    }
    let held = |t_s: f64| {
        let (first, last) = (points.first()?, points.last()?);
        if t_s < first.0 {
            Some(first.1)
        } else if t_s > last.0 {
            Some(last.1)
        } else {
            value_at(points, t_s).map(|(w, _)| w)
        }
    };
    let (start_w, end_w) = (held(start_s)?, held(end_s)?);
    let mut clipped = vec![(start_s, start_w)];
    clipped.extend(
        points
            .iter()
            .copied()
            .filter(|&(t, _)| t > start_s && t < end_s),
    );
    clipped.push((end_s, end_w));
    integrate_power(&clipped)
}

/// Joules of a cumulative counter (`(seconds, millijoules)`) over
/// `[start_s, end_s]`, the counter at each edge interpolated between the
/// readings around it.
///
/// `None` unless the readings span the window, or when the counter went
/// backwards (a driver reload) anywhere in it.
pub fn counter_energy_within(readings: &[(f64, u64)], start_s: f64, end_s: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = readings.iter().map(|&(t, mj)| (t, mj as f64)).collect();
    let (start_mj, start_idx) = value_at(&points, start_s)?;
    let (end_mj, end_idx) = value_at(&points, end_s)?;
    let last_idx = (end_idx + 1).min(points.len() - 1);
    if end_s < start_s
        || points[start_idx..=last_idx]
            .windows(2)
            .any(|w| w[1].1 < w[0].1)
    {
        return None;
    }
    Some((end_mj - start_mj) / 1000.0)
}

/// The energy over `[start_s, end_s]`: the counter's when it spans the
/// window, else integrated power.
pub fn energy_within(
    counter: &[(f64, u64)],
    power: &[(f64, f64)],
    start_s: f64,
    end_s: f64,
) -> Option<Energy> {
    if let Some(energy_j) = counter_energy_within(counter, start_s, end_s) {
        return Some(Energy {
            energy_j,
            method: EnergyMethod::Counter,
        });
    }
    integrate_power_within(power, start_s, end_s).map(|energy_j| Energy {
        energy_j,
        method: EnergyMethod::IntegratedPower,
    })
}

/// Joules per output token; `None` when no token was produced.
pub fn joules_per_token(energy_j: f64, n_tokens: u64) -> Option<f64> {
    (n_tokens > 0 && energy_j.is_finite()).then(|| energy_j / n_tokens as f64)
}

/// Output tokens per joule; `None` when no energy was measured.
pub fn tokens_per_joule(energy_j: f64, n_tokens: u64) -> Option<f64> {
    (energy_j > 0.0 && energy_j.is_finite()).then(|| n_tokens as f64 / energy_j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_delta_is_in_joules() {
        assert_eq!(
            energy_from_counter(&[1_000_000, 1_250_000, 1_600_500]),
            Some(600.5)
        );
        assert_eq!(energy_from_counter(&[5]), None);
        assert_eq!(energy_from_counter(&[]), None);
        // A reset in the middle makes the delta meaningless.
        assert_eq!(energy_from_counter(&[1_000, 2_000, 10, 500]), None);
    }

    #[test]
    fn trapezoid_over_uneven_samples() {
        // 100 W for 1 s (100 J), then a ramp to 300 W over 0.5 s (100 J).
        let points = [(0.0, 100.0), (1.0, 100.0), (1.5, 300.0)];
        assert_eq!(integrate_power(&points), Some(100.0 + 0.5 * 200.0));
        assert_eq!(integrate_power(&[(0.0, 100.0)]), None);
    }

    #[test]
    fn counter_wins_over_integrated_power() {
        let points = [(0.0, 100.0), (2.0, 100.0)];
        let by_counter = window_energy(&[0, 150_000], &points).unwrap();
        assert_eq!(by_counter.method, EnergyMethod::Counter);
        assert_eq!(by_counter.energy_j, 150.0);
        let by_power = window_energy(&[], &points).unwrap();
        assert_eq!(by_power.method, EnergyMethod::IntegratedPower);
        assert_eq!(by_power.energy_j, 200.0);
        assert_eq!(window_energy(&[], &[]), None);
    }

    #[test]
    fn a_window_gets_the_energy_between_its_edges() {
        // 100 W, then a ramp to 300 W: the window [0.5, 1.25] is 50 J of
        // flat power plus 0.25 s ramping from 100 W to 200 W (37.5 J).
        let points = [(0.0, 100.0), (1.0, 100.0), (1.5, 300.0)];
        assert_eq!(integrate_power_within(&points, 0.5, 1.25), Some(87.5));
        // A window inside one interval still gets its share.
        assert_eq!(integrate_power_within(&points, 0.2, 0.4), Some(20.0));
        // Past the last sample, its power holds: 50 + 100 + 0.5 s at 300 W.
        assert_eq!(integrate_power_within(&points, 0.5, 2.0), Some(300.0));
        assert_eq!(integrate_power_within(&[], 0.5, 2.0), None);
        let counter = [(0.0, 0), (1.0, 100_000), (2.0, 300_000)];
        assert_eq!(counter_energy_within(&counter, 0.5, 1.5), Some(150.0));
        assert_eq!(
            counter_energy_within(&[(0.0, 5_000), (1.0, 10)], 0.2, 0.8),
            None
        );
        let by_counter = energy_within(&counter, &points, 0.5, 1.5).unwrap();
        assert_eq!(by_counter.method, EnergyMethod::Counter);
        let by_power = energy_within(&[], &points, 0.5, 1.25).unwrap();
        assert_eq!(by_power.method, EnergyMethod::IntegratedPower);
    }

    #[test]
    fn per_token_ratios() {
        assert_eq!(joules_per_token(500.0, 1000), Some(0.5));
        assert_eq!(tokens_per_joule(500.0, 1000), Some(2.0));
        assert_eq!(joules_per_token(500.0, 0), None);
        assert_eq!(tokens_per_joule(0.0, 1000), None);
    }
}
