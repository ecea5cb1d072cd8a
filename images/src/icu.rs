//! ICU's data, cut to what PostgreSQL loads.
//!
//! PostgreSQL links ICU, and ICU's `libicudata.so` is 31 MB of locale data in one symbol,
//! `icudt<N>_dat` (an ICU "common data" package: a header, a sorted table of contents of
//! item names and offsets, the items). A cluster made by `initdb --locale=C` loads only the
//! collation tree, the locale index and a few names while `initdb` imports the ICU
//! collations (traced with `strace -e openat` over the items as separate files: see
//! ARCHITECTURE.md, "Pinned inputs"). [`reduce`] rewrites the library with a package
//! holding only the items [`KEEP`] names: the same soname, symbol and code, 3.8 MB of data.
//! The image tests prove it by running `initdb`, `postgres` and `psql` on it.

use crate::error::{Error, Result};

/// The items kept (names below `icudt<N>l/`): a trailing `/` keeps the whole directory.
pub const KEEP: &[&str] = &[
    "coll/",
    "keyTypeData.res",
    "lang/en.res",
    "lang/pool.res",
    "lang/root.res",
    "region/en.res",
    "region/pool.res",
    "region/root.res",
    "res_index.res",
    "timezoneTypes.res",
];

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const PAGE: u64 = 0x1000;

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

fn put_u64(d: &mut [u8], at: usize, v: u64) {
    d[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// One program header: its index and the fields used here.
#[derive(Debug, Clone, Copy)]
struct Phdr {
    at: usize,
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// `lib` (an ICU data library) with its package cut to the items `keep` accepts.
pub fn reduce(path: &str, lib: &[u8], keep: impl Fn(&str) -> bool) -> Result<Vec<u8>> {
    let bad = |detail: String| Error::Elf {
        path: path.to_string(),
        detail,
    };
    let short = || bad("truncated".into());
    if !lib.starts_with(b"\x7fELF") || lib.get(4) != Some(&2) || lib.get(5) != Some(&1) {
        return Err(bad("expected a little-endian ELF64 file".into()));
    }
    let phoff = u64_at(lib, 0x20).ok_or_else(short)? as usize;
    let phentsize = u16_at(lib, 0x36).ok_or_else(short)? as usize;
    let phnum = u16_at(lib, 0x38).ok_or_else(short)? as usize;
    let mut phdrs = Vec::new();
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        phdrs.push(Phdr {
            at,
            kind: u32_at(lib, at).ok_or_else(short)?,
            offset: u64_at(lib, at + 8).ok_or_else(short)?,
            vaddr: u64_at(lib, at + 16).ok_or_else(short)?,
            filesz: u64_at(lib, at + 32).ok_or_else(short)?,
        });
    }
    let loads: Vec<Phdr> = phdrs
        .iter()
        .copied()
        .filter(|p| p.kind == PT_LOAD)
        .collect();
    let file_of = |vaddr: u64| {
        loads
            .iter()
            .find(|p| vaddr >= p.vaddr && vaddr < p.vaddr + p.filesz)
            .map(|p| (vaddr - p.vaddr + p.offset) as usize)
    };
    let dynamic = phdrs
        .iter()
        .find(|p| p.kind == PT_DYNAMIC)
        .ok_or_else(|| bad("no PT_DYNAMIC".into()))?;
    let (mut symtab, mut strtab) = (None, None);
    let mut at = dynamic.offset as usize;
    loop {
        let tag = u64_at(lib, at).ok_or_else(short)?;
        let val = u64_at(lib, at + 8).ok_or_else(short)?;
        match tag {
            DT_NULL => break,
            DT_SYMTAB => symtab = file_of(val),
            DT_STRTAB => strtab = file_of(val),
            _ => {}
        }
        at += 16;
    }
    let (symtab, strtab) = symtab
        .zip(strtab)
        .ok_or_else(|| bad("no DT_SYMTAB/DT_STRTAB".into()))?;
    // The symbol table ends where the string table starts (as ld lays them out).
    let mut found = None;
    let mut sym = symtab + 24;
    while sym + 24 <= strtab {
        let name = u32_at(lib, sym).ok_or_else(short)? as usize;
        let end = lib[strtab + name..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(short)?;
        let name = String::from_utf8_lossy(&lib[strtab + name..strtab + name + end]);
        if name.starts_with("icudt") && name.ends_with("_dat") {
            found = Some((sym, u64_at(lib, sym + 8).ok_or_else(short)?));
        }
        sym += 24;
    }
    let (sym, value) = found.ok_or_else(|| bad("no icudt*_dat symbol".into()))?;
    let size = u64_at(lib, sym + 16).ok_or_else(short)?;
    let seg = loads
        .iter()
        .copied()
        .find(|p| value >= p.vaddr && value + size <= p.vaddr + p.filesz)
        .ok_or_else(|| bad("icudt*_dat is in no loaded segment".into()))?;
    let data_off = (value - seg.vaddr + seg.offset) as usize;
    let seg_end = (seg.offset + seg.filesz) as usize;
    if lib[data_off + size as usize..seg_end]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(bad(
            "the data segment holds more than icudt*_dat and zeros".into()
        ));
    }
    let package = package(path, &lib[data_off..data_off + size as usize], keep)?;

    // The new file: everything up to the package, the package, then the later segments
    // moved down by whole pages (their offsets stay congruent to their addresses).
    let later: Vec<&Phdr> = phdrs
        .iter()
        .filter(|p| p.offset >= seg_end as u64)
        .collect();
    let old_start = later
        .iter()
        .filter(|p| p.filesz > 0)
        .map(|p| p.offset)
        .min()
        .unwrap_or(seg_end as u64);
    let old_end = later
        .iter()
        .map(|p| p.offset + p.filesz)
        .max()
        .unwrap_or(old_start);
    let new_data_end = (data_off + package.len()) as u64;
    let mut new_start = (new_data_end & !(PAGE - 1)) + (old_start & (PAGE - 1));
    if new_start < new_data_end {
        new_start += PAGE;
    }
    let delta = old_start - new_start;
    let mut out = lib[..data_off].to_vec();
    out.extend_from_slice(&package);
    out.resize(new_start as usize, 0);
    out.extend_from_slice(&lib[old_start as usize..old_end as usize]);
    for p in &later {
        put_u64(&mut out, p.at + 8, p.offset.saturating_sub(delta));
    }
    // The data segment keeps its size in memory (the loader zero-fills the tail) but holds
    // only the package in the file.
    put_u64(
        &mut out,
        seg.at + 32,
        (data_off as u64 + package.len() as u64) - seg.offset,
    );
    put_u64(&mut out, sym + 16, package.len() as u64);
    // The section headers described the old layout; the loader never reads them.
    put_u64(&mut out, 0x28, 0);
    out[0x3c..0x40].fill(0);
    Ok(out)
}

/// An ICU common data package with only the items `keep` accepts (names relative to the
/// package's `icudt<N>l/` prefix).
pub fn package(path: &str, data: &[u8], keep: impl Fn(&str) -> bool) -> Result<Vec<u8>> {
    let bad = |detail: &str| Error::Elf {
        path: path.to_string(),
        detail: format!("ICU data package: {detail}"),
    };
    let hs = u16_at(data, 0).ok_or_else(|| bad("truncated"))? as usize;
    if data.get(2..4) != Some(&[0xda, 0x27]) || data.get(12..16) != Some(b"CmnD") {
        return Err(bad("no common data (CmnD) header"));
    }
    let base = &data[hs..];
    let count = u32_at(base, 0).ok_or_else(|| bad("truncated"))? as usize;
    let mut items = Vec::new();
    for i in 0..count {
        let name_off = u32_at(base, 4 + 8 * i).ok_or_else(|| bad("truncated"))? as usize;
        let data_off = u32_at(base, 8 + 8 * i).ok_or_else(|| bad("truncated"))? as usize;
        let next = if i + 1 < count {
            u32_at(base, 8 + 8 * (i + 1)).ok_or_else(|| bad("truncated"))? as usize
        } else {
            base.len()
        };
        let end = base
            .get(name_off..)
            .and_then(|s| s.iter().position(|&b| b == 0))
            .ok_or_else(|| bad("item name out of the package"))?;
        let name = &base[name_off..name_off + end];
        let item = base
            .get(data_off..next)
            .ok_or_else(|| bad("item out of the package"))?;
        let short = std::str::from_utf8(name)
            .ok()
            .and_then(|n| n.split_once('/'))
            .map(|(_, rest)| rest)
            .unwrap_or("");
        if keep(short) {
            items.push((name, item));
        }
    }
    // Header, count, table of contents, names, then the items on 16-byte boundaries (the
    // order stays the original's: sorted by name, as ICU's binary search needs).
    let toc = 4 + 8 * items.len();
    let names: usize = items.iter().map(|(n, _)| n.len() + 1).sum();
    let align = |x: usize| (x + 15) & !15;
    let mut out = data[..hs].to_vec();
    let mut body = vec![0u8; toc];
    body[..4].copy_from_slice(&(items.len() as u32).to_le_bytes());
    let mut name_at = toc;
    let mut item_at = align(hs + toc + names) - hs;
    let mut tail = Vec::new();
    for (i, (name, item)) in items.iter().enumerate() {
        body[4 + 8 * i..8 + 8 * i].copy_from_slice(&(name_at as u32).to_le_bytes());
        body[8 + 8 * i..12 + 8 * i].copy_from_slice(&(item_at as u32).to_le_bytes());
        name_at += name.len() + 1;
        tail.push((item_at, *item));
        item_at = align(hs + item_at + item.len()) - hs;
    }
    for (name, _) in &items {
        body.extend_from_slice(name);
        body.push(0);
    }
    for (at, item) in tail {
        body.resize(at, 0);
        body.extend_from_slice(item);
    }
    out.extend_from_slice(&body);
    Ok(out)
}

/// Whether an item name (below `icudt<N>l/`) is one of [`KEEP`].
pub fn kept(name: &str) -> bool {
    KEEP.iter().any(|k| match k.strip_suffix('/') {
        Some(dir) => name.starts_with(dir) && name[dir.len()..].starts_with('/'),
        None => name == *k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package of `(full name, fill byte)` items, each 20 bytes, written independently of
    /// [`package`]: header, count, table of contents, names, items on 16-byte boundaries.
    fn sample(items: &[(&str, u8)]) -> Vec<u8> {
        let hs = 32usize;
        let mut out = vec![0u8; hs];
        out[..2].copy_from_slice(&(hs as u16).to_le_bytes());
        out[2] = 0xda;
        out[3] = 0x27;
        out[12..16].copy_from_slice(b"CmnD");
        let toc = 4 + 8 * items.len();
        let names: usize = items.iter().map(|(n, _)| n.len() + 1).sum();
        let first = (hs + toc + names).div_ceil(16) * 16 - hs;
        let mut body = (items.len() as u32).to_le_bytes().to_vec();
        let mut name_at = toc;
        for (i, (n, _)) in items.iter().enumerate() {
            body.extend_from_slice(&(name_at as u32).to_le_bytes());
            body.extend_from_slice(&((first + 32 * i) as u32).to_le_bytes());
            name_at += n.len() + 1;
        }
        for (n, _) in items {
            body.extend_from_slice(n.as_bytes());
            body.push(0);
        }
        for (i, (_, fill)) in items.iter().enumerate() {
            body.resize(first + 32 * i, 0);
            body.extend_from_slice(&[*fill; 20]);
            if i + 1 < items.len() {
                body.resize(first + 32 * (i + 1), 0);
            }
        }
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_cut_package_keeps_the_named_items_in_order_and_byte_for_byte() {
        let full = sample(&[
            ("d/coll/root.res", 1),
            ("d/curr/en.res", 2),
            ("d/res_index.res", 3),
        ]);
        let cut = package("t", &full, kept).unwrap();
        let mut want = sample(&[("d/coll/root.res", 1), ("d/res_index.res", 3)]);
        // An item's extent runs to the next one: the first keeps its padding.
        want.truncate(cut.len());
        assert_eq!(cut, want);
    }

    #[test]
    fn only_named_items_and_whole_directories_are_kept() {
        assert!(kept("coll/root.res"));
        assert!(kept("res_index.res"));
        assert!(!kept("collx/root.res"));
        assert!(!kept("curr/en.res"));
        assert!(!kept("lang/de.res"));
    }

    #[test]
    fn a_library_without_icu_data_is_an_error_naming_it() {
        let e = reduce("/usr/lib/libx.so", b"not an elf", kept).unwrap_err();
        assert!(e.to_string().contains("/usr/lib/libx.so"), "{e}");
    }
}
