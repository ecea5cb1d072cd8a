//! A deterministic `newc` cpio writer: entries sorted by path, mtime 0, uid/gid 0,
//! inode numbers in order — the same entries always give the same bytes.

use std::collections::BTreeMap;

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File { data: Vec<u8>, executable: bool },
}

/// An in-memory archive; [`Archive::to_bytes`] renders it.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Kind>,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Archive {
        Archive::default()
    }

    /// Adds a directory (and its parents). `path` is relative, without a leading slash.
    pub fn dir(&mut self, path: &str) -> &mut Archive {
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.entries.entry(prefix.clone()).or_insert(Kind::Dir);
        }
        self
    }

    /// Adds a regular file (mode 0755 if `executable`, else 0644), creating parents.
    pub fn file(&mut self, path: &str, data: Vec<u8>, executable: bool) -> &mut Archive {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries
            .insert(path.to_string(), Kind::File { data, executable });
        self
    }

    /// Renders the archive in `newc` format with a trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, kind)) in self.entries.iter().enumerate() {
            let (mode, data): (u32, &[u8]) = match kind {
                Kind::Dir => (0o040755, &[]),
                Kind::File {
                    data,
                    executable: true,
                } => (0o100755, data),
                Kind::File {
                    data,
                    executable: false,
                } => (0o100644, data),
            };
            let nlink = if matches!(kind, Kind::Dir) { 2 } else { 1 };
            entry(&mut out, ino as u32 + 1, mode, nlink, path, data);
        }
        entry(&mut out, 0, 0, 1, "TRAILER!!!", &[]);
        out
    }
}

fn entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0,
        0,
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

    #[test]
    fn the_same_entries_in_any_order_give_identical_bytes() {
        let mut a = Archive::new();
        a.file("bin/busybox", b"bb".to_vec(), true)
            .file("init", b"#!/bin/sh\n".to_vec(), true);
        let mut b = Archive::new();
        b.file("init", b"#!/bin/sh\n".to_vec(), true)
            .file("bin/busybox", b"bb".to_vec(), true);
        assert_eq!(a.to_bytes(), b.to_bytes());
    }

    #[test]
    fn entries_are_aligned_and_end_with_a_trailer() {
        let mut a = Archive::new();
        a.file("x", b"abc".to_vec(), false);
        let bytes = a.to_bytes();
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        let trailer = bytes.windows(10).position(|w| w == b"TRAILER!!!");
        assert!(trailer.is_some());
    }
}
