//! The netns backend: [`Deployment`] over the [`Lab`] fixture — the declaration applied in
//! anonymous namespaces on this host, its processes supervised by this process.
//!
//! A lab's processes die with the thread that started them (`PR_SET_PDEATHSIG`), so one
//! dedicated owner thread builds the lab and runs every start and stop; the scenarios' own
//! threads (a test's, a load thread, parallel probes) only read it. Dropping the deployment
//! ends the owner thread, which tears the lab down.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use netns_kit::topology::Topology;

use crate::deployment::{Backend, Capabilities, DeployError, Deployment, Listener};
use crate::error::LabError;
use crate::http::{Request, Response};
use crate::lab::{Lab, REGISTRY_TTL_SECONDS};
use crate::ns::TcpOutcome;

/// The `ecomm` binary labs started here use, when set (see [`use_ecomm`]).
static ECOMM: OnceLock<PathBuf> = OnceLock::new();

/// Makes every netns deployment started after this use `ecomm` (the `lab` binary passes the
/// one beside it); otherwise [`Lab`]'s default applies (`$ECOMM_BIN`, else built with cargo).
/// The first call wins.
pub fn use_ecomm(ecomm: PathBuf) {
    let _ = ECOMM.set(ecomm);
}

/// What the owner thread does for the others.
enum Command {
    Start(String),
    Stop(String),
}

type Reply = Sender<Result<(), LabError>>;

/// A running netns lab of one declaration; see the module docs.
pub struct NetnsDeployment {
    lab: Option<Arc<RwLock<Lab>>>,
    topology: Topology,
    run_id: String,
    commands: Mutex<Option<Sender<(Command, Reply)>>>,
    owner: Option<JoinHandle<()>>,
}

impl NetnsDeployment {
    /// Applies `file` in fresh anonymous namespaces and starts every declared service, each
    /// waited for until ready.
    pub fn start(file: &Path) -> Result<Self, DeployError> {
        Self::start_with(file, false)
    }

    /// [`NetnsDeployment::start`] with every process run over the pinned images' trees
    /// instead of the host's programs (see [`crate::pinned`]).
    pub fn start_pinned(file: &Path) -> Result<Self, DeployError> {
        Self::start_with(file, true)
    }

    fn start_with(file: &Path, pinned: bool) -> Result<Self, DeployError> {
        let file = file.to_path_buf();
        let (ready_tx, ready_rx) = channel();
        let (tx, rx) = channel::<(Command, Reply)>();
        let owner = std::thread::Builder::new()
            .name("netns-lab-owner".into())
            .spawn(move || {
                let mut builder = Lab::builder().topology(&file);
                if let Some(ecomm) = ECOMM.get() {
                    builder = builder.ecomm(ecomm);
                }
                if pinned {
                    builder = builder.pinned();
                }
                let lab = match builder.start() {
                    Ok(lab) => Arc::new(RwLock::new(lab)),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if ready_tx.send(Ok(Arc::clone(&lab))).is_err() {
                    return;
                }
                for (command, reply) in rx {
                    let mut lab = lab.write().unwrap_or_else(PoisonError::into_inner);
                    let result = match command {
                        Command::Start(name) => lab.start_component(&name),
                        Command::Stop(name) => lab.stop(&name),
                    };
                    drop(lab);
                    let _ = reply.send(result);
                }
                // The channel closed: the deployment was dropped. This thread holds the last
                // reference, so the lab is torn down here, where its processes were started.
            })
            .map_err(|e| failed("start the lab", e))?;
        let lab = match ready_rx.recv() {
            Ok(Ok(lab)) => lab,
            Ok(Err(e)) => {
                let _ = owner.join();
                return Err(failed("start the lab", e));
            }
            Err(_) => {
                let _ = owner.join();
                return Err(failed("start the lab", "the owner thread died"));
            }
        };
        let (topology, run_id) = {
            let l = lab.read().unwrap_or_else(PoisonError::into_inner);
            (l.topology().clone(), l.run_id().to_string())
        };
        Ok(Self {
            lab: Some(lab),
            topology,
            run_id,
            commands: Mutex::new(Some(tx)),
            owner: Some(owner),
        })
    }

    /// For a pinned deployment: checks every running component with
    /// [`crate::pinned::verify`] and returns one line per component; `Err` names the first
    /// that does not run its image's program over its image's tree (or a deployment that is
    /// not pinned).
    pub fn verify_pinned(&self) -> Result<Vec<String>, String> {
        let lab = self.lab().map_err(|e| e.to_string())?;
        let roots = lab
            .pinned()
            .ok_or("the deployment runs the host's programs, not pinned images")?;
        let pids = lab.pids();
        let mut lines = Vec::new();
        for c in lab.components() {
            let (pid, _) = pids
                .get(&c.name)
                .ok_or_else(|| format!("{} is not running", c.name))?;
            let line = crate::pinned::verify(
                *pid,
                roots.for_kind(c.kind),
                &crate::pinned::program_of(c.kind),
            )
            .map_err(|e| format!("{}: {e}", c.name))?;
            lines.push(format!("{}: {line}", c.name));
        }
        Ok(lines)
    }

    /// Tears the deployment down now and returns whatever of it is still on the machine:
    /// processes, namespaces, the state directory (empty = clean).
    pub fn shutdown(self) -> Vec<String> {
        let (footprint, dir) = match self.lab() {
            Ok(l) => (l.footprint(), l.dir().to_path_buf()),
            Err(e) => return vec![e.to_string()],
        };
        drop(self);
        let mut left = footprint.leftovers();
        if std::env::var_os("ECOMM_LAB_KEEP").is_none() && dir.exists() {
            left.push(format!("state directory {} still exists", dir.display()));
        }
        left
    }

    fn lab(&self) -> Result<RwLockReadGuard<'_, Lab>, DeployError> {
        self.lab
            .as_ref()
            .map(|l| l.read().unwrap_or_else(PoisonError::into_inner))
            .ok_or_else(|| failed("use the lab", "it was torn down"))
    }

    /// Runs `command` on the owner thread and waits for its result.
    fn on_owner(&self, command: Command, what: String) -> Result<(), DeployError> {
        let (reply, result) = channel();
        let sent = self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|tx| tx.send((command, reply)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(failed(&what, "the lab's owner thread is gone"));
        }
        match result.recv() {
            Ok(r) => r.map_err(|e| lab_error(&what, e)),
            Err(_) => Err(failed(&what, "the lab's owner thread is gone")),
        }
    }

    /// The address of node `node` (its first interface), from the declaration.
    fn node_address(&self, node: &str) -> Result<std::net::IpAddr, DeployError> {
        self.topology
            .node(node)
            .and_then(|n| n.interfaces.first())
            .map(|i| i.address)
            .ok_or_else(|| DeployError::UnknownComponent {
                name: node.to_string(),
                known: self
                    .topology
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl Drop for NetnsDeployment {
    fn drop(&mut self) {
        // Our reference first, then the channel: the owner thread drops the last one.
        self.lab = None;
        self.commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
    }
}

impl Deployment for NetnsDeployment {
    fn backend(&self) -> Backend {
        Backend::Netns
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The gateway sees a killed process's connections refused at once and retries the
    /// request on another instance: no request may fail at all.
    fn ejection_bound(&self) -> Duration {
        Duration::ZERO
    }

    fn registry_lease(&self) -> Duration {
        Duration::from_secs(REGISTRY_TTL_SECONDS)
    }

    fn log_tail(&self, name: &str, lines: usize) -> Option<String> {
        self.lab().ok().map(|l| l.log_tail(name, lines))
    }

    fn send(&self, req: &Request) -> Result<Response, DeployError> {
        self.lab()?
            .send(req)
            .map_err(|e| lab_error(&format!("{} {}", req.method, req.path), e))
    }

    fn stop(&self, name: &str) -> Result<(), DeployError> {
        self.lab()?.addr(name).map_err(|e| lab_error("stop", e))?;
        self.on_owner(Command::Stop(name.into()), format!("stop {name}"))
    }

    fn kill(&self, name: &str) -> Result<(), DeployError> {
        self.lab()?
            .crash(name)
            .map_err(|e| lab_error(&format!("kill {name}"), e))
    }

    fn start(&self, name: &str) -> Result<(), DeployError> {
        self.lab()?.addr(name).map_err(|e| lab_error("start", e))?;
        self.on_owner(Command::Start(name.into()), format!("start {name}"))
    }

    fn tcp_probe(
        &self,
        from: &str,
        to: SocketAddr,
        deadline: Duration,
    ) -> Result<TcpOutcome, DeployError> {
        self.lab()?
            .tcp(from, to, deadline)
            .map_err(|e| lab_error(&format!("probe {to} from {from}"), e))
    }

    fn listen(&self, node: &str, port: u16) -> Result<Box<dyn Listener>, DeployError> {
        let addr = SocketAddr::new(self.node_address(node)?, port);
        let what = format!("listen on {addr} in {node}");
        let listener = self
            .lab()?
            .ns(node)
            .map_err(|e| lab_error(&what, e))?
            .run(move || TcpListener::bind(addr))
            .map_err(|e| lab_error(&what, e))?
            .map_err(|e| failed(&what, e))?;
        Ok(Box::new(listener))
    }

    fn sql(&self, database: &str, sql: &str) -> Result<String, DeployError> {
        self.lab()?
            .sql(database, sql)
            .map_err(|e| lab_error(&format!("SQL on {database}"), e))
    }

    fn metrics(&self, name: &str) -> Result<String, DeployError> {
        self.lab()?
            .metrics(name)
            .map_err(|e| lab_error(&format!("metrics of {name}"), e))
    }

    fn registry_instances(&self, service: &str) -> Result<Vec<String>, DeployError> {
        self.lab()?
            .registry_instances(service)
            .map_err(|e| lab_error(&format!("registry instances of {service}"), e))
    }
}

fn failed(what: &str, reason: impl std::fmt::Display) -> DeployError {
    DeployError::Failed {
        backend: Backend::Netns.to_string(),
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

fn lab_error(what: &str, e: LabError) -> DeployError {
    match e {
        LabError::UnknownComponent { name, known } => DeployError::UnknownComponent { name, known },
        e => failed(what, e),
    }
}
