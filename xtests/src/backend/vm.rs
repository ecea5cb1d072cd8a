//! The VM cluster as a [`Deployment`]: one QEMU VM per placement host, each applying its
//! share of the declaration with netns-kit and running the services placed on it.
//!
//! Everything comes from the declaration file given to [`VmDeployment::start`]:
//!
//! - which VMs: one per `[placement]` host, all on one userspace-switched underlay segment;
//! - what each carries: every VM gets the file unmodified and applies only its share
//!   (`netns-kit apply --host <vm> FILE --name lab`): its nodes, the networks they touch, the
//!   overlay derived from the placement (a VXLAN per network spanning hosts, on the
//!   `[underlay]` device), and the router and its policy where the router is placed. Nodes on
//!   other VMs keep their default route to the router, so its tier policy applies to
//!   cross-host traffic exactly as on one host;
//! - what runs: the `[[services]]` command lines, in their start order (a service starts once
//!   the services it depends on are ready), each instance on the VM carrying its node. The
//!   runtime variables (registry token, database credentials, data directories) are supplied
//!   here.
//!
//! Every guest boots from the pinned `vm-stack` image ([`ClusterSpec::stack_root`]: EROFS on a
//! read-only drive under a tmpfs overlay, built from `images.lock`), so PostgreSQL, Redis,
//! curl, bash, ip and nft are the locked packages' versions, at the paths of
//! [`vm::pinned::STACK`]; this tree's `netns-kit` and `ecomm` enter through the run's layer.
//! No guest mounts the host's `/`.
//! Every guest command runs through the VM's agent; a component is addressed by its node.
//! Dropping the deployment kills every VM and removes the run directory.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use netns_kit::topology::{Instance, Placement, Ready, Service, Topology};
use vm::pinned::STACK;
use vm::{Cluster, ClusterSpec, ExchangeOutcome, Vm, VmSpec};

use crate::deployment::{Backend, Capabilities, DeployError, Deployment, Listener};
use crate::http::{Request, Response};
use crate::ns::TcpOutcome;

/// The run name given to `netns-kit apply --name` in every guest; namespaces are `lab-<node>`.
const RUN: &str = "lab";
/// The underlay segment all VMs share (one NIC each, eth0).
const UNDERLAY: &str = "underlay";
/// Where the declaration is copied in each guest.
const TOPOLOGY_IN_GUEST: &str = "/run/topology.toml";
/// The registry's bearer token (test-only; `${registry_token}`).
const REGISTRY_TOKEN: &str = "vm-backend-token";
/// The role the services connect to PostgreSQL as (`${db_auth}`; the data directory
/// trusts every connection).
const DB_AUTH: &str = "postgres";
/// The program name in the declaration that means "the `ecomm` binary under test".
const ECOMM: &str = "ecomm";
/// The program name of the PostgreSQL server (run from its bin dir, found in the guest).
const POSTGRES: &str = "postgres";
/// Guest RAM of a VM carrying a data store, and of one that does not (MiB).
const MEMORY_MIB: (u32, u32) = (1024, 768);
/// How long the image's initdb may take (scaled for TCG: it imports ~800 ICU collations).
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a started instance may take to pass its readiness probe (scaled for TCG).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time a TCP probe gets beyond the asked deadline under TCG, at most (a loaded
/// guest needs time to start the probe; a dropped SYN stays dropped however long one waits).
const PROBE_SLACK: Duration = Duration::from_secs(2);
/// How often a VM is polled, at most, for its finished background commands.
const POLL: Duration = Duration::from_millis(100);
/// How much longer than its own deadline a background command may take to be collected
/// (scaled for TCG: a starved guest is slow to start and reap it).
const BACKGROUND_MARGIN: Duration = Duration::from_secs(15);

/// Where a background command's files live in the guest: `<prefix><id>.{out,err,code}`.
const BACKGROUND: &str = "/run/bg-";
/// Where a guest finds the PostgreSQL cluster made by the image's initdb
/// ([`vm::pinned::pg_template`], in the run's layer); every instance's data directory starts
/// as a copy of it. Without it (not root) the guest runs that initdb itself, once per boot.
const PG_TEMPLATE: &str = "/opt/pg-template";

/// The registry lease the VM backend runs the services with (see [`SERVICE_ENV`]).
const REGISTRY_LEASE_SECONDS: &str = "30";

/// What the backend adds to every ecomm service's environment (the services' flags'
/// environment fallbacks; each binary reads only its own), sized for TCG guests sharing two
/// host cores (everything is 10-50× slower than native, so tight timeouts would eject live
/// instances):
///
/// - registry leases of 30 s, longer than the 10 s default: a TCG guest on an oversubscribed
///   host can stall for several seconds, and a lapsed lease empties the gateway's upstream
///   set. Dead instances leave rotation through the gateway's health checks and ejection
///   long before their lease ends;
/// - the gateway health-checks instances every 500 ms (2 s timeout, out of rotation after 2
///   failures) and passively ejects on the first failed try; connects give up after 1 s, a
///   try after 5 s, and safe requests (GETs; POSTs with an Idempotency-Key) are retried on
///   another instance, so a dead or cut-off instance gets no more requests after ~2 s;
/// - product statements get 15 s, not 5 s: product instances starting together migrate and
///   seed under an advisory lock, and under TCG the one waiting for it can pass 5 s and
///   exit. Orders keep 5 s: an order whose instance was cut off mid-transaction holds its
///   Idempotency-Key's row lock, and the retry on another instance must give up on it
///   within the gateway's budget;
/// - product reads give Redis 1 s, not 50 ms: a guest stalled by the host's load answers a
///   cache read in hundreds of milliseconds, and at 50 ms every read becomes a miss served
///   from PostgreSQL (seen at host load ~18: the routing and cache-outage scenarios saw
///   `x-cache: miss` where the cache held the value).
const SERVICE_ENV: &[(&str, &str)] = &[
    ("ECOMM_PRODUCT_REDIS_TIMEOUT_MS", "1000"),
    ("ECOMM_PRODUCT_DB_STATEMENT_TIMEOUT_MS", "15000"),
    ("ECOMM_REGISTRY_TTL_SECONDS", REGISTRY_LEASE_SECONDS),
    ("ECOMM_GATEWAY_HEALTH_INTERVAL_MS", "500"),
    ("ECOMM_GATEWAY_HEALTH_TIMEOUT_MS", "2000"),
    ("ECOMM_GATEWAY_UNHEALTHY_AFTER", "2"),
    ("ECOMM_GATEWAY_EJECT_AFTER", "1"),
    ("ECOMM_GATEWAY_CONNECT_TIMEOUT_MS", "1000"),
    ("ECOMM_GATEWAY_TRY_TIMEOUT_MS", "5000"),
    ("ECOMM_GATEWAY_TOTAL_TIMEOUT_MS", "15000"),
    ("ECOMM_GATEWAY_MAX_TRIES", "3"),
];

/// The workspace binaries the guests run (copied into each guest's layer, at
/// [`vm::pinned::STACK`]'s paths) and the guest agent.
#[derive(Debug, Clone)]
pub struct Bins {
    /// The netns-kit CLI (`$NETNS_KIT_BIN`, else `target/debug/netns-kit`).
    pub netns_kit: PathBuf,
    /// The ecomm services binary (`$ECOMM_BIN`, else `target/debug/ecomm`).
    pub ecomm: PathBuf,
    /// The guest agent (`$VM_AGENT`, else `target/debug/vm-agent`).
    pub agent: PathBuf,
}

impl Bins {
    /// Locates netns-kit, ecomm and the guest agent; `Err` names what is not built.
    pub fn find() -> Result<Bins, String> {
        Ok(Bins {
            netns_kit: find_bin("NETNS_KIT_BIN", "netns-kit")?,
            ecomm: find_bin("ECOMM_BIN", "ecomm")?,
            agent: find_bin("VM_AGENT", "vm-agent")?,
        })
    }
}

/// A directory holding `netns-kit`, `ecomm` and `vm-agent` that [`Bins::find`] prefers to
/// `target/debug` (see [`use_bins_in`]).
static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Makes [`Bins::find`] take each binary from `dir` when it is there (the `lab` binary passes
/// its own directory, where cargo built its siblings); `$NETNS_KIT_BIN`, `$ECOMM_BIN` and
/// `$VM_AGENT` still win. The first call wins.
pub fn use_bins_in(dir: PathBuf) {
    let _ = BIN_DIR.set(dir);
}

/// Whether the VM backend can run here: QEMU, the kernel and the initramfs are available and
/// the binaries are built. `Err` says what is missing (callers skip, or fail under
/// `ECOMM_REQUIRE_ALL=1`).
pub fn available() -> Result<Bins, String> {
    vm::available().map_err(|e| e.to_string())?;
    Bins::find()
}

/// A job run on the keeper thread.
type Job = Box<dyn FnOnce() + Send>;

/// The running VM cluster carrying one declaration.
pub struct VmDeployment {
    inner: Arc<Inner>,
    /// The thread that starts every QEMU process (QEMU dies with the thread that spawned
    /// it, so boots and restarts run on one thread that lives as long as the deployment).
    keeper: Option<(mpsc::Sender<Job>, JoinHandle<()>)>,
}

/// The state shared with listeners and the keeper thread.
struct Inner {
    cluster: Cluster,
    topology: Topology,
    /// The declaration's placement (checked present in [`VmDeployment::start`]).
    placement: Placement,
    /// The declaration's text, copied unmodified into every guest.
    text: String,
    run_id: String,
    /// Numbers the background commands (their output files).
    jobs: AtomicU64,
    /// Per VM: what finished in the guest but is not yet claimed.
    polled: BTreeMap<String, Polled>,
}

/// One VM's finished work awaiting its claimers.
#[derive(Default)]
struct Polled {
    /// Background commands: exit code, stdout, stderr.
    commands: Finished<(i32, String, String)>,
    /// Agent exchanges (HTTP requests).
    exchanges: Finished<ExchangeOutcome>,
}

impl VmDeployment {
    /// Boots one VM per placement host of the declaration `file`, applies each VM's share
    /// and starts the declared services in their start order.
    pub fn start(file: &Path, bins: Bins) -> Result<VmDeployment, DeployError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| failed(format!("read {}", file.display()), e))?;
        let topology =
            Topology::from_str(&text).map_err(|e| failed(format!("{}", file.display()), e))?;
        let placement = topology.placement.clone().ok_or_else(|| {
            failed(
                format!("{}", file.display()),
                "no [placement]: the VM backend runs one VM per placement host",
            )
        })?;
        // The pinned image, never the host's root: the software under test is the lock's.
        let mut spec = ClusterSpec::new()
            .agent(&bins.agent)
            .stack_root(&bins.netns_kit, &bins.ecomm);
        if topology.services.iter().any(|s| program(s) == POSTGRES) {
            match vm::pinned::pg_template() {
                Ok(dir) => spec = spec.pinned_dir(PG_TEMPLATE, dir),
                Err(e) => eprintln!("[vm] no PostgreSQL template ({e}): initdb runs in the guest"),
            }
        }
        for (host, nodes) in &placement.hosts {
            // The data stores need the most memory.
            let stores = topology
                .services
                .iter()
                .filter(|s| program(s) != ECOMM)
                .flat_map(|s| &s.instances)
                .any(|i| nodes.contains(&i.node));
            let mib = if stores { MEMORY_MIB.0 } else { MEMORY_MIB.1 };
            spec = spec.vm(VmSpec::new(host).memory_mib(mib).nic(UNDERLAY));
        }
        let (jobs, keeper) = keeper()?;
        let (tx, rx) = mpsc::channel();
        let boot: Job = Box::new(move || {
            let _ = tx.send(Cluster::start(spec));
        });
        jobs.send(boot).map_err(|e| failed("boot the cluster", e))?;
        let cluster = rx
            .recv()
            .map_err(|e| failed("boot the cluster", e))?
            .map_err(|e| failed("boot the cluster", e))?;
        let polled = placement
            .hosts
            .keys()
            .map(|h| (h.clone(), Polled::default()))
            .collect();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let deployment = VmDeployment {
            inner: Arc::new(Inner {
                cluster,
                topology,
                placement,
                text,
                run_id: format!("vm{:x}{:x}", std::process::id(), nanos % 0xffff_ffff),
                jobs: AtomicU64::new(0),
                polled,
            }),
            keeper: Some((jobs, keeper)),
        };
        if let Err(e) = deployment.inner.set_up() {
            deployment.inner.dump_logs();
            return Err(e);
        }
        Ok(deployment)
    }
    /// The VM cluster (boot times, the accelerator, the run directory, the VMs).
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// Prints every VM's console and agent transcript, and the tail of every service log.
    pub fn dump(&self) {
        self.inner.cluster.dump();
        self.inner.dump_logs();
    }

    /// Runs `job` on the keeper thread and waits for its result.
    fn on_keeper<T: Send + 'static>(
        &self,
        what: &str,
        job: impl FnOnce(&Inner) -> Result<T, DeployError> + Send + 'static,
    ) -> Result<T, DeployError> {
        let Some((jobs, _)) = &self.keeper else {
            return Err(failed(what, "the keeper thread is gone"));
        };
        let (tx, rx) = mpsc::channel();
        let inner = Arc::clone(&self.inner);
        jobs.send(Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&inner)))
                .unwrap_or_else(|p| Err(failed("keeper job", panic_text(&p))));
            let _ = tx.send(result);
        }))
        .map_err(|e| failed(what, e))?;
        rx.recv().map_err(|e| failed(what, e))?
    }
}

impl Drop for VmDeployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.inner.dump_logs();
        }
        if let Some((jobs, handle)) = self.keeper.take() {
            drop(jobs);
            let _ = handle.join();
        }
    }
}

/// Starts the keeper thread: it runs jobs in order until its sender is dropped.
fn keeper() -> Result<(mpsc::Sender<Job>, JoinHandle<()>), DeployError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let handle = std::thread::Builder::new()
        .name("vm-keeper".into())
        .spawn(move || {
            for job in rx {
                job();
            }
        })
        .map_err(|e| failed("spawn the keeper thread", e))?;
    Ok((tx, handle))
}

impl Inner {
    fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Applies every host's share (the VMs in parallel), then starts the services.
    fn set_up(&self) -> Result<(), DeployError> {
        let inner = self;
        let hosts = inner.hosts();
        inner.cluster.phase("tiers and overlay", || {
            std::thread::scope(|s| {
                let handles: Vec<_> = hosts
                    .iter()
                    .map(|host| s.spawn(move || inner.build_host(host)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect::<Result<Vec<()>, DeployError>>()
            })
        })?;
        inner
            .cluster
            .phase("services", || inner.start_services_on(&hosts))?;
        Ok(())
    }

    /// The placement's hosts (one VM each), sorted.
    fn hosts(&self) -> Vec<String> {
        self.placement().hosts.keys().cloned().collect()
    }

    /// The VM named `host`.
    fn vm(&self, host: &str) -> Result<&Vm, DeployError> {
        if !self.placement().hosts.contains_key(host) {
            return Err(DeployError::UnknownComponent {
                name: host.to_string(),
                known: self.hosts().join(", "),
            });
        }
        self.cluster
            .try_vm(host)
            .map_err(|e| failed(format!("find VM {host}"), e))
    }

    /// The VM carrying `node`.
    fn host_of(&self, node: &str) -> Result<&Vm, DeployError> {
        let host = self
            .placement()
            .host_of(node)
            .ok_or_else(|| self.unknown(node))?;
        self.vm(host)
    }

    fn unknown(&self, name: &str) -> DeployError {
        let known: Vec<&str> = self
            .topology
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        DeployError::UnknownComponent {
            name: name.to_string(),
            known: known.join(", "),
        }
    }

    /// The declared address of `node` (its first interface's).
    fn address(&self, node: &str) -> Result<IpAddr, DeployError> {
        self.topology
            .node(node)
            .and_then(|n| n.interfaces.first())
            .map(|i| i.address)
            .ok_or_else(|| self.unknown(node))
    }

    /// The service with an instance on `node`, and that instance.
    fn instance_on(&self, node: &str) -> Result<(&Service, &Instance), DeployError> {
        self.topology
            .services
            .iter()
            .find_map(|s| Some((s, s.instances.iter().find(|i| i.node == node)?)))
            .ok_or_else(|| DeployError::UnknownComponent {
                name: node.to_string(),
                known: self
                    .topology
                    .services
                    .iter()
                    .flat_map(|s| &s.instances)
                    .map(|i| i.node.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Where the instance on `node` listens (its service's main port).
    fn listen_of(&self, node: &str) -> Result<SocketAddr, DeployError> {
        let (s, _) = self.instance_on(node)?;
        s.listen(node)
            .ok_or_else(|| failed(format!("address of {node}"), "its service declares no port"))
    }

    /// The shell prefix running a service in `node` (`netns-kit exec`, as a person would).
    fn in_node(&self, node: &str) -> String {
        format!("{} exec {RUN} {node} --", STACK.netns_kit)
    }

    /// The shell prefix running a client command (curl, psql, a probe) in `node`'s network
    /// namespace: `nsenter` on the namespace netns-kit pinned, much cheaper to start than
    /// `netns-kit exec` in a TCG guest, which matters once per request.
    fn in_netns(&self, node: &str) -> String {
        format!("nsenter --net={} --", netns_path(node))
    }

    /// What finished on `vm` and awaits its claimers.
    fn polled_on(&self, vm: &Vm) -> Result<&Polled, DeployError> {
        self.polled
            .get(vm.name())
            .ok_or_else(|| failed(vm.name(), "no such VM"))
    }

    /// Runs `cmd` on `vm` with `timeout`; `Err` unless it exits 0. Returns stdout.
    fn succeed(
        &self,
        vm: &Vm,
        what: &str,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, DeployError> {
        let out = vm
            .execute_timeout(cmd, timeout)
            .map_err(|e| failed(format!("{}: {what}", vm.name()), e))?;
        if out.code == 0 {
            Ok(out.stdout)
        } else {
            Err(failed(
                format!("{}: {what}", vm.name()),
                format!(
                    "`{cmd}` exited {}: {}{}",
                    out.code,
                    out.stderr.trim(),
                    out.stdout.trim()
                ),
            ))
        }
    }

    /// [`Inner::succeed`] with the accelerator's default command timeout.
    fn run(&self, vm: &Vm, what: &str, cmd: &str) -> Result<String, DeployError> {
        self.succeed(vm, what, cmd, self.cluster.accel().command_timeout())
    }

    /// Retries `cmd` on `vm` every 250 ms until it exits 0 or `timeout` (scaled for the
    /// accelerator) passes.
    fn wait_until(
        &self,
        vm: &Vm,
        what: &str,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, DeployError> {
        let timeout = self.cluster.accel().scale(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            match self.succeed(vm, what, cmd, timeout) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() >= deadline => {
                    return Err(failed(
                        format!("{}: {what}", vm.name()),
                        format!("not within {timeout:?}; last: {e}"),
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// Starts `cmd` in the background on `vm`, output appended to `log`; returns its pid.
    fn spawn(&self, vm: &Vm, cmd: &str, log: &str) -> Result<u32, DeployError> {
        vm.try_spawn(cmd, log)
            .map_err(|e| failed(format!("{}: spawn `{cmd}`", vm.name()), e))
    }

    /// A unicast underlay names each host's address: it must be the VM's NIC address (a
    /// multicast underlay needs none).
    fn check_underlay(&self, host: &str) -> Result<(), DeployError> {
        if let Some(declared) = self.placement().underlay.addresses.get(host) {
            let nic = self.vm(host)?.ip(UNDERLAY);
            if nic != declared.to_string() {
                return Err(failed(
                    format!("[underlay] hosts.{host}"),
                    format!("declared {declared}, but {host}'s NIC on the VM underlay is {nic}"),
                ));
            }
        }
        Ok(())
    }

    /// Copies the declaration into `host` and applies that host's share of it; checks that
    /// the VM then holds the namespaces of exactly the nodes placed on it.
    fn build_host(&self, host: &str) -> Result<(), DeployError> {
        self.check_underlay(host)?;
        let vm = self.vm(host)?;
        vm.try_write_file(TOPOLOGY_IN_GUEST, self.text.as_bytes())
            .map_err(|e| failed(format!("{host}: copy the declaration"), e))?;
        // MTU room for the VXLAN header on the underlay (the VXLAN takes the device's
        // MTU − 50), then this host's share: tiers, nodes and the derived overlay.
        let mtu = match &self.placement().underlay.dev {
            Some(dev) => format!("ip link set {dev} mtu 1600 && "),
            None => String::new(),
        };
        let out = self.run(
            vm,
            &format!("apply --host {host}"),
            &format!(
                "{mtu}{} apply --host {host} {TOPOLOGY_IN_GUEST} --name {RUN} >&2 && ip netns list",
                STACK.netns_kit
            ),
        )?;
        let prefix = format!("{RUN}-");
        let namespaces: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.strip_prefix(&prefix))
            .collect();
        for (placed_on, nodes) in &self.placement().hosts {
            for node in nodes {
                if namespaces.contains(&node.as_str()) != (placed_on == host) {
                    return Err(failed(
                        format!("{host}: apply --host {host}"),
                        format!(
                            "namespace {RUN}-{node} (placed on {placed_on}); namespaces: {namespaces:?}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The declared service running PostgreSQL and its (only) instance.
    fn postgres(&self) -> Result<(&Service, &Instance), DeployError> {
        self.topology
            .services
            .iter()
            .find(|s| program(s) == POSTGRES)
            .and_then(|s| Some((s, s.instances.first()?)))
            .ok_or_else(|| {
                failed(
                    "find PostgreSQL",
                    format!("the declaration runs no {POSTGRES}"),
                )
            })
    }

    /// PostgreSQL's bin dir in the image.
    fn pg_bindir(&self) -> Result<&str, DeployError> {
        Ok(STACK.pg_bindir)
    }

    /// Starts the declared services placed on `hosts`, stage by stage (a service starts once
    /// every service it depends on is ready); within a stage all instances at once, the VMs
    /// in parallel, with one readiness wait per VM.
    fn start_services_on(&self, hosts: &[String]) -> Result<(), DeployError> {
        let last = self.topology.services.iter().map(|s| s.stage).max();
        for stage in 0..=last.unwrap_or(0) {
            let placed = |host: &String, i: &Instance| {
                self.placement()
                    .hosts
                    .get(host)
                    .is_some_and(|nodes| nodes.contains(&i.node))
            };
            let services: Vec<&Service> = self
                .topology
                .services
                .iter()
                .filter(|s| s.stage == stage)
                .filter(|s| {
                    s.instances
                        .iter()
                        .any(|i| hosts.iter().any(|h| placed(h, i)))
                })
                .collect();
            if services.is_empty() {
                continue;
            }
            let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            self.cluster
                .phase(&format!("stage {stage} ({})", names.join(", ")), || {
                    std::thread::scope(|s| {
                        let handles: Vec<_> = hosts
                            .iter()
                            .map(|host| {
                                let services = &services;
                                s.spawn(move || self.start_on(host, services))
                            })
                            .collect();
                        handles
                            .into_iter()
                            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                            .collect::<Result<Vec<()>, DeployError>>()
                    })
                })?;
        }
        Ok(())
    }

    /// Starts every instance of `services` placed on `host` and waits until each is ready.
    fn start_on(&self, host: &str, services: &[&Service]) -> Result<(), DeployError> {
        let vm = self.vm(host)?;
        let placed = self
            .placement()
            .hosts
            .get(host)
            .cloned()
            .unwrap_or_default();
        let mut probes = Vec::new();
        let mut started = Vec::new();
        let mut fresh_postgres = false;
        for s in services {
            for inst in s.instances.iter().filter(|i| placed.contains(&i.node)) {
                fresh_postgres |= self.launch(vm, s, inst)?;
                probes.extend(self.ready_probe(s, inst)?);
                started.push((*s, inst));
            }
        }
        if !probes.is_empty() {
            if let Err(e) = self.wait_until(vm, "readiness", &probes.join(" && "), READY_TIMEOUT) {
                // A starved TCG guest can miss a service's own start-up deadlines (its
                // database connect, say) and the service exits: start those once more.
                let mut again = false;
                for (s, inst) in &started {
                    let alive = self.signal_command(&inst.node, process_name(s), "0");
                    if self.run(vm, "alive", &alive).is_err() {
                        eprintln!(
                            "[vm] {host}: {} exited while starting; starting it again",
                            inst.node
                        );
                        self.launch(vm, s, inst)?;
                        again = true;
                    }
                }
                if !again {
                    return Err(e);
                }
                self.wait_until(vm, "readiness", &probes.join(" && "), READY_TIMEOUT)?;
            }
        }
        if fresh_postgres {
            self.create_databases()?;
        }
        Ok(())
    }

    /// Spawns instance `inst` of `s` on `vm` (preparing a data store's directory first);
    /// returns whether it is a PostgreSQL with a fresh data directory.
    fn launch(&self, vm: &Vm, s: &Service, inst: &Instance) -> Result<bool, DeployError> {
        let fresh = if program(s) == POSTGRES {
            self.prepare_postgres(vm, inst)?
        } else {
            if program(s) != ECOMM {
                self.run(
                    vm,
                    "data directory",
                    &format!("mkdir -p {}", data_dir(inst)),
                )?;
            }
            false
        };
        self.spawn(
            vm,
            &self.command_line(s, inst)?,
            &format!("/run/{}.log", inst.node),
        )?;
        Ok(fresh)
    }

    /// The shell command running instance `inst` of `s`: the declared command line and
    /// environment with the runtime variables filled in, in the instance's node.
    fn command_line(&self, s: &Service, inst: &Instance) -> Result<String, DeployError> {
        let what = format!("command of service {} on {}", s.name, inst.node);
        let vars = vars(inst);
        let args = inst.command_with(&vars).map_err(|e| failed(&what, e))?;
        let mut env = inst.env_with(&vars).map_err(|e| failed(&what, e))?;
        let Some((program, rest)) = args.split_first() else {
            return Err(failed(&what, "empty command"));
        };
        let (prefix, program) = match program.as_str() {
            ECOMM => {
                env.extend(
                    SERVICE_ENV
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                );
                (String::new(), STACK.ecomm.to_string())
            }
            POSTGRES => (
                format!("{} -u {} --", STACK.runuser, STACK.pg_user),
                format!("{}/{POSTGRES}", self.pg_bindir()?),
            ),
            other => (String::new(), other.to_string()),
        };
        let env: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        let args: Vec<String> = rest.iter().map(|a| quote(a)).collect();
        Ok(format!(
            "{} {prefix} env {} {} {}",
            self.in_node(&inst.node),
            env.join(" "),
            quote(&program),
            args.join(" ")
        ))
    }

    /// The declared readiness probe of an instance, as a guest command (none: no probe).
    fn ready_probe(&self, s: &Service, inst: &Instance) -> Result<Option<String>, DeployError> {
        Ok(match &s.ready {
            Ready::None => None,
            Ready::Tcp { port } => Some(self.tcp_command(
                &inst.node,
                SocketAddr::new(inst.address, *port),
                Duration::from_secs(2),
            )),
            Ready::Http { port, path } => Some(format!(
                "{} curl -sf -m 2 -o /dev/null http://{}{path}",
                self.in_netns(&inst.node),
                SocketAddr::new(inst.address, *port)
            )),
        })
    }

    /// Prepares the PostgreSQL data directory of `inst` unless it already holds one (a
    /// restart after stop or kill keeps its data): a copy of [`PG_TEMPLATE`], made by the
    /// image's initdb ([`vm::pinned::Stack::initdb_command`]: C locale, UTF-8, trust) on the
    /// host or, failing that, once per boot in the guest, in the guest's tmpfs overlay, trusting every connection, tuned for speed (no
    /// durability needed), its socket in /tmp. Returns whether it was created.
    fn prepare_postgres(&self, vm: &Vm, inst: &Instance) -> Result<bool, DeployError> {
        let dir = data_dir(inst);
        if self
            .run(vm, "data directory", &format!("test -e {dir}/PG_VERSION"))
            .is_ok()
        {
            return Ok(false);
        }
        self.succeed(
            vm,
            "PostgreSQL template (initdb)",
            &format!(
                "test -e {PG_TEMPLATE}/PG_VERSION || {{ rm -rf {PG_TEMPLATE} && {}; }}",
                STACK.initdb_command(PG_TEMPLATE)
            ),
            self.cluster.accel().scale(INITDB_TIMEOUT),
        )?;
        let conf = [
            "unix_socket_directories = '/tmp'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
        ]
        .map(|line| format!("echo {} >> {dir}/postgresql.conf", quote(line)))
        .join(" && ");
        self.run(
            vm,
            "PostgreSQL data directory",
            &format!(
                "rm -rf {dir} && mkdir -p {dir} && chown {u}:{u} {dir} && chmod 700 {dir} && \
                 cp -a {PG_TEMPLATE}/. {dir}/ && echo 'host all all 0.0.0.0/0 trust' >> {dir}/pg_hba.conf && {conf}",
                u = STACK.pg_user
            ),
        )?;
        Ok(true)
    }

    /// Creates every database a service declares (`data.database`); the services migrate them.
    fn create_databases(&self) -> Result<(), DeployError> {
        let mut dbs: Vec<&str> = self
            .topology
            .services
            .iter()
            .filter_map(|s| s.data.get("database").map(String::as_str))
            .collect();
        dbs.sort();
        dbs.dedup();
        let (_, pg) = self.postgres()?;
        let bindir = self.pg_bindir()?;
        let createdb: Vec<String> = dbs
            .iter()
            .map(|db| {
                format!(
                    "{} {} -u {} -- {bindir}/createdb -h /tmp {}",
                    self.in_netns(&pg.node),
                    STACK.runuser,
                    STACK.pg_user,
                    quote(db)
                )
            })
            .collect();
        if !createdb.is_empty() {
            self.run(
                self.host_of(&pg.node)?,
                "create the databases",
                &createdb.join(" && "),
            )?;
        }
        Ok(())
    }

    /// A guest command that exits 0 iff a TCP connection from `node` to `to` is established
    /// within `deadline`; 124 when it timed out (the image's `timeout` is busybox's, which
    /// exits 143 — SIGTERM's status — where coreutils' exits 124). It must not start with
    /// `(`: callers embed it as `$(… 2>&1)`, and `$((` would be an arithmetic expansion.
    fn tcp_command(&self, node: &str, to: SocketAddr, deadline: Duration) -> String {
        format!(
            "{} timeout {:.1} {} -c 'exec 3<>/dev/tcp/{}/{}' || {{ c=$?; [ $c -ne 143 ] || c=124; (exit $c); }}",
            self.in_netns(node),
            deadline.as_secs_f64().max(0.1),
            STACK.bash,
            to.ip(),
            to.port()
        )
    }

    /// A guest command sending `sig` to every process in `node`'s namespace named `name`
    /// (its `comm`); with `sig` 0 it only exits 0 iff one exists.
    fn signal_command(&self, node: &str, name: &str, sig: &str) -> String {
        let name: String = name.chars().take(15).collect();
        format!(
            "found=1; for p in $(ip netns pids {RUN}-{node}); do \
               [ \"$(cat /proc/$p/comm 2>/dev/null)\" = {name} ] && {{ kill -{sig} $p 2>/dev/null; found=0; }}; \
             done; exit $found",
            name = quote(&name)
        )
    }

    /// Signals the processes of component `node` and waits until they are gone.
    fn signal(&self, node: &str, sig: &str) -> Result<(), DeployError> {
        let (s, inst) = self.instance_on(node)?;
        let vm = self.host_of(&inst.node)?;
        let name = process_name(s);
        let _ = self.run(
            vm,
            &format!("signal {node}"),
            &self.signal_command(node, name, sig),
        );
        let gone = format!("! ( {} )", self.signal_command(node, name, "0"));
        if self
            .wait_until(vm, &format!("{node} exits"), &gone, Duration::from_secs(15))
            .is_err()
        {
            let _ = self.run(
                vm,
                &format!("kill {node}"),
                &self.signal_command(node, name, "KILL"),
            );
            self.wait_until(vm, &format!("{node} exits"), &gone, Duration::from_secs(5))?;
        }
        Ok(())
    }

    /// Starts component `node` again and waits until it passes its readiness probe.
    fn start_component(&self, node: &str) -> Result<(), DeployError> {
        let (s, inst) = self.instance_on(node)?;
        let vm = self.host_of(&inst.node)?;
        let fresh = self.launch(vm, s, inst)?;
        if let Some(probe) = self.ready_probe(s, inst)? {
            self.wait_until(vm, &format!("{node} ready"), &probe, READY_TIMEOUT)?;
        }
        if fresh {
            self.create_databases()?;
        }
        Ok(())
    }

    /// Boots `host` again, applies its share and starts the services placed on it.
    fn restart_host(&self, host: &str) -> Result<(), DeployError> {
        let vm = self.vm(host)?;
        self.cluster.phase(&format!("restart {host}"), || {
            vm.restart()
                .map_err(|e| failed(format!("restart {host}"), e))?;
            // A new agent numbers its exchanges from 1 again: outcomes of the old one that
            // nobody claimed must not answer the new jobs.
            lock(&self.polled_on(vm)?.exchanges.done).clear();
            self.build_host(host)?;
            self.start_services_on(&[host.to_string()])
        })
    }

    /// Runs `cmd` in the background on `vm` and waits for its end: its exit code, stdout and
    /// stderr. The agent answers one request at a time; running long commands (HTTP requests,
    /// TCP probes that wait out a dropped SYN) this way lets several threads' commands on one
    /// VM overlap. One thread at a time polls a VM, collecting every finished command at once
    /// (at most every [`POLL`]), so many waiting threads do not queue polls on the agent.
    fn background(
        &self,
        vm: &Vm,
        what: &str,
        cmd: &str,
        timeout: Duration,
    ) -> Result<(i32, String, String), DeployError> {
        let what = || format!("{}: {what}", vm.name());
        let finished = &self.polled_on(vm)?.commands;
        let id = self.jobs.fetch_add(1, Ordering::Relaxed);
        let f = format!("{BACKGROUND}{id}");
        self.spawn(
            vm,
            &format!("( {cmd} ) >{f}.out 2>{f}.err; echo $? >{f}.tmp; mv {f}.tmp {f}.code"),
            "/dev/null",
        )?;
        finished
            .claim(id, Instant::now() + timeout, || {
                let out = vm.execute(&collect_command()).map_err(|e| e.to_string())?;
                Ok(out.stdout.lines().filter_map(parse_finished).collect())
            })
            .map_err(|e| failed(what(), format!("{e} (within {timeout:?})")))
    }

    /// Sends `data` to `to` from `node`'s namespace through the VM's agent and returns what
    /// came back before the peer closed. The agent connects on a thread of its own, so no
    /// guest process starts (under TCG a `curl` costs hundreds of milliseconds of exec and
    /// dynamic linking); exchanges of many threads overlap, collected like
    /// [`Inner::background`] commands.
    fn exchange(
        &self,
        node: &str,
        to: SocketAddr,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, DeployError> {
        let vm = self.host_of(node)?;
        let what = || format!("{}: exchange with {to} from {node}", vm.name());
        let exchanged = &self.polled_on(vm)?.exchanges;
        let id = vm
            .exchange(Some(&netns_path(node)), &to.to_string(), data, timeout)
            .map_err(|e| failed(what(), e))?;
        let margin = self.cluster.accel().scale(BACKGROUND_MARGIN);
        exchanged
            .claim(id, Instant::now() + timeout + margin, || {
                vm.collect().map_err(|e| e.to_string())
            })
            .map_err(|e| failed(what(), e))?
            .map_err(|e| failed(what(), e))
    }

    /// Sends `req` to `to` from `node`'s namespace (see [`Inner::exchange`]); the deadline
    /// is the request's, scaled for the accelerator.
    fn http(&self, node: &str, to: SocketAddr, req: &Request) -> Result<Response, DeployError> {
        let timeout = self.cluster.accel().scale(req.timeout);
        let raw = self.exchange(node, to, &req.encode(to), timeout)?;
        Response::parse(&raw).map_err(|e| failed(format!("{} {}", req.method, req.path), e))
    }

    /// One TCP connection attempt from `from` to `to`, in the background (see
    /// [`Inner::background`]); under TCG the deadline gets up to [`PROBE_SLACK`] more.
    fn tcp_probe(
        &self,
        from: &str,
        to: SocketAddr,
        deadline: Duration,
    ) -> Result<TcpOutcome, DeployError> {
        let vm = self.host_of(from)?;
        let scaled = self.cluster.accel().scale(deadline);
        let deadline = deadline + (scaled.saturating_sub(deadline)).min(PROBE_SLACK);
        let what = format!("TCP {from} -> {to}");
        let (code, _, stderr) = self.background(
            vm,
            &what,
            &self.tcp_command(from, to, deadline),
            deadline + self.cluster.accel().scale(BACKGROUND_MARGIN),
        )?;
        match code {
            0 => Ok(TcpOutcome::Reachable),
            124 => Ok(TcpOutcome::TimedOut),
            _ if stderr.contains("refused") => Ok(TcpOutcome::Refused),
            _ => Err(failed(&what, format!("exit {code}: {}", stderr.trim()))),
        }
    }

    /// Every probe in one guest command per VM (the VMs side by side): each VM's share goes
    /// to `netns-kit probe` in a file, which runs them all at once from the nodes'
    /// namespaces and prints one line per probe in order — one agent round trip per host
    /// and about one deadline of wall time, however many probes.
    fn tcp_probes(
        &self,
        probes: &[(String, SocketAddr)],
        deadline: Duration,
    ) -> Vec<Result<TcpOutcome, DeployError>> {
        let scaled = self.cluster.accel().scale(deadline);
        let deadline = deadline + (scaled.saturating_sub(deadline)).min(PROBE_SLACK);
        let mut out: Vec<Option<Result<TcpOutcome, DeployError>>> =
            (0..probes.len()).map(|_| None).collect();
        let mut by_vm: BTreeMap<&str, (&Vm, Vec<usize>)> = BTreeMap::new();
        for (i, (from, _)) in probes.iter().enumerate() {
            match self.host_of(from) {
                Ok(vm) => by_vm.entry(vm.name()).or_insert((vm, Vec::new())).1.push(i),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let batches: Vec<(Vec<usize>, Result<String, DeployError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = by_vm
                .into_values()
                .map(|(vm, idx)| {
                    s.spawn(move || {
                        let list: String = idx
                            .iter()
                            .map(|&i| format!("{}={}\n", probes[i].0, probes[i].1))
                            .collect();
                        let n = self.jobs.fetch_add(1, Ordering::Relaxed);
                        let file = format!("/run/probes-{n}.txt");
                        let what = format!("{} TCP probes", idx.len());
                        let got = vm
                            .try_write_file(&file, list.as_bytes())
                            .map_err(|e| failed(format!("{}: write {file}", vm.name()), e))
                            .and_then(|()| {
                                self.background(
                                    vm,
                                    &what,
                                    &format!(
                                        "{} probe {RUN} --deadline {:.1}s --file {file}",
                                        STACK.netns_kit,
                                        deadline.as_secs_f64()
                                    ),
                                    deadline + self.cluster.accel().scale(BACKGROUND_MARGIN),
                                )
                            })
                            .and_then(|(code, stdout, stderr)| match code {
                                0 | 1 => Ok(stdout),
                                _ => Err(failed(
                                    format!("{}: {what}", vm.name()),
                                    format!("exit {code}: {}", stderr.trim()),
                                )),
                            });
                        if let Err(e) = &got {
                            eprintln!("[vm] {}: {what}: {e}", vm.name());
                        }
                        (idx, got)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (idx, got) in batches {
            match got {
                Ok(stdout) => {
                    // One line per probe, in the order of the file: FROM ADDR OUTCOME TIME.
                    for (&i, line) in idx.iter().zip(stdout.lines()) {
                        let (from, to) = &probes[i];
                        let outcome = line.split_whitespace().nth(2).unwrap_or_default();
                        out[i] = Some(match outcome {
                            "reachable" => Ok(TcpOutcome::Reachable),
                            "timed-out" => Ok(TcpOutcome::TimedOut),
                            "refused" => Ok(TcpOutcome::Refused),
                            _ => Err(failed(format!("TCP {from} -> {to}"), line.trim())),
                        });
                    }
                }
                Err(e) => {
                    for i in idx {
                        out[i] = Some(Err(failed("TCP probe batch", e.to_string())));
                    }
                }
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| {
                    Err(failed(
                        format!("TCP probe {i}"),
                        "the batch printed no result for it",
                    ))
                })
            })
            .collect()
    }

    /// Prints the tail of every service log (`/run/*.log`) of every running VM.
    fn dump_logs(&self) {
        for vm in self.cluster.vms() {
            if !vm.is_running() {
                continue;
            }
            let cmd = "for f in /run/*.log; do [ -s \"$f\" ] && { echo \"--- $f\"; tail -n 25 \"$f\"; }; done; true";
            match vm.execute_timeout(cmd, Duration::from_secs(30)) {
                Ok(out) => eprintln!("===== {}: service logs =====\n{}", vm.name(), out.stdout),
                Err(e) => eprintln!("===== {}: service logs unavailable: {e}", vm.name()),
            }
        }
    }

    /// GETs `path` from the service on `node`, inside `node`'s namespace on its VM.
    fn get_on(&self, node: &str, path: &str) -> Result<String, DeployError> {
        let addr = self.listen_of(node)?;
        let r = self.http(node, addr, &Request::get(path))?;
        if r.status != 200 {
            return Err(failed(
                format!("GET {path} on {node}"),
                format!("{} {}", r.status, r.text()),
            ));
        }
        Ok(r.text())
    }
}

/// One VM's finished background commands (id → exit code, stdout, stderr) and the lock
/// of the thread polling for them, with when it last polled.
struct Finished<T> {
    done: Mutex<HashMap<u64, T>>,
    poller: Mutex<Option<Instant>>,
}

impl<T> Default for Finished<T> {
    fn default() -> Self {
        Finished {
            done: Mutex::new(HashMap::new()),
            poller: Mutex::new(None),
        }
    }
}

impl<T> Finished<T> {
    /// Waits for job `id` until `deadline`: one waiting thread at a time calls `poll` (at
    /// most every [`POLL`]) and files every job it reports, so many waiters cost one poll.
    fn claim(
        &self,
        id: u64,
        deadline: Instant,
        poll: impl Fn() -> Result<Vec<(u64, T)>, String>,
    ) -> Result<T, String> {
        loop {
            if let Some(done) = lock(&self.done).remove(&id) {
                return Ok(done);
            }
            if Instant::now() > deadline {
                return Err("no answer in time".into());
            }
            if let Ok(mut last) = self.poller.try_lock() {
                if last.is_none_or(|t| t.elapsed() >= POLL) {
                    let got = poll()?;
                    *last = Some(Instant::now());
                    lock(&self.done).extend(got);
                    continue;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Locks `m`, also when a panicking thread held it (the data stays consistent: whole
/// entries are inserted or removed).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A guest command printing one line per finished background command — `id code
/// base64(stdout) base64(stderr)` — and removing its files.
fn collect_command() -> String {
    format!(
        "for c in {BACKGROUND}*.code; do [ -e \"$c\" ] || continue; i=${{c#{BACKGROUND}}}; i=${{i%.code}}; \
           f={BACKGROUND}$i; echo \"$i $(cat $c) $(base64 -w0 < $f.out) $(base64 -w0 < $f.err)\"; \
           rm -f $c $f.out $f.err; done; true"
    )
}

/// One line of [`collect_command`]'s output.
fn parse_finished(line: &str) -> Option<(u64, (i32, String, String))> {
    let decode = |b: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .ok()
    };
    let mut it = line.split(' ');
    let id = it.next()?.parse().ok()?;
    let code = it.next()?.trim().parse().ok()?;
    let stdout = decode(it.next().unwrap_or(""))?;
    let stderr = decode(it.next().unwrap_or(""))?;
    Some((id, (code, stdout, stderr)))
}

/// A TCP listener opened by [`Deployment::listen`] in a guest; killed on drop.
struct GuestListener {
    inner: Arc<Inner>,
    host: String,
    pid: u32,
}

impl Drop for GuestListener {
    fn drop(&mut self) {
        if let Ok(vm) = self.inner.vm(&self.host) {
            let _ = vm.execute(&format!("kill {} 2>/dev/null; true", self.pid));
        }
    }
}

impl Deployment for VmDeployment {
    fn backend(&self) -> Backend {
        Backend::Vm
    }

    fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    fn registry_lease(&self) -> Duration {
        Duration::from_secs(REGISTRY_LEASE_SECONDS.parse().unwrap_or(30))
    }

    fn capabilities(&self) -> Capabilities {
        let several = self.inner.placement().hosts.len() > 1;
        Capabilities {
            host_faults: several,
            partitions: several,
        }
    }

    /// The request sent from the gateway's node through the agent ([`Inner::http`]), parsed.
    fn send(&self, req: &Request) -> Result<Response, DeployError> {
        let inner = &self.inner;
        let gateway =
            inner
                .topology
                .service("gateway")
                .ok_or_else(|| DeployError::UnknownComponent {
                    name: "gateway".into(),
                    known: service_names(&inner.topology),
                })?;
        let node = gateway
            .instances
            .first()
            .map(|i| i.node.clone())
            .ok_or_else(|| failed("send", "the gateway service has no instance"))?;
        let addr = inner.listen_of(&node)?;
        inner.http(&node, addr, req)
    }

    fn stop(&self, name: &str) -> Result<(), DeployError> {
        self.inner.signal(name, "TERM")
    }

    fn kill(&self, name: &str) -> Result<(), DeployError> {
        self.inner.signal(name, "KILL")
    }

    fn start(&self, name: &str) -> Result<(), DeployError> {
        self.inner.start_component(name)
    }

    fn tcp_probe(
        &self,
        from: &str,
        to: SocketAddr,
        deadline: Duration,
    ) -> Result<TcpOutcome, DeployError> {
        self.inner.tcp_probe(from, to, deadline)
    }

    fn tcp_probes(
        &self,
        probes: &[(String, SocketAddr)],
        deadline: Duration,
    ) -> Vec<Result<TcpOutcome, DeployError>> {
        self.inner.tcp_probes(probes, deadline)
    }

    fn listen(&self, node: &str, port: u16) -> Result<Box<dyn Listener>, DeployError> {
        let inner = &self.inner;
        let vm = inner.host_of(node)?;
        let at = SocketAddr::new(inner.address(node)?, port);
        let pid = inner.spawn(
            vm,
            &format!(
                "exec {} busybox nc -ll -p {port} -e cat",
                inner.in_netns(node)
            ),
            &format!("/run/nc-{node}-{port}.log"),
        )?;
        let listener = GuestListener {
            inner: Arc::clone(inner),
            host: vm.name().to_string(),
            pid,
        };
        inner.wait_until(
            vm,
            &format!("listen on {at} in {node}"),
            &inner.tcp_command(node, at, Duration::from_secs(2)),
            Duration::from_secs(30),
        )?;
        Ok(Box::new(listener))
    }

    /// One `netns-kit probe --listen …` process per host holds that host's listeners; it
    /// prints `listening on N port(s)` once all are bound, which is what this waits for.
    fn listen_all(&self, at: &[(String, u16)]) -> Result<Vec<Box<dyn Listener>>, DeployError> {
        let inner = &self.inner;
        let mut by_vm: BTreeMap<&str, (&Vm, Vec<String>)> = BTreeMap::new();
        for (node, port) in at {
            let vm = inner.host_of(node)?;
            by_vm
                .entry(vm.name())
                .or_insert((vm, Vec::new()))
                .1
                .push(format!("--listen {node}:{port}"));
        }
        let opened: Vec<Result<Box<dyn Listener>, DeployError>> = std::thread::scope(|s| {
            let handles: Vec<_> = by_vm
                .into_values()
                .map(|(vm, flags)| {
                    s.spawn(move || -> Result<Box<dyn Listener>, DeployError> {
                        let n = inner.jobs.fetch_add(1, Ordering::Relaxed);
                        let log = format!("/run/listen-{n}.log");
                        let pid = inner.spawn(
                            vm,
                            &format!("exec {} probe {RUN} {}", STACK.netns_kit, flags.join(" ")),
                            &log,
                        )?;
                        let listener = GuestListener {
                            inner: Arc::clone(inner),
                            host: vm.name().to_string(),
                            pid,
                        };
                        // Waits in the guest (one round trip); a listener that cannot bind
                        // exits at once, and its log says why.
                        let timeout = inner.cluster.accel().scale(Duration::from_secs(30));
                        inner.succeed(
                            vm,
                            &format!("{} listeners", flags.len()),
                            &format!(
                                "i=0; while [ $i -lt {tries} ]; do \
                                   grep -q '^listening on' {log} && exit 0; \
                                   kill -0 {pid} 2>/dev/null || {{ cat {log} >&2; exit 1; }}; \
                                   sleep 0.1; i=$((i+1)); \
                                 done; cat {log} >&2; exit 1",
                                tries = timeout.as_millis() / 100
                            ),
                            timeout + Duration::from_secs(5),
                        )?;
                        Ok(Box::new(listener))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(failed("listen", "a listener thread panicked")))
                })
                .collect()
        });
        opened.into_iter().collect()
    }

    fn sql(&self, database: &str, sql: &str) -> Result<String, DeployError> {
        let inner = &self.inner;
        let (_, pg) = inner.postgres()?;
        let out = inner.run(
            inner.host_of(&pg.node)?,
            &format!("SQL on {database}"),
            &format!(
                "{} runuser -u postgres -- {}/psql -h /tmp -d {} -AtX -v ON_ERROR_STOP=1 -c {}",
                inner.in_netns(&pg.node),
                inner.pg_bindir()?,
                quote(database),
                quote(sql)
            ),
        )?;
        Ok(out.trim().to_string())
    }

    fn metrics(&self, name: &str) -> Result<String, DeployError> {
        self.inner.get_on(name, "/metrics")
    }

    fn registry_instances(&self, service: &str) -> Result<Vec<String>, DeployError> {
        let inner = &self.inner;
        let registry = inner
            .topology
            .service("registry")
            .and_then(|s| s.instances.first())
            .ok_or_else(|| DeployError::UnknownComponent {
                name: "registry".into(),
                known: service_names(&inner.topology),
            })?;
        let body = inner.get_on(&registry.node, &format!("/v1/services/{service}"))?;
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
            failed(
                format!("resolve {service}"),
                format!("not JSON ({e}): {body}"),
            )
        })?;
        Ok(crate::deployment::instance_ids(&json))
    }

    fn kill_host(&self, host: &str) -> Result<(), DeployError> {
        self.inner.vm(host)?.kill();
        Ok(())
    }

    fn restart_host(&self, host: &str) -> Result<(), DeployError> {
        let host = host.to_string();
        self.on_keeper(&format!("restart {host}"), move |inner| {
            inner.restart_host(&host)
        })
    }

    fn partition_host(&self, host: &str) -> Result<(), DeployError> {
        self.inner.vm(host)?;
        self.inner.cluster.net().disconnect(host);
        Ok(())
    }

    fn heal_host(&self, host: &str) -> Result<(), DeployError> {
        self.inner.vm(host)?;
        self.inner.cluster.net().reconnect(host);
        Ok(())
    }
}

/// Where netns-kit pins `node`'s network namespace in its guest.
fn netns_path(node: &str) -> String {
    format!("/run/netns/{RUN}-{node}")
}

/// A [`DeployError::Failed`] of the VM backend.
fn failed(what: impl Into<String>, reason: impl std::fmt::Display) -> DeployError {
    DeployError::Failed {
        backend: Backend::Vm.to_string(),
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The text of a caught panic.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// The declared service names, comma-separated.
fn service_names(t: &Topology) -> String {
    t.services
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The program a service runs (the first word of its declared command).
fn program(s: &Service) -> &str {
    s.command_template.first().map_or("", String::as_str)
}

/// The process name (`comm`) of a service's processes: its program's file name.
fn process_name(s: &Service) -> &str {
    let p = program(s);
    p.rsplit('/').next().unwrap_or(p)
}

/// The data directory of an instance in its guest (`${data_dir}`).
fn data_dir(inst: &Instance) -> String {
    format!("/run/data-{}", inst.node)
}

/// The runtime variables the backend supplies to an instance's command line.
fn vars(inst: &Instance) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("registry_token".to_string(), REGISTRY_TOKEN.to_string()),
        ("db_auth".to_string(), DB_AUTH.to_string()),
        ("data_dir".to_string(), data_dir(inst)),
    ])
}

/// `s` as one shell word.
fn quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Finds a workspace binary: `$env`, else `$CARGO_TARGET_DIR/debug/<name>`, else
/// `target/debug/<name>`.
fn find_bin(env: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(format!(
                "{env}={} is not a file (expected the {name} binary)",
                p.display()
            ));
        }
        return Ok(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    BIN_DIR
        .get()
        .map(|d| d.join(name))
        .into_iter()
        .chain([
            target.join("debug").join(name),
            workspace().join("target/debug").join(name),
        ])
    .find(|p| p.is_file())
    .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
    .ok_or_else(|| format!("{name} is not built (cargo build -p netns-kit -p ecomm-services -p vm --bins, or set {env})"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_background_command_line_parses_with_empty_output() {
        let (id, (code, out, err)) = parse_finished("7 124  dGltZW91dA==").unwrap();
        assert_eq!(
            (id, code, out.as_str(), err.as_str()),
            (7, 124, "", "timeout")
        );
        assert_eq!(parse_finished("garbage"), None);
    }

    #[test]
    fn a_word_with_shell_syntax_is_single_quoted() {
        assert_eq!(quote("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
