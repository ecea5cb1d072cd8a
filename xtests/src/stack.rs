//! The process supervisor: starts the stack's components in their namespaces in stages,
//! waits for each readiness check, stops and restarts single components, and tears down.
//!
//! Independent of how the namespaces were made: it gets a namespace handle per node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::component::{Component, Health, Kind};
use crate::datastores::{Postgres, Redis};
use crate::error::LabError;
use crate::http::Request;
use crate::ns::NsHandle;
use crate::pinned::PinnedRoots;
use crate::process::{tail_file, Launch, Lifetime, Process};
use crate::services::Wiring;

/// How long one component may take to become ready: 60 s.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a component may take to stop after SIGTERM before SIGKILL: 10 s.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the supervisor reports while it works (the CLI prints these; tests ignore them).
#[derive(Debug, Clone)]
pub enum Progress {
    /// A component's process was started.
    Started {
        /// The component.
        name: String,
        /// Its process id.
        pid: i32,
    },
    /// Still waiting for a component's readiness check.
    Waiting {
        /// The component.
        name: String,
        /// Time waited so far.
        elapsed: Duration,
        /// The last failure.
        last: String,
    },
    /// A component answered its readiness check.
    Ready {
        /// The component.
        name: String,
        /// Time from start to ready.
        elapsed: Duration,
    },
}

/// Where a progress report goes.
pub type ProgressFn = Box<dyn Fn(&Progress) + Send + Sync>;

/// Called right after a component's process is spawned, before anything else happens, with
/// (component, pid, start time): `lab up` records the pid there. An error stops the process.
pub type SpawnFn = Box<dyn Fn(&str, i32, u64) -> Result<(), LabError> + Send + Sync>;

/// Settings of one stack run.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The run id carried by every process (ECOMM_LAB_RUN).
    pub run_id: String,
    /// The state directory: logs/, postgres/, redis/.
    pub dir: PathBuf,
    /// The `ecomm` binary.
    pub ecomm: PathBuf,
    /// Whether processes die with the starter (tests) or outlive it (`lab up`).
    pub lifetime: Lifetime,
    /// Trade durability for speed (fsync off): for throwaway test stacks.
    pub ephemeral: bool,
    /// Run every process over the pinned images' trees instead of the host's programs
    /// (`lab up --pinned`; see [`crate::pinned`]).
    pub pinned: Option<PinnedRoots>,
}

/// The running stack: components, their namespaces and processes.
pub struct Stack {
    config: StackConfig,
    namespaces: BTreeMap<String, NsHandle>,
    components: Vec<Component>,
    processes: BTreeMap<String, Process>,
    postgres: Postgres,
    redis: Redis,
    wiring: Option<Wiring>,
    registry_ttl: Option<u64>,
    progress: ProgressFn,
    spawned: SpawnFn,
}

impl Stack {
    /// A stack over `components`, each running in `namespaces[component.name]`.
    pub fn new(
        config: StackConfig,
        namespaces: BTreeMap<String, NsHandle>,
        components: Vec<Component>,
    ) -> Result<Self, LabError> {
        let find = |kind: Kind| {
            components
                .iter()
                .find(|c| c.kind == kind)
                .map(|c| c.addr)
                .ok_or_else(|| LabError::UnknownComponent {
                    name: kind.to_string(),
                    known: names(&components),
                })
        };
        for c in &components {
            if !namespaces.contains_key(&c.name) {
                return Err(LabError::Topology(format!(
                    "no namespace for component {} (nodes: {})",
                    c.name,
                    namespaces.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let mut postgres = Postgres::new(
            postgres_dir(&config.dir),
            find(Kind::Postgres)?,
            config.ephemeral,
        );
        let mut redis = Redis::new(config.dir.join("redis"), find(Kind::Redis)?);
        if let Some(roots) = &config.pinned {
            postgres = postgres.pinned(&roots.postgres, &config.dir)?;
            redis = redis.pinned(&roots.redis, &config.dir)?;
        }
        find(Kind::Registry)?;
        Ok(Self {
            config,
            namespaces,
            components,
            processes: BTreeMap::new(),
            postgres,
            redis,
            wiring: None,
            registry_ttl: None,
            progress: Box::new(|_| {}),
            spawned: Box::new(|_, _, _| Ok(())),
        })
    }

    /// Sets the registry lease the services ask for, in seconds (default: the services' own, 10).
    pub fn set_registry_ttl(&mut self, seconds: Option<u64>) {
        self.registry_ttl = seconds;
        self.wiring = None;
    }

    /// Sends progress reports to `f`.
    pub fn on_progress(&mut self, f: ProgressFn) {
        self.progress = f;
    }

    /// Calls `f` right after each spawn with (component, pid, start time); if `f` fails the
    /// process is killed and the spawn fails.
    pub fn on_spawn(&mut self, f: SpawnFn) {
        self.spawned = f;
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.config.run_id
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Every component, in start order.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// One component by name.
    pub fn component(&self, name: &str) -> Result<&Component, LabError> {
        self.components
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| LabError::UnknownComponent {
                name: name.to_string(),
                known: names(&self.components),
            })
    }

    /// The namespace of node `name`.
    pub fn ns(&self, name: &str) -> Result<&NsHandle, LabError> {
        self.namespaces
            .get(name)
            .ok_or_else(|| LabError::UnknownComponent {
                name: name.to_string(),
                known: self
                    .namespaces
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The pinned images' trees the processes run over (`None`: the host's programs).
    pub fn pinned(&self) -> Option<&PinnedRoots> {
        self.config.pinned.as_ref()
    }

    /// The PostgreSQL server of the stack.
    pub fn postgres(&self) -> &Postgres {
        &self.postgres
    }

    /// The Redis server's settings.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The log file of component `name`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        log_path(&self.config.dir, name)
    }

    /// The running processes: component name → (pid, start time).
    pub fn pids(&self) -> BTreeMap<String, (i32, u64)> {
        self.processes
            .iter()
            .map(|(n, p)| (n.clone(), (p.pid(), p.start_time())))
            .collect()
    }

    /// Adds a component (e.g. product-3) whose node namespace is `ns`; start it with [`Stack::start`].
    pub fn add(&mut self, component: Component, ns: NsHandle) {
        self.namespaces.insert(component.name.clone(), ns);
        self.components.retain(|c| c.name != component.name);
        self.components.push(component);
    }

    /// Starts every component, stage by stage, each stage only after the previous is ready.
    pub fn start_all(&mut self) -> Result<(), LabError> {
        let postgres = self
            .components
            .iter()
            .find(|c| c.kind == Kind::Postgres)
            .cloned()
            .ok_or_else(|| LabError::UnknownComponent {
                name: Kind::Postgres.to_string(),
                known: names(&self.components),
            })?;
        let ns = self.ns(&postgres.name)?.clone();
        if !self.is_running(&postgres.name) {
            // What a dead postmaster or a killed initdb left must be gone before the data
            // directory is looked at (an orphaned bootstrap backend may still be writing it).
            clear_leftovers(&postgres, &ns, &self.postgres.data_dir())?;
        }
        self.postgres.prepare(&ns, &self.config.run_id)?;
        self.redis.prepare()?;
        let last = self.components.iter().map(|c| c.stage).max().unwrap_or(0);
        for stage in 0..=last {
            let names: Vec<String> = self
                .components
                .iter()
                .filter(|c| c.stage() == stage)
                .map(|c| c.name.clone())
                .collect();
            for name in &names {
                self.spawn(name)?;
            }
            for name in &names {
                self.wait_ready(name, READY_TIMEOUT)?;
            }
        }
        Ok(())
    }

    /// The runner's share of the services' settings: the registry token (kept in the state
    /// directory, so a restarted lab reuses it). Database credentials are added per service
    /// when its first instance starts ([`Stack::ensure_database`]).
    fn prepare_wiring(&mut self) -> Result<(), LabError> {
        self.wiring = Some(Wiring {
            ecomm: self.config.ecomm.clone(),
            registry_token: secret(&self.config.dir, "registry.token")?,
            db_auth: BTreeMap::new(),
            registry_ttl_seconds: self.registry_ttl,
            confine: self
                .config
                .pinned
                .as_ref()
                .map(|r| r.services.confine(&self.config.dir)),
        });
        Ok(())
    }

    /// Creates the login role and database `c`'s service declares (`data.database`; the role
    /// is named after the database, its password kept in the state directory) and records its
    /// `db_auth`. PostgreSQL must be ready: the declaration's `depends_on` starts it first.
    fn ensure_database(&mut self, c: &Component) -> Result<(), LabError> {
        let Some(db) = c.database() else {
            return Ok(());
        };
        if self
            .wiring
            .as_ref()
            .is_some_and(|w| w.db_auth.contains_key(&c.service))
        {
            return Ok(());
        }
        let ns = self.ns(&self.postgres_node()?)?.clone();
        let password = secret(&self.config.dir, &format!("{db}.password"))?;
        self.postgres
            .ensure_role_and_database(&ns, &self.config.run_id, db, &password, db)?;
        if let Some(w) = self.wiring.as_mut() {
            w.db_auth
                .insert(c.service.clone(), format!("{db}:{password}"));
        }
        Ok(())
    }

    /// The node PostgreSQL runs on.
    fn postgres_node(&self) -> Result<String, LabError> {
        self.components
            .iter()
            .find(|c| c.kind == Kind::Postgres)
            .map(|c| c.name.clone())
            .ok_or_else(|| LabError::UnknownComponent {
                name: "postgres".into(),
                known: names(&self.components),
            })
    }

    /// The database declared for `service` ("product" → "products").
    pub fn database(&self, service: &str) -> Result<String, LabError> {
        self.components
            .iter()
            .find(|c| c.service == service)
            .and_then(|c| c.database())
            .map(str::to_string)
            .ok_or_else(|| LabError::Invalid {
                what: "service with a database".into(),
                value: service.to_string(),
                expected: format!(
                    "one of [{}] (services declaring data.database)",
                    self.components
                        .iter()
                        .filter(|c| c.database().is_some())
                        .map(|c| c.service.as_str())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    fn launch_of(&mut self, c: &Component) -> Result<Launch, LabError> {
        match c.kind {
            Kind::Postgres => {
                let dir = self.postgres.data_dir();
                self.postgres.launch(&declared_command(c, &dir)?)
            }
            Kind::Redis => self.redis.launch(&declared_command(c, &self.redis.dir)?),
            _ => {
                if self.wiring.is_none() {
                    self.prepare_wiring()?;
                }
                self.ensure_database(c)?;
                self.wiring
                    .as_ref()
                    .map(|w| w.launch(c))
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| LabError::Topology(format!("no launch for {}", c.name)))
            }
        }
    }

    /// Starts component `name`'s process (no waiting); an already running one is left alone.
    pub fn spawn(&mut self, name: &str) -> Result<(), LabError> {
        if let Some(p) = self.processes.get_mut(name) {
            if p.is_running() {
                return Ok(());
            }
        }
        let c = self.component(name)?.clone();
        let launch = self.launch_of(&c)?;
        let ns = self.ns(name)?.clone();
        clear_leftovers(&c, &ns, &self.postgres.data_dir())?;
        if c.kind == Kind::Postgres {
            clear_stale_postmaster_lock(&self.postgres.data_dir())?;
        }
        mark_log(&self.log_path(name), name, &self.config.run_id);
        let mut process = launch.spawn(
            Some(&ns),
            &self.log_path(name),
            self.config.lifetime,
            &self.config.run_id,
        )?;
        if let Err(e) = (self.spawned)(name, process.pid(), process.start_time()) {
            process.kill();
            return Err(e);
        }
        (self.progress)(&Progress::Started {
            name: name.to_string(),
            pid: process.pid(),
        });
        self.processes.insert(name.to_string(), process);
        Ok(())
    }

    /// Starts component `name` and waits until it is ready.
    pub fn start(&mut self, name: &str) -> Result<(), LabError> {
        self.spawn(name)?;
        self.wait_ready(name, READY_TIMEOUT)
    }

    /// Waits until component `name` passes its readiness check, failing early if it exits.
    pub fn wait_ready(&mut self, name: &str, timeout: Duration) -> Result<(), LabError> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        loop {
            if let Some(p) = self.processes.get_mut(name) {
                if !p.is_running() {
                    return Err(LabError::Exited {
                        component: name.to_string(),
                        status: p.exit_status().unwrap_or_else(|| "gone".into()),
                        log: self.log_path(name),
                        tail: tail_file(&self.log_path(name), 20),
                    });
                }
            }
            let last = match self.check(name)? {
                Health::Ready => {
                    (self.progress)(&Progress::Ready {
                        name: name.to_string(),
                        elapsed: started.elapsed(),
                    });
                    return Ok(());
                }
                Health::NotReady(why) => why,
                Health::Down => "no process".to_string(),
            };
            if started.elapsed() > timeout {
                return Err(LabError::NotReady {
                    component: name.to_string(),
                    waited: started.elapsed(),
                    last,
                    log: self.log_path(name),
                    tail: tail_file(&self.log_path(name), 20),
                });
            }
            if last_report.elapsed() > Duration::from_secs(2) {
                last_report = Instant::now();
                (self.progress)(&Progress::Waiting {
                    name: name.to_string(),
                    elapsed: started.elapsed(),
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs component `name`'s readiness check once, from inside its own namespace.
    pub fn check(&self, name: &str) -> Result<Health, LabError> {
        let c = self.component(name)?;
        let ns = self.ns(name)?;
        Ok(check_component(
            c,
            ns,
            &self.postgres,
            &self.redis,
            &self.config.run_id,
        ))
    }

    /// Stops component `name` gracefully (SIGTERM, SIGKILL after [`STOP_GRACE`]).
    pub fn stop(&mut self, name: &str) -> Result<(), LabError> {
        let c = self.component(name)?;
        // PostgreSQL: SIGINT is its "fast shutdown" (disconnect clients, checkpoint, exit).
        let signal = if c.kind == Kind::Postgres {
            Signal::SIGINT
        } else {
            Signal::SIGTERM
        };
        if let Some(mut p) = self.processes.remove(name) {
            p.stop(signal, STOP_GRACE);
        }
        Ok(())
    }

    /// Kills component `name` at once with SIGKILL (a crash).
    pub fn kill(&mut self, name: &str) -> Result<(), LabError> {
        self.component(name)?;
        if let Some(mut p) = self.processes.remove(name) {
            p.kill();
        }
        Ok(())
    }

    /// Stops every component, in reverse start order (gateway first, data stores last).
    pub fn stop_all(&mut self) {
        let mut order: Vec<Component> = self.components.clone();
        order.sort_by_key(|c| std::cmp::Reverse(c.stage()));
        for c in order {
            let _ = self.stop(&c.name);
        }
    }

    /// Forgets the processes without stopping them (after `lab up`, which leaves them running).
    pub fn detach(&mut self) {
        self.processes.clear();
    }

    /// Re-attaches to processes recorded by an earlier `lab up` (those still alive).
    pub fn adopt(&mut self, pids: &BTreeMap<String, (i32, u64)>) {
        for (name, (pid, start)) in pids {
            if let Some(p) = Process::adopt(*pid, *start) {
                self.processes.insert(name.clone(), p);
            }
        }
    }

    /// True if component `name` has a live process.
    pub fn is_running(&mut self, name: &str) -> bool {
        self.processes
            .get_mut(name)
            .is_some_and(Process::is_running)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.config.lifetime == Lifetime::TiedToParent {
            self.stop_all();
        }
    }
}

/// Stops whatever an earlier process of component `c` left inside its node's namespace (each
/// node runs one component): e.g. PostgreSQL backends, which are session leaders of their own
/// and outlive a SIGKILLed postmaster for a moment, holding its lock file and shared memory,
/// or a whole server a killed driver started but never recorded. Gracefully first (SIGINT,
/// PostgreSQL's fast shutdown; SIGTERM for the rest), SIGKILL after [`STOP_GRACE`].
fn clear_leftovers(c: &Component, ns: &NsHandle, postgres_data_dir: &Path) -> Result<(), LabError> {
    let inodes = std::collections::BTreeSet::from([ns.inode()?]);
    let signal = stop_signals(c.kind, &inodes, postgres_data_dir);
    crate::process::stop_all_in(&inodes, signal, STOP_GRACE)
        .map(|_| ())
        .map_err(|left| {
            LabError::Unhealthy(format!(
                "cannot start {}: processes {left:?} of an earlier run stay in namespace {} after SIGKILL",
                c.name,
                ns.name()
            ))
        })
}

/// The pid the lock file of the PostgreSQL data directory `data_dir` names (the postmaster
/// that holds, or held, the directory).
pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// How to stop what runs in the namespace `inodes` of a component of `kind` quickly and
/// cleanly: SIGTERM to each process; for PostgreSQL, SIGINT (its fast shutdown: SIGTERM would
/// wait for every client) to a live postmaster only, which stops its own children, and
/// SIGTERM to backends a dead postmaster orphaned (SIGINT would only cancel their query).
pub fn stop_signals(
    kind: Kind,
    inodes: &std::collections::BTreeSet<u64>,
    postgres_data_dir: &Path,
) -> impl Fn(i32) -> Option<Signal> {
    let postmaster = (kind == Kind::Postgres)
        .then(|| postmaster_pid(postgres_data_dir))
        .flatten()
        .filter(|pid| crate::process::processes_in_namespaces(inodes).contains(pid));
    move |pid| match postmaster {
        Some(p) if p == pid => Some(Signal::SIGINT),
        Some(_) => None,
        None => Some(Signal::SIGTERM),
    }
}

/// Makes a lock file left by a SIGKILLed postmaster harmless: waits (at most 5 s) while the
/// pid it names is a zombie not yet reaped, and removes the file when that pid now belongs
/// to an unrelated process (pid reuse would make PostgreSQL refuse to start). Called only
/// after every process of the postgres node's namespace is gone, so no postmaster owns it.
fn clear_stale_postmaster_lock(data_dir: &Path) -> Result<(), LabError> {
    let lock = data_dir.join("postmaster.pid");
    let Some(pid) = postmaster_pid(data_dir) else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while crate::process::is_zombie(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if crate::process::start_time(pid).is_some() {
        match std::fs::remove_file(&lock) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LabError::io(format!("remove {}", lock.display()), e)),
        }
    }
    Ok(())
}

/// Appends a line marking a (re)start to a component's log, so runs are told apart.
fn mark_log(log: &Path, name: &str, run_id: &str) {
    use std::io::Write;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(
            f,
            "==== lab run {run_id}: starting {name} (unix time {stamp}) ===="
        );
    }
}

/// The secret `name` kept in `dir` (created with 128 random bits on first use).
fn secret(dir: &Path, name: &str) -> Result<String, LabError> {
    let path = dir.join(name);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_string());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| LabError::io(format!("create {}", dir.display()), e))?;
    let value = crate::datastores::random_hex(16)?;
    write_private(&path, &value)?;
    Ok(value)
}

/// Writes `text` to a new file readable by its owner only (mode 0600).
pub fn write_private(path: &Path, text: &str) -> Result<(), LabError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| LabError::io(format!("write {}", path.display()), e))
}

/// PostgreSQL's directory (data/, socket/, password) under state directory `dir`.
pub fn postgres_dir(dir: &Path) -> PathBuf {
    dir.join("postgres")
}

/// The log file of component `name` under state directory `dir`.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}

/// One readiness check of component `c` from inside `ns`: `/readyz` for services, `SELECT 1`
/// for PostgreSQL, `PING` for Redis.
pub fn check_component(
    c: &Component,
    ns: &NsHandle,
    postgres: &Postgres,
    redis: &Redis,
    run_id: &str,
) -> Health {
    let timeout = Duration::from_secs(2);
    match c.kind {
        Kind::Postgres => match postgres.query(ns, run_id, "postgres", "SELECT 1") {
            Ok(out) if out == "1" => Health::Ready,
            Ok(out) => Health::NotReady(format!("SELECT 1 answered {out:?}")),
            Err(e) => Health::NotReady(e.to_string()),
        },
        Kind::Redis => match redis.ping().output(Some(ns), run_id) {
            Ok(out) if out.trim() == "PONG" => Health::Ready,
            Ok(out) => Health::NotReady(format!("PING answered {:?}", out.trim())),
            Err(e) => Health::NotReady(e.to_string()),
        },
        _ => http_ready(
            ns,
            c.addr,
            c.ready_path.as_deref().unwrap_or("/readyz"),
            timeout,
        ),
    }
}

fn http_ready(ns: &NsHandle, addr: SocketAddr, path: &str, timeout: Duration) -> Health {
    match Request::get(path).timeout(timeout).send(ns, addr) {
        Ok(r) if r.status == 200 => Health::Ready,
        Ok(r) => Health::NotReady(format!("{path} answered {}: {}", r.status, r.text().trim())),
        Err(e) => Health::NotReady(e.to_string()),
    }
}

fn names(components: &[Component]) -> String {
    components
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A data store's declared command with the runtime `${data_dir}` filled in (its other
/// placeholders were resolved from the declaration when the component was made).
fn declared_command(c: &Component, data_dir: &Path) -> Result<Vec<String>, LabError> {
    let vars = BTreeMap::from([("data_dir".to_string(), data_dir.display().to_string())]);
    c.command
        .iter()
        .enumerate()
        .map(|(k, a)| {
            netns_kit::topology::service::substitute(&format!("{}.command[{k}]", c.name), a, &vars)
                .map_err(|e| LabError::Topology(e.to_string()))
        })
        .collect()
}
