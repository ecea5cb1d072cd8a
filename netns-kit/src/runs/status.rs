//! `status`: compare what a named run declared with what the kernel has, one
//! [`Difference`] per mismatch (an empty list means the run is exactly as declared).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::firewall::apply as nft;
use crate::link;
use crate::netns::Netns;
use crate::runs::state::{RunState, STATE_DIR};

/// One way the live state differs from the declared one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// The run is garbage by [`RunState::phase`] (gc will remove it): its apply or destroy
    /// died, or it is not persistent and its owner is gone.
    OwnerGone {
        /// The owner's pid.
        pid: u32,
    },
    /// A namespace is missing.
    MissingNamespace {
        /// Plan key.
        key: String,
        /// Name under /run/netns.
        name: String,
    },
    /// A link is missing.
    MissingLink {
        /// Namespace key.
        ns: String,
        /// Interface name.
        ifname: String,
    },
    /// A link exists but is down.
    LinkDown {
        /// Namespace key.
        ns: String,
        /// Interface name.
        ifname: String,
    },
    /// An address is missing.
    MissingAddress {
        /// Namespace key.
        ns: String,
        /// Interface name.
        ifname: String,
        /// Address with prefix.
        addr: String,
    },
    /// A route is missing.
    MissingRoute {
        /// Namespace key.
        ns: String,
        /// Destination ("default" or a CIDR).
        dest: String,
    },
    /// netns-kit's nftables table is missing.
    MissingTable {
        /// Namespace key.
        ns: String,
        /// Table name.
        table: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::OwnerGone { pid } => {
                write!(f, "process {pid} died, leaving the run half-done or orphaned: `netns-kit gc` removes it")
            }
            Difference::MissingNamespace { key, name } => {
                write!(f, "namespace {key} ({name}) is missing")
            }
            Difference::MissingLink { ns, ifname } => write!(f, "{ns}: link {ifname} is missing"),
            Difference::LinkDown { ns, ifname } => write!(f, "{ns}: link {ifname} is down"),
            Difference::MissingAddress { ns, ifname, addr } => {
                write!(f, "{ns}: address {addr} on {ifname} is missing")
            }
            Difference::MissingRoute { ns, dest } => write!(f, "{ns}: route {dest} is missing"),
            Difference::MissingTable { ns, table } => {
                write!(f, "{ns}: nftables table inet {table} is missing")
            }
        }
    }
}

/// Differences between the run recorded as `name` and the kernel.
pub fn status(name: &str) -> Result<Vec<Difference>> {
    status_in(Path::new(STATE_DIR), name)
}

/// [`status`] with state files under `dir`.
pub fn status_in(dir: &Path, name: &str) -> Result<Vec<Difference>> {
    let st = RunState::load(dir, name)?;
    let mut diffs = Vec::new();
    if st.phase().is_garbage() {
        diffs.push(Difference::OwnerGone { pid: st.owner.pid });
    }
    let mut open: HashMap<String, Netns> = HashMap::new();
    for rec in &st.namespaces {
        match Netns::open(&rec.name) {
            Ok(ns) => {
                open.insert(rec.key.clone(), ns);
            }
            Err(_) => diffs.push(Difference::MissingNamespace {
                key: rec.key.clone(),
                name: rec.name.clone(),
            }),
        }
    }
    for (key, ns) in &open {
        let mut nl = ns.netlink()?;
        let links = link::list(&mut nl)?;
        let by_name: HashMap<&str, &link::LinkState> =
            links.iter().map(|l| (l.name.as_str(), l)).collect();
        for l in st.declared.links.iter().filter(|l| &l.ns == key) {
            match by_name.get(l.ifname.as_str()) {
                None => diffs.push(Difference::MissingLink {
                    ns: key.clone(),
                    ifname: l.ifname.clone(),
                }),
                Some(s) if !s.up => diffs.push(Difference::LinkDown {
                    ns: key.clone(),
                    ifname: l.ifname.clone(),
                }),
                Some(_) => {}
            }
        }
        let addrs = crate::addr::list(&mut nl)?;
        for a in st.declared.addresses.iter().filter(|a| &a.ns == key) {
            let index = by_name.get(a.ifname.as_str()).map(|l| l.index);
            let present = addrs
                .iter()
                .any(|x| Some(x.link) == index && x.ip == a.ip && x.prefix == a.prefix);
            if !present {
                diffs.push(Difference::MissingAddress {
                    ns: key.clone(),
                    ifname: a.ifname.clone(),
                    addr: format!("{}/{}", a.ip, a.prefix),
                });
            }
        }
        let routes = crate::route::list(&mut nl)?;
        for r in st.declared.routes.iter().filter(|r| &r.ns == key) {
            let present = routes
                .iter()
                .any(|x| x.dest == r.dest && (r.via.is_none() || x.via == r.via));
            if !present {
                diffs.push(Difference::MissingRoute {
                    ns: key.clone(),
                    dest: r
                        .dest
                        .map(|(d, p)| format!("{d}/{p}"))
                        .unwrap_or_else(|| "default".to_string()),
                });
            }
        }
        for t in st.declared.tables.iter().filter(|t| &t.ns == key) {
            if !nft::table_exists(ns, &t.table)? {
                diffs.push(Difference::MissingTable {
                    ns: key.clone(),
                    table: t.table.clone(),
                });
            }
        }
    }
    Ok(diffs)
}
