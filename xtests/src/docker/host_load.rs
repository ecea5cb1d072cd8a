//! How loaded this host is, to scale the Docker path's deadlines: a wait that fits an idle
//! machine (a container healthy in 120 s, the images built in 600 s) runs out on a shared
//! 2-core machine at load average 20, and the test then fails for no fault of the stack.
//! Deadlines only bound a wait for a condition that is polled; none is asserted on.

/// Load per core at which deadlines are still their base value.
const IDLE_PER_CORE: f64 = 1.0;

/// The most a deadline is stretched, so a wedged stack still fails in bounded time.
pub const MAX_FACTOR: u32 = 8;

/// The 1-minute load average per online core (`/proc/loadavg`); 0 when unreadable.
pub fn per_core() -> f64 {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    load / cores
}

/// How much to stretch a deadline now: `ceil(load per core)`, at least 1, at most
/// [`MAX_FACTOR`].
pub fn factor() -> u32 {
    factor_at(per_core())
}

/// [`factor`] for a given load per core.
pub fn factor_at(per_core: f64) -> u32 {
    let f = (per_core / IDLE_PER_CORE).ceil();
    if f.is_nan() || f < 1.0 {
        1
    } else if f >= f64::from(MAX_FACTOR) {
        MAX_FACTOR
    } else {
        f as u32
    }
}

/// `base_seconds` stretched by the current [`factor`].
pub fn scaled(base_seconds: u64) -> u64 {
    base_seconds * u64::from(factor())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_host_keeps_the_base_and_a_loaded_one_stretches_it_within_the_cap() {
        assert_eq!(factor_at(0.0), 1);
        assert_eq!(factor_at(0.9), 1);
        assert_eq!(factor_at(2.5), 3);
        assert_eq!(factor_at(11.0), MAX_FACTOR);
        assert_eq!(factor_at(f64::NAN), 1);
    }
}
