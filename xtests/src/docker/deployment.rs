//! [`ComposeDeployment`]: the declaration on Docker Compose as a [`Deployment`], so the
//! scenarios written once (`crate::scenarios`) run on it.
//!
//! [`ComposeDeployment::start`] generates the Compose file from the declaration
//! ([`super::generate::compose`]: one container per declared node plus the router), builds the
//! images locally (scripts/docker-images.sh) and starts the project `ecomm<run>` (every object
//! labelled `ecomm.run=<run>`): every container created at once, the router started first,
//! then the nodes stage by stage in the declaration's start order (the services of a stage side
//! by side; of one service the first instance alone, since it creates the service's database,
//! then the others), each *wired* right after it starts — its routes (the netns-kit plan's:
//! default via the router's address on its tier) and, for the router, the declared policy's
//! nftables table, both written over netlink from a thread that entered the container's own
//! network namespace (`/proc/<pid>/ns/net`), never the host's — and waited on until healthy.
//! A started (or restarted) container gets a new namespace, so [`Deployment::start`] wires it
//! again. Drop runs `down -v` and sweeps the run's label: nothing is left.
//!
//! Requests go to the gateway's port published on 127.0.0.1; TCP probes, listeners, metrics
//! and registry look-ups run inside the namespace of the node they are about.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netns_kit::route::{self, Route};
use netns_kit::topology::plan::{Naming, Plan};
use netns_kit::topology::Topology;
use netns_kit::Netns;

use super::generate::{self, NODE_LABEL};
use super::host_load;
use super::run::{new_run_id, remove_labelled};
use super::tiers::{self, TierClaim};
use crate::deployment::{Backend, DeployError, Deployment, Listener};
use crate::http::{Request, Response};
use crate::ns::{NsHandle, TcpOutcome};

const BACKEND: &str = "docker";

/// How long one node may take to become healthy after it started, on an idle host (stretched
/// by [`host_load::scaled`] on a loaded one).
const HEALTHY_SECONDS: u64 = 120;

fn failed(what: impl Into<String>, reason: impl std::fmt::Display) -> DeployError {
    DeployError::Failed {
        backend: BACKEND.into(),
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The declaration on Docker Compose, one container per declared node. See the module docs.
pub struct ComposeDeployment {
    topology: Topology,
    plan: Plan,
    run: String,
    project: String,
    dir: PathBuf,
    file: PathBuf,
    router: String,
    /// The published node (the `[host]` allowance's target) and its service port.
    front: (String, u16),
    gateway: SocketAddr,
    host_ns: NsHandle,
    /// Container ids by node (stable: containers are created once).
    ids: Mutex<BTreeMap<String, String>>,
    /// Namespaces by node, dropped whenever the node is stopped, killed or started.
    namespaces: Mutex<BTreeMap<String, NsHandle>>,
    /// The registry lease the services run with, in seconds: the netns lab's, stretched by the
    /// host's load when the deployment started (a lease the services cannot renew in time on a
    /// loaded host drops live instances from the registry, and the gateway with them).
    lease_seconds: u64,
    /// The declared tier subnets, this run's until dropped (after `down`, see `Drop`).
    _tiers: TierClaim,
}

/// Starts the declaration `file` on Docker Compose; see [`ComposeDeployment::start`].
pub fn start(file: &Path) -> Result<ComposeDeployment, DeployError> {
    ComposeDeployment::start(file)
}

impl ComposeDeployment {
    /// Generates the Compose file of the declaration `file`, builds the images and starts
    /// every node (router first, then in start order), wired and healthy. On failure
    /// everything started so far is removed. Waits for another deployment holding the tier
    /// subnets at most [`tiers::default_wait`]; see [`ComposeDeployment::start_waiting`].
    pub fn start(file: &Path) -> Result<Self, DeployError> {
        Self::start_waiting(file, tiers::default_wait())
    }

    /// [`ComposeDeployment::start`], waiting at most `wait` for another deployment that holds
    /// the declared tier subnets ([`TierClaim`], a progress line names it). Before anything is
    /// created, a route of the host or a Docker network over a declared subnet is refused
    /// with an error that names both ([`tiers::TierError`]); nothing is left behind.
    pub fn start_waiting(file: &Path, wait: Duration) -> Result<Self, DeployError> {
        let topology = Topology::from_path(file)
            .map_err(|e| failed(format!("read the declaration {}", file.display()), e))?;
        let run = new_run_id();
        let plan = Plan::for_run(&topology, &run, Naming::Anonymous)
            .map_err(|e| failed("plan the declaration", e))?;
        let router = topology
            .router
            .as_ref()
            .map(|r| r.name.clone())
            .ok_or_else(|| failed("start", "the declaration has no [router]"))?;
        let front = front_of(&topology)?;
        let text = generate::compose(&topology).map_err(|e| failed("generate compose.yml", e))?;
        let project = format!("ecomm{run}");
        // The images first: they belong to no run, and building them may take minutes that
        // another deployment need not wait for.
        build_images()?;
        let claim = claim_tiers(&topology, &run, &project, wait)?;
        let dir = std::env::temp_dir().join(format!("ecomm-compose-{run}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| failed(format!("create {}", dir.display()), e))?;
        let compose_file = dir.join("compose.yml");
        std::fs::write(&compose_file, text)
            .map_err(|e| failed(format!("write {}", compose_file.display()), e))?;
        let host_ns = NsHandle::open("host", Path::new("/proc/self/ns/net"))
            .map_err(|e| failed("open this process's network namespace", e))?;
        let mut d = ComposeDeployment {
            topology,
            plan,
            project,
            run,
            dir,
            file: compose_file,
            router,
            gateway: SocketAddr::from(([127, 0, 0, 1], 0)),
            front,
            host_ns,
            ids: Mutex::new(BTreeMap::new()),
            namespaces: Mutex::new(BTreeMap::new()),
            lease_seconds: crate::lab::REGISTRY_TTL_SECONDS * u64::from(host_load::factor()),
            _tiers: claim,
        };
        let started = Instant::now();
        // Every container (and the networks and the volume) created at once, none started.
        d.compose(&["up", "--no-start"], 300)?;
        // The router through Compose: only Compose connects a container's second and further
        // networks (when it starts it); the nodes have one network each.
        let router = d.router.clone();
        d.compose(&["up", "-d", "--no-deps", &router], 300)?;
        d.wire(&router)?;
        d.wait_healthy(&router)?;
        d.start_stages()?;
        eprintln!(
            "docker {}: {} nodes up, wired and healthy in {:.1} s (registry lease {} s, load {:.1} per core)",
            d.run,
            d.topology.nodes.len(),
            started.elapsed().as_secs_f64(),
            d.lease_seconds,
            host_load::per_core()
        );
        let port = d.front.1.to_string();
        let published = d.compose(&["port", &d.front.0, &port], 60)?;
        d.gateway = published
            .lines()
            .filter_map(|l| l.trim().parse::<SocketAddr>().ok())
            .find(|a| a.ip().is_loopback())
            .ok_or_else(|| {
                failed(
                    format!("find the published port of {}", d.front.0),
                    format!("docker-compose port printed {published:?}"),
                )
            })?;
        Ok(d)
    }

    /// The Compose project name (`ecomm<run>`): every container, network and volume starts
    /// with it.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The generated Compose file this deployment runs.
    pub fn compose_file(&self) -> &Path {
        &self.file
    }

    /// The gateway's published address on 127.0.0.1.
    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// Runs `docker-compose -p <project> -f <file> args…` with this run's settings.
    pub fn compose(&self, args: &[&str], seconds: u64) -> Result<String, DeployError> {
        let file = self.file.to_string_lossy().into_owned();
        let mut all = vec!["-p", self.project.as_str(), "-f", file.as_str()];
        all.extend_from_slice(args);
        let publish = format!(
            "ECOMM_{}_PUBLISH",
            self.front.0.to_ascii_uppercase().replace('-', "_")
        );
        let ttl = self.lease_seconds.to_string();
        let env = [
            ("ECOMM_RUN", self.run.as_str()),
            (publish.as_str(), "127.0.0.1:"),
            ("ECOMM_REGISTRY_TTL_SECONDS", ttl.as_str()),
        ];
        run_cmd("docker-compose", &all, &env, seconds)
    }

    fn known(&self) -> String {
        let mut names: Vec<&str> = self
            .topology
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        names.push(&self.router);
        names.join(", ")
    }

    fn check_known(&self, name: &str) -> Result<(), DeployError> {
        if name == self.router || self.topology.node(name).is_some() {
            Ok(())
        } else {
            Err(DeployError::UnknownComponent {
                name: name.to_string(),
                known: self.known(),
            })
        }
    }

    /// The container id of node `name` in this project.
    pub fn container(&self, name: &str) -> Result<String, DeployError> {
        self.check_known(name)?;
        if let Some(id) = lock(&self.ids).get(name) {
            return Ok(id.clone());
        }
        let project = format!("label=com.docker.compose.project={}", self.project);
        let node = format!("label={NODE_LABEL}={name}");
        let out = run_cmd(
            "docker",
            &["ps", "-aq", "--filter", &project, "--filter", &node],
            &[],
            60,
        )?;
        let id = out.lines().next().map(str::to_string).ok_or_else(|| {
            failed(
                format!("find the container of {name}"),
                "none in the project",
            )
        })?;
        lock(&self.ids).insert(name.to_string(), id.clone());
        Ok(id)
    }

    fn inspect(&self, id: &str, format: &str) -> Result<String, DeployError> {
        run_cmd("docker", &["inspect", "-f", format, id], &[], 60)
    }

    /// The pid of node `name`'s container (it must be running).
    fn pid(&self, name: &str) -> Result<i32, DeployError> {
        let id = self.container(name)?;
        let pid = self.inspect(&id, "{{.State.Pid}}")?;
        match pid.trim().parse::<i32>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(failed(
                format!("enter {name}"),
                format!("its container is not running (pid {pid:?})"),
            )),
        }
    }

    fn netns_path(&self, name: &str) -> Result<PathBuf, DeployError> {
        Ok(PathBuf::from(format!("/proc/{}/ns/net", self.pid(name)?)))
    }

    /// The network namespace of node `name`'s container, held by descriptor.
    pub fn ns(&self, name: &str) -> Result<NsHandle, DeployError> {
        if let Some(ns) = lock(&self.namespaces).get(name) {
            return Ok(ns.clone());
        }
        let ns = NsHandle::open(name, &self.netns_path(name)?)
            .map_err(|e| failed(format!("enter {name}"), e))?;
        lock(&self.namespaces).insert(name.to_string(), ns.clone());
        Ok(ns)
    }

    /// Forgets node `name`'s namespace (it is stopped, or about to get a new one).
    fn forget_ns(&self, name: &str) {
        lock(&self.namespaces).remove(name);
    }

    /// Applies node `name`'s share of the plan inside its container's namespace: the router's
    /// nftables table (and no default route: nothing leaves the tiers), or a node's routes.
    fn wire(&self, name: &str) -> Result<(), DeployError> {
        let what = format!("wire {name}");
        let ns = Netns::open_path(&self.netns_path(name)?).map_err(|e| failed(&what, e))?;
        let mut nl = ns.netlink().map_err(|e| failed(&what, e))?;
        let routes = route::list(&mut nl).map_err(|e| failed(&what, e))?;
        for r in routes.iter().filter(|r| r.dest.is_none()) {
            if let Some(IpAddr::V4(via)) = r.via {
                delete_default_route(&mut nl, via).map_err(|e| failed(&what, e))?;
            }
        }
        if name == self.router {
            let fw = self
                .plan
                .firewalls
                .iter()
                .find(|f| f.ns == name)
                .ok_or_else(|| failed(&what, "the plan has no ruleset for the router"))?;
            netns_kit::firewall::apply::load(&ns, &fw.ruleset).map_err(|e| failed(&what, e))?;
            return Ok(());
        }
        for r in self.plan.routes.iter().filter(|r| r.ns == name) {
            // A planned device is looked up by name in the container (Docker names its own).
            let route = Route::from_planned(r, |dev| {
                netns_kit::link::by_name(&mut nl, dev)
                    .map_err(|e| failed(&what, e))?
                    .map(|l| l.index)
                    .ok_or_else(|| {
                        failed(
                            &what,
                            format!("the plan routes out of {dev}, which it lacks"),
                        )
                    })
            })?;
            route.add(&mut nl).map_err(|e| failed(&what, e))?;
        }
        if std::env::var_os("ECOMM_DOCKER_DEBUG").is_some() {
            let now = route::list(&mut nl).map_err(|e| failed(&what, e))?;
            eprintln!("docker {}: {name} wired: {now:?}", self.run);
        }
        Ok(())
    }

    /// Waits until node `name`'s container is healthy (running, for one without a check).
    fn wait_healthy(&self, name: &str) -> Result<(), DeployError> {
        let id = self.container(name)?;
        let limit = host_load::scaled(HEALTHY_SECONDS);
        let deadline = Instant::now() + Duration::from_secs(limit);
        loop {
            let state = self.inspect(
                &id,
                "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
            )?;
            match state.split_once(' ') {
                Some(("running", "healthy" | "none")) => return Ok(()),
                Some((status, _)) if status != "running" && status != "created" => {
                    return Err(failed(
                        format!("wait for {name} to become healthy"),
                        format!("its container is {status}: {}", self.container_log(&id, 15)),
                    ))
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(failed(
                    format!("wait for {name} to become healthy"),
                    format!(
                        "still {state:?} after {limit} s: {}",
                        self.container_log(&id, 15)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn container_log(&self, id: &str, lines: usize) -> String {
        let lines = lines.to_string();
        Command::new("docker")
            .args(["logs", "--tail", &lines, id])
            .stdin(Stdio::null())
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }

    /// Starts node `name`'s container, wires it and waits until it is healthy.
    fn start_node(&self, name: &str) -> Result<(), DeployError> {
        let id = self.container(name)?;
        self.forget_ns(name);
        run_cmd("docker", &["start", &id], &[], 120)?;
        self.wire(name)?;
        self.wait_healthy(name)
    }

    /// Starts every node stage by stage (a stage's dependencies are all healthy before it
    /// starts). Within a stage the services start side by side; of one service the first
    /// instance starts alone (it creates the service's database), the others together after it.
    fn start_stages(&self) -> Result<(), DeployError> {
        let mut stages: BTreeMap<usize, Vec<&netns_kit::topology::Service>> = BTreeMap::new();
        for s in &self.topology.services {
            stages.entry(s.stage).or_default().push(s);
        }
        for services in stages.values() {
            let results: Vec<Result<(), DeployError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = services
                    .iter()
                    .map(|s| scope.spawn(move || self.start_service(s)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(failed("start a stage", "a thread panicked")))
                    })
                    .collect()
            });
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
        }
        Ok(())
    }

    fn start_service(&self, s: &netns_kit::topology::Service) -> Result<(), DeployError> {
        let Some((first, rest)) = s.instances.split_first() else {
            return Ok(());
        };
        self.start_node(&first.node)?;
        let results: Vec<Result<(), DeployError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .iter()
                .map(|i| scope.spawn(move || self.start_node(&i.node)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(failed(format!("start {}", s.name), "a thread panicked"))
                    })
                })
                .collect()
        });
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    }

    /// The service that runs on node `name`.
    fn service_on(&self, name: &str) -> Result<&netns_kit::topology::Service, DeployError> {
        self.check_known(name)?;
        self.topology
            .services
            .iter()
            .find(|s| s.instances.iter().any(|i| i.node == name))
            .ok_or_else(|| failed(format!("use {name}"), "no service runs on it"))
    }

    fn http(&self, from: &str, to: &str, req: &Request) -> Result<Response, DeployError> {
        let addr = self
            .service_on(to)?
            .listen(to)
            .ok_or_else(|| failed(format!("{} {} on {to}", req.method, req.path), "no port"))?;
        req.send(&self.ns(from)?, addr)
            .map_err(|e| failed(format!("{} {} on {to}", req.method, req.path), e))
    }

    /// The node PostgreSQL runs on and its port.
    fn postgres(&self) -> Result<(String, u16), DeployError> {
        self.topology
            .services
            .iter()
            .find(|s| s.command_template.first().map(String::as_str) == Some("postgres"))
            .and_then(|s| Some((s.instances.first()?.node.clone(), s.port?)))
            .ok_or_else(|| failed("run SQL", "the declaration runs no postgres with a port"))
    }
}

/// Deletes the IPv4 default route via `via`, whatever protocol installed it (Docker's are not
/// `static`, which [`Route::delete`] matches on).
fn delete_default_route(
    nl: &mut netns_kit::netlink::Netlink,
    via: Ipv4Addr,
) -> netns_kit::Result<()> {
    use netns_kit::netlink_packet_route::route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope,
    };
    use netns_kit::netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.scope = RouteScope::NoWhere;
    msg.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(via)));
    nl.execute(
        RouteNetlinkMessage::DelRoute(msg),
        0,
        format!("delete the default route via {via}"),
    )
}

/// Claims the declared tier subnets for run `run` (waiting at most `wait`), then refuses them
/// if a route of this process's namespace or another Docker network already overlaps one.
fn claim_tiers(
    t: &Topology,
    run: &str,
    project: &str,
    wait: Duration,
) -> Result<TierClaim, DeployError> {
    let what = "claim the tier subnets";
    let subnets = tiers::subnets(t);
    let holder = format!("run {run} (project {project})");
    let claim = TierClaim::acquire(Path::new(tiers::LOCK_PATH), &subnets, &holder, wait)
        .map_err(|e| failed(what, e))?;
    tiers::check_networks(&subnets).map_err(|e| failed(what, e))?;
    let host = Netns::current_process().map_err(|e| failed(what, e))?;
    tiers::check_routes(&host, &subnets).map_err(|e| failed(what, e))?;
    Ok(claim)
}

/// The node the host reaches (the `[host]` allowance's target) and its service's port.
fn front_of(t: &Topology) -> Result<(String, u16), DeployError> {
    let node = t
        .host
        .as_ref()
        .and_then(|h| {
            h.allow.iter().find_map(|a| match &a.to {
                netns_kit::topology::Target::Node(n) => Some(n.clone()),
                _ => None,
            })
        })
        .ok_or_else(|| {
            failed(
                "start",
                "the declaration's [host] allows no node to publish",
            )
        })?;
    let port = t
        .services
        .iter()
        .find(|s| s.instances.iter().any(|i| i.node == node))
        .and_then(|s| s.port)
        .ok_or_else(|| failed("start", format!("no service with a port runs on {node}")))?;
    Ok((node, port))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn build_images() -> Result<(), DeployError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("build the images", e))?;
    rt.block_on(super::images::ensure_images())
        .map_err(|e| failed("build the images", e))
}

/// Runs `program args…` under `timeout` (`seconds` on an idle host, stretched by
/// [`host_load::scaled`]), with `env` added; trimmed stdout, or an error with the tail of
/// stderr.
fn run_cmd(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    seconds: u64,
) -> Result<String, DeployError> {
    let line = format!("{program} {}", args.join(" "));
    let seconds = host_load::scaled(seconds);
    let out = Command::new("timeout")
        .arg("--kill-after=5")
        .arg(seconds.to_string())
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(&line, e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        return Err(failed(
            &line,
            format!(
                "{}: {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Deployment for ComposeDeployment {
    fn backend(&self) -> Backend {
        Backend::Docker
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn run_id(&self) -> &str {
        &self.run
    }

    /// The registry lease the services run with (the netns lab's, stretched by the host's
    /// load at start; set through `ECOMM_REGISTRY_TTL_SECONDS`).
    fn registry_lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    /// The last `lines` lines of node `name`'s container log (`docker logs`).
    fn log_tail(&self, name: &str, lines: usize) -> Option<String> {
        let id = self.container(name).ok()?;
        Some(self.container_log(&id, lines))
    }

    fn send(&self, req: &Request) -> Result<Response, DeployError> {
        req.send(&self.host_ns, self.gateway).map_err(|e| {
            failed(
                format!("{} {} through the gateway", req.method, req.path),
                e,
            )
        })
    }

    fn stop(&self, name: &str) -> Result<(), DeployError> {
        let id = self.container(name)?;
        self.forget_ns(name);
        run_cmd("docker", &["stop", "-t", "10", &id], &[], 60).map(|_| ())
    }

    fn kill(&self, name: &str) -> Result<(), DeployError> {
        let id = self.container(name)?;
        self.forget_ns(name);
        run_cmd("docker", &["kill", "-s", "KILL", &id], &[], 60)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.inspect(&id, "{{.State.Running}}")? == "true" {
            if Instant::now() >= deadline {
                return Err(failed(format!("kill {name}"), "still running after 30 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn start(&self, name: &str) -> Result<(), DeployError> {
        self.start_node(name)
    }

    fn tcp_probe(
        &self,
        from: &str,
        to: SocketAddr,
        deadline: Duration,
    ) -> Result<TcpOutcome, DeployError> {
        self.ns(from)?
            .probe_tcp(to, deadline)
            .map_err(|e| failed(format!("probe {to} from {from}"), e))
    }

    fn listen(&self, node: &str, port: u16) -> Result<Box<dyn Listener>, DeployError> {
        self.check_known(node)?;
        let addr: IpAddr = self
            .topology
            .node(node)
            .and_then(|n| n.interfaces.first())
            .map(|i| i.address)
            .ok_or_else(|| failed(format!("listen on {node}"), "it has no declared address"))?;
        let what = format!("listen on {node} {addr}:{port}");
        let listener = self
            .ns(node)?
            .run(move || TcpListener::bind(SocketAddr::new(addr, port)))
            .map_err(|e| failed(&what, e))?
            .map_err(|e| failed(&what, e))?;
        Ok(Box::new(listener))
    }

    fn sql(&self, database: &str, sql: &str) -> Result<String, DeployError> {
        let (node, port) = self.postgres()?;
        let id = self.container(&node)?;
        let port = port.to_string();
        run_cmd(
            "docker",
            &[
                "exec",
                &id,
                "psql",
                "-h",
                "/run/postgresql",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-F",
                "|",
                "-c",
                sql,
            ],
            &[],
            60,
        )
    }

    fn metrics(&self, name: &str) -> Result<String, DeployError> {
        Ok(self.http(name, name, &Request::get("/metrics"))?.text())
    }

    fn registry_instances(&self, service: &str) -> Result<Vec<String>, DeployError> {
        let registry = self
            .topology
            .service("registry")
            .and_then(|s| s.instances.first())
            .map(|i| i.node.clone())
            .ok_or_else(|| failed("ask the registry", "no registry declared"))?;
        let path = format!("/v1/services/{service}");
        let resp = self.http(&registry, &registry, &Request::get(&path))?;
        let json = resp.json().map_err(|e| {
            failed(
                format!("GET {path}"),
                format!("not JSON ({e}): {}", resp.text()),
            )
        })?;
        Ok(crate::deployment::instance_ids(&json))
    }
}

impl Drop for ComposeDeployment {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "2"], 180);
        remove_labelled(&self.run);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
