//! A minimal circuit breaker: after a failure, skip the dependency for a cool-down period.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Open for `cool_down` after each recorded failure; closed otherwise. Lock-free.
#[derive(Debug)]
pub struct Breaker {
    epoch: Instant,
    cool_down: Duration,
    /// Milliseconds since `epoch` until which the breaker is open (0 = closed).
    open_until_ms: AtomicU64,
}

impl Breaker {
    /// A closed breaker that opens for `cool_down` after each failure.
    pub fn new(cool_down: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            cool_down,
            open_until_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// True while calls should be skipped.
    pub fn is_open(&self) -> bool {
        self.now_ms() < self.open_until_ms.load(Ordering::Relaxed)
    }

    /// Records a failure: opens (or re-opens) the breaker for the cool-down.
    pub fn record_failure(&self) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(self.cool_down.as_millis()).unwrap_or(u64::MAX));
        self.open_until_ms.store(until, Ordering::Relaxed);
    }

    /// Records a success: closes the breaker.
    pub fn record_success(&self) {
        self.open_until_ms.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_failure_and_closes_on_success() {
        let breaker = Breaker::new(Duration::from_secs(3600));
        assert!(!breaker.is_open());
        breaker.record_failure();
        assert!(breaker.is_open());
        breaker.record_success();
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_zero_cool_down_never_blocks() {
        let breaker = Breaker::new(Duration::ZERO);
        breaker.record_failure();
        assert!(!breaker.is_open());
    }
}
