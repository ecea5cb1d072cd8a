//! Stub shared libraries: a soname whose functions all return 0, for a library a role's
//! binaries link but never need in an image.
//!
//! `libsystemd.so.0` is the case: redis-server and postgres call only `sd_notify`, which
//! returns 0 and does nothing when `NOTIFY_SOCKET` is unset — always, in a container — and the
//! real library brings 3.5 MB with libgcrypt, liblzma, liblz4, libzstd and libcap. The stub is
//! written here byte by byte (no compiler): one read-execute segment with the hash table,
//! symbols, strings, symbol versions and `xor eax, eax; ret` per function, one writable
//! segment with the dynamic section. The build checks that every `sd_*` name the linking
//! binary's dynamic strings hold is one the stub defines, and fails otherwise.

/// A library to replace with a stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stub {
    /// Its soname (the `DT_NEEDED` name it replaces).
    pub soname: &'static str,
    /// The symbol version its functions are defined under (`sd_notify@@LIBSYSTEMD_209`).
    pub version: &'static str,
    /// The prefix of the names it owns: a binary importing one not in `functions` fails the
    /// build.
    pub prefix: &'static str,
    /// The functions it defines; each returns 0.
    pub functions: &'static [&'static str],
}

/// `libsystemd.so.0` with `sd_notify` only.
pub const SYSTEMD: Stub = Stub {
    soname: "libsystemd.so.0",
    version: "LIBSYSTEMD_209",
    prefix: "sd_",
    functions: &["sd_notify"],
};

/// The System V ELF hash (`DT_HASH`, `vd_hash`).
pub fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

fn align(v: &mut Vec<u8>, to: usize) {
    while !v.len().is_multiple_of(to) {
        v.push(0);
    }
}

fn p16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn p32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn p64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

const PAGE: usize = 0x1000;
const PHNUM: usize = 4;

impl Stub {
    /// The stub's bytes: an x86-64 ELF shared object.
    pub fn elf(&self) -> Vec<u8> {
        let n = self.functions.len();
        let nsyms = n + 1;
        // The string table: soname, version, function names.
        let mut dynstr = vec![0u8];
        let soname_at = dynstr.len();
        dynstr.extend_from_slice(self.soname.as_bytes());
        dynstr.push(0);
        let version_at = dynstr.len();
        dynstr.extend_from_slice(self.version.as_bytes());
        dynstr.push(0);
        let mut names = Vec::new();
        for f in self.functions {
            names.push(dynstr.len());
            dynstr.extend_from_slice(f.as_bytes());
            dynstr.push(0);
        }
        // Lay out the read-execute segment after the headers.
        let mut seg = vec![0u8; 64 + 56 * PHNUM];
        align(&mut seg, 8);
        let hash_at = seg.len();
        p32(&mut seg, 1); // nbucket
        p32(&mut seg, nsyms as u32); // nchain
        p32(&mut seg, if n > 0 { 1 } else { 0 }); // bucket[0]: every symbol in one chain
        for i in 0..nsyms {
            p32(
                &mut seg,
                if i == 0 || i + 1 == nsyms {
                    0
                } else {
                    i as u32 + 1
                },
            );
        }
        align(&mut seg, 16);
        let text_at = seg.len() + 24 * nsyms + dynstr.len() + 2 * nsyms + 56;
        let text_at = (text_at + 15) & !15;
        let symtab_at = seg.len();
        seg.extend_from_slice(&[0u8; 24]);
        for (i, name) in names.iter().enumerate() {
            p32(&mut seg, *name as u32);
            seg.push(0x12); // STB_GLOBAL, STT_FUNC
            seg.push(0); // STV_DEFAULT
            p16(&mut seg, 1); // defined (any section index but SHN_UNDEF)
            p64(&mut seg, (text_at + 16 * i) as u64);
            p64(&mut seg, 3);
        }
        let strtab_at = seg.len();
        seg.extend_from_slice(&dynstr);
        align(&mut seg, 2);
        let versym_at = seg.len();
        p16(&mut seg, 0);
        for _ in 0..n {
            p16(&mut seg, 2);
        }
        align(&mut seg, 4);
        let verdef_at = seg.len();
        for (ndx, flags, name, hash, last) in [
            (
                1u16,
                1u16,
                soname_at,
                elf_hash(self.soname.as_bytes()),
                false,
            ),
            (2, 0, version_at, elf_hash(self.version.as_bytes()), true),
        ] {
            p16(&mut seg, 1); // vd_version
            p16(&mut seg, flags); // VER_FLG_BASE for the file itself
            p16(&mut seg, ndx);
            p16(&mut seg, 1); // vd_cnt
            p32(&mut seg, hash);
            p32(&mut seg, 20); // vd_aux
            p32(&mut seg, if last { 0 } else { 28 }); // vd_next
            p32(&mut seg, name as u32); // vda_name
            p32(&mut seg, 0); // vda_next
        }
        seg.resize(text_at.max(seg.len()), 0);
        align(&mut seg, 16);
        let text_at = seg.len();
        for _ in 0..n {
            seg.extend_from_slice(&[0x31, 0xc0, 0xc3]); // xor eax, eax; ret
            align(&mut seg, 16);
        }
        let rx_len = seg.len();
        // Symbol values were computed before the text's final place: fix them up.
        for i in 0..n {
            let at = symtab_at + 24 * (i + 1) + 8;
            seg[at..at + 8].copy_from_slice(&((text_at + 16 * i) as u64).to_le_bytes());
        }
        // The writable segment: the dynamic section.
        seg.resize(PAGE, 0);
        let dynamic_at = seg.len();
        let mut dynamic = Vec::new();
        for (tag, val) in [
            (14u64, soname_at as u64), // DT_SONAME
            (4, hash_at as u64),       // DT_HASH
            (5, strtab_at as u64),     // DT_STRTAB
            (6, symtab_at as u64),     // DT_SYMTAB
            (10, dynstr.len() as u64), // DT_STRSZ
            (11, 24),                  // DT_SYMENT
            (0x6fff_fff0, versym_at as u64),
            (0x6fff_fffc, verdef_at as u64),
            (0x6fff_fffd, 2), // DT_VERDEFNUM
            (0, 0),
        ] {
            p64(&mut dynamic, tag);
            p64(&mut dynamic, val);
        }
        seg.extend_from_slice(&dynamic);
        // ELF header and program headers.
        let mut h = Vec::new();
        h.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
        h.extend_from_slice(&[0; 8]);
        p16(&mut h, 3); // ET_DYN
        p16(&mut h, 62); // EM_X86_64
        p32(&mut h, 1);
        p64(&mut h, 0); // e_entry
        p64(&mut h, 64); // e_phoff
        p64(&mut h, 0); // e_shoff: no section headers
        p32(&mut h, 0);
        p16(&mut h, 64);
        p16(&mut h, 56);
        p16(&mut h, PHNUM as u16);
        p16(&mut h, 64);
        p16(&mut h, 0);
        p16(&mut h, 0);
        let dyn_len = dynamic.len() as u64;
        for (kind, flags, off, len, align_to) in [
            (1u32, 5u32, 0u64, rx_len as u64, PAGE as u64), // PT_LOAD R+X
            (1, 6, dynamic_at as u64, dyn_len, PAGE as u64), // PT_LOAD R+W
            (2, 6, dynamic_at as u64, dyn_len, 8),          // PT_DYNAMIC
            (0x6474_e551, 6, 0, 0, 16),                     // PT_GNU_STACK, not executable
        ] {
            p32(&mut h, kind);
            p32(&mut h, flags);
            p64(&mut h, off);
            p64(&mut h, off); // vaddr = offset
            p64(&mut h, off);
            p64(&mut h, len);
            p64(&mut h, len);
            p64(&mut h, align_to);
        }
        seg[..h.len()].copy_from_slice(&h);
        seg
    }

    /// The names in `strings` (a binary's dynamic strings) under [`Stub::prefix`] that the
    /// stub does not define.
    pub fn uncovered<'a>(&self, strings: &'a [String]) -> Vec<&'a str> {
        strings
            .iter()
            .map(String::as_str)
            .filter(|s| s.starts_with(self.prefix) && !self.functions.contains(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_system_v_one() {
        // Values from the ELF specification's algorithm (also binutils' output).
        assert_eq!(elf_hash(b""), 0);
        assert_eq!(elf_hash(b"printf"), 0x077905a6);
    }

    #[test]
    fn the_stub_is_an_elf_object_naming_its_soname() {
        let elf = SYSTEMD.elf();
        let d = crate::elf::parse("stub", &elf).unwrap().unwrap();
        assert!(d.needed.is_empty());
        for s in ["libsystemd.so.0", "LIBSYSTEMD_209", "sd_notify"] {
            assert!(d.strings.iter().any(|x| x == s), "{s} in {:?}", d.strings);
        }
    }

    #[test]
    fn a_binary_importing_more_than_the_stub_defines_is_named() {
        let strings: Vec<String> = ["libc.so.6", "sd_notify", "sd_booted"]
            .map(String::from)
            .to_vec();
        assert_eq!(SYSTEMD.uncovered(&strings), ["sd_booted"]);
    }
}
