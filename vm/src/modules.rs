//! Kernel modules for the initramfs, in dependency order.
//!
//! Debian's package ships no `modules.dep` (depmod runs at install time), so the
//! dependencies are read from each module's `.modinfo` section (`depends=a,b`).
//! The guest cannot use the host's modprobe (the host runs another kernel), so every
//! module the suite needs is loaded up front by the init script.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The modules the guest loads at boot (their dependencies are added automatically):
/// virtio transport, console port, NIC and block device; 9p, EROFS and overlay for the root; bridge, veth,
/// VXLAN, nf_tables (+ conntrack, NAT, reject, fib) and netem for netns-kit; the
/// socket-diag modules for `ss`. `crc32c_generic` is `libcrc32c`'s soft dependency, so it
/// comes before the first module needing `libcrc32c` (erofs, nf_tables).
pub const WANTED: &[&str] = &[
    "virtio_pci",
    "virtio_console",
    "virtio_net",
    "virtio_blk",
    "9pnet_virtio",
    "9p",
    "overlay",
    "crc32c_generic",
    "erofs",
    "bridge",
    "veth",
    "vxlan",
    "nf_tables",
    "nf_conntrack",
    "nft_ct",
    "nf_nat",
    "nft_nat",
    "nft_masq",
    "nft_chain_nat",
    "nft_reject_inet",
    "nft_fib_inet",
    "nft_limit",
    "sch_netem",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
];

/// One module file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Canonical name (dashes as underscores).
    pub name: String,
    /// Path of the `.ko` in the package tree.
    pub path: PathBuf,
}

/// Resolves `wanted` and their dependencies under `tree` into load order.
pub fn resolve(tree: &Path, wanted: &[&str]) -> Result<Vec<Module>> {
    let mut index = BTreeMap::new();
    scan(tree, &mut index)?;
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        visit(&canonical(name), &index, &mut seen, &mut order)?;
    }
    Ok(order)
}

fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

fn scan(dir: &Path, index: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(Error::io("read module dir", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("read module dir", dir))?;
        let path = entry.path();
        if path.is_dir() {
            scan(&path, index)?;
        } else if let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            index.insert(canonical(stem), path);
        }
    }
    Ok(())
}

fn visit(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<Module>,
) -> Result<()> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let path = index
        .get(name)
        .ok_or_else(|| Error::ModuleMissing(name.to_string()))?;
    let image = fs::read(path).map_err(Error::io("read module", path))?;
    for dep in depends(&image) {
        visit(&canonical(&dep), index, seen, order)?;
    }
    order.push(Module {
        name: name.to_string(),
        path: path.clone(),
    });
    Ok(())
}

/// The `depends=` entry of a module's `.modinfo` strings (NUL-separated key=value).
fn depends(image: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = image.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &image[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_reads_the_modinfo_entry() {
        let image = b"junk\0license=GPL\0depends=nf_tables,nf_conntrack\0vermagic=6.1\0";
        assert_eq!(depends(image), vec!["nf_tables", "nf_conntrack"]);
    }

    #[test]
    fn an_empty_depends_means_no_dependencies() {
        assert!(depends(b"\0depends=\0name=x\0").is_empty());
        assert!(depends(b"no modinfo here").is_empty());
    }
}
