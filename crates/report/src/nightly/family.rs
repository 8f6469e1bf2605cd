//! The family of tests of one run: every metric of every scenario of every
//! engine is a test, and a hundred tests at 1 % each give a false alarm most
//! nights. Benjamini–Hochberg keeps the expected share of false discoveries
//! among the flagged metrics at `q`; it is less conservative than Holm's
//! family-wise control where several metrics move together, which is what a
//! real slowdown does (TPOT, ITL, E2E and throughput at once).

/// The false-discovery rate of a run's verdicts.
pub const FDR: f64 = 0.05;

/// Which of `p_values` are discoveries at false-discovery rate `q`
/// (Benjamini and Hochberg, 1995). NaN p-values are never discoveries and
/// still count in the family.
pub fn benjamini_hochberg(p_values: &[f64], q: f64) -> Vec<bool> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (p_values[a], p_values[b]);
        pa.partial_cmp(&pb)
            .unwrap_or_else(|| pa.is_nan().cmp(&pb.is_nan()))
    });
    // The largest rank k with p_(k) ≤ k q / m: it and every smaller p are in.
    let mut cutoff = 0;
    for (rank, &index) in order.iter().enumerate() {
        let p = p_values[index];
        if p.is_finite() && p <= (rank + 1) as f64 * q / m as f64 {
            cutoff = rank + 1;
        }
    }
    let mut discovered = vec![false; m];
    for &index in &order[..cutoff] {
        discovered[index] = true;
    }
    discovered
}

#[cfg(test)]
mod tests {
    use super::benjamini_hochberg;

    #[test]
    fn the_step_up_rule_of_the_original_paper() {
        // m = 5, q = 0.05: thresholds 0.01, 0.02, 0.03, 0.04, 0.05.
        // p_(3) = 0.025 ≤ 0.03 takes p_(1) and p_(2) with it, although
        // p_(2) = 0.021 > 0.02.
        let p = [0.025, 0.2, 0.001, 0.021, 0.9];
        assert_eq!(
            benjamini_hochberg(&p, 0.05),
            vec![true, false, true, true, false]
        );
    }

    #[test]
    fn one_small_p_among_many_nulls_is_not_a_discovery() {
        let mut p = vec![0.5; 40];
        p[7] = 0.004; // would pass a lone test at 1 %
        assert!(benjamini_hochberg(&p, 0.05).iter().all(|d| !d));
        p[7] = 0.001; // ≤ 0.05 / 40
        assert!(benjamini_hochberg(&p, 0.05)[7]);
    }

    #[test]
    fn nan_is_never_a_discovery() {
        assert_eq!(
            benjamini_hochberg(&[f64::NAN, 0.0], 0.05),
            vec![false, true]
        );
        assert!(benjamini_hochberg(&[], 0.05).is_empty());
    }
}
