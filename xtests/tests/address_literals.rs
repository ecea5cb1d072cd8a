//! One source of truth for the address plan: IPv4 literals inside the declared subnets (and the
//! host-link subnet) may not creep back into Rust code. Counts them in `*.rs` under `vm/`,
//! `xtests/` and `ecomm-services/src` (comments aside), prints every one, and fails when the
//! count rises above what it was driven down to.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use netns_kit::topology::Topology;

/// Literals still allowed outside `vm/` (xtests/ and ecomm-services/src). Lower it when you
/// remove one; never raise it — derive the address from the declaration instead.
const MAX_OUTSIDE_VM: usize = 0;

/// Literals in `vm/` (the VM suite reads the declaration). Never raise it.
const MAX_IN_VM: usize = 0;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An IPv4 subnet: network address and prefix length.
type Subnet = (Ipv4Addr, u8);

fn contains((net, prefix): Subnet, a: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(a) & mask == u32::from(net) & mask
}

/// The IPv4 subnets of the address plan: every declared network and the host link.
fn plan_subnets() -> Vec<Subnet> {
    let t = Topology::from_path(workspace().join("ecomm-services/deploy/three-tier.toml")).unwrap();
    let mut nets: Vec<(std::net::IpAddr, u8)> = t
        .networks
        .iter()
        .map(|n| (n.subnet.addr(), n.subnet.prefix_len()))
        .collect();
    nets.extend(
        t.host
            .as_ref()
            .map(|h| (h.subnet.addr(), h.subnet.prefix_len())),
    );
    nets.into_iter()
        .filter_map(|(a, p)| match a {
            std::net::IpAddr::V4(v4) => Some((v4, p)),
            std::net::IpAddr::V6(_) => None,
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src` with every comment replaced by spaces (newlines kept, so line numbers hold). String
/// and character literals are kept: an address in a string is what this check is after.
fn without_comments(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) {
            // Raw string r"…" / r#"…"#: copied through to its closing quote and hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let start = i;
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(&b[start..j.min(b.len())]);
            i = j;
        } else if c == '"' {
            out.push(c);
            i += 1;
            while i < b.len() {
                out.push(b[i]);
                if b[i] == '\\' {
                    if let Some(&e) = b.get(i + 1) {
                        out.push(e);
                    }
                    i += 2;
                    continue;
                }
                i += 1;
                if b[i - 1] == '"' {
                    break;
                }
            }
        } else if c == '\'' && (b.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal ('"', '\'', '\n'): copied whole, so its quote opens nothing.
            let end = if next == Some('\\') {
                (i + 2..b.len())
                    .find(|&k| b[k] == '\'')
                    .unwrap_or(b.len() - 1)
            } else {
                i + 2
            };
            out.extend(&b[i..=end]);
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every dotted-quad IPv4 literal in `text` with its 1-based line.
fn ipv4_literals(text: &str) -> Vec<(usize, Ipv4Addr)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let boundary = i == 0 || !(bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.');
            if bytes[i].is_ascii_digit() && boundary {
                let end = (i..bytes.len())
                    .find(|&k| !(bytes[k].is_ascii_digit() || bytes[k] == b'.'))
                    .unwrap_or(bytes.len());
                let token = line[i..end].trim_end_matches('.');
                if let Ok(a) = token.parse::<Ipv4Addr>() {
                    found.push((n + 1, a));
                }
                i = end;
            } else {
                i += 1;
            }
        }
    }
    found
}

/// (file, line, address) of every plan address in the Rust files under `dir`.
fn literals_under(dir: &str, subnets: &[Subnet]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&workspace().join(dir), &mut files);
    files.sort();
    let mut hits = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (line, a) in ipv4_literals(&without_comments(&text)) {
            if subnets.iter().any(|n| contains(*n, a)) {
                let rel = f
                    .strip_prefix(workspace())
                    .unwrap_or(&f)
                    .display()
                    .to_string();
                hits.push(format!("{rel}:{line}: {a}"));
            }
        }
    }
    hits
}

#[test]
fn the_scanner_skips_comments_and_keeps_strings() {
    // Addresses outside the plan, so this test does not count itself.
    let src = "// 10.9.0.10\nlet a = \"10.1.0.10:8500\"; /* 10.2.0.1 */ let c = '\"'; let b = \"x\";\n/// 10.0.0.1\nlet r = r#\"10.3.0.1\"#;";
    let text = without_comments(src);
    let found: Vec<String> = ipv4_literals(&text)
        .iter()
        .map(|(l, a)| format!("{l}:{a}"))
        .collect();
    assert_eq!(found, ["2:10.1.0.10", "4:10.3.0.1"]);
}

#[test]
#[allow(clippy::absurd_extreme_comparisons)] // the limit is 0 today; the check stays "at most"
fn rust_code_carries_no_second_copy_of_the_address_plan() {
    let subnets = plan_subnets();
    assert!(subnets.len() >= 4, "three tiers and the host link");
    let outside: Vec<String> = ["xtests", "ecomm-services/src"]
        .iter()
        .flat_map(|d| literals_under(d, &subnets))
        .collect();
    let vm = literals_under("vm", &subnets);
    for hit in outside.iter().chain(&vm) {
        eprintln!("address literal: {hit}");
    }
    eprintln!(
        "{} outside vm/ (limit {MAX_OUTSIDE_VM}), {} in vm/ (limit {MAX_IN_VM})",
        outside.len(),
        vm.len()
    );
    assert!(
        outside.len() <= MAX_OUTSIDE_VM,
        "{} address literals in xtests/ and ecomm-services/src (limit {MAX_OUTSIDE_VM}): derive them from the declaration:\n{}",
        outside.len(),
        outside.join("\n")
    );
    assert!(
        vm.len() <= MAX_IN_VM,
        "{} address literals in vm/ (limit {MAX_IN_VM}):\n{}",
        vm.len(),
        vm.join("\n")
    );
}
