//! The privilege check every kernel-touching verb runs first.

use super::CliError;

/// CAP_NET_ADMIN: links, addresses, routes, nftables.
const CAP_NET_ADMIN: u32 = 12;
/// CAP_SYS_ADMIN: setns(2) and the bind mounts behind named namespaces.
const CAP_SYS_ADMIN: u32 = 21;

/// Effective capability mask of this process, from /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Ok when this process may create namespaces and configure networking; otherwise the
/// one-line bad-input error for `verb`.
pub fn require(verb: &str) -> Result<(), CliError> {
    let caps = effective_caps().unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    if has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    Err(CliError::BadInput(format!(
        "`{verb}` needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run it with sudo"
    )))
}
