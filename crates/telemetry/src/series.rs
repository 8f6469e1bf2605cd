//! A time series of one figure and its summary over a window.

/// Values at times, seconds from the start of sampling, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub points: Vec<(f64, f64)>,
}

/// The peak and the mean of a series' values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub peak: f64,
    pub mean: f64,
    pub n: usize,
}

impl Series {
    /// The summary of every point; `None` when there is none.
    pub fn summary(&self) -> Option<Summary> {
        summarize(self.points.iter().map(|&(_, value)| value))
    }

    /// The summary of the points in `[start_s, end_s]`; when none falls
    /// inside (a window shorter than the interval), the first point after
    /// `start_s`.
    pub fn summary_within(&self, start_s: f64, end_s: f64) -> Option<Summary> {
        let inside = self
            .points
            .iter()
            .filter(|&&(t, _)| t >= start_s && t <= end_s)
            .map(|&(_, value)| value);
        summarize(inside).or_else(|| {
            self.points
                .iter()
                .find(|&&(t, _)| t >= start_s)
                .map(|&(_, value)| Summary {
                    peak: value,
                    mean: value,
                    n: 1,
                })
        })
    }
}

fn summarize(values: impl Iterator<Item = f64>) -> Option<Summary> {
    let mut n = 0;
    let mut sum = 0.0;
    let mut peak = f64::NEG_INFINITY;
    for value in values {
        n += 1;
        sum += value;
        peak = peak.max(value);
    }
    (n > 0).then(|| Summary {
        peak,
        mean: sum / n as f64,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(f64, f64)]) -> Series {
        Series {
            points: points.to_vec(),
        }
    }

    #[test]
    fn peak_and_mean_over_a_window() {
        let s = series(&[(0.0, 10.0), (0.5, 30.0), (1.0, 20.0), (1.5, 100.0)]);
        let within = s.summary_within(0.4, 1.2).expect("points inside");
        assert_eq!((within.peak, within.mean, within.n), (30.0, 25.0, 2));
        assert_eq!(s.summary().map(|s| s.peak), Some(100.0));
    }

    #[test]
    fn a_window_shorter_than_the_interval_takes_the_next_point() {
        let s = series(&[(0.0, 10.0), (0.5, 30.0)]);
        let short = s.summary_within(0.1, 0.2).expect("the next point");
        assert_eq!((short.peak, short.n), (30.0, 1));
        assert_eq!(s.summary_within(0.6, 0.7), None);
        assert_eq!(Series::default().summary(), None);
    }
}
