//! Expiry times with random jitter, so keys filled together do not expire together.

use std::time::Duration;

/// A base TTL plus up to `jitter` extra, chosen uniformly per write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitteredTtl {
    /// The minimum lifetime.
    pub base: Duration,
    /// The largest random addition.
    pub jitter: Duration,
}

impl JitteredTtl {
    /// The TTL for one write, in whole milliseconds (at least 1), in `base ..= base + jitter`.
    pub fn pick_millis(&self) -> u64 {
        let base = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let jitter = u64::try_from(self.jitter.as_millis()).unwrap_or(0);
        let extra = if jitter == 0 {
            0
        } else {
            rand::random_range(0..=jitter)
        };
        base.saturating_add(extra).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_stay_within_the_jitter_window_and_vary() {
        let ttl = JitteredTtl {
            base: Duration::from_secs(60),
            jitter: Duration::from_secs(6),
        };
        let picks: Vec<u64> = (0..200).map(|_| ttl.pick_millis()).collect();
        assert!(picks.iter().all(|&p| (60_000..=66_000).contains(&p)));
        assert!(picks.iter().any(|&p| p != picks[0]), "jitter must vary");
    }

    #[test]
    fn zero_jitter_is_exact() {
        let ttl = JitteredTtl {
            base: Duration::from_millis(1500),
            jitter: Duration::ZERO,
        };
        assert_eq!(ttl.pick_millis(), 1500);
    }
}
