//! Sysctls under /proc/sys, read and written by a thread that is inside the namespace
//! (`net.*` entries resolve against the opening thread's network namespace).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The /proc/sys path of `key` (`net.ipv4.ip_forward` or `net/ipv4/ip_forward`).
pub fn path_of(key: &str) -> Result<PathBuf> {
    let ok = !key.is_empty()
        && key.len() <= 255
        && !key.starts_with(['.', '/'])
        && !key.contains("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-'));
    if !ok {
        return Err(Error::Invalid {
            kind: "sysctl key",
            value: key.to_string(),
            expected: "a dotted or slashed /proc/sys key such as net.ipv4.ip_forward",
        });
    }
    // With a '/', the key is a path (interface names may contain dots); else dots separate.
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// Read a sysctl as seen by the calling thread (trimmed).
pub(crate) fn read_here(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io("read sysctl", path.display().to_string(), e))
}

/// Write a sysctl as seen by the calling thread.
pub(crate) fn write_here(path: &PathBuf, value: &str) -> Result<()> {
    std::fs::write(path, value.as_bytes())
        .map_err(|e| Error::io("write sysctl", format!("{} = {value}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_slashed_keys_map_to_proc_sys() {
        assert_eq!(
            path_of("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path_of("net/ipv4/conf/eth0.1/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.1/forwarding")
        );
    }

    #[test]
    fn keys_escaping_proc_sys_are_rejected() {
        for bad in ["", "../etc/passwd", "/etc", "net..x", "net.ipv4 ip"] {
            assert!(path_of(bad).is_err(), "{bad:?} accepted");
        }
    }
}
