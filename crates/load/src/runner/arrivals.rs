//! Where a scenario's next request comes from: the next index (closed
//! loop), or the next index and due time of a Poisson arrival process that
//! is generated one arrival at a time (open loop), so memory stays flat in
//! the number of requests.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use spark_results::{Arrival, ScenarioConfig};

/// Where the next request comes from.
#[derive(Debug)]
pub(super) enum Dispatch {
    /// Closed loop: the next index.
    Closed(AtomicU32),
    /// Open loop: the next index and the arrival generator.
    Open(Mutex<(u32, PoissonArrivals)>),
}

impl Dispatch {
    /// The next request's index and, in open loop, when it is due; `None`
    /// when the scenario has sent them all.
    pub(super) fn next(&self, n_requests: u32) -> Option<(u32, Option<Duration>)> {
        match self {
            Dispatch::Closed(next_idx) => {
                let idx = next_idx.fetch_add(1, Ordering::Relaxed);
                (idx < n_requests).then_some((idx, None))
            }
            Dispatch::Open(state) => {
                let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
                let (next_idx, arrivals) = &mut *guard;
                let due = arrivals.next()?;
                let idx = *next_idx;
                *next_idx += 1;
                Some((idx, Some(due)))
            }
        }
    }
}

/// Poisson arrival times (exponential gaps) from the scenario's start,
/// generated one at a time: at most `n_left` of them, and none after
/// `until` (a time-sized open loop).
#[derive(Debug, Clone)]
pub(crate) struct PoissonArrivals {
    state: u64,
    at_s: f64,
    rate_rps: f64,
    n_left: u32,
    until_s: Option<f64>,
}

impl Iterator for PoissonArrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.n_left == 0 || self.until_s.is_some_and(|until| self.at_s > until) {
            return None;
        }
        self.n_left -= 1;
        let due = Duration::from_secs_f64(self.at_s);
        // Uniform in (0, 1] from splitmix64, then an exponential gap.
        let u = ((splitmix64(&mut self.state) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        self.at_s += -u.ln() / self.rate_rps;
        Some(due)
    }
}

/// The arrivals of an open-loop scenario, or `None` for a closed loop.
pub(super) fn arrival_schedule(config: &ScenarioConfig, seed: u64) -> Option<PoissonArrivals> {
    let Arrival::Poisson { rate_rps } = config.arrival else {
        return None;
    };
    Some(PoissonArrivals {
        state: seed ^ 0x5eed_5eed_5eed_5eed,
        at_s: 0.0,
        rate_rps,
        n_left: config.requests,
        until_s: config.duration_s,
    })
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(rate_rps: f64, requests: u32, duration_s: Option<f64>) -> ScenarioConfig {
        let mut config = crate::scenario::builtin()
            .into_iter()
            .find(|s| s.name == "throughput")
            .expect("built in")
            .config;
        config.arrival = Arrival::Poisson { rate_rps };
        config.requests = requests;
        config.duration_s = duration_s;
        config
    }

    #[test]
    fn poisson_schedule_has_the_asked_rate() {
        let times: Vec<Duration> = arrival_schedule(&open(50.0, 20_000, None), 7)
            .expect("open loop")
            .collect();
        assert_eq!(times.len(), 20_000);
        let span = times.last().expect("times").as_secs_f64();
        let rate = (times.len() - 1) as f64 / span;
        assert!((rate - 50.0).abs() < 2.0, "rate {rate}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let mut closed = open(1.0, 10, None);
        closed.arrival = Arrival::Closed;
        assert!(arrival_schedule(&closed, 0).is_none());
    }

    #[test]
    fn arrivals_are_a_lazy_iterator_sized_by_time() {
        // Ten million requests cost the generator's few words, not a list.
        let mut arrivals = arrival_schedule(&open(1000.0, 10_000_000, None), 1).expect("open");
        assert!(std::mem::size_of_val(&arrivals) <= 64);
        let first: Vec<Duration> = arrivals.by_ref().take(3).collect();
        assert_eq!(first[0], Duration::ZERO);
        assert!(first[1] > first[0] && first[2] > first[1]);
        assert_eq!(arrivals.n_left, 10_000_000 - 3);
        // Sized by time: 30 s at 40 req/s is about 1,200 arrivals, none after 30 s.
        let timed: Vec<Duration> = arrival_schedule(&open(40.0, 10_000_000, Some(30.0)), 2)
            .expect("open")
            .collect();
        assert!((1_100..1_300).contains(&timed.len()), "{}", timed.len());
        assert!(timed.iter().all(|t| t.as_secs_f64() <= 30.0));
        // The request count stays a cap.
        assert_eq!(
            arrival_schedule(&open(40.0, 50, Some(30.0)), 2)
                .expect("open")
                .count(),
            50
        );
    }
}
