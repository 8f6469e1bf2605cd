//! Failure rates, judged as proportions: tonight's failures out of its
//! requests against the pooled rate of the earlier runs (or the baseline's).
//!
//! A rate is not a continuous metric: 0 failures in every earlier run has no
//! spread, and one failure in 64 requests is 1.6 % of them. So the test is
//! exact (the binomial tail of tonight's count under the earlier rate, that
//! rate smoothed by half a failure so that a clean history does not make a
//! single failure certain), and the practical threshold is absolute: the
//! rate must rise by at least [`MIN_RISE`].

use statrs::distribution::{Binomial, DiscreteCDF};

use super::{Call, Judged, Strength};

/// The smallest rise of the failure rate, in absolute terms, that counts.
pub const MIN_RISE: f64 = 0.02;

/// Failures and requests of one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub failed: u64,
    pub requests: u64,
}

impl Count {
    pub fn rate(self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failed as f64 / self.requests as f64
        }
    }
}

/// Judges tonight's `current` count against the `earlier` runs' counts
/// (strong with at least [`super::MIN_HISTORY`] of them, weak otherwise).
/// `None` when tonight sent no request or there is nothing earlier.
pub fn judge(earlier: &[Count], current: Count) -> Option<Judged> {
    let pooled = Count {
        failed: earlier.iter().map(|c| c.failed).sum(),
        requests: earlier.iter().map(|c| c.requests).sum(),
    };
    if current.requests == 0 || pooled.requests == 0 {
        return None;
    }
    let smoothed = (pooled.failed as f64 + 0.5) / (pooled.requests as f64 + 1.0);
    let binomial = Binomial::new(smoothed, current.requests).ok()?;
    // P(X ≥ failed) = 1 − P(X ≤ failed − 1).
    let p_value = if current.failed == 0 {
        1.0
    } else {
        binomial.sf(current.failed - 1)
    };
    let upper = binomial.inverse_cdf(0.995) as f64 / current.requests as f64;
    Some(Judged {
        value: current.rate(),
        reference: pooled.rate(),
        band: (0.0, upper),
        // Absolute, in percentage points over 100: a rate's change.
        change: current.rate() - pooled.rate(),
        p_value,
        strength: if earlier.len() >= super::MIN_HISTORY {
            Strength::Strong
        } else {
            Strength::Weak
        },
        n_reference: earlier.len(),
    })
}

/// The call on a judged failure rate (the threshold is [`MIN_RISE`], not a
/// relative one).
pub fn call(judged: &Judged, discovered: bool) -> Call {
    if judged.change >= MIN_RISE && discovered && judged.value > judged.band.1 {
        Call::Regressed
    } else if judged.change <= -MIN_RISE {
        Call::Improved
    } else {
        Call::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean_nights(n: usize) -> Vec<Count> {
        vec![
            Count {
                failed: 0,
                requests: 32
            };
            n
        ]
    }

    #[test]
    fn ten_percent_failures_after_clean_nights_regress() {
        let judged = judge(
            &clean_nights(8),
            Count {
                failed: 4,
                requests: 32,
            },
        )
        .expect("judged");
        assert!(judged.p_value < 1e-4, "{judged:?}");
        assert_eq!(call(&judged, true), Call::Regressed);
        assert_eq!(judged.strength, Strength::Strong);
    }

    #[test]
    fn one_stray_failure_is_not_a_regression() {
        let judged = judge(
            &clean_nights(8),
            Count {
                failed: 1,
                requests: 64,
            },
        )
        .expect("judged");
        assert_eq!(
            call(&judged, judged.p_value < 0.01),
            Call::Unchanged,
            "{judged:?}"
        );
    }

    #[test]
    fn a_usual_failure_rate_is_unchanged() {
        let earlier = vec![
            Count {
                failed: 3,
                requests: 32
            };
            6
        ];
        let judged = judge(
            &earlier,
            Count {
                failed: 4,
                requests: 32,
            },
        )
        .expect("judged");
        assert!(judged.p_value > 0.05, "{judged:?}");
        assert_eq!(call(&judged, false), Call::Unchanged);
        assert!(
            judge(
                &[],
                Count {
                    failed: 1,
                    requests: 2
                }
            )
            .is_none()
        );
    }
}
