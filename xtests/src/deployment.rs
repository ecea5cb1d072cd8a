//! One running deployment of the declaration, whichever backend carries it.
//!
//! The scenarios (`crate::scenarios`) are written once against [`Deployment`]; the netns lab,
//! the Docker Compose stack and the VM cluster each implement it. Components are named by
//! their declared node (`product-1`, `redis`, `postgres`, …); everything a scenario needs to
//! know about the shape (which product instances exist, which database the order service
//! uses, which ports the policy opens) it reads from [`Deployment::topology`], never from a
//! table of its own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use netns_kit::topology::Topology;

use crate::http::{Request, Response};
use crate::ns::TcpOutcome;

/// Which backend carries a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// Network namespaces on this host (netns-kit), the `lab` driver's processes.
    Netns,
    /// The Docker Compose stack generated from the declaration.
    Docker,
    /// QEMU VMs, one per placement host, each applying its share with netns-kit.
    Vm,
}

impl Backend {
    /// Every backend, in matrix column order.
    pub const ALL: [Backend; 3] = [Backend::Netns, Backend::Docker, Backend::Vm];

    /// The name used on the command line and in the matrix: `netns`, `docker`, `vm`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Netns => "netns",
            Backend::Docker => "docker",
            Backend::Vm => "vm",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = DeployError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| DeployError::Unsupported {
                backend: s.to_string(),
                what: "backend (expected netns, docker or vm)".into(),
            })
    }
}

/// What a backend can do beyond the common operations; scenarios that need more are
/// reported "not applicable" there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Deployment::kill_host`] and [`Deployment::restart_host`] work (several hosts exist).
    pub host_faults: bool,
    /// [`Deployment::partition_host`] and [`Deployment::heal_host`] work.
    pub partitions: bool,
}

/// Why an operation on a deployment failed. Every variant names the thing it was about.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The declaration names no such component (node) or service.
    #[error("no component {name:?} in the declaration (expected one of: {known})")]
    UnknownComponent {
        /// The name asked for.
        name: String,
        /// The declared names, comma-separated.
        known: String,
    },
    /// The backend cannot do this at all (e.g. a host fault on the netns backend).
    #[error("the {backend} backend cannot {what}")]
    Unsupported {
        /// The backend.
        backend: String,
        /// What was asked.
        what: String,
    },
    /// The operation was attempted and failed.
    #[error("{backend}: {what}: {reason}")]
    Failed {
        /// The backend.
        backend: String,
        /// What was being done, e.g. "start product-1".
        what: String,
        /// Why it failed.
        reason: String,
    },
}

/// Probes [`Deployment::tcp_probes`] runs at once by default, at most.
pub const PARALLEL_PROBES: usize = 48;

/// A listening socket a scenario opened with [`Deployment::listen`]; closed on drop.
pub trait Listener: Send {}

impl<T: Send> Listener for T {}

/// A running deployment of the declaration. Implementations are `Sync`: scenarios probe
/// from several threads at once (a load thread beside a fault, parallel TCP probes).
pub trait Deployment: Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// The resolved declaration this deployment runs (networks, nodes, policy, services,
    /// placement). Scenarios derive every address, port and name from it.
    fn topology(&self) -> &Topology;

    /// A tag unique to this run, for customers and idempotency keys.
    fn run_id(&self) -> &str;

    /// What this backend can do beyond the common operations.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// How long after an instance dies (killed process, dead or cut-off host) requests may
    /// still fail; after it, none may. Default 2 s (health checks every 500 ms, ejection on
    /// the first failed try). A backend whose gateway notices a dead process at once states
    /// less.
    fn ejection_bound(&self) -> Duration {
        Duration::from_secs(2)
    }

    /// The registry lease the services run with: a dead instance leaves the registry within
    /// about this long. Default 10 s (the services' own default).
    fn registry_lease(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// The last `lines` lines of component `name`'s log, if the backend keeps them (for a
    /// failure report). Default: none.
    fn log_tail(&self, _name: &str, _lines: usize) -> Option<String> {
        None
    }

    /// Sends `req` to the gateway from the frontend tier and returns its answer.
    fn send(&self, req: &Request) -> Result<Response, DeployError>;

    /// GET `path` through the gateway.
    fn get(&self, path: &str) -> Result<Response, DeployError> {
        self.send(&Request::get(path))
    }

    /// Stops component `name` gracefully (SIGTERM, waits for it to exit).
    fn stop(&self, name: &str) -> Result<(), DeployError>;

    /// Kills component `name` abruptly (SIGKILL), while requests may be in flight.
    fn kill(&self, name: &str) -> Result<(), DeployError>;

    /// Starts component `name` again (after stop or kill) and waits until it is ready.
    fn start(&self, name: &str) -> Result<(), DeployError>;

    /// A TCP connection attempt from inside node `from` to `to`, given `deadline`.
    fn tcp_probe(
        &self,
        from: &str,
        to: SocketAddr,
        deadline: Duration,
    ) -> Result<TcpOutcome, DeployError>;

    /// Many TCP connection attempts (`(from, to)` pairs), each given `deadline`; the
    /// outcomes in the same order. By default [`Deployment::tcp_probe`] from up to
    /// [`PARALLEL_PROBES`] threads; a backend where every probe costs a round trip (the VM
    /// guests' agents) runs each host's share as one batch.
    fn tcp_probes(
        &self,
        probes: &[(String, SocketAddr)],
        deadline: Duration,
    ) -> Vec<Result<TcpOutcome, DeployError>> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<TcpOutcome, DeployError>>>> =
            Mutex::new((0..probes.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_PROBES.min(probes.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((from, to)) = probes.get(i) else {
                        break;
                    };
                    let got = self.tcp_probe(from, *to, deadline);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(got);
                    }
                });
            }
        });
        let backend = self.backend().to_string();
        results
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(DeployError::Failed {
                        backend: backend.clone(),
                        what: "TCP probe".into(),
                        reason: "not probed".into(),
                    })
                })
            })
            .collect()
    }

    /// Opens a TCP listener at node `node`'s address on `port` (for policy probes of ports
    /// nothing else listens on); it listens until the returned value is dropped.
    fn listen(&self, node: &str, port: u16) -> Result<Box<dyn Listener>, DeployError>;

    /// Opens a listener for every `(node, port)` of `at` and returns once all of them
    /// listen; they listen until every returned value is dropped. By default
    /// [`Deployment::listen`] for each, side by side; a backend where each one costs round
    /// trips (the VM guests' agents) opens each host's share in one process.
    fn listen_all(&self, at: &[(String, u16)]) -> Result<Vec<Box<dyn Listener>>, DeployError> {
        let opened: Vec<Result<Box<dyn Listener>, DeployError>> = std::thread::scope(|s| {
            let handles: Vec<_> = at
                .iter()
                .map(|(node, port)| s.spawn(move || self.listen(node, *port)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(DeployError::Failed {
                            backend: self.backend().to_string(),
                            what: "listen".to_string(),
                            reason: "a listener thread panicked".to_string(),
                        })
                    })
                })
                .collect()
        });
        opened.into_iter().collect()
    }

    /// Runs `sql` against `database` in the deployment's PostgreSQL; trimmed output, one
    /// row per line, columns separated by `|`.
    fn sql(&self, database: &str, sql: &str) -> Result<String, DeployError>;

    /// The Prometheus text of component `name`'s `/metrics`.
    fn metrics(&self, name: &str) -> Result<String, DeployError>;

    /// The instance ids the registry currently resolves for `service` ("product", "order"),
    /// sorted.
    fn registry_instances(&self, service: &str) -> Result<Vec<String>, DeployError>;

    /// Powers off placement host `host` abruptly (every node on it dies at once).
    fn kill_host(&self, host: &str) -> Result<(), DeployError> {
        Err(DeployError::Unsupported {
            backend: self.backend().to_string(),
            what: format!("kill host {host}"),
        })
    }

    /// Boots placement host `host` again and starts what it carries.
    fn restart_host(&self, host: &str) -> Result<(), DeployError> {
        Err(DeployError::Unsupported {
            backend: self.backend().to_string(),
            what: format!("restart host {host}"),
        })
    }

    /// Cuts placement host `host` off the underlay (it keeps running).
    fn partition_host(&self, host: &str) -> Result<(), DeployError> {
        Err(DeployError::Unsupported {
            backend: self.backend().to_string(),
            what: format!("partition host {host}"),
        })
    }

    /// Reconnects a partitioned host.
    fn heal_host(&self, host: &str) -> Result<(), DeployError> {
        Err(DeployError::Unsupported {
            backend: self.backend().to_string(),
            what: format!("heal host {host}"),
        })
    }
}

/// The instance ids in a registry answer (`GET /v1/services/<name>`: `{"instances": [{"id":
/// …}, …]}`), sorted; what [`Deployment::registry_instances`] returns.
pub fn instance_ids(answer: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}
