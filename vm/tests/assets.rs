//! The boot assets: the pinned kernel unpacks to a vmlinux, and the initramfs is
//! byte-identical across builds with its modules in dependency order.

#![allow(clippy::unwrap_used)]

mod common;

use vm::kernel::Kernel;
use vm::modules::{resolve, WANTED};

fn kernel() -> Option<Kernel> {
    match Kernel::fetch() {
        Ok(k) => Some(k),
        Err(e) if common::require_all() => {
            panic!("ECOMM_REQUIRE_ALL=1 but the kernel cannot be fetched: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

#[test]
fn the_initramfs_is_byte_identical_across_builds() {
    let Some(kernel) = kernel() else { return };
    let first = vm::initramfs::build(&kernel).unwrap();
    let bytes = std::fs::read(&first).unwrap();
    std::fs::remove_file(&first).unwrap();
    let second = vm::initramfs::build(&kernel).unwrap();
    assert_eq!(first, second, "the cache key is the content hash");
    assert_eq!(std::fs::read(&second).unwrap(), bytes);
}

/// Every VM image too: the pinned initrd (initramfs + `vm-base` + the agent's layer) and the
/// `vm-stack` drives (its EROFS image + the agent's layer as EROFS) built from two empty
/// assembly caches are byte-identical (the `.deb` files are shared, by verified SHA-256 only;
/// `images/tests/reproducible.rs` does the same for every image).
#[test]
fn the_pinned_initrd_is_byte_identical_across_builds_from_empty_caches() {
    let Some(kernel) = kernel() else { return };
    let initramfs = vm::initramfs::build(&kernel).unwrap();
    let base = std::env::temp_dir().join(format!("vm-assets-pinned-{}", std::process::id()));
    let debs = images::fetch::Cache::from_env().debs;
    pinned_initrd_twice(&initramfs, &base, &debs, vm::pinned::BASE_ROLE);
    pinned_drives_twice(&base, &debs, vm::pinned::STACK_ROLE);
    std::fs::remove_dir_all(&base).unwrap();
}

fn pinned_drives_twice(base: &std::path::Path, debs: &std::path::Path, role: &str) {
    let mut built = Vec::new();
    for run in ["a", "b"] {
        let cache = images::fetch::Cache {
            debs: debs.to_path_buf(),
            work: base.join(format!("{role}-{run}")),
        };
        let agent = std::path::Path::new(common::AGENT);
        let (paths, lines) =
            vm::pinned::drives_in(&cache, role, &[(vm::pinned::AGENT, agent)], &[]).unwrap();
        assert_eq!(paths.len(), 2, "{role}: the image and the layer");
        let files: Vec<(Vec<u8>, std::ffi::OsString)> = paths
            .iter()
            .map(|p| (std::fs::read(p).unwrap(), p.file_name().unwrap().to_owned()))
            .collect();
        built.push((files, lines));
    }
    assert_eq!(built[0].1, built[1].1, "{role}: identical IMAGE lines");
    for (a, b) in built[0].0.iter().zip(&built[1].0) {
        assert_eq!(a.1, b.1, "{role}: named by content");
        assert!(a.0 == b.0, "{role}: {:?}: identical bytes", a.1);
        assert_eq!(
            &a.0[1024..1028],
            &0xE0F5_E1E2u32.to_le_bytes(),
            "{role}: {:?} is EROFS",
            a.1
        );
    }
}

fn pinned_initrd_twice(
    initramfs: &std::path::Path,
    base: &std::path::Path,
    debs: &std::path::Path,
    role: &str,
) {
    let mut built = Vec::new();
    for run in ["a", "b"] {
        let cache = images::fetch::Cache {
            debs: debs.to_path_buf(),
            work: base.join(format!("{role}-{run}")),
        };
        let out = cache.work.join("initrd");
        let agent = std::path::Path::new(common::AGENT);
        let (path, lines) =
            vm::pinned::initrd_in(&cache, &out, role, initramfs, &[(vm::pinned::AGENT, agent)])
                .unwrap();
        built.push((
            std::fs::read(&path).unwrap(),
            path.file_name().unwrap().to_owned(),
            lines,
        ));
    }
    assert_eq!(built[0].1, built[1].1, "{role}: named by content");
    assert_eq!(built[0].2, built[1].2, "{role}: identical IMAGE lines");
    assert!(built[0].0 == built[1].0, "{role}: identical bytes");
    assert!(
        built[0].0.starts_with(&std::fs::read(initramfs).unwrap()),
        "{role}: the initramfs comes first"
    );
}

#[test]
fn modules_load_after_their_dependencies() {
    let Some(kernel) = kernel() else { return };
    let order: Vec<String> = resolve(&kernel.modules, WANTED)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    let pos = |n: &str| {
        order
            .iter()
            .position(|m| m == n)
            .unwrap_or_else(|| panic!("{n} missing from {order:?}"))
    };
    assert!(pos("virtio_ring") < pos("virtio_pci"));
    assert!(pos("9pnet") < pos("9pnet_virtio"));
    assert!(pos("nf_tables") < pos("nft_ct"));
    assert!(pos("nf_conntrack") < pos("nft_ct"));
    assert!(
        pos("crc32c_generic") < pos("nf_tables"),
        "libcrc32c's soft dependency first"
    );
    assert!(pos("udp_tunnel") < pos("vxlan"));
    assert!(
        pos("crc32c_generic") < pos("erofs"),
        "erofs needs libcrc32c, which needs its soft dependency loaded"
    );
    assert!(pos("virtio_ring") < pos("virtio_blk"));
}

#[test]
fn the_kernel_is_an_uncompressed_elf() {
    let Some(kernel) = kernel() else { return };
    let head = std::fs::read(&kernel.vmlinux).unwrap();
    assert!(head.starts_with(b"\x7fELF"));
    assert!(head.len() > 20 << 20, "vmlinux is the decompressed kernel");
}
