//! A deterministic, uncompressed EROFS writer for whole root filesystems (the VM block
//! images): no `mkfs.erofs` (a host tool whose output depends on its version), the bytes
//! follow from the tree alone.
//!
//! Layout (`fs/erofs/erofs_fs.h`, 4 KiB blocks): the superblock at byte 1024, then every
//! inode (32-byte compact inodes, mtime 0 from the superblock's build time, `meta_blkaddr`
//! 0 so the root's nid is 36 as with `mkfs.erofs`), in the tree's sorted order with the
//! root first; a file, symlink or directory of at most [`INLINE_MAX`] bytes is stored right
//! after its inode (`FLAT_INLINE`, never crossing a block), anything larger in whole blocks
//! after the metadata (`FLAT_PLAIN`). Directories are blocks of 12-byte dirents followed by
//! their names, `.` and `..` included, sorted bytewise within and across blocks (the
//! kernel's lookup is a binary search). No xattrs, no compression, uuid and volume name
//! zero.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::rootfs::{Kind, Tree};

/// The block size (the only one the 6.1 kernel mounts on x86_64).
pub const BLOCK: usize = 4096;
/// The superblock's offset and magic.
const SUPER_OFFSET: usize = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;
/// A compact inode's size; nids count these slots from byte 0 (`meta_blkaddr` 0).
const INODE: usize = 32;
/// Data of at most this many bytes is inlined after its inode.
pub const INLINE_MAX: usize = 2048;
/// Data layouts (`i_format` bits 1..3).
const FLAT_PLAIN: u16 = 0;
const FLAT_INLINE: u16 = 2;
/// Dirent file types.
const FT_REG: u8 = 1;
const FT_DIR: u8 = 2;
const FT_SYMLINK: u8 = 7;
/// A dirent's size.
const DIRENT: usize = 12;

/// One inode to lay out.
struct Node<'a> {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    ftype: u8,
    /// Regular file or symlink bytes (directories are rendered later).
    data: &'a [u8],
    /// For directories: (name, node index), sorted, `.` and `..` included.
    children: Vec<(Vec<u8>, usize)>,
    /// Size of the data (for directories: of the rendered dirent blocks).
    size: usize,
    inline: bool,
    nid: u64,
    blkaddr: u32,
}

/// Renders `tree` as an uncompressed EROFS image. Fails only on a tree no compact inode
/// can describe (a file over 4 GiB, an owner over 65535, more than 2^32 blocks).
pub fn write(tree: &Tree) -> Result<Vec<u8>> {
    let mut nodes: Vec<Node> = Vec::with_capacity(tree.entries.len() + 1);
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    nodes.push(dir_node(0o755, 0, 0));
    index.insert("", 0);
    for (path, e) in &tree.entries {
        let (mode, ftype, data): (u32, u8, &[u8]) = match &e.kind {
            Kind::Dir => (0o040000, FT_DIR, &[]),
            Kind::File(d) => (0o100000, FT_REG, d),
            Kind::Symlink(t) => (0o120000, FT_SYMLINK, t.as_bytes()),
        };
        if e.uid > 0xffff || e.gid > 0xffff {
            return Err(bad(
                path,
                format!(
                    "has owner {}:{}, expected at most 65535 (a compact inode)",
                    e.uid, e.gid
                ),
            ));
        }
        let i = nodes.len();
        nodes.push(Node {
            mode: mode | (e.mode & 0o7777),
            uid: e.uid,
            gid: e.gid,
            nlink: if ftype == FT_DIR { 2 } else { 1 },
            ftype,
            data,
            children: Vec::new(),
            size: data.len(),
            inline: false,
            nid: 0,
            blkaddr: 0,
        });
        index.insert(path.as_str(), i);
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        let p = *index.get(parent).ok_or_else(|| {
            bad(
                path,
                format!("has no parent directory `{parent}` in the tree"),
            )
        })?;
        if nodes[p].ftype != FT_DIR {
            return Err(bad(
                path,
                format!("has parent `{parent}`, which is not a directory"),
            ));
        }
        nodes[p].children.push((name.as_bytes().to_vec(), i));
        if ftype == FT_DIR {
            nodes[p].nlink += 1;
        }
    }
    // `.` and `..`, then every directory's entries in bytewise order.
    let mut parent_of = vec![0usize; nodes.len()];
    for (p, n) in nodes.iter().enumerate() {
        for (_, c) in &n.children {
            parent_of[*c] = p;
        }
    }
    for (i, n) in nodes.iter_mut().enumerate() {
        if n.ftype == FT_DIR {
            n.children.push((b".".to_vec(), i));
            n.children.push((b"..".to_vec(), parent_of[i]));
            n.children.sort();
            n.size = dir_blocks(&n.children).iter().map(Vec::len).sum::<usize>();
        }
    }
    // Metadata: inodes with their inline data, from the end of the superblock.
    let mut pos = SUPER_OFFSET + 128;
    for n in &mut nodes {
        n.inline = n.size > 0 && n.size <= INLINE_MAX;
        let extra = if n.inline { n.size } else { 0 };
        if extra > 0 && pos % BLOCK + INODE + extra > BLOCK {
            pos = pos.div_ceil(BLOCK) * BLOCK;
        }
        n.nid = (pos / INODE) as u64;
        pos = (pos + INODE + extra).div_ceil(INODE) * INODE;
    }
    let mut block = pos.div_ceil(BLOCK);
    for n in &mut nodes {
        if !n.inline && n.size > 0 {
            n.blkaddr = u32::try_from(block).map_err(|_| bad("", "ends past block 2^32".into()))?;
            block += n.size.div_ceil(BLOCK);
        }
    }
    let mut img = vec![0u8; block * BLOCK];
    let root_nid =
        u16::try_from(nodes[0].nid).map_err(|_| bad("", "root nid over 65535".into()))?;
    // The superblock.
    let sb = &mut img[SUPER_OFFSET..SUPER_OFFSET + 128];
    put32(sb, 0, MAGIC);
    sb[12] = 12; // blkszbits
    put16(sb, 14, root_nid);
    put64(sb, 16, nodes.len() as u64); // inos
    put32(sb, 36, block as u32); // blocks
    for (i, n) in nodes.iter().enumerate() {
        let data: Vec<u8> = if n.ftype == FT_DIR {
            let entries: Vec<(Vec<u8>, u64, u8)> = n
                .children
                .iter()
                .map(|(name, c)| (name.clone(), nodes[*c].nid, nodes[*c].ftype))
                .collect();
            dir_bytes(&entries)
        } else {
            n.data.to_vec()
        };
        let size = u32::try_from(data.len()).map_err(|_| {
            bad(
                &format!("inode {}", i + 1),
                format!("has {} bytes, expected under 4 GiB", data.len()),
            )
        })?;
        let at = n.nid as usize * INODE;
        let inode = &mut img[at..at + INODE];
        let layout = if n.inline { FLAT_INLINE } else { FLAT_PLAIN };
        put16(inode, 0, layout << 1); // i_format: compact (bit 0 clear), layout
        put16(inode, 4, n.mode as u16);
        put16(inode, 6, n.nlink as u16);
        put32(inode, 8, size);
        put32(inode, 16, n.blkaddr);
        put32(inode, 20, i as u32 + 1); // i_ino
        put16(inode, 24, n.uid as u16);
        put16(inode, 26, n.gid as u16);
        let start = if n.inline {
            at + INODE
        } else {
            n.blkaddr as usize * BLOCK
        };
        img[start..start + data.len()].copy_from_slice(&data);
    }
    Ok(img)
}

fn bad(path: &str, detail: String) -> Error {
    Error::Format {
        format: "erofs",
        path: path.to_string(),
        detail,
    }
}

fn dir_node(mode: u32, uid: u32, gid: u32) -> Node<'static> {
    Node {
        mode: 0o040000 | mode,
        uid,
        gid,
        nlink: 2,
        ftype: FT_DIR,
        data: &[],
        children: Vec::new(),
        size: 0,
        inline: false,
        nid: 0,
        blkaddr: 0,
    }
}

/// Splits sorted entries into directory blocks; each block is its dirents then its names,
/// every block but the last padded to [`BLOCK`]. Nids are placeholders here (sizes only).
fn dir_blocks(children: &[(Vec<u8>, usize)]) -> Vec<Vec<u8>> {
    let entries: Vec<(Vec<u8>, u64, u8)> =
        children.iter().map(|(n, _)| (n.clone(), 0, 0)).collect();
    split(&entries)
}

fn dir_bytes(entries: &[(Vec<u8>, u64, u8)]) -> Vec<u8> {
    split(entries).concat()
}

fn split(entries: &[(Vec<u8>, u64, u8)]) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut used = 0;
        while end < entries.len() && used + DIRENT + entries[end].0.len() <= BLOCK {
            used += DIRENT + entries[end].0.len();
            end += 1;
        }
        // A name longer than a block cannot occur (names are at most 255 bytes).
        end = end.max(start + 1);
        let group = &entries[start..end];
        let mut b = vec![0u8; DIRENT * group.len()];
        let mut nameoff = DIRENT * group.len();
        for (k, (name, nid, ftype)) in group.iter().enumerate() {
            put64(&mut b, k * DIRENT, *nid);
            put16(&mut b, k * DIRENT + 8, nameoff as u16);
            b[k * DIRENT + 10] = *ftype;
            nameoff += name.len();
        }
        for (name, _, _) in group {
            b.extend_from_slice(name);
        }
        start = end;
        if start < entries.len() {
            b.resize(BLOCK, 0);
        }
        blocks.push(b);
    }
    blocks
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get16(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }

    fn get32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// A reader for what [`write`] produces: every path under `nid` with its mode, owner and
    /// content, read back the way the kernel does (inline tail or plain blocks, dirents).
    fn read(img: &[u8], nid: u64, path: &str, out: &mut Tree, parent: u64) {
        let at = nid as usize * INODE;
        let format = get16(img, at);
        let mode = get16(img, at + 4) as u32;
        let size = get32(img, at + 8) as usize;
        let blk = get32(img, at + 16) as usize;
        let (uid, gid) = (get16(img, at + 24) as u32, get16(img, at + 26) as u32);
        assert_eq!(format & 1, 0, "compact inode");
        let data = match format >> 1 {
            FLAT_INLINE => {
                assert!(
                    (at % BLOCK) + INODE + size <= BLOCK,
                    "inline data crosses a block"
                );
                &img[at + INODE..at + INODE + size]
            }
            FLAT_PLAIN => &img[blk * BLOCK..blk * BLOCK + size],
            other => panic!("layout {other}"),
        };
        match mode & 0o170000 {
            0o040000 => {
                if !path.is_empty() {
                    out.dir(path, mode & 0o7777, uid, gid);
                }
                let mut names = Vec::new();
                for block in data.chunks(BLOCK) {
                    let n = get16(block, 8) as usize / DIRENT;
                    for k in 0..n {
                        let child =
                            u64::from_le_bytes(block[k * 12..k * 12 + 8].try_into().unwrap());
                        let off = get16(block, k * 12 + 8) as usize;
                        let end = if k + 1 < n {
                            get16(block, (k + 1) * 12 + 8) as usize
                        } else {
                            block[off..]
                                .iter()
                                .position(|&c| c == 0)
                                .map_or(block.len(), |p| off + p)
                        };
                        names.push((String::from_utf8(block[off..end].to_vec()).unwrap(), child));
                    }
                }
                let mut sorted = names.clone();
                sorted.sort();
                assert_eq!(names, sorted, "dirents sorted bytewise across blocks");
                for (name, child) in names {
                    match name.as_str() {
                        "." => assert_eq!(child, nid),
                        ".." => assert_eq!(child, parent),
                        _ => {
                            let p = if path.is_empty() {
                                name
                            } else {
                                format!("{path}/{name}")
                            };
                            read(img, child, &p, out, nid);
                        }
                    }
                }
            }
            0o100000 => {
                out.file(path, data.to_vec(), mode & 0o7777);
                out.entries.get_mut(path).unwrap().uid = uid;
                out.entries.get_mut(path).unwrap().gid = gid;
            }
            0o120000 => {
                out.symlink(path, std::str::from_utf8(data).unwrap());
            }
            other => panic!("mode {other:o}"),
        }
    }

    fn sample() -> Tree {
        let mut t = Tree::new();
        t.dir("var/lib/postgresql", 0o700, 999, 999)
            .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n".to_vec(), 0o644)
            .file(
                "bin/big",
                (0..20_000u32).map(|i| (i % 251) as u8).collect(),
                0o755,
            )
            .file("bin/mid", vec![7u8; INLINE_MAX + 1], 0o755)
            .file("empty", Vec::new(), 0o644)
            .symlink("bin/sh", "dash")
            .symlink("lib64", "usr/lib64");
        // A directory needing several blocks, with names sorting around `.` and `..`.
        for i in 0..600 {
            t.file(
                &format!("usr/share/zoneinfo/-{i:04}-a-long-enough-name"),
                vec![i as u8; 3],
                0o644,
            );
        }
        t.file("usr/share/zoneinfo/+plus", b"x".to_vec(), 0o644);
        t
    }

    #[test]
    fn the_image_reads_back_as_the_tree_it_was_written_from() {
        let tree = sample();
        let img = write(&tree).unwrap();
        assert_eq!(img.len() % BLOCK, 0);
        assert_eq!(get32(&img, SUPER_OFFSET), MAGIC);
        assert_eq!(img[SUPER_OFFSET + 12], 12);
        let root = get16(&img, SUPER_OFFSET + 14) as u64;
        assert_eq!(
            root, 36,
            "root nid right after the superblock, as mkfs.erofs"
        );
        let mut back = Tree::new();
        read(&img, root, "", &mut back, root);
        assert_eq!(back, tree);
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        assert_eq!(write(&sample()).unwrap(), write(&sample()).unwrap());
    }

    #[test]
    fn an_owner_a_compact_inode_cannot_hold_is_an_error_naming_the_path() {
        let mut t = Tree::new();
        t.dir("data", 0o700, 70_000, 0);
        let e = write(&t).unwrap_err().to_string();
        assert!(e.contains("`data`") && e.contains("70000"), "{e}");
    }
}
