//! One upstream instance: its address and its health (active check result, passive ejection).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use http::uri::Authority;

use crate::http::Counter;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call (a cheap monotonic clock for atomics).
pub fn now_ms() -> u64 {
    ms_at(Instant::now())
}

/// `at` on the [`now_ms`] scale (for callers that already read the clock).
pub fn ms_at(at: Instant) -> u64 {
    let start = START.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(*start).as_millis()).unwrap_or(u64::MAX)
}

/// An upstream instance shared by the pool, the proxy and the health checker.
pub struct Instance {
    /// Socket address requests go to.
    pub addr: SocketAddr,
    /// `addr` as a URI authority, parsed once.
    pub authority: Authority,
    /// Result of the last active check (starts healthy so a fresh gateway serves at once).
    healthy: AtomicBool,
    /// `now_ms()` until which the instance is ejected (0: not ejected).
    ejected_until: AtomicU64,
    consecutive_failures: AtomicU32,
    consecutive_ejections: AtomicU32,
    failed_checks: AtomicU32,
    /// Requests sent to this instance.
    pub requests: Counter,
    /// Failed tries on this instance.
    pub failures: Counter,
}

impl Instance {
    /// A healthy, non-ejected instance at `addr` counting into the given counters.
    pub fn new(addr: SocketAddr, requests: Counter, failures: Counter) -> Self {
        let authority = Authority::try_from(addr.to_string().as_str())
            .unwrap_or_else(|_| Authority::from_static("invalid"));
        Self {
            addr,
            authority,
            healthy: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            consecutive_ejections: AtomicU32::new(0),
            failed_checks: AtomicU32::new(0),
            requests,
            failures,
        }
    }

    /// Whether the instance may receive traffic at `now` (a `now_ms()` value).
    pub fn selectable(&self, now: u64) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.ejected_until.load(Ordering::Relaxed) <= now
    }

    /// Whether the instance is currently ejected.
    pub fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Whether the last active check passed.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records an active check result: one pass makes the instance healthy, `threshold`
    /// consecutive failures make it unhealthy; returns true when health changed.
    pub fn record_check(&self, passed: bool, threshold: u32) -> bool {
        let healthy = if passed {
            self.failed_checks.store(0, Ordering::Relaxed);
            true
        } else {
            let failed = self.failed_checks.fetch_add(1, Ordering::Relaxed) + 1;
            failed < threshold.max(1) && self.is_healthy()
        };
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    /// A successful try: failures reset, and so does the ejection backoff.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.consecutive_ejections.load(Ordering::Relaxed) != 0 && !self.is_ejected(now_ms()) {
            self.consecutive_ejections.store(0, Ordering::Relaxed);
        }
    }

    /// A failed try; returns the consecutive failure count so far.
    pub fn record_failure(&self) -> u32 {
        self.failures.inc();
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ejects until `until` (a `now_ms()` value); returns the consecutive ejection number.
    pub fn eject(&self, until: u64) -> u32 {
        self.ejected_until.store(until, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.consecutive_ejections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The ejection number the next ejection would get.
    pub fn next_ejection(&self) -> u32 {
        self.consecutive_ejections.load(Ordering::Relaxed) + 1
    }
}
