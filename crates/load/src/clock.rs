//! The client's clock: `Instant` on the hot path, CLOCK_MONOTONIC nanoseconds
//! in the records.
//!
//! On Linux `Instant` reads CLOCK_MONOTONIC but hides its value. Reading both
//! clocks once gives the offset between them, so converting an `Instant` to
//! the nanoseconds of spark-sim's truth log (or of any other process on the
//! host) is an addition, and the per-chunk path reads the vDSO clock once.

use std::sync::OnceLock;
use std::time::Instant;

/// An `Instant` with its CLOCK_MONOTONIC value, captured once per process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MonoClock {
    base: Instant,
    base_ns: u64,
}

impl MonoClock {
    /// The process-wide clock.
    pub(crate) fn get() -> MonoClock {
        static CLOCK: OnceLock<MonoClock> = OnceLock::new();
        *CLOCK.get_or_init(MonoClock::calibrate)
    }

    fn calibrate() -> MonoClock {
        // Bracket the CLOCK_MONOTONIC read between two Instants and keep the
        // tightest of a few tries: the offset is then known to tens of ns.
        let mut best: Option<(u128, MonoClock)> = None;
        for _ in 0..16 {
            let before = Instant::now();
            let ns = monotonic_ns();
            let after = Instant::now();
            let width = after.duration_since(before).as_nanos();
            let half = after.duration_since(before) / 2;
            let clock = MonoClock {
                base: before + half,
                base_ns: ns,
            };
            if best.as_ref().is_none_or(|(w, _)| width < *w) {
                best = Some((width, clock));
            }
        }
        best.map(|(_, clock)| clock).unwrap_or(MonoClock {
            base: Instant::now(),
            base_ns: monotonic_ns(),
        })
    }

    /// CLOCK_MONOTONIC nanoseconds of `t`.
    pub(crate) fn ns(&self, t: Instant) -> u64 {
        if t >= self.base {
            self.base_ns + t.duration_since(self.base).as_nanos() as u64
        } else {
            self.base_ns
                .saturating_sub(self.base.duration_since(t).as_nanos() as u64)
        }
    }
}

impl MonoClock {
    /// The `Instant` of CLOCK_MONOTONIC nanoseconds `ns` (the inverse of `ns`).
    pub(crate) fn instant(&self, ns: u64) -> Instant {
        if ns >= self.base_ns {
            self.base + std::time::Duration::from_nanos(ns - self.base_ns)
        } else {
            self.base
                .checked_sub(std::time::Duration::from_nanos(self.base_ns - ns))
                .unwrap_or(self.base)
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_and_monotonic_agree() {
        let clock = MonoClock::get();
        let now = Instant::now();
        let direct = monotonic_ns();
        let converted = clock.ns(now);
        assert!(direct >= converted, "{direct} < {converted}");
        assert!(
            direct - converted < 1_000_000,
            "off by {} ns",
            direct - converted
        );
    }
}
