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
    fn per_token_ratios() {
        assert_eq!(joules_per_token(500.0, 1000), Some(0.5));
        assert_eq!(tokens_per_joule(500.0, 1000), Some(2.0));
        assert_eq!(joules_per_token(500.0, 0), None);
        assert_eq!(tokens_per_joule(0.0, 1000), None);
    }
}
