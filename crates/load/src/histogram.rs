//! A mergeable log-linear histogram with exact moments, for streaming
//! statistics whose memory does not grow with the number of samples.
//!
//! Values are u64 (nanoseconds, or milli-tokens per second). Values below
//! 2048 have a bucket each; above, every power-of-two range is cut into 1024
//! buckets, so a bucket is at most 1/1024 of its values wide (3 significant
//! digits, as an HDR histogram). Unlike an HDR histogram the ranges are
//! allocated only when a value lands in them (4 KiB each): a worker whose
//! gaps span three octaves holds 12 KiB, not the ~100 KiB of a dense table
//! covering a nanosecond to an hour, which matters with hundreds of workers.
//! Count, sum, sum of squares, min and max are exact.

use spark_results::Distribution;

const SUB_BITS: u32 = 10;
const SUB: usize = 1 << SUB_BITS; // 1024 buckets per octave
const LINEAR_LIMIT: u64 = 2 * SUB as u64; // values below are exact

/// See the module comment.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogHistogram {
    /// Exact counts of values below `LINEAR_LIMIT`.
    linear: Option<Box<[u64]>>,
    /// `octaves[k]` covers `[2^(k+11), 2^(k+12))`.
    octaves: Vec<Option<Box<[u64]>>>,
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: u64,
    max: u64,
}

impl LogHistogram {
    /// Adds one value.
    #[inline]
    pub(crate) fn record(&mut self, value: u64) {
        if value < LINEAR_LIMIT {
            let linear = self
                .linear
                .get_or_insert_with(|| vec![0; LINEAR_LIMIT as usize].into_boxed_slice());
            linear[value as usize] += 1;
        } else {
            let msb = 63 - value.leading_zeros(); // >= 11
            let octave = (msb - (SUB_BITS + 1)) as usize;
            let sub = ((value >> (msb - SUB_BITS)) as usize) - SUB;
            if self.octaves.len() <= octave {
                self.octaves.resize(octave + 1, None);
            }
            let counts =
                self.octaves[octave].get_or_insert_with(|| vec![0; SUB].into_boxed_slice());
            counts[sub] += 1;
        }
        if self.count == 0 || value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        self.count += 1;
        let v = value as f64;
        self.sum += v;
        self.sum_sq += v * v;
    }

    /// Adds every value of `other`.
    pub(crate) fn merge(&mut self, other: &LogHistogram) {
        if other.count == 0 {
            return;
        }
        if let Some(theirs) = &other.linear {
            let ours = self
                .linear
                .get_or_insert_with(|| vec![0; LINEAR_LIMIT as usize].into_boxed_slice());
            for (a, b) in ours.iter_mut().zip(theirs.iter()) {
                *a += b;
            }
        }
        if self.octaves.len() < other.octaves.len() {
            self.octaves.resize(other.octaves.len(), None);
        }
        for (ours, theirs) in self.octaves.iter_mut().zip(other.octaves.iter()) {
            if let Some(theirs) = theirs {
                let ours = ours.get_or_insert_with(|| vec![0; SUB].into_boxed_slice());
                for (a, b) in ours.iter_mut().zip(theirs.iter()) {
                    *a += b;
                }
            }
        }
        if self.count == 0 || other.min < self.min {
            self.min = other.min;
        }
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    /// The nearest-rank `q`-quantile (0 < q ≤ 1): the middle of the bucket
    /// holding the ⌈q·n⌉-th smallest value, clamped to [min, max].
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return Some(self.max);
        }
        let mut seen = 0u64;
        if let Some(linear) = &self.linear {
            for (value, n) in linear.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Some(value as u64);
                }
            }
        }
        for (octave, counts) in self.octaves.iter().enumerate() {
            let Some(counts) = counts else { continue };
            let shift = octave as u32 + 1;
            for (sub, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    let low = ((SUB + sub) as u64) << shift;
                    let mid = low + ((1u64 << shift) >> 1);
                    return Some(mid.clamp(self.min, self.max));
                }
            }
        }
        Some(self.max)
    }

    /// The summary, with every value divided by `scale` (e.g. 1e6 for ns → ms).
    pub(crate) fn distribution(&self, scale: f64) -> Distribution {
        if self.count == 0 {
            return Distribution::default();
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        let variance = (self.sum_sq / n - mean * mean).max(0.0);
        let q = |q: f64| self.quantile(q).map(|v| v as f64 / scale);
        Distribution {
            n: self.count,
            mean: Some(mean / scale),
            stddev: Some(variance.sqrt() / scale),
            min: Some(self.min as f64 / scale),
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            max: Some(self.max as f64 / scale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_2048_and_within_a_thousandth_above() {
        let mut h = LogHistogram::default();
        for v in 1..=1000u64 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), Some(500));
        assert_eq!(h.quantile(0.99), Some(990));
        assert_eq!(h.quantile(1.0), Some(1000));
        let mut h = LogHistogram::default();
        let values: Vec<u64> = (0..10_000u64).map(|i| 1_000 + i * 997_331).collect();
        for &v in &values {
            h.record(v);
        }
        for q in [0.01, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let got = h.quantile(q).expect("samples") as f64;
            assert!(
                (got - exact).abs() / exact <= 1.0 / 1024.0,
                "q {q}: {got} vs {exact}"
            );
        }
        let d = h.distribution(1.0);
        assert_eq!(d.min, Some(1_000.0));
        assert_eq!(d.max, Some(values[values.len() - 1] as f64));
    }

    #[test]
    fn merge_equals_recording_everything() {
        let mut a = LogHistogram::default();
        let mut b = LogHistogram::default();
        let mut all = LogHistogram::default();
        for v in 0..5_000u64 {
            let value = v * v * 31 + 7;
            if v % 3 == 0 {
                a.record(value);
            } else {
                b.record(value);
            }
            all.record(value);
        }
        a.merge(&b);
        let (merged, direct) = (a.distribution(1e6), all.distribution(1e6));
        assert_eq!(
            (merged.n, merged.min, merged.p50, merged.p99, merged.max),
            (direct.n, direct.min, direct.p50, direct.p99, direct.max)
        );
        let close =
            |x: Option<f64>, y: Option<f64>| (x.unwrap_or(0.0) - y.unwrap_or(0.0)).abs() < 1e-9;
        assert!(close(merged.mean, direct.mean) && close(merged.stddev, direct.stddev));
        assert_eq!(LogHistogram::default().distribution(1.0).p50, None);
    }

    #[test]
    fn huge_values_do_not_panic() {
        let mut h = LogHistogram::default();
        h.record(u64::MAX);
        h.record(0);
        assert_eq!(h.quantile(1.0), Some(u64::MAX));
    }
}
