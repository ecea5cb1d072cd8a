//! A deterministic tar writer (POSIX ustar, with a PAX `path`/`linkpath` record for names
//! that do not fit): entries in the tree's sorted order, mtime 0, numeric owners only.

use crate::rootfs::{Kind, Tree};

const BLOCK: usize = 512;

/// Renders `tree` as a tar archive (paths relative, directories with a trailing slash).
pub fn write(tree: &Tree) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, entry) in &tree.entries {
        let (flag, data, link): (u8, &[u8], &str) = match &entry.kind {
            Kind::Dir => (b'5', &[], ""),
            Kind::File(d) => (b'0', d, ""),
            Kind::Symlink(t) => (b'2', &[], t),
        };
        let name = if matches!(entry.kind, Kind::Dir) {
            format!("{path}/")
        } else {
            path.clone()
        };
        let split = split_name(&name);
        let mut pax = String::new();
        if split.is_none() {
            pax.push_str(&record("path", &name));
        }
        if link.len() > 100 {
            pax.push_str(&record("linkpath", link));
        }
        if !pax.is_empty() {
            let short = format!("PaxHeaders/{}", truncate(path, 80));
            header(
                &mut out,
                &short,
                "",
                b'x',
                pax.len() as u64,
                0o644,
                0,
                0,
                "",
            );
            body(&mut out, pax.as_bytes());
        }
        let (prefix, base) = split.unwrap_or(("", truncate(&name, 100)));
        header(
            &mut out,
            base,
            prefix,
            flag,
            data.len() as u64,
            entry.mode,
            entry.uid,
            entry.gid,
            truncate(link, 100),
        );
        body(&mut out, data);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

/// A PAX record: `<len> key=value\n`, where len counts the whole record.
fn record(key: &str, value: &str) -> String {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits a name into ustar's (prefix ≤ 155, name ≤ 100) at a slash, if it fits.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    let trimmed = name.trim_end_matches('/');
    for (i, _) in trimmed.match_indices('/') {
        let (prefix, rest) = (&name[..i], &name[i + 1..]);
        if prefix.len() <= 155 && rest.len() <= 100 && !rest.is_empty() {
            return Some((prefix, rest));
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    name: &str,
    prefix: &str,
    flag: u8,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    link: &str,
) {
    let mut h = [0u8; BLOCK];
    put(&mut h[0..100], name.as_bytes());
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], u64::from(uid));
    octal(&mut h[116..124], u64::from(gid));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = flag;
    put(&mut h[157..257], link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    put(&mut h[345..500], prefix.as_bytes());
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
}

fn body(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
    out.resize(out.len() + pad, 0);
}

fn put(field: &mut [u8], value: &[u8]) {
    field[..value.len()].copy_from_slice(value);
}

/// Zero-padded octal with a NUL terminator, filling the field.
fn octal(field: &mut [u8], value: u64) {
    let s = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn gnu_tar_lists_what_was_written_including_long_names_and_links() {
        let mut t = Tree::new();
        let long = format!("usr/share/{}/file", "d".repeat(120));
        t.file("etc/passwd", b"root:x:0:0::/:/bin/sh\n".to_vec(), 0o644)
            .symlink("bin/sh", "busybox")
            .file(&long, b"x".to_vec(), 0o755)
            .dir("tmp", 0o1777, 0, 0);
        let bytes = write(&t);
        assert_eq!(bytes.len() % BLOCK, 0);
        let dir = std::env::temp_dir().join(format!("images-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.tar");
        std::fs::write(&file, &bytes).unwrap();
        let out = Command::new("tar").arg("-tvf").arg(&file).output().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains(&long), "{listing}");
        assert!(listing.contains("bin/sh -> busybox"), "{listing}");
        assert!(listing.contains("drwxrwxrwt"), "sticky /tmp: {listing}");
        assert!(listing.contains("1970-01-01"), "mtime 0: {listing}");
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let r = record("path", "abc");
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
        let r = record("path", &"x".repeat(95));
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
    }
}
