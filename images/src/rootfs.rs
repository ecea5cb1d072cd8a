//! A root filesystem in memory, and the closure builder that fills it from unpacked packages.
//!
//! Entries are keyed by their path (relative, no leading slash) in a sorted map, so every
//! writer walks them in one order; owners, permissions and (in the writers) mtimes are
//! normalized: regular files are 0755 when the package had any execute bit, else 0644,
//! directories 0755, all owned by 0:0 unless a role says otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::elf;
use crate::error::{Error, Result};

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(String),
}

/// One entry: its kind, permission bits and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Directory, file or symlink.
    pub kind: Kind,
    /// Permission bits (0o7777 at most).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// A root filesystem: sorted entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Path (relative, no leading slash) → entry.
    pub entries: BTreeMap<String, Entry>,
}

fn rel(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    fn parents(&mut self, path: &str) {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.entries.entry(prefix.clone()).or_insert(Entry {
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
        }
    }

    /// Adds (or re-owns) a directory and its parents.
    pub fn dir(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> &mut Tree {
        let path = rel(path);
        self.parents(&path);
        self.entries.insert(
            path,
            Entry {
                kind: Kind::Dir,
                mode,
                uid,
                gid,
            },
        );
        self
    }

    /// Adds a regular file owned by root, creating parents.
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> &mut Tree {
        let path = rel(path);
        self.parents(&path);
        self.entries.insert(
            path,
            Entry {
                kind: Kind::File(data),
                mode,
                uid: 0,
                gid: 0,
            },
        );
        self
    }

    /// Adds a symlink, creating parents.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Tree {
        let path = rel(path);
        self.parents(&path);
        self.entries.insert(
            path,
            Entry {
                kind: Kind::Symlink(target.to_string()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        );
        self
    }

    /// Writes the tree under `dir` (which must not exist yet): directories, files and
    /// symlinks with the tree's permission bits and owners (owners only when run as root;
    /// otherwise the caller's). For running the image's own programs on the host in a
    /// chroot, never for an output: outputs are rendered from the tree itself.
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        fs::create_dir(dir).map_err(Error::io("create tree root", dir))?;
        let root = std::os::unix::fs::chown(dir, Some(0), Some(0)).is_ok();
        for (path, e) in &self.entries {
            let at = dir.join(path);
            match &e.kind {
                Kind::Dir => fs::create_dir(&at).map_err(Error::io("create dir", &at))?,
                Kind::File(d) => fs::write(&at, d).map_err(Error::io("write file", &at))?,
                Kind::Symlink(t) => {
                    std::os::unix::fs::symlink(t, &at).map_err(Error::io("create symlink", &at))?
                }
            }
            if root {
                std::os::unix::fs::lchown(&at, Some(e.uid), Some(e.gid))
                    .map_err(Error::io("chown", &at))?;
            }
            if !matches!(e.kind, Kind::Symlink(_)) {
                fs::set_permissions(&at, fs::Permissions::from_mode(e.mode))
                    .map_err(Error::io("chmod", &at))?;
            }
        }
        Ok(())
    }

    /// Adds the host directory `host` (its files, directories and symlinks, their permission
    /// bits and owners, in sorted order) at `at`.
    pub fn add_host_dir(&mut self, host: &Path, at: &str) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(host).map_err(Error::io("stat", host))?;
        let at = rel(at);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(host).map_err(Error::io("read link", host))?;
            self.symlink(&at, &target.to_string_lossy());
        } else if meta.is_dir() {
            self.dir(&at, meta.mode() & 0o7777, meta.uid(), meta.gid());
            let mut names: Vec<_> = fs::read_dir(host)
                .map_err(Error::io("read dir", host))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(Error::io("read dir", host))?;
            names.sort();
            for name in names {
                let child = format!("{at}/{}", name.to_string_lossy());
                self.add_host_dir(&host.join(&name), &child)?;
            }
        } else if meta.is_file() {
            let data = fs::read(host).map_err(Error::io("read", host))?;
            self.file(&at, data, meta.mode() & 0o7777);
            if let Some(e) = self.entries.get_mut(&at) {
                e.uid = meta.uid();
                e.gid = meta.gid();
            }
        } else {
            return Err(Error::Format {
                format: "tree",
                path: host.display().to_string(),
                detail: "is neither a file, a directory nor a symlink".into(),
            });
        }
        Ok(())
    }

    /// Total bytes of file content.
    pub fn content_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match &e.kind {
                Kind::File(d) => d.len() as u64,
                _ => 0,
            })
            .sum()
    }
}

/// The library directories searched after an ELF file's own runpath (Debian's multiarch
/// loader's defaults), inside the unpacked tree, never on the host.
pub const LIB_DIRS: &[&str] = &[
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib",
    "usr/lib",
    "lib64",
    "usr/lib64",
];

/// The unpacked packages of one role, searched in order, and what has been taken from them.
#[derive(Debug)]
pub struct Closure {
    role: String,
    /// (package name, unpacked root) in search order.
    packages: Vec<(String, PathBuf)>,
    /// The tree being filled.
    pub tree: Tree,
    elf_done: BTreeSet<String>,
    /// Libraries replaced by a stub instead of being taken from the packages.
    pub stubs: Vec<crate::stub::Stub>,
}

/// Where a path was found.
enum Found {
    File(PathBuf),
    Dir,
    Link(String),
}

impl Closure {
    /// A closure over `packages` for `role`.
    pub fn new(role: &str, packages: Vec<(String, PathBuf)>) -> Closure {
        Closure {
            role: role.into(),
            packages,
            tree: Tree::new(),
            elf_done: BTreeSet::new(),
            stubs: Vec::new(),
        }
    }

    fn names(&self) -> String {
        self.packages
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Looks `path` (relative) up, resolving symlinked parent directories inside the tree
    /// (adding those links to the image), never following a link out to the host.
    fn find(&mut self, path: &str, depth: u32) -> Result<Option<(String, Found)>> {
        if depth > 40 {
            return Err(Error::NotInTree {
                role: self.role.clone(),
                path: format!("/{path}"),
                packages: "too many levels of symbolic links".into(),
            });
        }
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for i in 0..parts.len() {
            let prefix = parts[..=i].join("/");
            let mut hit = None;
            for (_, root) in &self.packages {
                let host = root.join(&prefix);
                if let Ok(meta) = fs::symlink_metadata(&host) {
                    hit = Some((host, meta));
                    break;
                }
            }
            let Some((host, meta)) = hit else {
                return Ok(None);
            };
            let last = i + 1 == parts.len();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&host).map_err(Error::io("read link", &host))?;
                let target = target.to_string_lossy().to_string();
                if last {
                    return Ok(Some((prefix, Found::Link(target))));
                }
                self.tree.symlink(&prefix, &target);
                let rest = parts[i + 1..].join("/");
                let next = join_link(&prefix, &target, &rest);
                return self.find(&next, depth + 1);
            }
            if last {
                let found = if meta.is_dir() {
                    Found::Dir
                } else {
                    Found::File(host)
                };
                return Ok(Some((prefix, found)));
            }
        }
        Ok(None)
    }

    /// Adds `path` (a file, a symlink and what it points at, or a directory tree skipping
    /// `exclude`d subpaths); an error when no package has it.
    pub fn add(&mut self, path: &str, exclude: &[&str]) -> Result<String> {
        self.add_depth(&rel(path), exclude, 0)?
            .ok_or_else(|| Error::NotInTree {
                role: self.role.clone(),
                path: path.to_string(),
                packages: self.names(),
            })
    }

    fn add_depth(&mut self, path: &str, exclude: &[&str], depth: u32) -> Result<Option<String>> {
        let Some((at, found)) = self.find(path, depth)? else {
            return Ok(None);
        };
        match found {
            Found::Link(target) => {
                self.tree.symlink(&at, &target);
                let next = join_link(&at, &target, "");
                self.add_depth(&next, exclude, depth + 1)
            }
            Found::File(host) => {
                let data = fs::read(&host).map_err(Error::io("read", &host))?;
                let meta = fs::metadata(&host).map_err(Error::io("stat", &host))?;
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                self.tree.file(&at, data, mode);
                Ok(Some(at))
            }
            Found::Dir => {
                self.tree.dir(&at, 0o755, 0, 0);
                let mut names = BTreeSet::new();
                for (_, root) in &self.packages {
                    if let Ok(dir) = fs::read_dir(root.join(&at)) {
                        for e in dir.flatten() {
                            names.insert(e.file_name().to_string_lossy().to_string());
                        }
                    }
                }
                for name in names {
                    let child = format!("{at}/{name}");
                    if exclude.iter().any(|x| rel(x) == child) {
                        continue;
                    }
                    self.add_depth(&child, exclude, depth)?;
                }
                Ok(Some(at))
            }
        }
    }

    /// The names in a directory of the packages (merged over all of them, sorted).
    pub fn list(&self, dir: &str) -> Result<Vec<String>> {
        let mut names = BTreeSet::new();
        for (_, root) in &self.packages {
            if let Ok(entries) = fs::read_dir(root.join(rel(dir))) {
                for e in entries.flatten() {
                    names.insert(e.file_name().to_string_lossy().to_string());
                }
            }
        }
        if names.is_empty() {
            return Err(Error::NotInTree {
                role: self.role.clone(),
                path: dir.to_string(),
                packages: self.names(),
            });
        }
        Ok(names.into_iter().collect())
    }

    /// Adds an executable or library and, recursively, its interpreter and every
    /// `DT_NEEDED` library, found via its runpath then [`LIB_DIRS`] inside the packages.
    pub fn add_elf(&mut self, path: &str) -> Result<()> {
        let at = self.add(path, &[])?;
        let real = self.resolve_links(&at);
        self.needs(&real)
    }

    /// Adds the closure of an ELF file already in the tree at `at`.
    pub fn needs(&mut self, at: &str) -> Result<()> {
        if !self.elf_done.insert(at.to_string()) {
            return Ok(());
        }
        let data = match self.tree.entries.get(at).map(|e| &e.kind) {
            Some(Kind::File(d)) => d.clone(),
            _ => return Ok(()),
        };
        let Some(dynamic) = elf::parse(at, &data)? else {
            return Ok(());
        };
        if let Some(interp) = &dynamic.interp {
            let got = self.add(interp, &[])?;
            let real = self.resolve_links(&got);
            self.needs(&real)?;
        }
        let origin = at.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mut dirs: Vec<String> = dynamic
            .runpath
            .iter()
            .map(|p| {
                rel(&p
                    .replace("$ORIGIN", &format!("/{origin}"))
                    .replace("${ORIGIN}", &format!("/{origin}")))
            })
            .collect();
        dirs.extend(LIB_DIRS.iter().map(|d| d.to_string()));
        for lib in &dynamic.needed {
            if let Some(stub) = self.stubs.iter().find(|s| s.soname == lib.as_str()) {
                let uncovered = stub.uncovered(&dynamic.strings);
                if !uncovered.is_empty() {
                    return Err(Error::StubTooSmall {
                        role: self.role.clone(),
                        binary: format!("/{at}"),
                        library: lib.clone(),
                        missing: uncovered.join(", "),
                    });
                }
                let path = format!("usr/lib/x86_64-linux-gnu/{lib}");
                if !self.tree.entries.contains_key(&path) {
                    self.tree.file(&path, stub.elf(), 0o644);
                }
                continue;
            }
            let mut found = None;
            for dir in &dirs {
                if let Some(got) = self.add_depth(&format!("{dir}/{lib}"), &[], 0)? {
                    found = Some(got);
                    break;
                }
            }
            let got = found.ok_or_else(|| Error::LibraryMissing {
                role: self.role.clone(),
                binary: format!("/{at}"),
                library: lib.clone(),
                dirs: dirs.join(":"),
            })?;
            let real = self.resolve_links(&got);
            self.needs(&real)?;
        }
        Ok(())
    }

    /// Follows symlinks inside the tree from `at` to the entry they end at.
    fn resolve_links(&self, at: &str) -> String {
        let mut cur = rel(at);
        for _ in 0..40 {
            match self.tree.entries.get(&cur).map(|e| &e.kind) {
                Some(Kind::Symlink(t)) => cur = join_link(&cur, t, ""),
                _ => break,
            }
        }
        cur
    }
}

/// The path a link at `link` with `target` points at, plus `rest` below it (relative,
/// normalized; `..` never climbs above the root).
fn join_link(link: &str, target: &str, rest: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for part in target.split('/').chain(rest.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Whether `path` exists in any of `roots` (for optional additions).
pub fn exists_in(roots: &[(String, PathBuf)], path: &str) -> bool {
    roots
        .iter()
        .any(|(_, r)| fs::symlink_metadata(r.join(rel(path))).is_ok())
}

/// The unpacked root of a package by name, for roles that add a file straight from it.
pub fn root_of<'a>(roots: &'a [(String, PathBuf)], name: &str) -> Option<&'a Path> {
    roots
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.as_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_relative_absolute_and_never_above_the_root() {
        assert_eq!(
            join_link("lib64/ld.so", "/lib/x86_64-linux-gnu/ld.so", ""),
            "lib/x86_64-linux-gnu/ld.so"
        );
        assert_eq!(join_link("usr/lib/a.so", "a.so.1", ""), "usr/lib/a.so.1");
        assert_eq!(join_link("bin/x", "../../../../etc/y", ""), "etc/y");
        assert_eq!(join_link("usr/lib/d", "../share/d", "f"), "usr/share/d/f");
    }

    #[test]
    fn a_file_brings_its_parents_as_root_owned_directories() {
        let mut t = Tree::new();
        t.file("/usr/bin/x", b"x".to_vec(), 0o755);
        let keys: Vec<&str> = t.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["usr", "usr/bin", "usr/bin/x"]);
        assert_eq!(t.entries["usr"].mode, 0o755);
    }

    #[test]
    fn a_package_symlink_out_of_the_tree_is_resolved_inside_it() {
        let dir = std::env::temp_dir().join(format!("images-rootfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let pkg = dir.join("pkg");
        fs::create_dir_all(pkg.join("usr/lib")).unwrap();
        fs::create_dir_all(pkg.join("opt/real")).unwrap();
        fs::write(pkg.join("opt/real/data"), b"inside").unwrap();
        // An absolute link: followed on the host it would leave the package.
        std::os::unix::fs::symlink("/opt/real", pkg.join("usr/lib/d")).unwrap();
        let mut c = Closure::new("t", vec![("pkg".into(), pkg)]);
        c.add("/usr/lib/d/data", &[]).unwrap();
        assert_eq!(
            c.tree.entries["usr/lib/d"].kind,
            Kind::Symlink("/opt/real".into())
        );
        assert_eq!(
            c.tree.entries["opt/real/data"].kind,
            Kind::File(b"inside".to_vec())
        );
        let e = c.add("/etc/passwd", &[]).unwrap_err().to_string();
        assert!(e.contains("/etc/passwd") && e.contains("pkg"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
