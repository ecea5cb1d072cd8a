//! Proofs that a kernel object is a given run's: a namespace's `lo` carries the run's alias
//! (written from inside before the namespace got a name); an anonymous run's alias also names
//! its owner, so a namespace a process keeps alive after the owner died is provably garbage.
//! A look-alike name is never enough. Used by destroy ([`super::registry`]) and gc.

use std::collections::HashSet;
use std::path::Path;

use crate::link;
use crate::netns::{self, Netns};
use crate::runid::RunId;
use crate::runs::state::{NsRecord, Owner, RunState};

/// What is at one recorded name under /run/netns.
pub(crate) enum Recorded {
    /// A namespace of the run.
    Ours(Netns),
    /// A mount point of the run on which nothing was mounted (tagged with the run id).
    UnmountedOurs,
    /// Nothing, or something that is not provably the run's.
    NotOurs,
}

/// What is at each of the run's recorded names, in order. The proofs run on throwaway
/// checking threads, each entering the namespaces of its share in turn (no thread per
/// namespace); several threads check at once (a big run has hundreds).
pub(crate) fn recorded_entries(st: &RunState, run_id: &RunId) -> Vec<Recorded> {
    /// Names per checking thread, and at most this many threads.
    const PER_THREAD: usize = 8;
    const MAX_THREADS: usize = 16;
    // Runs on a scoped checking thread that is thrown away afterwards (it enters namespaces).
    let check = |rec: &NsRecord| match netns::inspect_named(&rec.name) {
        Ok(netns::NamedEntry::Mounted(ns)) if lo_is_tagged_entering(&ns, run_id) => {
            Recorded::Ours(ns)
        }
        Ok(netns::NamedEntry::Unmounted { tag: Some(t) }) if &t == run_id => {
            Recorded::UnmountedOurs
        }
        _ => Recorded::NotOurs,
    };
    let threads = st
        .namespaces
        .len()
        .div_ceil(PER_THREAD)
        .clamp(1, MAX_THREADS);
    let per = st.namespaces.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = st
            .namespaces
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .zip(st.namespaces.chunks(per))
            .flat_map(|(h, chunk)| {
                // A panicked checker proves nothing: its names count as not ours.
                h.join()
                    .unwrap_or_else(|_| chunk.iter().map(|_| Recorded::NotOurs).collect())
            })
            .collect()
    })
}

/// Whether `ns` is a namespace the run created: its `lo` carries the run's alias, set from
/// inside before the namespace got its name (the recorded inode alone is no proof:
/// namespace inode numbers are reused, within a boot and across boots).
///
/// The calling thread enters `ns` to open the socket: only for a dedicated thread that is
/// thrown away afterwards (never a caller's or an async worker's), which spares a thread
/// per namespace checked.
fn lo_is_tagged_entering(ns: &Netns, run_id: &RunId) -> bool {
    if nix::sched::setns(ns.fd(), nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        return false;
    }
    let Ok(mut nl) = crate::netlink::Netlink::open(ns.label()) else {
        return false;
    };
    lo_carries(&mut nl, run_id)
}

/// Whether `lo` (index 1) behind `nl` carries the run's alias: one get request.
fn lo_carries(nl: &mut crate::netlink::Netlink, run_id: &RunId) -> bool {
    matches!(
        link::by_index(nl, 1),
        Ok(Some(lo)) if lo.alias.as_deref() == Some(run_id.alias().as_str())
    )
}

/// The `lo` alias of an anonymous run's namespaces: `netns-kit:<run id>:owner=<pid>.<start>`.
pub(crate) fn owned_alias(run_id: &RunId, owner: &Owner) -> String {
    format!(
        "{}:owner={}.{}",
        run_id.alias(),
        owner.pid,
        owner.start_time
    )
}

/// The run id and owner in an alias written by [`owned_alias`].
fn parse_owned_alias(alias: &str) -> Option<(RunId, Owner)> {
    let (run, owner) = alias.split_once(":owner=")?;
    let run_id = RunId::from_alias(run)?;
    let (pid, start) = owner.split_once('.')?;
    Some((
        run_id,
        Owner {
            pid: pid.parse().ok()?,
            start_time: start.parse().ok()?,
        },
    ))
}

/// If `ns` is a namespace of an anonymous run whose owner is dead (its `lo` says so), that
/// run's id. Such a namespace outlives its owner only because a process keeps it alive.
pub(crate) fn orphan_of(ns: &Netns) -> Option<RunId> {
    let mut nl = ns.netlink().ok()?;
    let lo = link::by_index(&mut nl, 1).ok()??;
    let (run_id, owner) = parse_owned_alias(lo.alias.as_deref()?)?;
    (!owner.is_alive()).then_some(run_id)
}

/// Namespaces of run `run_id` with no name that processes keep alive, other than those in
/// `known` (and the root namespace): (inode, pids inside). Found by the run's tag on `lo`,
/// so a namespace someone else made is never among them.
pub(crate) fn pinned_namespaces(run_id: &RunId, known: &HashSet<u64>) -> Vec<(u64, Vec<i32>)> {
    /// At most this many namespaces checked at once (each check enters one on a thread).
    const MAX_THREADS: usize = 8;
    let root = Netns::current_process().map(|n| n.inode()).ok();
    let candidates: Vec<(u64, Vec<i32>)> = netns::processes_by_namespace()
        .into_iter()
        .filter(|(inode, _)| Some(*inode) != root && !known.contains(inode))
        .collect();
    let is_ours = |(inode, pids): &(u64, Vec<i32>)| {
        pids.iter()
            .find_map(|p| Netns::open_path(Path::new(&format!("/proc/{p}/ns/net"))).ok())
            .is_some_and(|ns| ns.inode() == *inode && lo_is_tagged_entering(&ns, run_id))
    };
    // Every other namespace on the machine with a process in it is a candidate (a busy host
    // has dozens): they are checked several at once, on scoped threads thrown away after
    // (`is_ours` enters the namespaces it checks).
    let per = candidates.len().div_ceil(MAX_THREADS).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = candidates
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(is_ours).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .zip(candidates.chunks(per))
            .flat_map(|(h, chunk)| {
                // A panicked checker proves nothing: its namespaces count as not ours.
                let ours = h.join().unwrap_or_else(|_| vec![false; chunk.len()]);
                chunk
                    .iter()
                    .zip(ours)
                    .filter(|(_, ours)| *ours)
                    .map(|(c, _)| c.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_alias_names_run_and_owner_and_nothing_else_parses() {
        let run = RunId::parse("0123abcd").unwrap();
        let owner = Owner {
            pid: 42,
            start_time: 7,
        };
        let a = owned_alias(&run, &owner);
        assert_eq!(a, "netns-kit:0123abcd:owner=42.7");
        assert_eq!(parse_owned_alias(&a), Some((run.clone(), owner)));
        assert_eq!(parse_owned_alias(&run.alias()), None);
        assert_eq!(parse_owned_alias("netns-kit:0123abcd:owner=x.7"), None);
        assert_eq!(parse_owned_alias("other:0123abcd:owner=42.7"), None);
    }
}
