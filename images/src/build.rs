//! Building every role's output and naming it by content.
//!
//! An output is `<cache>/out/<name>-<first 16 hex of its SHA-256>.{tar,cpio,erofs}`. A build is
//! skipped when a previous one had the same key: the SHA-256 of the role's name, its locked
//! packages' digests, the inputs' bytes and the builder executable itself (so changed builder
//! code never reuses an old output).

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fetch::{hex, sha256_file, Cache, Fetcher};
use crate::lock::Lock;
use crate::roles::{Inputs, Output, Role, ROLES};
use crate::rootfs::{Closure, Tree};
use crate::{cpio, docker, erofs};

/// One output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The role's name.
    pub name: String,
    /// The output file.
    pub path: PathBuf,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// For containers: the `repo:tag` the archive carries.
    pub tag: Option<String>,
}

impl Built {
    /// `IMAGE <name> sha256:<hex> <size in bytes>`.
    pub fn line(&self) -> String {
        format!("IMAGE {} sha256:{} {}", self.name, self.sha256, self.size)
    }
}

/// Builds the roles named in `only` (all when empty).
pub fn build(
    lock: &Lock,
    cache: &Cache,
    fetcher: &Fetcher,
    inputs: &Inputs,
    only: &[String],
) -> Result<Vec<Built>> {
    let builder = std::env::current_exe()
        .map_err(Error::io("locate the builder executable", "current_exe"))
        .and_then(|p| sha256_file(&p))?;
    let mut out = Vec::new();
    for role in ROLES
        .iter()
        .filter(|r| only.is_empty() || only.iter().any(|o| o == r.name))
    {
        out.push(build_role(role, lock, cache, fetcher, inputs, &builder)?);
    }
    if let Some(unknown) = only
        .iter()
        .find(|o| !ROLES.iter().any(|r| r.name == o.as_str()))
    {
        let names: Vec<&str> = ROLES.iter().map(|r| r.name).collect();
        return Err(Error::Usage(format!(
            "no role `{unknown}` (have: {})",
            names.join(", ")
        )));
    }
    Ok(out)
}

fn build_role(
    role: &Role,
    lock: &Lock,
    cache: &Cache,
    fetcher: &Fetcher,
    inputs: &Inputs,
    builder: &str,
) -> Result<Built> {
    let packages = lock.closure(role.packages, role.prune)?;
    let mut key = Sha256::new();
    key.update(role.name.as_bytes());
    key.update(builder.as_bytes());
    for p in &packages {
        key.update(p.sha256.as_bytes());
    }
    key.update(Sha256::digest(&inputs.ecomm));
    key.update(Sha256::digest(&inputs.postgres_entrypoint));
    let key = hex(&key.finalize());
    let out_dir = cache.work.join("out");
    let memo = cache.work.join("built").join(&key);
    if let Some(built) = recall(role, &memo, &out_dir)? {
        return Ok(built);
    }
    let closure = assemble(role, lock, cache, fetcher, inputs)?;
    let (bytes, ext, tag) = match role.output {
        Output::Container => {
            let a = docker::archive(role.name, &closure.tree, &role.config());
            (a.bytes, "tar", Some(a.tag))
        }
        Output::Vm => (cpio::write(&closure.tree), "cpio", None),
        Output::VmBlock => (erofs::write(&closure.tree)?, "erofs", None),
    };
    let sha = hex(&Sha256::digest(&bytes));
    let path = out_dir.join(format!("{}-{}.{ext}", role.name, &sha[..16]));
    write_atomic(&path, &bytes)?;
    let memo_text = format!(
        "{}\n{}\n",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        tag.clone().unwrap_or_default()
    );
    write_atomic(&memo, memo_text.as_bytes())?;
    Ok(Built {
        name: role.name.into(),
        path,
        sha256: sha,
        size: bytes.len() as u64,
        tag,
    })
}

/// The root filesystem of `role` from its locked packages, as a tree (what its output is
/// rendered from).
fn assemble(
    role: &Role,
    lock: &Lock,
    cache: &Cache,
    fetcher: &Fetcher,
    inputs: &Inputs,
) -> Result<Closure> {
    let mut closure = Closure::new(role.name, unpacked_roots(role, lock, cache, fetcher)?);
    closure.stubs = role.stubs.to_vec();
    role.assemble(&mut closure, inputs)?;
    Ok(closure)
}

/// The tree of the role named `name`, as its image holds it (not written anywhere).
pub fn tree(
    lock: &Lock,
    cache: &Cache,
    fetcher: &Fetcher,
    inputs: &Inputs,
    name: &str,
) -> Result<Tree> {
    Ok(assemble(role_named(name)?, lock, cache, fetcher, inputs)?.tree)
}

/// The role called `name`.
fn role_named(name: &str) -> Result<&'static Role> {
    ROLES
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| Error::Usage(format!("no role `{name}`")))
}

/// `role`'s locked packages, each fetched, verified and unpacked: (name, unpacked tree).
fn unpacked_roots(
    role: &Role,
    lock: &Lock,
    cache: &Cache,
    fetcher: &Fetcher,
) -> Result<Vec<(String, PathBuf)>> {
    lock.closure(role.packages, role.prune)?
        .into_iter()
        .map(|p| Ok((p.name.clone(), fetcher.unpacked(p, cache)?)))
        .collect()
}

/// A role's root filesystem written out as a directory, for running the image's own programs
/// on the host (`chroot` or an overlay over it): the same tree the image is rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDir {
    /// The role's image (its name, file and SHA-256: the directory is named by it).
    pub image: Built,
    /// `<cache>/roots/<role>-<16 hex of the image's SHA-256>`: the tree, never written to
    /// once made (a user of it puts a writable overlay on top).
    pub dir: PathBuf,
}

/// [`RootDir`] of the role named `name`: its image built (or recalled), and the tree written
/// once per image under `<cache>/roots` (atomically: written beside, then renamed). With
/// root the files carry the tree's owners, else the caller's.
pub fn root_dir(
    lock: &Lock,
    cache: &Cache,
    fetcher: &Fetcher,
    inputs: &Inputs,
    name: &str,
) -> Result<RootDir> {
    let image = build(lock, cache, fetcher, inputs, &[name.to_string()])?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Usage(format!("no role `{name}`")))?;
    let roots = cache.work.join("roots");
    let dir = roots.join(format!("{name}-{}", &image.sha256[..16]));
    if !dir.exists() {
        fs::create_dir_all(&roots).map_err(Error::io("create dir", &roots))?;
        let tmp = roots.join(format!(".{name}-{}", crate::fetch::unique()));
        let written = tree(lock, cache, fetcher, inputs, name).and_then(|t| t.write_dir(&tmp));
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if fs::rename(&tmp, &dir).is_err() {
            // Written meanwhile by another process: keep that one.
            let _ = fs::remove_dir_all(&tmp);
        }
    }
    Ok(RootDir { image, dir })
}

/// A previous build with the same key, if its output is still there and intact.
fn recall(role: &Role, memo: &Path, out_dir: &Path) -> Result<Option<Built>> {
    let Ok(text) = fs::read_to_string(memo) else {
        return Ok(None);
    };
    let mut lines = text.lines();
    let (Some(file), tag) = (lines.next(), lines.next()) else {
        return Ok(None);
    };
    let path = out_dir.join(file);
    if !path.exists() {
        return Ok(None);
    }
    let sha = sha256_file(&path)?;
    if !file.contains(&sha[..16]) {
        return Ok(None);
    }
    let size = fs::metadata(&path).map_err(Error::io("stat", &path))?.len();
    let tag = tag.filter(|t| !t.is_empty()).map(str::to_string);
    Ok(Some(Built {
        name: role.name.into(),
        path,
        sha256: sha,
        size,
        tag,
    }))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(Error::io("create dir", dir))?;
    let tmp = path.with_extension(format!("tmp{}", crate::fetch::unique()));
    fs::write(&tmp, bytes).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("rename", path))
}

/// A layer of workspace binaries for a VM image: each `(dest, bytes)` at `dest` with its
/// `DT_NEEDED` closure resolved in `role`'s locked packages (so the libraries are the lock's,
/// never the host's), plus the entries of `extra` as they are, named by content: `<cache>/out/layer-<16 hex>.cpio`, or `.erofs` for a
/// role whose image is a block image ([`Output::VmBlock`]: the layer is a second drive).
pub fn layer(
    lock: &Lock,
    cache: &Cache,
    fetcher: &Fetcher,
    role: &str,
    binaries: &[(&str, Vec<u8>)],
    extra: &Tree,
) -> Result<Built> {
    let role = role_named(role)?;
    let mut closure = Closure::new("layer", unpacked_roots(role, lock, cache, fetcher)?);
    for (dest, bytes) in binaries {
        let at = dest.trim_start_matches('/');
        closure.tree.file(at, bytes.clone(), 0o755);
        closure.needs(at)?;
    }
    for (path, e) in &extra.entries {
        closure.tree.entries.insert(path.clone(), e.clone());
    }
    let (bytes, ext) = match role.output {
        Output::VmBlock => (erofs::write(&closure.tree)?, "erofs"),
        _ => (cpio::write(&closure.tree), "cpio"),
    };
    let sha = hex(&Sha256::digest(&bytes));
    let path = cache
        .work
        .join("out")
        .join(format!("layer-{}.{ext}", &sha[..16]));
    if !path.exists() {
        write_atomic(&path, &bytes)?;
    }
    Ok(Built {
        name: "layer".into(),
        path,
        sha256: sha,
        size: bytes.len() as u64,
        tag: None,
    })
}
