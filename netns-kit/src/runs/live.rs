//! The executor: [`LiveTopology::apply`] builds a [`Plan`] in the kernel as one transaction
//! (on any failure everything it did is undone and a typed error returned), and tears it
//! down on drop or [`LiveTopology::destroy`].
//!
//! Fast path: namespaces are created by one worker thread that, while inside each new
//! namespace, sets its sysctls, opens its netlink sockets and tags `lo`; every link, address
//! and route is then sent as one netlink batch per namespace, with interface indexes chosen
//! up front so a batch never waits for an answer. Firewalls are one nf_tables netlink
//! transaction per namespace; the only processes spawned are one `tc` per impairment.
//!
//! The functions the CLI calls for runs recorded on disk (`destroy_by_name`, `list`,
//! `exec_in`) are [`super::registry`]'s, re-exported here; `gc` is in [`super::gc`].

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::addr::Address;
use crate::error::{Error, Result};
use crate::fault;
use crate::firewall::apply as nft;
use crate::firewall::netlink::NfSocket;
use crate::link::{self, LinkChange, VxlanRemote};
use crate::netlink::Netlink;
use crate::netns::{self, Netns, NsCommand};
use crate::probe::{self, Reachability, TcpProbe};
use crate::route::Route;
use crate::runid::RunId;
use crate::runs::ownership::owned_alias;
use crate::runs::state::{
    AddrRecord, Declared, LinkRecord, NsRecord, Owner, RouteRecord, RunLock, RunState, TableRecord,
    STATE_DIR,
};
use crate::topology::plan::{Naming, Plan, SysctlPlan, VxlanPeer, VxlanUnderlay};
use crate::topology::{Topology, TopologyError};

// The recorded-run functions moved to [`super::registry`]; these keep
// `netns_kit::topology::live::{list, destroy_by_name, …}` working.
pub use crate::runs::registry::{
    destroy_by_name, destroy_by_name_in, destroy_locked, exec_in, exec_in_dir, list, list_in,
    RunSummary,
};

pub use crate::runs::status::{status, status_in, Difference};

/// First interface index netns-kit assigns in a namespace it created (below are `lo` and
/// any fallback tunnel devices the kernel adds to new namespaces).
const FIRST_IFINDEX: u32 = 100;

/// How long a teardown or `destroy` waits for another process (an `apply` of the same
/// name) to release the run's lock before giving up: 60 s.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Take the lock of a new named run: refused when another process holds it or a run of
/// that name is already recorded.
fn lock_new_run(dir: &Path, name: &str) -> std::result::Result<RunLock, ApplyError> {
    let lock = RunLock::try_acquire(dir, name).map_err(|source| ApplyError::Failed {
        step: "locking the run".to_string(),
        source: Box::new(source),
    })?;
    let Some(lock) = lock else {
        return Err(ApplyError::NameInUse {
            name: name.to_string(),
            detail: busy_detail(dir, name),
        });
    };
    if RunState::path(dir, name).exists() {
        // Not ours to remove: dropping the lock just releases it.
        drop(lock);
        return Err(ApplyError::NameInUse {
            name: name.to_string(),
            detail: format!(
                "a topology is already applied under this name (`netns-kit destroy {name}` first, or pick another name)"
            ),
        });
    }
    Ok(lock)
}

/// "being applied by pid N" (or destroyed), for a run whose lock another process holds.
pub fn busy_detail(dir: &Path, name: &str) -> String {
    let pid = RunLock::holder(dir, name)
        .map(|pid| format!(" (pid {pid})"))
        .unwrap_or_default();
    format!("another process{pid} is applying or destroying it right now")
}

/// How to apply a plan.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Leave the run up after this process exits (named namespaces + state file; the CLI
    /// and the lab). Drop then leaves it alone; `destroy`/`destroy_by_name` remove it.
    /// Default false: dropping the handle tears everything down.
    pub persist: bool,
    /// Name the namespaces `<name>-<key>` under /run/netns and record the run in
    /// `<state_dir>/<name>.json` (used by [`LiveTopology::apply_topology`]; a [`Plan`]
    /// carries its own naming). Default None: anonymous namespaces held by fd.
    pub name: Option<String>,
    /// Where state files go. Default /run/netns-kit.
    pub state_dir: PathBuf,
    /// Worker threads creating namespaces (default 2).
    pub workers: usize,
    /// The namespace where `underlay = "host"` VXLANs are created (their UDP socket and
    /// `dev` live there; the device is moved into the fabric). Default None: the calling
    /// thread's namespace (the machine's root namespace for the CLI). Tests pass a
    /// namespace they created so they never touch the root namespace.
    pub underlay_netns: Option<Netns>,
    /// Test-only: fail with [`Error::Injected`] once this many apply steps are done.
    #[doc(hidden)]
    pub fail_after: Option<usize>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            persist: false,
            name: None,
            state_dir: PathBuf::from(STATE_DIR),
            workers: 2,
            underlay_netns: None,
            fail_after: None,
        }
    }
}

/// Why apply failed. Whatever it had created was removed before this was returned, unless
/// the variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The plan is inconsistent (a reference to something it does not declare).
    #[error("plan cannot be applied: {0}")]
    Plan(String),
    /// The topology could not be resolved for this run.
    #[error(transparent)]
    Topology(Box<TopologyError>),
    /// A kernel or tool step failed; everything created was removed.
    #[error("apply failed while {step}: {source} (everything created was removed)")]
    Failed {
        /// What was being done.
        step: String,
        /// The failure.
        #[source]
        source: Box<Error>,
    },
    /// The run name is taken: already applied, or another process is applying or
    /// destroying a run of that name right now. Nothing was touched.
    #[error("run name {name:?} is in use: {detail}")]
    NameInUse {
        /// The run name.
        name: String,
        /// By what.
        detail: String,
    },
    /// A step failed and the undo left things behind (listed; `netns-kit gc` may help).
    #[error("apply failed while {step}: {source}; undo incomplete: {}", leftovers.join("; "))]
    UndoIncomplete {
        /// What was being done.
        step: String,
        /// The failure.
        #[source]
        source: Box<Error>,
        /// What could not be removed.
        leftovers: Vec<String>,
    },
}

/// A topology that exists in the kernel. Dropping it tears everything down (unless the run
/// is persistent); [`LiveTopology::destroy`] does the same and reports errors.
#[derive(Debug)]
pub struct LiveTopology {
    run_id: RunId,
    topology: String,
    name: Option<String>,
    persist: bool,
    namespaces: Vec<(String, Netns)>,
    host_link: Option<String>,
    state_dir: PathBuf,
    state: Option<RunState>,
    /// The run's lock, held while applying (named runs).
    lock: Option<RunLock>,
    torn_down: bool,
    timings: Vec<(String, Duration)>,
}

/// Interface indexes assigned up front, per namespace key.
#[derive(Default)]
struct Indexes {
    next: HashMap<String, u32>,
    of: HashMap<(String, String), u32>,
}

impl Indexes {
    fn assign(&mut self, ns: &str, ifname: &str) -> std::result::Result<u32, ApplyError> {
        let key = (ns.to_string(), ifname.to_string());
        if self.of.contains_key(&key) {
            return Err(ApplyError::Plan(format!(
                "interface {ifname} declared twice in namespace {ns}"
            )));
        }
        let n = self.next.entry(ns.to_string()).or_insert(FIRST_IFINDEX);
        let idx = *n;
        *n += 1;
        self.of.insert(key, idx);
        Ok(idx)
    }

    fn get(&self, ns: &str, ifname: &str) -> std::result::Result<u32, ApplyError> {
        if ifname == "lo" {
            return Ok(1);
        }
        self.of
            .get(&(ns.to_string(), ifname.to_string()))
            .copied()
            .ok_or_else(|| {
                ApplyError::Plan(format!(
                    "interface {ifname} in namespace {ns} is not declared"
                ))
            })
    }
}

/// Progress of one apply: what exists so far, to undo on failure.
struct Apply<'a> {
    plan: &'a Plan,
    opts: &'a ApplyOptions,
    run_id: RunId,
    steps: usize,
    last: Instant,
    live: LiveTopology,
}

impl Apply<'_> {
    /// Count a finished step (and how long it took); the test-only fault injection fires here.
    fn step(&mut self, label: &str) -> Result<()> {
        let now = Instant::now();
        self.live.timings.push((label.to_string(), now - self.last));
        self.last = now;
        self.steps += 1;
        fault::point(label);
        match self.opts.fail_after {
            Some(limit) if self.steps >= limit => Err(Error::Injected(limit)),
            _ => Ok(()),
        }
    }
}

impl LiveTopology {
    /// Resolve `topology` for a fresh run (named after `opts.name`, or anonymous) and apply it.
    pub fn apply_topology(
        topology: &Topology,
        opts: ApplyOptions,
    ) -> std::result::Result<LiveTopology, ApplyError> {
        let run_id = RunId::new().map_err(|source| ApplyError::Failed {
            step: "choosing a run id".to_string(),
            source: Box::new(source),
        })?;
        let naming = match &opts.name {
            Some(n) => Naming::Named { prefix: n.clone() },
            None => Naming::Anonymous,
        };
        let plan = Plan::for_run(topology, run_id.as_str(), naming)
            .map_err(|e| ApplyError::Topology(Box::new(e)))?;
        LiveTopology::apply(&plan, opts)
    }

    /// Create everything in `plan`. On any failure, undo everything done so far (reverse
    /// order) and return the error.
    pub fn apply(plan: &Plan, opts: ApplyOptions) -> std::result::Result<LiveTopology, ApplyError> {
        let run_id =
            RunId::parse(&plan.run_id).map_err(|e| ApplyError::Plan(format!("run id: {e}")))?;
        let name = match &plan.naming {
            Naming::Anonymous => None,
            Naming::Named { prefix } => Some(prefix.clone()),
        };
        if opts.persist && name.is_none() {
            return Err(ApplyError::Plan(
                "a persistent run needs named namespaces (Naming::Named)".to_string(),
            ));
        }
        let mut a = Apply {
            plan,
            opts: &opts,
            run_id: run_id.clone(),
            steps: 0,
            last: Instant::now(),
            live: LiveTopology {
                run_id,
                topology: plan.topology.clone(),
                name,
                persist: opts.persist,
                namespaces: Vec::new(),
                host_link: None,
                state_dir: opts.state_dir.clone(),
                state: None,
                lock: None,
                torn_down: false,
                timings: Vec::new(),
            },
        };
        if let Some(name) = a.live.name.clone() {
            a.live.lock = Some(lock_new_run(&opts.state_dir, &name)?);
            fault::timing("apply: run locked");
        }
        let mut step = String::from("starting");
        match run(&mut a, &mut step) {
            Ok(()) => {
                // Released: the run is complete and recorded; destroy and gc may take it.
                a.live.lock = None;
                Ok(a.live)
            }
            Err(RunError::Plan(msg)) => {
                let leftovers = a.live.teardown();
                if leftovers.is_empty() {
                    Err(ApplyError::Plan(msg))
                } else {
                    Err(ApplyError::UndoIncomplete {
                        step,
                        source: Box::new(Error::Invalid {
                            kind: "plan",
                            value: msg,
                            expected: "a consistent plan",
                        }),
                        leftovers,
                    })
                }
            }
            Err(RunError::Kernel(source)) => {
                let leftovers = a.live.teardown();
                if leftovers.is_empty() {
                    Err(ApplyError::Failed {
                        step,
                        source: Box::new(source),
                    })
                } else {
                    Err(ApplyError::UndoIncomplete {
                        step,
                        source: Box::new(source),
                        leftovers,
                    })
                }
            }
        }
    }

    /// How long each apply step took, in order (for benchmarks and diagnosis).
    pub fn apply_timings(&self) -> &[(String, Duration)] {
        &self.timings
    }

    /// The run id every object carries.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// The topology's name.
    pub fn topology(&self) -> &str {
        &self.topology
    }

    /// The run's name (named runs only).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The namespace of `key` ("fabric", the router, a node).
    pub fn netns(&self, key: &str) -> Option<&Netns> {
        self.namespaces
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, n)| n)
    }

    /// Every (key, namespace), in creation order.
    pub fn namespaces(&self) -> &[(String, Netns)] {
        &self.namespaces
    }

    fn node(&self, key: &str) -> Result<&Netns> {
        self.netns(key).ok_or_else(|| Error::NotFound {
            kind: "node",
            name: key.to_string(),
        })
    }

    /// A process builder running `program` inside node `key`.
    pub fn command(&self, key: &str, program: impl AsRef<std::ffi::OsStr>) -> Result<NsCommand> {
        Ok(self.node(key)?.command(program))
    }

    /// Put netem (delay, jitter, loss, rate) on interface `ifname` (eth0, eth1, … in file
    /// order; see [`Topology::node`]) of node `key`, replacing any impairment there. A
    /// kernel without netem answers [`Error::Unsupported`]. Removed with the run.
    pub fn impair(&self, key: &str, ifname: &str, netem: &crate::topology::Netem) -> Result<()> {
        crate::impair::apply(self.node(key)?, ifname, netem)
    }

    /// Remove the impairment on `ifname` of node `key` (none there is not an error).
    pub fn unimpair(&self, key: &str, ifname: &str) -> Result<()> {
        crate::impair::remove(self.node(key)?, ifname)
    }

    /// TCP connect from node `from` to `addr` with a deadline.
    pub fn probe_tcp(&self, from: &str, addr: SocketAddr, deadline: Duration) -> Result<TcpProbe> {
        probe::tcp_connect(self.node(from)?, addr, deadline)
    }

    /// Probe every (node in `from`, target) pair in parallel.
    pub fn reachability(
        &self,
        from: &[&str],
        targets: &[(String, SocketAddr)],
        deadline: Duration,
    ) -> Result<Vec<Reachability>> {
        let sources = from
            .iter()
            .map(|k| Ok((k.to_string(), self.node(k)?.clone())))
            .collect::<Result<Vec<_>>>()?;
        probe::matrix(&sources, targets, deadline)
    }

    /// Tear everything down now and report what could not be removed.
    pub fn destroy(mut self) -> Result<()> {
        let leftovers = self.teardown();
        if leftovers.is_empty() {
            Ok(())
        } else {
            Err(Error::State {
                path: self.state_path().unwrap_or_default(),
                detail: format!("destroy left behind: {}", leftovers.join("; ")),
            })
        }
    }

    /// Keep the run up after this handle drops (it must be persistent or named to be found
    /// again by name).
    pub fn leak(mut self) {
        self.torn_down = true;
    }

    fn state_path(&self) -> Option<PathBuf> {
        self.name
            .as_ref()
            .map(|n| RunState::path(&self.state_dir, n))
    }

    /// Remove everything this run created; returns descriptions of what failed.
    fn teardown(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let mut leftovers = Vec::new();
        // A named run: under its lock, record who is tearing it down before removing
        // anything, so a crash from here on leaves garbage `gc` collects. Only a complete
        // persistent run needs the record: any other run is garbage as soon as its owner
        // (this process) dies.
        let mut lock = None;
        if let Some(st) = self.state.as_mut() {
            lock = match self.lock.take() {
                Some(l) => Some(l),
                None => RunLock::acquire_within(&self.state_dir, &st.name, LOCK_WAIT)
                    .ok()
                    .flatten(),
            };
            match (&lock, Owner::current()) {
                (Some(_), _) if !(st.persistent && st.complete) => {}
                (Some(held), Ok(me)) => {
                    st.destroying = Some(me);
                    if let Err(e) = st.write(&self.state_dir, held) {
                        leftovers.push(format!("state file: {e}"));
                    }
                }
                (None, _) => leftovers.push(format!(
                    "state file: run {:?} is locked by another process",
                    st.name
                )),
                (_, Err(e)) => leftovers.push(format!("state file: {e}")),
            }
        }
        let inodes: HashSet<u64> = self.namespaces.iter().map(|(_, n)| n.inode()).collect();
        netns::kill_processes_in(&inodes);
        if let Some(host) = self.host_link.take() {
            if let Err(e) = delete_host_link(&host, &self.run_id) {
                leftovers.push(format!("host link {host}: {e}"));
            }
        }
        let all: Vec<Netns> = self.namespaces.drain(..).rev().map(|(_, ns)| ns).collect();
        for (label, e) in Netns::delete_all(all) {
            leftovers.push(format!("namespace {label}: {e}"));
        }
        if self.name.is_some() {
            for f in netns::mount_point_temps(&self.run_id) {
                if let Err(e) = netns::remove_mount_point_temp(&f) {
                    leftovers.push(format!("mount point {f}: {e}"));
                }
            }
        }
        let removed = match (self.state.take(), lock.or_else(|| self.lock.take())) {
            (Some(st), Some(lock)) if leftovers.is_empty() => st.remove(&self.state_dir, lock),
            // Died before the state file was written: only the lock file exists.
            (None, Some(lock)) => match &self.name {
                Some(n) => crate::runs::state::remove_files(&self.state_dir, n, lock),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = removed {
            leftovers.push(format!("state file: {e}"));
        }
        leftovers
    }
}

impl Drop for LiveTopology {
    fn drop(&mut self) {
        if self.persist {
            return;
        }
        let _ = self.teardown();
    }
}

/// The netlink socket of the VXLAN underlay namespace, opened on first use.
fn underlay_socket<'a>(
    slot: &'a mut Option<Netlink>,
    opts: &ApplyOptions,
) -> Result<&'a mut Netlink> {
    if slot.is_none() {
        let ns = match &opts.underlay_netns {
            Some(ns) => ns.clone(),
            None => Netns::current_thread()?,
        };
        *slot = Some(ns.netlink()?);
    }
    slot.as_mut()
        .ok_or(Error::ThreadPanicked("opening the underlay socket"))
}

enum RunError {
    Plan(String),
    Kernel(Error),
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        RunError::Kernel(e)
    }
}

impl From<ApplyError> for RunError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Plan(m) => RunError::Plan(m),
            other => RunError::Plan(other.to_string()),
        }
    }
}

/// What a namespace-creating worker needs to know about one namespace.
struct NsJob {
    key: String,
    name: Option<String>,
    sysctls: Vec<(PathBuf, String)>,
    /// Tags the mount point of a named namespace.
    run_id: String,
    /// For `lo`.
    alias: String,
    /// Whether the namespace gets a firewall (then an nfnetlink socket is opened too).
    firewall: bool,
}

/// The phases of one apply, in order; each ends in a counted step (a crash point).
fn run(a: &mut Apply<'_>, step: &mut String) -> std::result::Result<(), RunError> {
    record_declared(a, step)?;
    let mut b = create_namespaces(a, step)?;
    create_links(a, &mut b, step)?;
    create_vxlans(a, &mut b, step)?;
    configure_links(a, &mut b, step)?;
    set_late_sysctls(a, &b, step)?;
    configure_root_side(a, &b, step)?;
    load_firewalls(a, &mut b, step)?;
    impair(a, &b, step)?;
    record_complete(a, &b, step)
}

/// What the phases of one apply share once the namespaces exist.
struct Build<'p> {
    /// The run's alias, carried by every link it creates.
    alias: String,
    /// One route netlink socket per namespace key (dropped after phase 2).
    sockets: HashMap<String, Netlink>,
    /// One nf_tables socket per namespace with a firewall, opened inside it.
    nf_sockets: HashMap<String, NfSocket>,
    /// The namespaces by key.
    fds: HashMap<String, Netns>,
    /// Interface indexes assigned up front.
    idx: Indexes,
    /// Per namespace, the link changes of phase 2 (up, alias, move).
    phase2: HashMap<String, Vec<LinkChange>>,
    /// The root namespace and the host link's two indexes (lab mode).
    root: Option<(Netns, u32, u32)>,
    /// Per-interface sysctls, set once the interfaces exist.
    late_sysctls: Vec<&'p SysctlPlan>,
}

/// Named runs: the declared state, written durably before anything exists.
fn record_declared(a: &mut Apply<'_>, step: &mut String) -> std::result::Result<(), RunError> {
    let plan = a.plan;
    if let Some(name) = a.live.name.clone() {
        *step = "recording the run".to_string();
        let mut st = RunState {
            name: name.clone(),
            run_id: a.run_id.to_string(),
            topology: plan.topology.clone(),
            owner: Owner::current()?,
            persistent: a.opts.persist,
            complete: false,
            destroying: None,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            boot_id: crate::runs::state::current_boot_id(),
            namespaces: Vec::new(),
            host_link: plan.host_link.as_ref().map(|h| h.host_ifname.clone()),
            declared: declared(plan),
        };
        for ns in &plan.namespaces {
            let Some(n) = &ns.name else {
                return Err(RunError::Plan(format!(
                    "namespace {} has no name in a named run",
                    ns.key
                )));
            };
            st.namespaces.push(NsRecord {
                key: ns.key.clone(),
                name: n.clone(),
                inode: None,
            });
        }
        let lock =
            a.live.lock.as_ref().ok_or_else(|| {
                RunError::Plan(format!("named run {name} applied without its lock"))
            })?;
        st.write(&a.live.state_dir, lock)?;
        a.live.state = Some(st);
        a.step(step)?;
    }

    Ok(())
}

/// Namespaces, each with its sysctls, its netlink socket(s) and a tagged `lo`.
fn create_namespaces<'p>(
    a: &mut Apply<'p>,
    step: &mut String,
) -> std::result::Result<Build<'p>, RunError> {
    let plan = a.plan;
    let alias = a.run_id.alias();
    *step = "creating namespaces".to_string();
    let mut sysctls: HashMap<&str, Vec<(PathBuf, String)>> = HashMap::new();
    let mut late_sysctls = Vec::new();
    for s in &plan.sysctls {
        // Per-interface keys must wait until the interface exists.
        if is_per_interface(&s.key) {
            late_sysctls.push(s);
        } else {
            sysctls
                .entry(s.ns.as_str())
                .or_default()
                .push((crate::sysctl::path_of(&s.key)?, s.value.clone()));
        }
    }
    // `lo` carries the run's tag. An anonymous run has no state file, so its `lo` also
    // names the owner: a namespace some process keeps alive after the owner died is then
    // provably garbage (see [`orphan_of`]).
    let lo_alias = match &a.live.name {
        Some(_) => alias.clone(),
        None => owned_alias(&a.run_id, &Owner::current()?),
    };
    let jobs: Vec<NsJob> = plan
        .namespaces
        .iter()
        .map(|n| NsJob {
            key: n.key.clone(),
            name: n.name.clone(),
            sysctls: sysctls.remove(n.key.as_str()).unwrap_or_default(),
            run_id: a.run_id.to_string(),
            alias: lo_alias.clone(),
            firewall: plan.firewalls.iter().any(|f| f.ns == n.key),
        })
        .collect();
    // Each namespace holds a descriptor, and a netlink socket while applying.
    raise_fd_limit(2 * jobs.len() as u64 + 256);
    let (created, failure) = create_namespaces_with(jobs, a.opts.workers.max(1));
    let mut sockets: HashMap<String, Netlink> = HashMap::new();
    let mut nf_sockets: HashMap<String, NfSocket> = HashMap::new();
    for (key, ns, nl, nf) in created {
        sockets.insert(key.clone(), nl);
        if let Some(nf) = nf {
            nf_sockets.insert(key.clone(), nf);
        }
        a.live.namespaces.push((key, ns));
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    // Each is already provably ours by its tagged `lo` (and mount point); the inodes are
    // recorded with completion, sparing a durable state write here.
    a.step(step)?;
    let fds: HashMap<String, Netns> = a
        .live
        .namespaces
        .iter()
        .map(|(k, n)| (k.clone(), n.clone()))
        .collect();
    Ok(Build {
        alias,
        sockets,
        nf_sockets,
        fds,
        idx: Indexes::default(),
        phase2: HashMap::new(),
        root: None,
        late_sysctls,
    })
}

/// Phase 1: bridges and veth pairs (each end born in its namespace), and the host link's
/// veth (both ends born in the router), as one batch per namespace.
fn create_links(
    a: &mut Apply<'_>,
    b: &mut Build<'_>,
    step: &mut String,
) -> std::result::Result<(), RunError> {
    let plan = a.plan;
    *step = "creating bridges and veth pairs".to_string();
    for br in &plan.bridges {
        let i = b.idx.assign(&br.ns, &br.ifname)?;
        let mut l = link::bridge(&br.ifname).index(i);
        if br.ipv6 {
            l = l.up();
        }
        if let Some(m) = br.mtu {
            l = l.mtu(m);
        }
        l.queue(netlink_of(&mut b.sockets, &br.ns)?)?;
        // A bridge has carrier as soon as it is up: on an IPv4 network it comes up in
        // phase 2, after its addrgenmode is none.
        let up = (!br.ipv6).then(|| LinkChange::of(i).up());
        tag_then(
            b.phase2.entry(br.ns.clone()).or_default(),
            i,
            &b.alias,
            br.ipv6,
            up,
        );
    }
    for v in &plan.veths {
        let bi = b.idx.assign(&v.b.ns, &v.b.ifname)?;
        let ai = b.idx.assign(&v.a.ns, &v.a.ifname)?;
        let peer_ns = b.fds.get(&v.a.ns).ok_or_else(|| {
            RunError::Plan(format!(
                "veth end {} in undeclared namespace {}",
                v.a.ifname, v.a.ns
            ))
        })?;
        // On an IPv4 network both ends come up only after their addrgenmode is none (in
        // phase 2, each end in a change of its own before its `up`): carrier needs both ends
        // up, so neither ever gets a link-local address.
        let mut l = link::veth(&v.b.ifname, &v.a.ifname)
            .index(bi)
            .peer_index(ai)
            .peer_netns(peer_ns.fd());
        if v.ipv6 {
            l = l.up();
        }
        if let Some(m) = v.mtu {
            l = l.mtu(m).peer_mtu(m);
        }
        if let Some(master) = &v.b.master {
            l = l.master(b.idx.get(&v.b.ns, master)?);
        }
        l.queue(netlink_of(&mut b.sockets, &v.b.ns)?)?;
        let up = (!v.ipv6).then(|| LinkChange::of(bi).up());
        tag_then(
            b.phase2.entry(v.b.ns.clone()).or_default(),
            bi,
            &b.alias,
            v.ipv6,
            up,
        );
        let mut up = LinkChange::of(ai).up();
        if let Some(master) = &v.a.master {
            up = up.master(b.idx.get(&v.a.ns, master)?);
        }
        tag_then(
            b.phase2.entry(v.a.ns.clone()).or_default(),
            ai,
            &b.alias,
            v.ipv6,
            Some(up),
        );
    }
    // The lab's host link: both ends are born in the router; in phase 2 the host end is
    // tagged with the run's alias and only then moved into the root namespace (the move
    // keeps the alias). So the root namespace never holds an untagged link of ours: until
    // the move, a crash takes the host end down with the router namespace; after it,
    // `gc` proves it ours by its alias.
    b.root = match &plan.host_link {
        Some(h) => {
            let root = Netns::current_process()?;
            let ri = b.idx.assign(&h.peer_ns, &h.peer_ifname)?;
            let hi = b.idx.assign(&h.peer_ns, &h.host_ifname)?;
            link::veth(&h.peer_ifname, &h.host_ifname)
                .index(ri)
                .peer_index(hi)
                .up()
                .queue(netlink_of(&mut b.sockets, &h.peer_ns)?)?;
            a.live.host_link = Some(h.host_ifname.clone());
            Some((root, ri, hi))
        }
        None => None,
    };
    flush_all(&mut b.sockets, a.opts.workers)?;
    a.step(step)?;
    Ok(())
}

/// Phase 1b: VXLANs (their underlay device exists now).
fn create_vxlans(
    a: &mut Apply<'_>,
    b: &mut Build<'_>,
    step: &mut String,
) -> std::result::Result<(), RunError> {
    let plan = a.plan;
    if plan.vxlans.is_empty() {
        return Ok(());
    }
    *step = "creating VXLAN links".to_string();
    // Host-underlay VXLANs are created through a socket in the underlay namespace and
    // moved into their namespace in the same message (IFLA_NET_NS_FD).
    let mut underlay: Option<Netlink> = None;
    for v in &plan.vxlans {
        let i = b.idx.assign(&v.ns, &v.ifname)?;
        let dev = match (&v.dev, v.underlay) {
            (None, _) => None,
            (Some(d), VxlanUnderlay::Fabric) => Some(b.idx.get(&v.ns, d)?),
            (Some(d), VxlanUnderlay::Host) => {
                let nl = underlay_socket(&mut underlay, a.opts)?;
                match link::by_name(nl, d)? {
                    Some(l) => Some(l.index),
                    None => {
                        return Err(Error::NotFound {
                            kind: "VXLAN underlay device",
                            name: format!(
                                "{d} (vxlan {}: no such device in the underlay namespace {})",
                                v.ifname,
                                nl.namespace()
                            ),
                        }
                        .into())
                    }
                }
            }
        };
        let params = link::vxlan::VxlanParams {
            vni: v.vni,
            local: v.local,
            remote: Some(match v.peer {
                VxlanPeer::Remote(r) => VxlanRemote::Remote(r),
                VxlanPeer::Group(g) => VxlanRemote::Group(g),
            }),
            port: v.port,
            dev,
        };
        let mut l = link::vxlan(&v.ifname, v.vni)
            .vxlan_params(&params)
            .index(i)
            .up();
        if let Some(m) = v.mtu {
            l = l.mtu(m);
        }
        if let Some(master) = &v.master {
            l = l.master(b.idx.get(&v.ns, master)?);
        }
        match v.underlay {
            VxlanUnderlay::Fabric => l.queue(netlink_of(&mut b.sockets, &v.ns)?)?,
            VxlanUnderlay::Host => {
                let target = b.fds.get(&v.ns).ok_or_else(|| {
                    RunError::Plan(format!(
                        "vxlan {} in undeclared namespace {}",
                        v.ifname, v.ns
                    ))
                })?;
                l.netns(target.fd())
                    .queue(underlay_socket(&mut underlay, a.opts)?)?;
            }
        }
        b.phase2
            .entry(v.ns.clone())
            .or_default()
            .push(LinkChange::of(i).alias(&b.alias));
    }
    if let Some(nl) = underlay.as_mut() {
        nl.flush()?;
    }
    flush_all(&mut b.sockets, a.opts.workers)?;
    a.step(step)?;
    Ok(())
}

/// Phase 2: per namespace, links up and tagged, addresses, routes; one batch each.
fn configure_links(
    a: &mut Apply<'_>,
    b: &mut Build<'_>,
    step: &mut String,
) -> std::result::Result<(), RunError> {
    let plan = a.plan;
    *step = "configuring links, addresses and routes".to_string();
    if let (Some(h), Some((root, ri, hi))) = (&plan.host_link, &b.root) {
        let changes = b.phase2.entry(h.peer_ns.clone()).or_default();
        changes.push(LinkChange::of(*ri).alias(&b.alias));
        changes.push(LinkChange::of(*hi).alias(&b.alias));
        changes.push(LinkChange::of(*hi).move_to(root.fd()));
    }
    for (ns, changes) in std::mem::take(&mut b.phase2) {
        let nl = netlink_of(&mut b.sockets, &ns)?;
        for c in changes {
            c.queue(nl);
        }
    }
    for ad in &plan.addresses {
        let i = b.idx.get(&ad.ns, &ad.ifname)?;
        let addr = Address::new(i, ad.addr.addr(), ad.addr.prefix_len())?;
        addr.queue_add(netlink_of(&mut b.sockets, &ad.ns)?);
    }
    for r in &plan.routes {
        let route = Route::from_planned(r, |dev| b.idx.get(&r.ns, dev))?;
        route.queue_add(netlink_of(&mut b.sockets, &r.ns)?)?;
    }
    flush_all(&mut b.sockets, a.opts.workers)?;
    a.step(step)?;
    // The route sockets are done: close them now, not at the end of the apply.
    b.sockets.clear();

    Ok(())
}

/// Per-interface sysctls (their interfaces exist now).
fn set_late_sysctls(
    a: &mut Apply<'_>,
    b: &Build<'_>,
    step: &mut String,
) -> std::result::Result<(), RunError> {
    for s in &b.late_sysctls {
        *step = format!("setting sysctl {} in {}", s.key, s.ns);
        let ns = b
            .fds
            .get(&s.ns)
            .ok_or_else(|| RunError::Plan(format!("sysctl for undeclared namespace {}", s.ns)))?;
        ns.sysctl_set(&s.key, &s.value)?;
        a.step(step)?;
    }

    Ok(())
}

/// The host link's root-namespace side (lab mode): the only object configured in the root
/// namespace.
fn configure_root_side(
    a: &mut Apply<'_>,
    b: &Build<'_>,
    step: &mut String,
) -> std::result::Result<(), RunError> {
    let plan = a.plan;
    if let (Some(h), Some((root, _, _))) = (&plan.host_link, &b.root) {
        *step = format!("configuring the host link {}", h.host_ifname);
        configure_host_link(&b.alias, h, root)?;
        a.step(step)?;
    }

    Ok(())
}

/// Firewalls: one nf_tables netlink transaction per namespace.
fn load_firewalls(
    a: &mut Apply<'_>,
    b: &mut Build<'_>,
    step: &mut String,
) -> std::result::Result<(), RunError> {
    let plan = a.plan;
    if plan.firewalls.is_empty() {
        return Ok(());
    }
    *step = "loading nftables rulesets".to_string();
    for f in &plan.firewalls {
        let ns = b
            .fds
            .get(&f.ns)
            .ok_or_else(|| RunError::Plan(format!("firewall for undeclared namespace {}", f.ns)))?;
        match b.nf_sockets.get_mut(&f.ns) {
            Some(sock) => nft::create_via(sock, &f.ruleset)?,
            None => nft::load(ns, &f.ruleset)?,
        }
    }
    a.step(step)?;
    Ok(())
}

/// Impairments: netem on node interfaces.
fn impair(
    a: &mut Apply<'_>,
    b: &Build<'_>,
    step: &mut String,
) -> std::result::Result<(), RunError> {
    let plan = a.plan;
    for imp in &plan.impairments {
        *step = format!("impairing {} in {}", imp.ifname, imp.ns);
        let ns = b.fds.get(&imp.ns).ok_or_else(|| {
            RunError::Plan(format!("impairment in undeclared namespace {}", imp.ns))
        })?;
        crate::impair::apply(ns, &imp.ifname, &imp.netem)?;
        a.step(step)?;
    }

    Ok(())
}

/// Named runs: the namespaces' inodes and completion, written durably.
fn record_complete(
    a: &mut Apply<'_>,
    b: &Build<'_>,
    step: &mut String,
) -> std::result::Result<(), RunError> {
    if let Some(mut st) = a.live.state.take() {
        *step = "recording the run".to_string();
        for rec in &mut st.namespaces {
            rec.inode = b.fds.get(&rec.key).map(Netns::inode);
        }
        st.complete = true;
        let written = match &a.live.lock {
            Some(lock) => st.write(&a.live.state_dir, lock),
            None => Err(Error::State {
                path: RunState::path(&a.live.state_dir, &st.name),
                detail: "written without the run's lock".to_string(),
            }),
        };
        a.live.state = Some(st);
        written?;
    }
    Ok(())
}

fn netlink_of<'s>(
    sockets: &'s mut HashMap<String, Netlink>,
    ns: &str,
) -> std::result::Result<&'s mut Netlink, RunError> {
    sockets
        .get_mut(ns)
        .ok_or_else(|| RunError::Plan(format!("namespace {ns} is referenced but not declared")))
}

/// Flush every socket's queue; sockets are independent, so `workers` threads share them.
fn flush_all(sockets: &mut HashMap<String, Netlink>, workers: usize) -> Result<()> {
    let mut busy: Vec<&mut Netlink> = sockets.values_mut().filter(|s| s.pending() > 0).collect();
    // The fabric (usually the biggest batch) first.
    busy.sort_by_key(|s| std::cmp::Reverse(s.pending()));
    if busy.len() <= 1 || workers <= 1 {
        for s in busy {
            s.flush()?;
        }
        return Ok(());
    }
    let per = busy.len().div_ceil(workers);
    std::thread::scope(|sc| {
        let handles: Vec<_> = busy
            .chunks_mut(per)
            .map(|chunk| {
                sc.spawn(move || -> Result<()> {
                    let mut first = None;
                    for s in chunk.iter_mut() {
                        if let Err(e) = s.flush() {
                            first.get_or_insert(e);
                        }
                    }
                    first.map_or(Ok(()), Err)
                })
            })
            .collect();
        let mut first = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(_) => {
                    first.get_or_insert(Error::ThreadPanicked("flushing netlink batches"));
                }
            }
        }
        first.map_or(Ok(()), Err)
    })
}

/// A namespace just created: its key, handle, rtnetlink socket and, if it gets a firewall,
/// its nfnetlink socket (all opened from inside it).
type Created = (String, Netns, Netlink, Option<NfSocket>);

/// Create the namespaces on `workers` threads; returns what was created (in job order)
/// and the first failure, if any.
fn create_namespaces_with(jobs: Vec<NsJob>, workers: usize) -> (Vec<Created>, Option<Error>) {
    let n = jobs.len();
    if n == 0 {
        return (Vec::new(), None);
    }
    let per = n.div_ceil(workers.min(n));
    let mut chunks: Vec<Vec<NsJob>> = Vec::new();
    let mut it = jobs.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(per).collect());
    }
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            std::thread::spawn(move || {
                let mut done = Vec::with_capacity(chunk.len());
                for job in chunk {
                    let named = job.name.as_deref().map(|n| (n, Some(job.run_id.as_str())));
                    let r = netns::create_here(named, |ns| {
                        for (path, value) in &job.sysctls {
                            crate::sysctl::write_here(path, value)?;
                        }
                        let mut nl = Netlink::open(ns.label())?;
                        LinkChange::of(1).up().alias(&job.alias).apply(&mut nl)?;
                        let nf = if job.firewall {
                            Some(NfSocket::open_here(ns.label())?)
                        } else {
                            None
                        };
                        if named.is_some() {
                            fault::point(&format!(
                                "namespace {}: mount point reserved, not yet mounted",
                                job.key
                            ));
                        }
                        Ok((nl, nf))
                    });
                    match r {
                        Ok((ns, (nl, nf))) => {
                            fault::point(&format!("namespace {} created", job.key));
                            done.push((job.key, ns, nl, nf))
                        }
                        Err(e) => return (done, Some(e)),
                    }
                }
                (done, None)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok((done, err)) => {
                all.extend(done);
                if let Some(e) = err {
                    failure.get_or_insert(e);
                }
            }
            Err(_) => {
                failure.get_or_insert(Error::ThreadPanicked("creating namespaces"));
            }
        }
    }
    (all, failure)
}

/// Raise the soft open-files limit to at least `needed` (up to the hard limit).
fn raise_fd_limit(needed: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < needed {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, needed.min(hard), hard);
        }
    }
}

/// Queues a link's phase-2 changes: tagged with the run's `alias` (on an IPv4 network with
/// addrgenmode none too), then `then` (typically `up`) in a change of its own, since the
/// kernel applies addrgenmode after any up in the same message.
fn tag_then(
    changes: &mut Vec<LinkChange>,
    index: u32,
    alias: &str,
    ipv6: bool,
    then: Option<LinkChange>,
) {
    let tag = LinkChange::of(index).alias(alias);
    changes.push(if ipv6 {
        tag
    } else {
        tag.ipv6_link_local(false)
    });
    changes.extend(then);
}

fn is_per_interface(key: &str) -> bool {
    let parts: Vec<&str> = key.split(['.', '/']).collect();
    parts.len() >= 5
        && parts[0] == "net"
        && matches!(parts[2], "conf" | "neigh")
        && !matches!(parts[3], "all" | "default")
}

/// The run's declared links, addresses, routes and tables, for the state file.
fn declared(plan: &Plan) -> Declared {
    let mut d = Declared::default();
    for b in &plan.bridges {
        d.links.push(LinkRecord {
            ns: b.ns.clone(),
            ifname: b.ifname.clone(),
        });
    }
    for v in &plan.veths {
        for end in [&v.a, &v.b] {
            d.links.push(LinkRecord {
                ns: end.ns.clone(),
                ifname: end.ifname.clone(),
            });
        }
    }
    for v in &plan.vxlans {
        d.links.push(LinkRecord {
            ns: v.ns.clone(),
            ifname: v.ifname.clone(),
        });
    }
    for a in &plan.addresses {
        d.addresses.push(AddrRecord {
            ns: a.ns.clone(),
            ifname: a.ifname.clone(),
            ip: a.addr.addr(),
            prefix: a.addr.prefix_len(),
        });
    }
    for r in &plan.routes {
        d.routes.push(RouteRecord {
            ns: r.ns.clone(),
            dest: r.dest_prefix(),
            via: r.via,
        });
    }
    for f in &plan.firewalls {
        d.tables.push(TableRecord {
            ns: f.ns.clone(),
            table: f.ruleset.table.clone(),
        });
    }
    if let Some(h) = &plan.host_link {
        d.links.push(LinkRecord {
            ns: h.peer_ns.clone(),
            ifname: h.peer_ifname.clone(),
        });
    }
    d
}

/// The root-namespace side of the lab's host link: up, tagged, addressed, routes.
fn configure_host_link(
    alias: &str,
    h: &crate::topology::plan::HostLinkPlan,
    root: &Netns,
) -> Result<()> {
    let mut hnl = root.netlink()?;
    let host = link::by_name(&mut hnl, &h.host_ifname)?.ok_or_else(|| Error::NotFound {
        kind: "link",
        name: h.host_ifname.clone(),
    })?;
    LinkChange::of(host.index).up().alias(alias).queue(&mut hnl);
    Address::new(host.index, h.host_addr.addr(), h.host_addr.prefix_len())?.queue_add(&mut hnl);
    for r in &h.host_routes {
        let mut route = Route::to(r.dest.network(), r.dest.prefix_len());
        if let Some(v) = r.via {
            route = route.via(v);
        }
        let dev = match r.dev.as_deref() {
            None => None,
            Some(d) if d == h.host_ifname => Some(host.index),
            Some(d) => link::by_name(&mut hnl, d)?.map(|l| l.index),
        };
        if let Some(d) = dev {
            route = route.dev(d);
        }
        if let Some(m) = r.metric {
            route = route.metric(m);
        }
        route.queue_add(&mut hnl)?;
    }
    hnl.flush()
}

/// Whether the root namespace has a link `name` carrying this run's alias.
pub(crate) fn host_link_is_ours(name: &str, run_id: &RunId) -> bool {
    let Ok(root) = Netns::current_process() else {
        return false;
    };
    let Ok(mut nl) = root.netlink() else {
        return false;
    };
    matches!(
        link::by_name(&mut nl, name),
        Ok(Some(l)) if l.alias.as_deref() == Some(run_id.alias().as_str())
    )
}

/// Delete the host link `name` from the root namespace, but only if it carries this run's
/// alias (never a look-alike).
pub(crate) fn delete_host_link(name: &str, run_id: &RunId) -> Result<()> {
    let root = Netns::current_process()?;
    let mut nl = root.netlink()?;
    match link::by_name(&mut nl, name)? {
        Some(l) if l.alias.as_deref() == Some(run_id.alias().as_str()) => {
            link::delete(&mut nl, l.index)
        }
        _ => Ok(()),
    }
}

/// The address a node was given on its first interface, from a plan (helper for probes).
pub fn address_of(plan: &Plan, node: &str) -> Option<IpAddr> {
    plan.addresses
        .iter()
        .find(|a| a.ns == node)
        .map(|a| a.addr.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_interface_sysctls_wait_for_links() {
        assert!(is_per_interface("net.ipv4.conf.eth0.rp_filter"));
        assert!(!is_per_interface("net.ipv4.conf.all.rp_filter"));
        assert!(!is_per_interface("net.ipv4.ip_forward"));
    }

    #[test]
    fn indexes_are_unique_per_namespace_and_start_above_the_kernel_devices() {
        let mut idx = Indexes::default();
        assert_eq!(idx.assign("a", "eth0").unwrap(), FIRST_IFINDEX);
        assert_eq!(idx.assign("b", "eth0").unwrap(), FIRST_IFINDEX);
        assert_eq!(idx.assign("a", "eth1").unwrap(), FIRST_IFINDEX + 1);
        assert!(idx.assign("a", "eth0").is_err());
        assert_eq!(idx.get("a", "lo").unwrap(), 1);
        assert!(idx.get("c", "eth0").is_err());
    }
}
