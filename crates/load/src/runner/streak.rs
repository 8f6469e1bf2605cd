//! The early stop: K consecutive failures, in the order requests end, mean
//! the engine is gone. Counted by the worker that ends each request (a lock
//! once per request), so the stop is as prompt as the requests.

use spark_results::{FailureClass, RequestRecord};
use tokio_util::sync::CancellationToken;

/// The failures that ended one after the other, and why the scenario was
/// stopped once they reached the limit.
#[derive(Debug, Default)]
pub(super) struct Streak {
    failures: u32,
    why: Option<String>,
}

impl Streak {
    /// Counts `record`: a success ends the streak, a cancelled request
    /// neither counts nor ends it, and the `max`-th failure in a row cancels
    /// `stop` and keeps why.
    pub(super) fn observe(&mut self, record: &RequestRecord, max: u32, stop: &CancellationToken) {
        match &record.failure {
            None => self.failures = 0,
            Some(f) if f.class == FailureClass::Cancelled => {}
            Some(f) => {
                self.failures += 1;
                if self.failures >= max && self.why.is_none() {
                    self.why = Some(format!(
                        "{} consecutive failures, the engine looks gone; last: {}: {}",
                        self.failures,
                        f.class.as_str(),
                        f.message
                    ));
                    stop.cancel();
                }
            }
        }
    }

    /// Why the scenario was stopped, if the streak reached the limit.
    pub(super) fn why(&self) -> Option<&str> {
        self.why.as_deref()
    }
}
