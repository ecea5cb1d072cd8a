//! A deterministic `newc` cpio writer for whole root filesystems (the VM images): entries
//! in the tree's sorted order, mtime 0, owners and modes from the tree, inodes numbered in
//! order, symlinks as links. The kernel unpacks it as (part of) the guest's initramfs; `vm`
//! writes its boot initramfs with it too.

use crate::rootfs::{Kind, Tree};

/// Renders `tree` in `newc` format with a trailer.
pub fn write(tree: &Tree) -> Vec<u8> {
    let mut out = Vec::new();
    for (ino, (path, e)) in tree.entries.iter().enumerate() {
        let (kind, data): (u32, &[u8]) = match &e.kind {
            Kind::Dir => (0o040000, &[]),
            Kind::File(d) => (0o100000, d),
            Kind::Symlink(t) => (0o120000, t.as_bytes()),
        };
        let nlink = if matches!(e.kind, Kind::Dir) { 2 } else { 1 };
        entry(
            &mut out,
            ino as u32 + 1,
            kind | (e.mode & 0o7777),
            e.uid,
            e.gid,
            nlink,
            path,
            data,
        );
    }
    entry(&mut out, 0, 0, 0, 0, 1, "TRAILER!!!", &[]);
    out
}

#[allow(clippy::too_many_arguments)]
fn entry(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    name: &str,
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        uid,
        gid,
        nlink,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
    out.extend_from_slice(data);
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn cpio_lists_files_links_and_modes_as_written() {
        let mut t = Tree::new();
        t.file("bin/busybox", b"bb".to_vec(), 0o755)
            .symlink("bin/sh", "busybox")
            .dir("tmp", 0o1777, 0, 0);
        let dir = std::env::temp_dir().join(format!("images-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.cpio");
        std::fs::write(&file, write(&t)).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("cpio -itv < {}", file.display()))
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        if !out.status.success() && !crate::require_all() {
            eprintln!("skipping: no cpio here");
            return;
        }
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("bin/sh -> busybox"), "{listing}");
        assert!(listing.contains("drwxrwxrwt"), "{listing}");
        assert!(listing.contains("-rwxr-xr-x"), "{listing}");
    }

    #[test]
    fn the_same_entries_in_any_order_give_identical_bytes() {
        let mut a = Tree::new();
        a.file("bin/busybox", b"bb".to_vec(), 0o755)
            .file("init", b"#!/bin/sh\n".to_vec(), 0o755);
        let mut b = Tree::new();
        b.file("init", b"#!/bin/sh\n".to_vec(), 0o755)
            .file("bin/busybox", b"bb".to_vec(), 0o755);
        assert_eq!(write(&a), write(&b));
    }

    #[test]
    fn entries_are_aligned_and_end_with_a_trailer() {
        let mut t = Tree::new();
        t.file("x", b"abc".to_vec(), 0o644);
        let bytes = write(&t);
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        let trailer = bytes.windows(10).position(|w| w == b"TRAILER!!!");
        assert!(trailer.is_some());
    }
}
