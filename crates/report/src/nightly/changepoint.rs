//! Change points of a metric's series of runs: E-divisive means (Matteson and
//! James, 2014), the detector Apache Otava (formerly DataStax Hunter) and
//! MongoDB's CI run over their performance history.
//!
//! For a segment of the series, every split τ is scored by the energy
//! distance between the values before and after it,
//! Q(τ) = τ(n−τ)/n · [2/(τ(n−τ)) Σ|xᵢ−yⱼ| − 1/C(τ,2) Σ|xᵢ−xₖ| − 1/C(n−τ,2) Σ|yⱼ−yₖ|],
//! which is large where the two sides differ in distribution (here: in
//! level). The best split is kept when a permutation test says it beats the
//! best split of shuffled copies of the segment (p ≤ [`ALPHA`]), and the two
//! halves are searched again, until no significant split is left.
//! Shuffles come from a fixed seed, so the same history always gives the
//! same change points.

use super::rng::SplitMix64;

/// Significance of a split.
pub const ALPHA: f64 = 0.01;

/// Shuffles per permutation test.
const PERMUTATIONS: usize = 199;

/// Fewest runs on each side of a change point.
pub const MIN_SEGMENT: usize = 3;

const SEED: u64 = 0x00C4_A16E_0001;

/// A change point: the index of the first run of the new level.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ChangePoint {
    pub index: usize,
    /// Mean of the segment before, and of the segment after (up to the next
    /// change point).
    pub before: f64,
    pub after: f64,
    /// Permutation p-value of the split.
    pub p_value: f64,
}

impl ChangePoint {
    /// (after − before) / before.
    pub fn change(&self) -> f64 {
        super::relative_change(self.after, self.before)
    }
}

/// The change points of `series` (oldest first), in order.
pub fn detect(series: &[f64]) -> Vec<ChangePoint> {
    let mut rng = SplitMix64::new(SEED);
    let mut splits = Vec::new();
    let mut pending = vec![(0, series.len())];
    while let Some((start, end)) = pending.pop() {
        let segment = &series[start..end];
        let Some((tau, q)) = best_split(segment) else {
            continue;
        };
        let mut shuffled = segment.to_vec();
        let mut at_least = 0usize;
        for _ in 0..PERMUTATIONS {
            rng.shuffle(&mut shuffled);
            if best_split(&shuffled).is_some_and(|(_, qs)| qs >= q) {
                at_least += 1;
            }
        }
        let p_value = (at_least as f64 + 1.0) / (PERMUTATIONS as f64 + 1.0);
        if p_value <= ALPHA {
            splits.push((start + tau, p_value));
            pending.push((start, start + tau));
            pending.push((start + tau, end));
        }
    }
    splits.sort_by_key(|&(index, _)| index);
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(splits.iter().map(|&(i, _)| i))
        .chain(std::iter::once(series.len()))
        .collect();
    let mean = |a: usize, b: usize| series[a..b].iter().sum::<f64>() / (b - a) as f64;
    splits
        .iter()
        .enumerate()
        .map(|(k, &(index, p_value))| ChangePoint {
            index,
            before: mean(bounds[k], bounds[k + 1]),
            after: mean(bounds[k + 1], bounds[k + 2]),
            p_value,
        })
        .collect()
}

/// The split of `x` with the largest energy statistic, and that statistic;
/// `None` when `x` is too short for two segments of [`MIN_SEGMENT`].
///
/// As in Matteson and James, the right-hand side of a split τ is
/// `x[τ..κ]` for the best end κ, not always the rest of the series: a
/// regression that was later fixed is a bump, and against "everything
/// after" its start would look like half a change. Sums are updated as κ
/// grows, so a call is O(n³) on the short series of a history window.
fn best_split(x: &[f64]) -> Option<(usize, f64)> {
    let n = x.len();
    if n < 2 * MIN_SEGMENT {
        return None;
    }
    let d = |i: usize, j: usize| (x[i] - x[j]).abs();
    let pairs = |len: usize| (len * (len - 1) / 2) as f64;
    let mut best: Option<(usize, f64)> = None;
    for tau in MIN_SEGMENT..=n - MIN_SEGMENT {
        let mut within_left = 0.0;
        for i in 0..tau {
            for k in i + 1..tau {
                within_left += d(i, k);
            }
        }
        let mut between = 0.0;
        let mut within_right = 0.0;
        for kappa in tau + 1..=n {
            let new = kappa - 1;
            between += (0..tau).map(|i| d(i, new)).sum::<f64>();
            within_right += (tau..new).map(|j| d(j, new)).sum::<f64>();
            let m = kappa - tau;
            if m < MIN_SEGMENT {
                continue;
            }
            let energy = 2.0 * between / (tau * m) as f64
                - within_left / pairs(tau)
                - within_right / pairs(m);
            let q = (tau * m) as f64 / (tau + m) as f64 * energy;
            if best.is_none_or(|(_, b)| q > b) {
                best = Some((tau, q));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic ±3 % noise around `level`.
    fn nights(n: usize, level: f64, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| level * (0.97 + 0.06 * (rng.next_u64() as f64 / u64::MAX as f64)))
            .collect()
    }

    #[test]
    fn a_ten_percent_step_is_found_at_its_first_run() {
        let mut series = nights(12, 100.0, 1);
        series.extend(nights(4, 110.0, 2));
        let points = detect(&series);
        assert_eq!(points.len(), 1, "{points:?}");
        assert_eq!(points[0].index, 12);
        assert!((points[0].change() - 0.10).abs() < 0.03, "{points:?}");
    }

    #[test]
    fn noise_alone_has_no_change_point() {
        for seed in 0..10 {
            let series = nights(16, 100.0, 100 + seed);
            assert!(
                detect(&series).is_empty(),
                "seed {seed}: {:?}",
                detect(&series)
            );
        }
    }

    #[test]
    fn two_steps_are_two_change_points() {
        let mut series = nights(8, 100.0, 3);
        series.extend(nights(8, 115.0, 4));
        series.extend(nights(8, 100.0, 5));
        let indices: Vec<usize> = detect(&series).iter().map(|p| p.index).collect();
        assert_eq!(indices, vec![8, 16]);
    }

    #[test]
    fn short_series_have_none() {
        assert!(detect(&[1.0, 2.0, 3.0, 10.0, 11.0]).is_empty());
        assert!(detect(&[]).is_empty());
    }
}
