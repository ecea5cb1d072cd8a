//! The declared tier subnets on this host: one Docker deployment at a time, and none over
//! something else that already routes them.
//!
//! The Compose deployment gives every tier its declared subnet (the address plan's
//! 172.20/21/22.0.0/24), so two runs on one daemon, or a run beside a `just up` lab (whose host
//! link routes the tiers), would collide. Before anything is created,
//! [`TierClaim::acquire`] takes a host-wide lock — `flock` on [`LOCK_PATH`], held for the
//! deployment's life and released by the kernel even when its process dies — waiting with a
//! progress line that names the holder; then [`check_routes`] and [`check_networks`] refuse a
//! subnet that a route of the host or another Docker network already covers, naming both.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use netns_kit::Topology;

/// The host-wide lock every Compose deployment of the declared tiers holds.
pub const LOCK_PATH: &str = "/run/ecomm-docker/tiers.lock";

/// How long [`TierClaim::acquire`] waits by default for another deployment to finish, in
/// seconds (`ECOMM_DOCKER_TIER_WAIT_SECONDS` overrides): a whole scenario run of the holder.
pub const DEFAULT_WAIT_SECONDS: u64 = 1800;

/// How often a waiting claim repeats its progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Why the declared tiers cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// Another deployment held the lock for longer than the wait allowed.
    #[error(
        "the tier subnets {subnets} are held by {holder} (lock {}); gave up after {waited_s} s \
         (expected it to finish within the wait; ECOMM_DOCKER_TIER_WAIT_SECONDS sets it)",
        lock.display()
    )]
    Busy {
        /// The declared subnets, comma-separated.
        subnets: String,
        /// Who holds them, as it recorded itself (`pid … run … project …`).
        holder: String,
        /// The lock file.
        lock: PathBuf,
        /// How long this claim waited, in seconds.
        waited_s: u64,
    },
    /// A route of the host already covers (or lies inside) a declared tier subnet.
    #[error(
        "tier {network} ({subnet}) overlaps the route {route} of {namespace} (expected no route \
         of the host to reach the declared subnets: is a `just up` lab running? `just down`)"
    )]
    RouteOverlap {
        /// The declared network.
        network: String,
        /// Its subnet.
        subnet: IpNet,
        /// The route that overlaps, as `dest [via gw] [dev #index]`.
        route: String,
        /// The namespace whose routes were read.
        namespace: String,
    },
    /// Another Docker network already has an overlapping subnet.
    #[error(
        "tier {network} ({subnet}) overlaps Docker network {other} ({other_subnet}, label \
         ecomm.run={other_run}) (expected no other Docker network on the declared subnets: \
         `docker network rm {other}` if it is a leftover)"
    )]
    NetworkOverlap {
        /// The declared network.
        network: String,
        /// Its subnet.
        subnet: IpNet,
        /// The Docker network's name.
        other: String,
        /// Its overlapping subnet.
        other_subnet: IpNet,
        /// Its `ecomm.run` label (`none` when it has none).
        other_run: String,
    },
    /// The lock file, a route dump or the Docker CLI failed.
    #[error("{what}: {reason}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

/// The declared tier subnets, claimed for one deployment until dropped.
#[derive(Debug)]
pub struct TierClaim {
    /// Holds the flock; closing it releases the claim.
    _file: nix::fcntl::Flock<File>,
}

/// The declared networks and their subnets, in declaration order.
pub fn subnets(t: &Topology) -> Vec<(String, IpNet)> {
    t.networks
        .iter()
        .map(|n| (n.name.clone(), n.subnet))
        .collect()
}

fn listed(subnets: &[(String, IpNet)]) -> String {
    subnets
        .iter()
        .map(|(_, s)| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn io(what: impl Into<String>, reason: impl std::fmt::Display) -> TierError {
    TierError::Io {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The wait `ECOMM_DOCKER_TIER_WAIT_SECONDS` asks for, else [`DEFAULT_WAIT_SECONDS`].
pub fn default_wait() -> Duration {
    let s = std::env::var("ECOMM_DOCKER_TIER_WAIT_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_WAIT_SECONDS);
    Duration::from_secs(s)
}

impl TierClaim {
    /// Claims `subnets` for `holder` (recorded in the lock file for whoever waits next) through
    /// the lock at `lock`, waiting at most `wait` for the current holder; a progress line on
    /// stderr names it when the claim has to wait, and every 30 s after.
    pub fn acquire(
        lock: &Path,
        subnets: &[(String, IpNet)],
        holder: &str,
        wait: Duration,
    ) -> Result<TierClaim, TierError> {
        use nix::fcntl::{Flock, FlockArg};
        if let Some(dir) = lock.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(format!("create {}", dir.display()), e))?;
        }
        let started = Instant::now();
        let mut said: Option<Instant> = None;
        let mut file = open(lock)?;
        let mut flock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(f) => break f,
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => file = f,
                Err((_, errno)) => return Err(io(format!("flock {}", lock.display()), errno)),
            }
            let current = holder_of(&mut file);
            if started.elapsed() >= wait {
                return Err(TierError::Busy {
                    subnets: listed(subnets),
                    holder: current,
                    lock: lock.to_path_buf(),
                    waited_s: started.elapsed().as_secs(),
                });
            }
            if said.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                eprintln!(
                    "docker: {holder} waits for the tier subnets {} held by {current} \
                     (lock {}, waited {} s of {} s)",
                    listed(subnets),
                    lock.display(),
                    started.elapsed().as_secs(),
                    wait.as_secs()
                );
                said = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = format!(
            "{holder} (pid {}, since unix {since})\n",
            std::process::id()
        );
        flock
            .set_len(0)
            .and_then(|()| flock.seek(SeekFrom::Start(0)))
            .and_then(|_| flock.write_all(record.as_bytes()))
            .map_err(|e| io(format!("record the holder in {}", lock.display()), e))?;
        Ok(TierClaim { _file: flock })
    }
}

fn open(lock: &Path) -> Result<File, TierError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(lock)
        .map_err(|e| io(format!("open {}", lock.display()), e))
}

/// What the current holder recorded (`unknown` while it has not written yet).
fn holder_of(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text));
    match text.trim() {
        "" => "a deployment that has not recorded itself yet".to_string(),
        t => t.to_string(),
    }
}

/// Refuses a declared subnet that a route of `ns`'s main table overlaps (default routes
/// aside: they cover everything and decide nothing). Read only.
pub fn check_routes(ns: &netns_kit::Netns, subnets: &[(String, IpNet)]) -> Result<(), TierError> {
    let namespace = ns.label();
    let what = format!("read the routes of {namespace}");
    let mut nl = ns.netlink().map_err(|e| io(&what, e))?;
    let routes = netns_kit::route::list(&mut nl).map_err(|e| io(&what, e))?;
    for r in &routes {
        let Some((dest, prefix)) = r.dest else {
            continue;
        };
        let Ok(route_net) = IpNet::new(dest, prefix) else {
            continue;
        };
        if prefix == 0 {
            continue;
        }
        for (network, subnet) in subnets {
            if overlaps(*subnet, route_net) {
                let via = r.via.map(|v| format!(" via {v}")).unwrap_or_default();
                let dev = r.dev.map(|d| format!(" dev #{d}")).unwrap_or_default();
                return Err(TierError::RouteOverlap {
                    network: network.clone(),
                    subnet: *subnet,
                    route: format!("{route_net}{via}{dev}"),
                    namespace,
                });
            }
        }
    }
    Ok(())
}

/// Refuses a declared subnet that an existing Docker network's IPAM subnet overlaps.
pub fn check_networks(subnets: &[(String, IpNet)]) -> Result<(), TierError> {
    let ids = docker(&["network", "ls", "-q"])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut args = vec![
        "network",
        "inspect",
        "-f",
        "{{.Name}}|{{index .Labels \"ecomm.run\"}}|{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids);
    for line in docker(&args)?.lines() {
        let mut parts = line.splitn(3, '|');
        let (Some(name), Some(run), Some(nets)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        for other in nets
            .split_whitespace()
            .filter_map(|s| s.parse::<IpNet>().ok())
        {
            for (network, subnet) in subnets {
                if overlaps(*subnet, other) {
                    return Err(TierError::NetworkOverlap {
                        network: network.clone(),
                        subnet: *subnet,
                        other: name.to_string(),
                        other_subnet: other,
                        other_run: match run {
                            "" | "<no value>" => "none".to_string(),
                            r => r.to_string(),
                        },
                    });
                }
            }
        }
    }
    Ok(())
}

/// True when `a` and `b` share an address (one contains the other's network address).
pub fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn docker(args: &[&str]) -> Result<String, TierError> {
    let line = format!("docker {}", args.join(" "));
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io(&line, e))?;
    if !out.status.success() {
        return Err(io(
            &line,
            format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn subnets_overlap_when_one_holds_the_others_network() {
        assert!(overlaps(net("10.91.0.0/24"), net("10.91.0.0/24")));
        assert!(overlaps(net("10.91.0.0/24"), net("10.64.0.0/10")));
        assert!(overlaps(net("10.64.0.0/10"), net("10.91.0.128/25")));
        assert!(!overlaps(net("10.91.0.0/24"), net("10.92.0.0/24")));
        assert!(!overlaps(net("10.91.0.0/24"), net("10.200.0.0/16")));
    }

    fn temp_lock(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ecomm-tiers-{tag}-{}.lock", std::process::id()))
    }

    #[test]
    fn a_second_claim_names_the_holder_and_gets_the_subnets_once_it_is_released() {
        let lock = temp_lock("claim");
        let tiers = vec![("backend".to_string(), net("10.91.0.0/24"))];
        let first = TierClaim::acquire(&lock, &tiers, "run first", Duration::ZERO)
            .unwrap_or_else(|e| panic!("{e}"));
        match TierClaim::acquire(&lock, &tiers, "run second", Duration::ZERO) {
            Err(TierError::Busy {
                holder, subnets, ..
            }) => {
                assert!(holder.starts_with("run first (pid "), "{holder}");
                assert_eq!(subnets, "10.91.0.0/24");
            }
            other => panic!("expected Busy naming the first run, got {other:?}"),
        }
        let waiter = {
            let (lock, tiers) = (lock.clone(), tiers.clone());
            std::thread::spawn(move || {
                TierClaim::acquire(&lock, &tiers, "run waiter", Duration::from_secs(600))
            })
        };
        // The waiter waits while the first holds the claim; it gets it once the first is gone.
        std::thread::sleep(Duration::from_millis(600));
        assert!(!waiter.is_finished(), "the waiter waits for the holder");
        drop(first);
        let second = waiter
            .join()
            .unwrap_or_else(|_| panic!("the waiter panicked"))
            .unwrap_or_else(|e| panic!("{e}"));
        let recorded = std::fs::read_to_string(&lock).unwrap_or_default();
        assert!(recorded.starts_with("run waiter (pid "), "{recorded}");
        drop(second);
        let _ = std::fs::remove_file(&lock);
    }
}
