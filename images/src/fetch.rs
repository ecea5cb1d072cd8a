//! Fetching by hash: every `.deb` is fetched as the lock pins it, its SHA-256 checked before
//! anything reads it further, and kept under its digest (`<debs>/<sha256>.deb`).
//!
//! Where apt exists, `apt-get download name=version` fetches it (apt checks the index's
//! digest too); else, or when apt fails, `curl` GETs `<mirror>/<pool path>` from the mirror
//! that `/etc/apt/sources.list*` configures for the lock's `archive`. Either way the file is
//! hashed here, and a mismatch is an error that leaves nothing in the cache. A pinned version
//! that neither serves any more is [`Error::NotServed`]: one line, naming it, saying `just lock`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::lock::Package;

/// Where fetched and unpacked inputs live.
#[derive(Debug, Clone)]
pub struct Cache {
    /// Verified `.deb` files, named by their SHA-256.
    pub debs: PathBuf,
    /// Everything derived from them: unpacked trees, assembled images.
    pub work: PathBuf,
}

impl Cache {
    /// `$ECOMM_IMAGE_CACHE` (default `<workspace>/target/image-cache`) for everything;
    /// `$ECOMM_IMAGE_DEBS` overrides where the verified `.deb` files go (default `<cache>/debs`).
    pub fn from_env() -> Cache {
        let work = std::env::var_os("ECOMM_IMAGE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::workspace().join("target").join("image-cache"));
        let debs = std::env::var_os("ECOMM_IMAGE_DEBS")
            .map(PathBuf::from)
            .unwrap_or_else(|| work.join("debs"));
        Cache { debs, work }
    }
}

/// How packages are fetched: by apt, and from which mirror per archive.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// `debian` / `debian-security` → base URI (as in the apt sources).
    pub mirrors: BTreeMap<String, String>,
    /// Try `apt-get download` first.
    pub use_apt: bool,
}

impl Fetcher {
    /// apt when `apt-get` is on the PATH, the mirrors from `/etc/apt/sources.list*`.
    pub fn from_host() -> Fetcher {
        let use_apt = Command::new("apt-get")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        Fetcher {
            mirrors: host_mirrors(Path::new("/etc/apt")),
            use_apt,
        }
    }

    /// The verified `.deb` of `pkg` in `cache`, fetched first when it is not there.
    pub fn fetch(&self, pkg: &Package, cache: &Cache) -> Result<PathBuf> {
        let path = cache.debs.join(format!("{}.deb", pkg.sha256));
        if path.exists() {
            if sha256_file(&path)? == pkg.sha256 {
                return Ok(path);
            }
            // A corrupt cache entry is fetched again, never used.
            fs::remove_file(&path).map_err(Error::io("remove corrupt cache entry", &path))?;
        }
        fs::create_dir_all(&cache.debs).map_err(Error::io("create cache dir", &cache.debs))?;
        let tmp = cache.debs.join(format!(".fetch-{}-{}", pkg.name, unique()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(Error::io("remove stale fetch dir", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(Error::io("create fetch dir", &tmp))?;
        let result = self.download(pkg, &tmp).and_then(|file| {
            let actual = sha256_file(&file)?;
            if actual != pkg.sha256 {
                return Err(Error::HashMismatch {
                    package: format!("{}={}", pkg.name, pkg.version),
                    path: file,
                    expected: pkg.sha256.clone(),
                    actual,
                });
            }
            fs::rename(&file, &path).map_err(Error::io("move into cache", &path))
        });
        let _ = fs::remove_dir_all(&tmp);
        result.map(|()| path)
    }

    /// Downloads `pkg` into the empty directory `dir`; returns the file.
    fn download(&self, pkg: &Package, dir: &Path) -> Result<PathBuf> {
        let mut apt_error = None;
        if self.use_apt {
            let spec = format!("{}={}", pkg.name, pkg.version);
            match run(Command::new("apt-get")
                .args(["download", "-q", &spec])
                .current_dir(dir))
            {
                Ok(()) => {
                    if let Some(file) = only_deb(dir)? {
                        return Ok(file);
                    }
                }
                Err(e) => apt_error = Some(e),
            }
        }
        let mirror = self
            .mirrors
            .get(&pkg.archive)
            .ok_or_else(|| Error::NoMirror {
                archive: pkg.archive.clone(),
            })?;
        let url = format!("{}/{}", mirror.trim_end_matches('/'), pkg.pool);
        let file = dir.join("download.deb");
        let out = Command::new("curl")
            .args(["-sS", "-f", "-L", "--retry", "2", "-o"])
            .arg(&file)
            .arg(&url)
            .output()
            .map_err(|e| Error::Tool {
                tool: "curl".into(),
                detail: e.to_string(),
            })?;
        if out.status.success() {
            return Ok(file);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        // curl's exit 22 is an HTTP error; 404 (or a missing file:// path, exit 37) means the
        // archive no longer has this version.
        let gone = (out.status.code() == Some(22) && stderr.contains("404"))
            || out.status.code() == Some(37);
        if gone {
            return Err(Error::NotServed {
                package: pkg.name.clone(),
                version: pkg.version.clone(),
            });
        }
        Err(Error::Tool {
            tool: format!("curl {url}"),
            detail: format!(
                "{}: {}{}",
                out.status,
                stderr.trim(),
                apt_error
                    .map(|e| format!(" (apt-get: {e})"))
                    .unwrap_or_default()
            ),
        })
    }

    /// The unpacked tree of `pkg` (`<work>/unpacked/<sha256>`), fetching and unpacking first.
    pub fn unpacked(&self, pkg: &Package, cache: &Cache) -> Result<PathBuf> {
        let root = cache.work.join("unpacked").join(&pkg.sha256);
        if root.is_dir() {
            return Ok(root);
        }
        let deb = self.fetch(pkg, cache)?;
        let tmp = cache
            .work
            .join("unpacked")
            .join(format!(".{}-{}", pkg.sha256, unique()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(Error::io("remove stale unpack dir", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(Error::io("create unpack dir", &tmp))?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        match fs::rename(&tmp, &root) {
            Ok(()) => Ok(root),
            // Another process unpacked the same digest first: same content, keep theirs.
            Err(_) if root.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(root)
            }
            Err(e) => Err(Error::io("move unpacked tree", &root)(e)),
        }
    }
}

/// A name part no other fetch, in this process (any thread) or another, uses at once.
pub fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{n}", std::process::id())
}

/// The one `.deb` apt left in `dir`, if any.
fn only_deb(dir: &Path) -> Result<Option<PathBuf>> {
    let mut debs = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("read fetch dir", dir))? {
        let path = entry.map_err(Error::io("read fetch dir", dir))?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            debs.push(path);
        }
    }
    Ok((debs.len() == 1).then(|| debs.remove(0)))
}

/// Lowercase hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(Error::io("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Error::io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The mirror URIs configured in `<etc>/sources.list` and `<etc>/sources.list.d/*`
/// (one-line and deb822 formats), keyed by their last path component (`debian`,
/// `debian-security`); the first of each wins.
pub fn host_mirrors(etc: &Path) -> BTreeMap<String, String> {
    let mut files = vec![etc.join("sources.list")];
    if let Ok(dir) = fs::read_dir(etc.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    let mut mirrors = BTreeMap::new();
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            let uris: Vec<&str> = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().collect()
            } else if line.starts_with("deb ") {
                line.split_whitespace()
                    .skip(1)
                    .find(|w| w.contains("://"))
                    .into_iter()
                    .collect()
            } else {
                Vec::new()
            };
            for uri in uris {
                let base = uri.trim_end_matches('/');
                if let Some((_, last)) = base.rsplit_once('/') {
                    mirrors
                        .entry(last.to_string())
                        .or_insert_with(|| base.to_string());
                }
            }
        }
    }
    mirrors
}

/// Runs a host tool, mapping a non-zero exit into [`Error::Tool`] with its stderr tail (the
/// only error it returns; the `vm` crate runs its host tools through it too).
pub fn run(cmd: &mut Command) -> Result<()> {
    let name = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Tool {
        tool: name.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::Tool {
        tool: name,
        detail: format!("{}: {}", out.status, tail.join(" | ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `file://` mirror holding one `.deb`-named file, and a package entry for it.
    fn mirror(dir: &Path, content: &[u8], sha256: String) -> (Fetcher, Package) {
        let pool = "pool/main/t/tiny/tiny_1_all.deb";
        let file = dir.join("mirror/debian").join(pool);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, content).unwrap();
        let fetcher = Fetcher {
            mirrors: BTreeMap::from([(
                "debian".to_string(),
                format!("file://{}", dir.join("mirror/debian").display()),
            )]),
            use_apt: false,
        };
        let pkg = Package {
            name: "tiny".into(),
            version: "1".into(),
            arch: "all".into(),
            sha256,
            size: content.len() as u64,
            pool: pool.into(),
            archive: "debian".into(),
            depends: Vec::new(),
        };
        (fetcher, pkg)
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("images-fetch-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_fetched_file_is_cached_under_its_digest_and_served_from_there() {
        let dir = tempdir("ok");
        let content = b"not really a deb";
        let (fetcher, pkg) = mirror(&dir, content, hex(&Sha256::digest(content)));
        let cache = Cache {
            debs: dir.join("debs"),
            work: dir.join("work"),
        };
        let path = fetcher.fetch(&pkg, &cache).unwrap();
        assert_eq!(path, cache.debs.join(format!("{}.deb", pkg.sha256)));
        assert_eq!(fs::read(&path).unwrap(), content);
        fs::remove_dir_all(dir.join("mirror")).unwrap();
        assert_eq!(
            fetcher.fetch(&pkg, &cache).unwrap(),
            path,
            "a cache hit needs no mirror"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_digest_mismatch_is_an_error_and_leaves_nothing_in_the_cache() {
        let dir = tempdir("bad");
        let (fetcher, pkg) = mirror(&dir, b"tampered", "00".repeat(32));
        let cache = Cache {
            debs: dir.join("debs"),
            work: dir.join("work"),
        };
        let err = fetcher.fetch(&pkg, &cache).unwrap_err();
        assert!(
            matches!(err, Error::HashMismatch { ref expected, .. } if *expected == pkg.sha256),
            "{err}"
        );
        assert_eq!(
            fs::read_dir(&cache.debs).unwrap().count(),
            0,
            "nothing kept"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_version_the_archive_no_longer_serves_is_one_line_naming_it_and_just_lock() {
        let dir = tempdir("gone");
        let (fetcher, mut pkg) = mirror(&dir, b"x", "00".repeat(32));
        pkg.pool = "pool/main/t/tiny/tiny_0_all.deb".into();
        let cache = Cache {
            debs: dir.join("debs"),
            work: dir.join("work"),
        };
        let msg = fetcher.fetch(&pkg, &cache).unwrap_err().to_string();
        assert_eq!(
            msg,
            "tiny=1 pinned in images.lock is no longer served by the archive: run `just lock`"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mirrors_come_from_one_line_and_deb822_sources() {
        let dir = tempdir("src");
        fs::create_dir_all(dir.join("sources.list.d")).unwrap();
        fs::write(
            dir.join("sources.list"),
            "# none\ndeb [arch=amd64] http://a.example/debian bookworm main\n",
        )
        .unwrap();
        fs::write(
            dir.join("sources.list.d/x.sources"),
            "Types: deb\nURIs: http://b.example/debian-security/\nSuites: bookworm-security\n",
        )
        .unwrap();
        let m = host_mirrors(&dir);
        assert_eq!(m["debian"], "http://a.example/debian");
        assert_eq!(m["debian-security"], "http://b.example/debian-security");
        fs::remove_dir_all(&dir).unwrap();
    }
}
