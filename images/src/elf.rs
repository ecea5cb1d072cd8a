//! Just enough ELF64 (little-endian) to build closures: the interpreter (`PT_INTERP`) and
//! the dynamic section's `DT_NEEDED`, `DT_RUNPATH` and `DT_RPATH`.

use crate::error::{Error, Result};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// What a dynamically linked file asks of the loader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// The program interpreter (`/lib64/ld-linux-x86-64.so.2`), for executables.
    pub interp: Option<String>,
    /// `DT_NEEDED` sonames, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` (or `DT_RPATH`) entries, `$ORIGIN` unexpanded.
    pub runpath: Vec<String>,
    /// Every string of the dynamic string table: the sonames, versions and the names of
    /// the symbols it imports and exports (what a stub library must cover).
    pub strings: Vec<String>,
}

/// Parses `data`; `Ok(None)` when it is not an ELF file at all (a script, a data file).
pub fn parse(path: &str, data: &[u8]) -> Result<Option<Dynamic>> {
    if !data.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let bad = |detail: &str| Error::Elf {
        path: path.to_string(),
        detail: detail.to_string(),
    };
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err(bad("expected a little-endian ELF64 file"));
    }
    let phoff = u64_at(data, 0x20).ok_or_else(|| bad("truncated header"))? as usize;
    let phentsize = u16_at(data, 0x36).ok_or_else(|| bad("truncated header"))? as usize;
    let phnum = u16_at(data, 0x38).ok_or_else(|| bad("truncated header"))? as usize;
    let mut loads = Vec::new();
    let mut dynamic = None;
    let mut out = Dynamic::default();
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let kind = u32_at(data, at).ok_or_else(|| bad("program header out of the file"))?;
        let offset = u64_at(data, at + 8).ok_or_else(|| bad("program header out of the file"))?;
        let vaddr = u64_at(data, at + 16).ok_or_else(|| bad("program header out of the file"))?;
        let filesz = u64_at(data, at + 32).ok_or_else(|| bad("program header out of the file"))?;
        match kind {
            PT_LOAD => loads.push((vaddr, offset, filesz)),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            PT_INTERP => {
                let bytes =
                    slice(data, offset, filesz).ok_or_else(|| bad("PT_INTERP out of the file"))?;
                out.interp = Some(cstr(bytes).to_string());
            }
            _ => {}
        }
    }
    let Some((offset, size)) = dynamic else {
        return Ok(Some(out)); // statically linked
    };
    let section = slice(data, offset, size).ok_or_else(|| bad("PT_DYNAMIC out of the file"))?;
    let mut entries = Vec::new();
    let mut strtab = None;
    let mut strsz = 0;
    for entry in section.chunks_exact(16) {
        let (tag, val) = (u64_at(entry, 0).unwrap_or(0), u64_at(entry, 8).unwrap_or(0));
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = val,
            DT_NEEDED | DT_RPATH | DT_RUNPATH => entries.push((tag, val)),
            _ => {}
        }
    }
    let strtab = strtab.ok_or_else(|| bad("dynamic section without DT_STRTAB"))?;
    let base = loads
        .iter()
        .find(|(vaddr, _, filesz)| strtab >= *vaddr && strtab < vaddr + filesz)
        .map(|(vaddr, offset, _)| strtab - vaddr + offset)
        .ok_or_else(|| bad("DT_STRTAB outside every PT_LOAD segment"))?;
    let string = |at: u64| -> Result<String> {
        let start = usize::try_from(base + at).map_err(|_| bad("string offset overflows"))?;
        let bytes = data
            .get(start..)
            .ok_or_else(|| bad("string out of the file"))?;
        Ok(cstr(bytes).to_string())
    };
    if let Some(table) = slice(data, base, strsz) {
        out.strings = table
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
    }
    let (mut rpath, mut runpath) = (Vec::new(), Vec::new());
    for (tag, val) in entries {
        let s = string(val)?;
        match tag {
            DT_NEEDED => out.needed.push(s),
            DT_RPATH => rpath.extend(s.split(':').map(str::to_string)),
            _ => runpath.extend(s.split(':').map(str::to_string)),
        }
    }
    // DT_RUNPATH, when present, makes the loader ignore DT_RPATH.
    out.runpath = if runpath.is_empty() { rpath } else { runpath };
    out.runpath.retain(|p| !p.is_empty());
    Ok(Some(out))
}

fn slice(data: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    data.get(start..end)
}

fn cstr(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).unwrap_or("")
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_needs_libc_and_names_the_loader() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(&exe).unwrap();
        let d = parse("self", &data).unwrap().unwrap();
        assert!(d.needed.iter().any(|n| n == "libc.so.6"), "{d:?}");
        assert_eq!(d.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
    }

    #[test]
    fn a_script_is_not_elf_and_a_truncated_elf_is_an_error() {
        assert_eq!(parse("s", b"#!/bin/sh\n").unwrap(), None);
        let e = parse("t", b"\x7fELF\x02\x01\x01").unwrap_err().to_string();
        assert!(e.contains("ELF t") && e.contains("truncated"), "{e}");
    }
}
