//! Testing hook for crash consistency: the points where `apply` and `destroy` may die.
//!
//! With `NETNS_KIT_FAULT_AFTER_STEP=N` in the environment the process SIGKILLs itself as
//! it passes its N-th crash point (counted from 1, across threads, in the order passed);
//! with `NETNS_KIT_FAULT_ACTION=stop` as well, it SIGSTOPs itself there instead (holding
//! whatever it holds, the run's lock included) until sent SIGCONT — how the concurrency
//! tests catch an `apply` in the middle.
//!
//! The crash points are those of [`LiveTopology::apply`] (state recorded; per named
//! namespace: mount point under its temporary name, reserved but not mounted, created;
//! inodes recorded; links; configuration; host link; firewalls; …) and of
//! [`destroy_by_name`] (intent recorded; processes and host link; namespaces in two
//! halves). Tests use it to prove `gc` and `destroy` clean up whatever the moment of
//! death; never set it otherwise. Unset (always, outside those tests), a crash point costs
//! one environment lookup per process.
//!
//! With `NETNS_KIT_TIMINGS=1` every crash point also prints `netns-kit: timing <ns> <label>`
//! to stderr, `<ns>` being CLOCK_MONOTONIC in nanoseconds, so a caller that reads the clock
//! before spawning the process (`just bench-topology`) sees where a whole-process apply or
//! destroy spends its time, from exec to exit.
//!
//! [`LiveTopology::apply`]: crate::runs::live::LiveTopology::apply
//! [`destroy_by_name`]: crate::runs::live::destroy_by_name

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use nix::sys::signal::{raise, Signal};

/// The environment variable: after how many crash points to die (or stop).
pub const ENV: &str = "NETNS_KIT_FAULT_AFTER_STEP";
/// `kill` (default) or `stop`.
pub const ACTION_ENV: &str = "NETNS_KIT_FAULT_ACTION";

static LIMIT: OnceLock<Option<usize>> = OnceLock::new();
static PASSED: AtomicUsize = AtomicUsize::new(0);

/// The environment variable that turns the timing lines on (`1`).
pub const TIMINGS_ENV: &str = "NETNS_KIT_TIMINGS";

static TIMINGS: OnceLock<bool> = OnceLock::new();

/// With `NETNS_KIT_TIMINGS=1`: print `netns-kit: timing <CLOCK_MONOTONIC ns> <label>`.
pub fn timing(label: &str) {
    if !*TIMINGS.get_or_init(|| std::env::var(TIMINGS_ENV).as_deref() == Ok("1")) {
        return;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid, exclusive pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } == 0 {
        let ns = ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128;
        eprintln!("netns-kit: timing {ns} {label}");
    }
}

/// Pass a crash point named `label`; dies (or stops) here if it is the N-th.
pub fn point(label: &str) {
    timing(label);
    let limit = LIMIT.get_or_init(|| std::env::var(ENV).ok()?.parse().ok());
    let Some(limit) = *limit else { return };
    if PASSED.fetch_add(1, Ordering::SeqCst) + 1 != limit {
        return;
    }
    if std::env::var(ACTION_ENV).as_deref() == Ok("stop") {
        eprintln!("netns-kit: {ENV}={limit}: SIGSTOP after step {limit}: {label}");
        let _ = raise(Signal::SIGSTOP);
    } else {
        eprintln!("netns-kit: {ENV}={limit}: SIGKILL after step {limit}: {label}");
        let _ = raise(Signal::SIGKILL);
    }
}
