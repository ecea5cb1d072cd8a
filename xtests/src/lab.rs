//! [`Lab`]: the whole stack for one test — the three-tier topology in anonymous namespaces
//! (no host link), PostgreSQL and Redis in the database tier, registry, two product
//! instances, one order instance and the gateway — with a unique run id, torn down on drop
//! even when the test panics.
//!
//! ```no_run
//! use xtests::{Lab, http::Request};
//! if !xtests::privileged("the lab") { return; }
//! let lab = Lab::start().unwrap();
//! let products = lab.get("/api/products").unwrap();
//! assert_eq!(products.status, 200);
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::component::{Component, Health, Kind};
use crate::error::LabError;
use crate::footprint::{register_live, unregister_live, Footprint};
use crate::http::{Request, Response};
use crate::live::{LiveLab, Mode};
use crate::ns::{NsHandle, TcpOutcome};
use crate::process::{tail_file, Lifetime};
use crate::stack::{Stack, StackConfig};
use crate::topology_file;

/// The registry lease of test labs, in seconds (short, so a crashed instance leaves soon).
pub const REGISTRY_TTL_SECONDS: u64 = 3;

/// Settings for a [`Lab`]; [`Lab::start`] uses the defaults.
#[derive(Debug, Clone)]
pub struct LabBuilder {
    topology: PathBuf,
    products: u8,
    ecomm: Option<PathBuf>,
    start_services: bool,
    without: Vec<String>,
    pinned: bool,
}

impl Default for LabBuilder {
    fn default() -> Self {
        Self {
            topology: topology_file::shared_file(),
            products: 2,
            ecomm: None,
            start_services: true,
            without: Vec::new(),
            pinned: false,
        }
    }
}

impl LabBuilder {
    /// Use another topology file (default: the shared three-tier.toml).
    pub fn topology(mut self, file: impl Into<PathBuf>) -> Self {
        self.topology = file.into();
        self
    }

    /// Provision product slots up to `product-<n>` (default 2, as the file declares).
    pub fn product_slots(mut self, n: u8) -> Self {
        self.products = n;
        self
    }

    /// Use this `ecomm` binary (default: `$ECOMM_BIN`, else built with cargo once per process).
    pub fn ecomm(mut self, path: impl Into<PathBuf>) -> Self {
        self.ecomm = Some(path.into());
        self
    }

    /// Leave component `name` out (its node exists, nothing runs there). Default: run all.
    pub fn without(mut self, name: &str) -> Self {
        self.without.push(name.to_string());
        self
    }

    /// Run every process over the pinned images' trees (see [`crate::pinned`]) instead of the
    /// host's programs. Default: the host's.
    pub fn pinned(mut self) -> Self {
        self.pinned = true;
        self
    }

    /// Build the topology only; start no process (policy tests). Default: start everything.
    pub fn network_only(mut self) -> Self {
        self.start_services = false;
        self
    }

    /// Applies the topology and starts the stack; everything is undone if a step fails.
    pub fn start(self) -> Result<Lab, LabError> {
        let run_id = new_run_id()?;
        let dir = std::env::temp_dir().join(format!("ecomm-lab-{run_id}"));
        let (_, topology) = topology_file::load(&self.topology, self.products)?;
        let live = LiveLab::apply(&topology, Mode::Anonymous, &run_id)?;
        let namespaces = live.namespaces()?;
        let mut footprint = Footprint {
            run_id: run_id.clone(),
            ..Footprint::default()
        };
        for ns in namespaces.values() {
            footprint.ns_inodes.insert(ns.inode()?);
        }
        register_live(&footprint.ns_inodes);
        let components: Vec<Component> = crate::component::from_topology(&topology)?
            .into_iter()
            .filter(|c| !self.without.contains(&c.name))
            .collect();
        let ecomm = match self.ecomm {
            Some(p) => p,
            None if self.start_services => ecomm_binary()?,
            None => PathBuf::from("ecomm"),
        };
        let pinned = match self.pinned {
            true => Some(crate::pinned::PinnedRoots::build(&ecomm)?),
            false => None,
        };
        let config = StackConfig {
            run_id: run_id.clone(),
            dir: dir.clone(),
            ecomm,
            lifetime: Lifetime::TiedToParent,
            ephemeral: true,
            pinned,
        };
        let mut stack = Stack::new(config, namespaces.clone(), components)?;
        let id = run_id.clone();
        stack.on_progress(Box::new(move |p| eprintln!("lab {id}: {p:?}")));
        stack.set_registry_ttl(Some(REGISTRY_TTL_SECONDS));
        let mut lab = Lab {
            stack,
            topology,
            live: Some(live),
            namespaces,
            footprint,
            dir,
        };
        if self.start_services {
            // On failure `lab` drops here: processes stopped, namespaces deleted.
            lab.stack_mut().start_all()?;
        }
        Ok(lab)
    }
}

/// The running three-tier stack of one test. Dropping it stops every process and deletes
/// every namespace; if the test panicked, the last log lines of each component are printed.
pub struct Lab {
    stack: Stack,
    topology: netns_kit::topology::Topology,
    live: Option<LiveLab>,
    namespaces: BTreeMap<String, NsHandle>,
    footprint: Footprint,
    dir: PathBuf,
}

impl Lab {
    /// The default lab: the shared three-tier topology, every component started and ready.
    pub fn start() -> Result<Lab, LabError> {
        LabBuilder::default().start()
    }

    /// Settings for a non-default lab.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    fn stack(&self) -> &Stack {
        &self.stack
    }

    fn stack_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }

    /// The resolved declaration this lab runs (with any spare product slots added).
    pub fn topology(&self) -> &netns_kit::topology::Topology {
        &self.topology
    }

    /// The run id (in every process's environment and every kernel object's name or alias).
    pub fn run_id(&self) -> &str {
        &self.footprint.run_id
    }

    /// The pinned images' trees the processes run over (`None`: the host's programs).
    pub fn pinned(&self) -> Option<&crate::pinned::PinnedRoots> {
        self.stack().pinned()
    }

    /// Each running component's (pid, start time).
    pub fn pids(&self) -> BTreeMap<String, (i32, u64)> {
        self.stack().pids()
    }

    /// What this run created, for a leak check after drop.
    pub fn footprint(&self) -> Footprint {
        let mut f = self.footprint.clone();
        f.pids.extend(self.stack().pids().into_values());
        f
    }

    /// The state directory (logs/, postgres/, redis/); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The namespace of node `node` ("gateway", "router", "fabric", "product-1", …).
    pub fn ns(&self, node: &str) -> Result<&NsHandle, LabError> {
        self.namespaces
            .get(node)
            .ok_or_else(|| LabError::UnknownComponent {
                name: node.to_string(),
                known: self
                    .namespaces
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Where component `name` listens.
    pub fn addr(&self, name: &str) -> Result<SocketAddr, LabError> {
        Ok(self.stack().component(name)?.addr)
    }

    /// Every component.
    pub fn components(&self) -> &[Component] {
        self.stack().components()
    }

    /// Sends `req` from node `from`'s namespace to component `to`.
    pub fn request(&self, from: &str, to: &str, req: &Request) -> Result<Response, LabError> {
        req.send(self.ns(from)?, self.addr(to)?)
    }

    /// GET `path` through the gateway, sent from the frontend tier (the gateway's node).
    pub fn get(&self, path: &str) -> Result<Response, LabError> {
        self.request("gateway", "gateway", &Request::get(path))
    }

    /// Sends `req` through the gateway from the frontend tier.
    pub fn send(&self, req: &Request) -> Result<Response, LabError> {
        self.request("gateway", "gateway", req)
    }

    /// The Prometheus text of component `name`, fetched inside its own namespace.
    pub fn metrics(&self, name: &str) -> Result<String, LabError> {
        Ok(self.request(name, name, &Request::get("/metrics"))?.text())
    }

    /// The instance ids the registry currently resolves for `service` ("product", "order").
    pub fn registry_instances(&self, service: &str) -> Result<Vec<String>, LabError> {
        let path = format!("/v1/services/{service}");
        let addr = self.addr("registry")?;
        let resp = self.request("registry", "registry", &Request::get(&path))?;
        let json = resp.json().map_err(|e| LabError::Http {
            method: "GET".into(),
            addr,
            path: path.clone(),
            reason: format!("not JSON ({e}): {}", resp.text()),
        })?;
        Ok(crate::deployment::instance_ids(&json))
    }

    /// A TCP connection attempt from node `from` to `addr` with a deadline.
    pub fn tcp(
        &self,
        from: &str,
        addr: SocketAddr,
        deadline: Duration,
    ) -> Result<TcpOutcome, LabError> {
        self.ns(from)?.probe_tcp(addr, deadline)
    }

    /// The database the declaration gives `service` (`data.database`): "order" → "orders".
    pub fn database(&self, service: &str) -> Result<String, LabError> {
        self.stack().database(service)
    }

    /// Runs `sql` against `database` with psql from inside the postgres node; trimmed output.
    pub fn sql(&self, database: &str, sql: &str) -> Result<String, LabError> {
        let stack = self.stack();
        stack
            .postgres()
            .query(self.ns("postgres")?, self.run_id(), database, sql)
    }

    /// Component `name`'s readiness right now.
    pub fn health(&self, name: &str) -> Result<Health, LabError> {
        self.stack().check(name)
    }

    /// Crashes component `name` (SIGKILL to its whole process group).
    pub fn kill(&mut self, name: &str) -> Result<(), LabError> {
        self.stack_mut().kill(name)
    }

    /// Crashes component `name` without waiting (SIGKILL to its process group); usable while
    /// other threads send requests through the lab. Restart it with [`Lab::start_component`].
    pub fn crash(&self, name: &str) -> Result<(), LabError> {
        let (pid, _) =
            self.stack()
                .pids()
                .remove(name)
                .ok_or_else(|| LabError::UnknownComponent {
                    name: name.to_string(),
                    known: self
                        .stack()
                        .pids()
                        .into_keys()
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| LabError::io(format!("SIGKILL {name} (pid {pid})"), e.into()))?;
        // Returns once it is dead (a zombie until the supervisor reaps it), at most 5 s.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !crate::process::is_zombie(pid)
            && crate::process::start_time(pid).is_some()
            && std::time::Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Stops component `name` gracefully (SIGTERM; SIGINT for PostgreSQL).
    pub fn stop(&mut self, name: &str) -> Result<(), LabError> {
        self.stack_mut().stop(name)
    }

    /// Starts component `name` again and waits until it is ready. Like every process of a test
    /// lab, it is killed when the thread that started it exits: call this from the test's thread.
    pub fn start_component(&mut self, name: &str) -> Result<(), LabError> {
        self.stack_mut().start(name)
    }

    /// The last `n` lines of component `name`'s log.
    pub fn log_tail(&self, name: &str, n: usize) -> String {
        tail_file(&self.stack().log_path(name), n)
    }

    /// Requests component `name` has served on routes starting with `route_prefix` (from its
    /// `http_requests_total` metric; a restarted process counts from zero).
    pub fn requests_served(&self, name: &str, route_prefix: &str) -> Result<u64, LabError> {
        let text = self.metrics(name)?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("http_requests_total{"))
            .filter(|l| l.contains(&format!("route=\"{route_prefix}")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }

    /// Tears the lab down now and returns whatever of it is still on the machine (empty = clean).
    pub fn shutdown(self) -> Vec<String> {
        let footprint = self.footprint();
        drop(self);
        footprint.leftovers()
    }

    /// Every component of `kind`.
    pub fn of_kind(&self, kind: Kind) -> Vec<String> {
        self.components()
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.name.clone())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for c in self.stack.components() {
                eprintln!(
                    "--- lab {}: last lines of {} ---\n{}",
                    self.footprint.run_id,
                    c.name,
                    tail_file(&self.stack.log_path(&c.name), 15)
                );
            }
        }
        self.stack.stop_all();
        self.namespaces.clear();
        if let Some(live) = self.live.take() {
            if let Err(e) = live.destroy() {
                eprintln!("lab {}: teardown: {e}", self.footprint.run_id);
            }
        }
        unregister_live(&self.footprint.ns_inodes);
        if std::env::var_os("ECOMM_LAB_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A fresh run id: 8 random lowercase hex digits (netns-kit's run id format).
fn new_run_id() -> Result<String, LabError> {
    crate::datastores::random_hex(4)
}

/// True when the process may build the lab (root). Otherwise says why the test is skipped and
/// returns false — except with `ECOMM_REQUIRE_ALL=1`, where it panics: missing root is a failure.
pub fn privileged(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("ECOMM_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ECOMM_REQUIRE_ALL=1 is set");
    }
    eprintln!("skipped: {what} needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)");
    false
}

/// The `ecomm` binary: `$ECOMM_BIN`, else `cargo build -p ecomm-services --bin ecomm` once.
pub fn ecomm_binary() -> Result<PathBuf, LabError> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(p) = std::env::var_os("ECOMM_BIN") {
        return Ok(PathBuf::from(p));
    }
    BUILT
        .get_or_init(build_ecomm)
        .clone()
        .map_err(|output| LabError::Command {
            command: "cargo build -p ecomm-services --bin ecomm".into(),
            status: "failed".into(),
            output,
        })
}

fn build_ecomm() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "-p", "ecomm-services", "--bin", "ecomm"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json");
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(|e| format!("run cargo: {e}"))?;
    if !out.status.success() {
        return Err(crate::process::last_lines(
            &String::from_utf8_lossy(&out.stderr),
            30,
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "ecomm")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built no `ecomm` executable".to_string())
}
