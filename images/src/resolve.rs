//! Resolving the lock: the dependency closure of the roles' root packages, once, from the
//! apt lists (`apt-cache show --no-all-versions`, i.e. each package's candidate version).
//!
//! The rule, applied to `Pre-Depends` and `Depends` (never `Recommends`/`Suggests`):
//! - a group `a | b` is satisfied by its first alternative that has a candidate;
//! - a group naming a [`SKIP`]ped package, or a package marked `Essential: yes`, is satisfied
//!   without adding anything: those are dpkg's base system and packaging glue (maintainer
//!   scripts, debconf, system users, locale generation, init integration), never a shared
//!   library or data file that a role runs. The image assembly proves it: every `DT_NEEDED`
//!   of every binary must resolve inside the locked packages, or the build fails;
//! - version constraints are not re-checked: every candidate comes from one consistent
//!   archive state, which is what `apt-get install` would pick as well;
//! - the architecture is the host's (`amd64`); `:any`/`:native` qualifiers are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use crate::error::{Error, Result};
use crate::lock::{Kernel, Lock, Package};

/// Packages whose dependency groups are treated as satisfied (see the module doc).
pub const SKIP: &[&str] = &[
    "adduser",
    "cron",
    "debconf",
    "debconf-2.0",
    "init-system-helpers",
    "locales",
    "locales-all",
    "logrotate",
    "lsb-base",
    "perl",
    "postgresql-common",
    "sensible-utils",
    "ssl-cert",
    "ucf",
];

/// The metapackage whose dependency names the current kernel ABI.
const KERNEL_META: &str = "linux-image-amd64";

/// One package's fields from the index (a deb822 stanza).
#[derive(Debug, Clone, Default)]
pub struct Stanza {
    fields: BTreeMap<String, String>,
}

impl Stanza {
    /// Parses one stanza; continuation lines are joined with a newline.
    pub fn parse(text: &str) -> Stanza {
        let mut fields = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in text.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                    let v: &mut String = v;
                    v.push('\n');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.to_string(), v.trim().to_string());
                last = Some(k.to_string());
            }
        }
        Stanza { fields }
    }

    /// A field's value.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    fn need(&self, package: &str, field: &'static str) -> Result<String> {
        self.get(field)
            .map(str::to_string)
            .ok_or_else(|| Error::MissingField {
                package: package.to_string(),
                field,
            })
    }

    /// The lock entry this stanza describes.
    pub fn to_package(&self, name: &str) -> Result<Package> {
        let pool = self.need(name, "Filename")?;
        let size = self.need(name, "Size")?;
        Ok(Package {
            name: name.to_string(),
            version: self.need(name, "Version")?,
            arch: self.need(name, "Architecture")?,
            sha256: self.need(name, "SHA256")?,
            size: size.parse().map_err(|_| Error::MissingField {
                package: name.to_string(),
                field: "Size",
            })?,
            archive: archive_of(&pool).to_string(),
            pool,
            depends: Vec::new(),
        })
    }

    /// The dependency groups of `Pre-Depends` then `Depends`: each group its alternatives'
    /// bare package names.
    pub fn depends(&self) -> Vec<Vec<String>> {
        ["Pre-Depends", "Depends"]
            .iter()
            .filter_map(|f| self.get(f))
            .flat_map(parse_depends)
            .collect()
    }
}

/// `a (>= 1) | b:any, c` → `[[a, b], [c]]`.
pub fn parse_depends(field: &str) -> Vec<Vec<String>> {
    field
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let name = alt.trim().split([' ', '(', '[']).next().unwrap_or("");
                    let name = name.split(':').next().unwrap_or("");
                    (!name.is_empty()).then(|| name.to_string())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// The archive serving a pool path: Debian's security archive keeps its pool under
/// `pool/updates/`.
pub fn archive_of(pool: &str) -> &'static str {
    if pool.starts_with("pool/updates/") {
        "debian-security"
    } else {
        "debian"
    }
}

/// The candidate stanzas of `names`, in one `apt-cache` call; virtual and unknown names
/// are absent from the result.
pub fn show(names: &[String]) -> Result<BTreeMap<String, Stanza>> {
    let mut found = BTreeMap::new();
    if names.is_empty() {
        return Ok(found);
    }
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions"])
        .args(names)
        .output()
        .map_err(|e| Error::Tool {
            tool: "apt-cache show".into(),
            detail: e.to_string(),
        })?;
    for text in String::from_utf8_lossy(&out.stdout).split("\n\n") {
        let stanza = Stanza::parse(text);
        if let Some(name) = stanza.get("Package").map(str::to_string) {
            found.entry(name).or_insert(stanza);
        }
    }
    Ok(found)
}

/// Resolves the closure of `roots` and the current kernel into a lock: breadth first, one
/// `apt-cache` call per layer (every alternative of the layer's groups at once).
pub fn resolve(roots: &[&str]) -> Result<Lock> {
    let skip: BTreeSet<&str> = SKIP.iter().copied().collect();
    let mut known: BTreeMap<String, Option<Stanza>> = BTreeMap::new();
    let mut done: BTreeMap<String, Package> = BTreeMap::new();
    let mut layer: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
    while !layer.is_empty() {
        lookup(&mut known, &layer)?;
        let mut groups = Vec::new();
        for name in &layer {
            let stanza = known
                .get(name)
                .cloned()
                .flatten()
                .ok_or_else(|| Error::NoCandidate {
                    package: name.clone(),
                    detail: "apt-cache show found no candidate".into(),
                })?;
            if stanza.get("Essential") == Some("yes") && !roots.contains(&name.as_str()) {
                continue;
            }
            for group in stanza.depends() {
                if !group.iter().any(|a| skip.contains(a.as_str())) {
                    groups.push((name.clone(), group));
                }
            }
            done.insert(name.clone(), stanza.to_package(name)?);
        }
        let alternatives: Vec<String> = groups.iter().flat_map(|(_, g)| g.clone()).collect();
        lookup(&mut known, &alternatives)?;
        let mut next = BTreeSet::new();
        for (by, group) in groups {
            let chosen = group
                .iter()
                .find(|a| matches!(known.get(a.as_str()), Some(Some(_))))
                .ok_or_else(|| Error::NoCandidate {
                    package: group.join(" | "),
                    detail: format!("needed by {by}; none of the alternatives is a real package"),
                })?;
            let essential = matches!(known.get(chosen.as_str()), Some(Some(s)) if s.get("Essential") == Some("yes"));
            if essential {
                continue;
            }
            if let Some(p) = done.get_mut(&by) {
                if !p.depends.contains(chosen) {
                    p.depends.push(chosen.clone());
                    p.depends.sort();
                }
            }
            if !done.contains_key(chosen) {
                next.insert(chosen.clone());
            }
        }
        layer = next.into_iter().collect();
    }
    Ok(Lock {
        kernel: resolve_kernel()?,
        package: done.into_values().collect(),
    })
}

/// Fills `known` with the stanzas of the names it does not hold yet (None: virtual).
fn lookup(known: &mut BTreeMap<String, Option<Stanza>>, names: &[String]) -> Result<()> {
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !known.contains_key(n.as_str()))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut found = show(&missing)?;
    for name in missing {
        let stanza = found.remove(&name);
        known.insert(name, stanza);
    }
    Ok(())
}

/// The candidate stanza of one package.
fn show_one(name: &str) -> Result<Stanza> {
    show(&[name.to_string()])?
        .remove(name)
        .ok_or_else(|| Error::NoCandidate {
            package: name.to_string(),
            detail: "apt-cache show found no candidate".into(),
        })
}

/// The kernel the archive's `linux-image-amd64` points at, as its `-unsigned` package
/// (the same build without the Secure Boot signature; nothing here verifies it).
pub fn resolve_kernel() -> Result<Kernel> {
    let meta = show_one(KERNEL_META)?;
    let image = meta
        .depends()
        .into_iter()
        .flatten()
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
        .ok_or_else(|| Error::MissingField {
            package: KERNEL_META.into(),
            field: "Depends",
        })?;
    let release = image.trim_start_matches("linux-image-").to_string();
    let name = format!("{image}-unsigned");
    let stanza = show_one(&name)?;
    Ok(Kernel {
        release,
        package: stanza.to_package(&name)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_groups_keep_alternatives_and_drop_versions_and_arch_qualifiers() {
        let groups =
            parse_depends("locales | locales-all, libc6 (>= 2.34), python3:any, x [amd64]");
        assert_eq!(
            groups,
            vec![
                vec!["locales".to_string(), "locales-all".to_string()],
                vec!["libc6".to_string()],
                vec!["python3".to_string()],
                vec!["x".to_string()],
            ]
        );
    }

    #[test]
    fn a_stanza_becomes_a_lock_entry_with_its_archive() {
        let s = Stanza::parse(
            "Package: redis-tools\nVersion: 5:7.0.15-1~deb12u10\nArchitecture: amd64\n\
             Pre-Depends: init-system-helpers\nDepends: adduser, libc6 (>= 2.34)\n\
             Description: x\n more text\nFilename: pool/updates/main/r/redis/redis-tools.deb\n\
             Size: 991988\nSHA256: f791\n",
        );
        let p = s.to_package("redis-tools").unwrap();
        assert_eq!(p.version, "5:7.0.15-1~deb12u10");
        assert_eq!(p.archive, "debian-security");
        assert_eq!(p.size, 991988);
        assert_eq!(s.depends().len(), 3, "Pre-Depends first, then Depends");
        assert_eq!(s.depends()[0], vec!["init-system-helpers".to_string()]);
    }

    #[test]
    fn a_stanza_without_a_digest_is_an_error_naming_the_field() {
        let s = Stanza::parse(
            "Package: x\nVersion: 1\nArchitecture: all\nFilename: pool/main/x.deb\nSize: 1\n",
        );
        let e = s.to_package("x").unwrap_err().to_string();
        assert!(e.contains("SHA256") && e.contains('x'), "{e}");
    }
}
