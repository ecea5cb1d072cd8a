//! Passive outlier detection (Envoy-style): eject an instance after N consecutive failures
//! for a backoff that doubles with each consecutive ejection, never ejecting more than a cap.

use std::time::Duration;

/// Ejection policy of one upstream pool.
#[derive(Debug, Clone, Copy)]
pub struct EjectionPolicy {
    /// Consecutive failures (transport errors, timeouts, 502/503/504) before ejection (default 3).
    pub consecutive_failures: u32,
    /// First ejection length (default 5 s); doubles per consecutive ejection.
    pub base: Duration,
    /// Longest ejection (default 60 s).
    pub max: Duration,
    /// At most this percentage of instances ejected at once, though one may always be (default 50).
    pub max_ejected_percent: u8,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 3,
            base: Duration::from_secs(5),
            max: Duration::from_secs(60),
            max_ejected_percent: 50,
        }
    }
}

impl EjectionPolicy {
    /// Ejection length for the `n`th consecutive ejection (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Whether one more ejection is allowed when `ejected` of `total` already are.
    pub fn may_eject(&self, ejected: usize, total: usize) -> bool {
        ejected == 0 || (ejected + 1) * 100 <= usize::from(self.max_ejected_percent) * total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let policy = EjectionPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_secs(5));
        assert_eq!(policy.backoff(2), Duration::from_secs(10));
        assert_eq!(policy.backoff(10), Duration::from_secs(60));
    }

    #[test]
    fn cap_allows_one_then_the_percentage() {
        let policy = EjectionPolicy::default();
        assert!(policy.may_eject(0, 3));
        assert!(!policy.may_eject(1, 3));
        assert!(policy.may_eject(1, 4));
        assert!(!policy.may_eject(2, 4));
    }
}
