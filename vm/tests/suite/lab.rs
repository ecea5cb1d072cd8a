//! The multi-VM lab: the VMs, what each carries and what runs where all come from the
//! declaration (`ecomm-services/deploy/three-tier.toml`, `[placement]`, `[[services]]`):
//!
//! - vm1: the router, the frontend tier (gateway) and the database tier (redis, postgres);
//! - vm2: backend nodes registry, product-1, order-1;
//! - vm3: backend nodes product-2, order-2.
//!
//! One VM per placement host. Every VM gets the file unmodified and applies only its share
//! (`netns-kit apply --host <vm> FILE --name lab`): its nodes, the networks they touch, the
//! overlay derived from the placement, and the router and its policy where the router is
//! placed. The derived overlay stretches every network spanning hosts (the backend) with a
//! VXLAN created in the guest's root namespace on the `[underlay]` device (a VXLAN keeps its
//! UDP socket in the namespace it was created in) and moved into the fabric, enslaved to the
//! bridge. Nodes on vm2/vm3 keep their default route to the router on vm1, so vm1's tier
//! policy applies to cross-host traffic exactly as on one host.
//!
//! Services run with the command lines the declaration gives, the runtime variables
//! (registry token, database credentials, data directories) supplied here.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use netns_kit::topology::{Instance, Ready, Service, Topology};
use vm::{Cluster, ClusterSpec, Vm, VmSpec};

/// The run name given to `netns-kit apply --name`; namespaces are `lab-<node>`.
pub const RUN: &str = "lab";
/// The underlay segment all VMs share.
pub const UNDERLAY: &str = "underlay";
/// Where the topology file is copied in each guest.
const TOPOLOGY_IN_GUEST: &str = "/run/topology.toml";
/// The registry's bearer token (test-only; `${registry_token}`).
pub const REGISTRY_TOKEN: &str = "vm-suite-token";
/// The role the services connect to PostgreSQL as (`${db_auth}`; the data directory
/// trusts every connection).
const DB_AUTH: &str = "postgres";
/// The program name in the declaration that means "the `ecomm` binary under test".
const ECOMM: &str = "ecomm";
/// The program name of the PostgreSQL server (run from its bin dir, found in the guest).
const POSTGRES: &str = "postgres";
/// Where PostgreSQL's bin dir is: `pg_config --bindir`, else the newest
/// /usr/lib/postgresql/<version>/bin; prints it.
const PG_BINDIR: &str = "d=$(pg_config --bindir 2>/dev/null); \
    [ -x \"$d/postgres\" ] || d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1); \
    [ -x \"$d/postgres\" ] && echo \"$d\"";

/// The declaration the suite runs: `$ECOMM_TOPOLOGY`, else the shared three-tier file.
fn topology_file() -> PathBuf {
    std::env::var_os("ECOMM_TOPOLOGY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("ecomm-services/deploy/three-tier.toml"))
}

/// A TCP path a scenario checks: from a node, to a node, on a port.
pub type TcpPath<'a> = (&'a str, &'a str, u16);

/// Host binaries the guests run (seen through the 9p root).
#[derive(Debug, Clone)]
pub struct Bins {
    /// The netns-kit CLI.
    pub netns_kit: PathBuf,
    /// The ecomm services binary.
    pub ecomm: PathBuf,
    /// Whether `ecomm` has the product and order subcommands yet.
    pub has_services: bool,
}

fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Finds a workspace binary: `$env`, else the newest `target/**/debug/<name>`.
fn find_bin(env: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    // The build `just test-vm` just made wins; other target dirs (parallel developers'
    // builds) are a fallback, newest first.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    for preferred in [
        target.join("debug").join(name),
        workspace().join("target/debug").join(name),
    ] {
        if preferred.is_file() {
            return Ok(preferred);
        }
    }
    let mut candidates = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(workspace().join("target")) {
        for d in dirs.flatten() {
            candidates.push(d.path().join("debug").join(name));
        }
    }
    candidates
        .into_iter()
        .filter(|p| p.is_file())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .ok_or_else(|| format!("{name} not built (cargo build -p ... --bins, or set {env})"))
}

impl Bins {
    /// Locates netns-kit and ecomm.
    pub fn find() -> Result<Bins, String> {
        let netns_kit = find_bin("NETNS_KIT_BIN", "netns-kit")?;
        let ecomm = find_bin("ECOMM_BIN", "ecomm")?;
        let help = std::process::Command::new(&ecomm)
            .arg("--help")
            .output()
            .map_err(|e| format!("{}: {e}", ecomm.display()))?;
        let help = String::from_utf8_lossy(&help.stdout);
        let has_services = help.lines().any(|l| l.trim_start().starts_with("product"))
            && help.lines().any(|l| l.trim_start().starts_with("order"));
        Ok(Bins {
            netns_kit,
            ecomm,
            has_services,
        })
    }
}

/// The running lab.
pub struct Lab {
    /// The VMs, one per placement host.
    pub cluster: Cluster,
    /// The binaries in use.
    pub bins: Bins,
    /// The declaration, validated (the whole of it; each VM applies its share).
    pub topology: Topology,
    /// The declaration's text, copied unmodified into every guest.
    text: String,
    /// PostgreSQL's bin dir, found in the guest hosting PostgreSQL.
    pg_bindir: OnceLock<String>,
}

impl Lab {
    /// Boots one VM per placement host, applies each VM's share of the declaration and
    /// starts the declared services (in their declared start order).
    pub fn start(bins: Bins) -> Option<Lab> {
        let file = topology_file();
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read the topology file {}: {e}", file.display()));
        let topology =
            Topology::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let placement = topology.placement.as_ref().unwrap_or_else(|| {
            panic!(
                "{} has no [placement]: the VM suite runs one VM per placement host",
                file.display()
            )
        });
        let mut spec = ClusterSpec::new();
        for (host, nodes) in &placement.hosts {
            // The data stores need the most memory.
            let stores = topology
                .services
                .iter()
                .filter(|s| program(s) != ECOMM)
                .flat_map(|s| &s.instances)
                .any(|i| nodes.contains(&i.node));
            let mib = if stores { 1024 } else { 768 };
            spec = spec.vm(VmSpec::new(host).memory_mib(mib).nic(UNDERLAY));
        }
        let cluster = crate::common::start(spec)?;
        let lab = Lab {
            cluster,
            bins,
            topology,
            text,
            pg_bindir: OnceLock::new(),
        };
        lab.check_underlay();
        lab.cluster.phase("tiers and overlay", || {
            std::thread::scope(|s| {
                for host in lab.hosts() {
                    let lab = &lab;
                    s.spawn(move || lab.build_host(host));
                }
            });
        });
        let what = if lab.bins.has_services {
            "services"
        } else {
            "datastores"
        };
        lab.cluster
            .phase(what, || lab.start_services_on(&lab.hosts()));
        Some(lab)
    }

    /// The VM by name.
    pub fn vm(&self, name: &str) -> &Vm {
        self.cluster.vm(name)
    }

    fn placement(&self) -> &netns_kit::topology::Placement {
        // Checked in `start`.
        self.topology
            .placement
            .as_ref()
            .unwrap_or_else(|| panic!("the topology has no [placement]"))
    }

    /// The placement's hosts (one VM each), sorted.
    pub fn hosts(&self) -> Vec<&str> {
        self.placement().hosts.keys().map(String::as_str).collect()
    }

    /// The VM hosting `node`.
    pub fn host_of(&self, node: &str) -> &Vm {
        let vm = self.placement().host_of(node);
        self.vm(vm.unwrap_or_else(|| panic!("node {node} is not placed")))
    }

    /// The declared address of `node` (its first interface's).
    pub fn address(&self, node: &str) -> IpAddr {
        self.topology
            .node(node)
            .and_then(|n| n.interfaces.first())
            .map(|i| i.address)
            .unwrap_or_else(|| panic!("no node {node} with an address in the declaration"))
    }

    /// The service with an instance on `node`.
    fn service_on(&self, node: &str) -> &Service {
        self.topology
            .services
            .iter()
            .find(|s| s.instances.iter().any(|i| i.node == node))
            .unwrap_or_else(|| panic!("no service runs on node {node}"))
    }

    /// The main port of the service running on `node`.
    pub fn port_of(&self, node: &str) -> u16 {
        self.service_on(node)
            .port
            .unwrap_or_else(|| panic!("the service on {node} declares no port"))
    }

    /// Where the instance on `node` listens (its main port).
    pub fn listen_of(&self, node: &str) -> SocketAddr {
        SocketAddr::new(self.address(node), self.port_of(node))
    }

    /// The gateway's URL (`http://<address>:<port>`, from the declaration).
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.listen_of("gateway"))
    }

    /// The database the declaration gives service `service` (`data.database`).
    pub fn database(&self, service: &str) -> &str {
        self.topology
            .service(service)
            .and_then(|s| s.data.get("database"))
            .unwrap_or_else(|| panic!("service {service} declares no data.database"))
    }

    /// The shell prefix running a command in `node`'s namespace.
    pub fn in_node(&self, node: &str) -> String {
        format!("{} exec {RUN} {node} --", self.bins.netns_kit.display())
    }

    /// A unicast underlay names each host's address: it must be the VM's NIC address (a
    /// multicast underlay needs none).
    fn check_underlay(&self) {
        for (host, declared) in &self.placement().underlay.addresses {
            let nic = self.vm(host).ip(UNDERLAY);
            assert_eq!(
                nic,
                declared.to_string(),
                "[underlay] hosts.{host} must be {host}'s NIC address on the VM underlay"
            );
        }
    }

    /// Copies the declaration into `vm_name` and applies that host's share of it; checks
    /// that the VM then holds the namespaces of exactly the nodes placed on it.
    pub fn build_host(&self, vm_name: &str) {
        let vm = self.vm(vm_name);
        vm.write_file(TOPOLOGY_IN_GUEST, self.text.as_bytes());
        // MTU room for the VXLAN header on the underlay (the VXLAN takes the device's
        // MTU − 50), then this host's share: tiers, nodes and the derived overlay.
        let mtu = match &self.placement().underlay.dev {
            Some(dev) => format!("ip link set {dev} mtu 1600 && "),
            None => String::new(),
        };
        let out = vm.succeed(&format!(
            "{mtu}{} apply --host {vm_name} {TOPOLOGY_IN_GUEST} --name {RUN} >&2 && ip netns list",
            self.bins.netns_kit.display()
        ));
        let namespaces: Vec<&str> = out
            .lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .next()?
                    .strip_prefix(&format!("{RUN}-"))
            })
            .collect();
        for (host, nodes) in &self.placement().hosts {
            for node in nodes {
                assert_eq!(
                    namespaces.contains(&node.as_str()),
                    host == vm_name,
                    "{vm_name} after apply --host {vm_name}: namespace {RUN}-{node} (placed on {host}); namespaces: {namespaces:?}"
                );
            }
        }
    }

    /// Whether this lab runs `s` (the ecomm services only when `ecomm` has them).
    fn runs(&self, s: &Service) -> bool {
        self.bins.has_services || program(s) != ECOMM
    }

    /// The declared service running PostgreSQL and its (only) instance.
    fn postgres(&self) -> (&Service, &Instance) {
        self.topology
            .services
            .iter()
            .find(|s| program(s) == POSTGRES)
            .and_then(|s| Some((s, s.instances.first()?)))
            .unwrap_or_else(|| panic!("the declaration runs no {POSTGRES}"))
    }

    /// PostgreSQL's bin dir, found once in the guest that runs it.
    fn pg_bindir(&self) -> &str {
        self.pg_bindir.get_or_init(|| {
            let (_, pg) = self.postgres();
            let dir = self.host_of(&pg.node).succeed(PG_BINDIR);
            let dir = dir.trim();
            assert!(!dir.is_empty(), "no PostgreSQL bin dir in the guest");
            dir.to_string()
        })
    }

    /// Starts the declared services of `vm_name` in their start order.
    pub fn start_services(&self, vm_name: &str) {
        self.start_services_on(&[vm_name]);
    }

    /// Starts the declared services placed on `hosts`, stage by stage (a service starts once
    /// every service it depends on is ready); within a stage all instances at once, the VMs
    /// in parallel, with one readiness wait per VM.
    fn start_services_on(&self, hosts: &[&str]) {
        let last = self.topology.services.iter().map(|s| s.stage).max();
        for stage in 0..=last.unwrap_or(0) {
            let services: Vec<&Service> = self
                .topology
                .services
                .iter()
                .filter(|s| s.stage == stage && self.runs(s))
                .filter(|s| {
                    s.instances.iter().any(|i| {
                        hosts
                            .iter()
                            .any(|h| self.placement().hosts[*h].contains(&i.node))
                    })
                })
                .collect();
            if services.is_empty() {
                continue;
            }
            let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            self.cluster
                .phase(&format!("stage {stage} ({})", names.join(", ")), || {
                    std::thread::scope(|s| {
                        for host in hosts {
                            let services = &services;
                            s.spawn(move || self.start_on(host, services));
                        }
                    });
                });
        }
    }

    /// Starts every instance of `services` placed on `vm_name` and waits until each is ready.
    fn start_on(&self, vm_name: &str, services: &[&Service]) {
        let vm = self.vm(vm_name);
        let placed = &self.placement().hosts[vm_name];
        let mut probes = Vec::new();
        let mut postgres_here = false;
        for s in services {
            for inst in s.instances.iter().filter(|i| placed.contains(&i.node)) {
                if program(s) == POSTGRES {
                    self.prepare_postgres(vm, inst);
                    postgres_here = true;
                } else if program(s) != ECOMM {
                    vm.succeed(&format!("mkdir -p {}", data_dir(inst)));
                }
                vm.spawn(
                    &self.command_line(s, inst),
                    &format!("/run/{}.log", inst.node),
                );
                probes.extend(self.ready_probe(s, inst));
            }
        }
        if !probes.is_empty() {
            vm.wait_until_succeeds(&probes.join(" && "), Duration::from_secs(30));
        }
        if postgres_here {
            self.create_databases();
        }
    }

    /// The shell command running instance `inst` of `s`: the declared command line and
    /// environment with the runtime variables filled in, in the instance's node.
    fn command_line(&self, s: &Service, inst: &Instance) -> String {
        let vars = vars(inst);
        let args = inst
            .command_with(&vars)
            .unwrap_or_else(|e| panic!("service {}: {e}", s.name));
        let mut env = inst
            .env_with(&vars)
            .unwrap_or_else(|e| panic!("service {}: {e}", s.name));
        let Some((program, rest)) = args.split_first() else {
            panic!("service {}: empty command", s.name)
        };
        let (prefix, program) = match program.as_str() {
            ECOMM => {
                env.extend(
                    SUITE_ENV
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                );
                (String::new(), self.bins.ecomm.display().to_string())
            }
            POSTGRES => (
                "runuser -u postgres --".to_string(),
                format!("{}/{POSTGRES}", self.pg_bindir()),
            ),
            other => (String::new(), other.to_string()),
        };
        let env: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        let args: Vec<String> = rest.iter().map(|a| quote(a)).collect();
        format!(
            "{} {prefix} env {} {} {}",
            self.in_node(&inst.node),
            env.join(" "),
            quote(&program),
            args.join(" ")
        )
    }

    /// The declared readiness probe of an instance, as a guest command (none: no probe).
    fn ready_probe(&self, s: &Service, inst: &Instance) -> Option<String> {
        match &s.ready {
            Ready::None => None,
            Ready::Tcp { port } => Some(self.tcp_probe(&inst.node, inst.address, *port, 2)),
            Ready::Http { port, path } => Some(format!(
                "{} curl -sf -m 2 -o /dev/null http://{}{path}",
                self.in_node(&inst.node),
                SocketAddr::new(inst.address, *port)
            )),
        }
    }

    /// The PostgreSQL data directory of `inst`: a copy of a template made by `initdb` on
    /// the host (initdb takes ~25 s under TCG), in the guest's tmpfs overlay, trusting every
    /// connection, tuned for speed (no durability needed), its socket in /tmp.
    fn prepare_postgres(&self, vm: &Vm, inst: &Instance) {
        let dir = data_dir(inst);
        let template = pg_template(self.pg_bindir());
        let conf = [
            "unix_socket_directories = '/tmp'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
        ]
        .map(|line| format!("echo {} >> {dir}/postgresql.conf", quote(line)))
        .join(" && ");
        vm.succeed(&format!(
            "rm -rf {dir} && install -d -o postgres -g postgres -m 700 {dir} && \
             cp -a {}/. {dir}/ && echo 'host all all 0.0.0.0/0 trust' >> {dir}/pg_hba.conf && {conf}",
            template.display()
        ));
    }

    /// Creates every database a service declares (`data.database`); the services migrate them.
    fn create_databases(&self) {
        let mut dbs: Vec<&str> = self
            .topology
            .services
            .iter()
            .filter_map(|s| s.data.get("database").map(String::as_str))
            .collect();
        dbs.sort();
        dbs.dedup();
        let (_, pg) = self.postgres();
        let createdb: Vec<String> = dbs
            .iter()
            .map(|db| {
                format!(
                    "{} runuser -u postgres -- {}/createdb -h /tmp {db}",
                    self.in_node(&pg.node),
                    self.pg_bindir()
                )
            })
            .collect();
        if !createdb.is_empty() {
            self.host_of(&pg.node).succeed(&createdb.join(" && "));
        }
    }

    /// Runs SQL against `db` on the declared PostgreSQL; returns psql's unaligned output.
    pub fn sql(&self, db: &str, query: &str) -> String {
        let (_, pg) = self.postgres();
        self.host_of(&pg.node).succeed(&format!(
            "{} runuser -u postgres -- {}/psql -h /tmp -d {db} -AtX -v ON_ERROR_STOP=1 -c \"{query}\"",
            self.in_node(&pg.node),
            self.pg_bindir()
        ))
    }

    /// Prints the tail of every service and datastore log (`/run/*.log`) of every running VM.
    pub fn dump_logs(&self) {
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

    /// A command that exits 0 iff a TCP connection from `node` to `ip:port` is established
    /// within `secs` seconds.
    pub fn tcp_probe(&self, node: &str, ip: IpAddr, port: u16, secs: u32) -> String {
        format!(
            "{} timeout {secs} bash -c 'exec 3<>/dev/tcp/{ip}/{port}'",
            self.in_node(node)
        )
    }

    /// Whether `from` (a node) can open a TCP connection to `ip:port`: retried for up
    /// to 30 s (a loaded TCG guest can miss a short deadline), so `false` means blocked.
    pub fn can_connect(&self, from: &str, ip: IpAddr, port: u16) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if matches!(self.host_of(from).execute(&self.tcp_probe(from, ip, port, 5)), Ok(o) if o.code == 0)
            {
                return true;
            }
        }
        false
    }

    /// Starts a TCP listener on each `(node, port)` that accepts any number of
    /// connections, and waits until all listen (the VMs in parallel).
    pub fn listen(&self, listeners: &[(&str, u16)]) {
        self.per_vm(
            listeners,
            |l| l.0,
            |vm, mine| {
                let mut probes = Vec::new();
                for (node, port) in mine {
                    vm.spawn(
                        &format!("{} busybox nc -ll -p {port} -e cat", self.in_node(node)),
                        &format!("/run/nc-{node}-{port}.log"),
                    );
                    probes.push(self.tcp_probe(node, self.address(node), *port, 2));
                }
                vm.wait_until_succeeds(&probes.join(" && "), Duration::from_secs(30));
                Vec::<()>::new()
            },
        );
    }

    /// Of the `(from, to, port)` paths, those that never connected: each is retried for
    /// up to 30 s (a loaded TCG guest can miss a short deadline). The VMs probe in parallel.
    pub fn unreachable(&self, paths: &[TcpPath]) -> Vec<String> {
        self.per_vm(
            paths,
            |p| p.0,
            |_, mine| {
                mine.iter()
                    .filter(|(from, to, port)| !self.can_connect(from, self.address(to), *port))
                    .map(|(from, to, port)| format!("{from} -> {to}:{port}"))
                    .collect()
            },
        )
    }

    /// Of the `(from, to, port)` paths, those that connected within 3 s: every probe runs
    /// at once (one guest command per VM, the VMs in parallel) — a dropped SYN stays
    /// dropped however long one waits.
    pub fn reachable(&self, paths: &[TcpPath]) -> Vec<String> {
        self.per_vm(
            paths,
            |p| p.0,
            |vm, mine| {
                let probes: Vec<String> = mine
                    .iter()
                    .map(|(from, to, port)| {
                        format!(
                            "( {} ) && echo 'OPEN {from} -> {to}:{port}' &",
                            self.tcp_probe(from, self.address(to), *port, 3)
                        )
                    })
                    .collect();
                vm.succeed(&format!("{} wait", probes.join(" ")))
                    .lines()
                    .filter_map(|l| l.strip_prefix("OPEN "))
                    .map(str::to_string)
                    .collect()
            },
        )
    }

    /// Runs `f` once for every VM hosting items (each item's node given by `node_of`),
    /// with that VM's items, the VMs in parallel; returns every result.
    fn per_vm<'i, T: Sync, R: Send>(
        &self,
        items: &'i [T],
        node_of: impl Fn(&T) -> &str + Sync,
        f: impl Fn(&Vm, Vec<&'i T>) -> Vec<R> + Sync,
    ) -> Vec<R> {
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .placement()
                .hosts
                .iter()
                .map(|(vm_name, nodes)| {
                    let mine: Vec<&T> = items
                        .iter()
                        .filter(|i| nodes.iter().any(|n| n == node_of(i)))
                        .collect();
                    let f = &f;
                    s.spawn(move || {
                        if mine.is_empty() {
                            Vec::new()
                        } else {
                            f(self.vm(vm_name), mine)
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }
}

/// The program a service runs (the first word of its declared command).
fn program(s: &Service) -> &str {
    s.command_template.first().map_or("", String::as_str)
}

/// The data directory of an instance in its guest (`${data_dir}`).
fn data_dir(inst: &Instance) -> String {
    format!("/run/data-{}", inst.node)
}

/// The runtime variables the suite supplies to an instance's command line.
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

/// A PostgreSQL data directory made by `initdb` (from `bindir`) on the host, cached under
/// the VM cache per major version. The guests see the host's root, so the bin dir found in
/// the guest is the host's.
fn pg_template(bindir: &str) -> PathBuf {
    let version = std::process::Command::new(format!("{bindir}/{POSTGRES}"))
        .arg("-V")
        .output()
        .unwrap_or_else(|e| panic!("{bindir}/{POSTGRES} -V: {e}"));
    // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)" -> "15"
    let version = String::from_utf8_lossy(&version.stdout);
    let major = version
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("unexpected `postgres -V` output: {version:?}"))
        .to_string();
    let dir = vm::kernel::cache_root().join(format!("pg{major}-template"));
    if dir.join("PG_VERSION").exists() {
        return dir;
    }
    let tmp = vm::kernel::cache_root().join(format!("pg{major}-template.{}", std::process::id()));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "install -d -o postgres -g postgres -m 700 {tmp} && \
             runuser -u postgres -- {bindir}/initdb -D {tmp} -A trust -U postgres -N \
               --locale=C.UTF-8 -E UTF8 >/dev/null",
            tmp = tmp.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "initdb of the PostgreSQL template failed");
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// What the suite adds to every ecomm service's environment (the services' flags'
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
///   another instance. The ejection bound the scenarios assert is [`EJECTION_BOUND`].
const SUITE_ENV: &[(&str, &str)] = &[
    ("ECOMM_REGISTRY_TTL_SECONDS", "30"),
    ("ECOMM_GATEWAY_HEALTH_INTERVAL_MS", "500"),
    ("ECOMM_GATEWAY_HEALTH_TIMEOUT_MS", "2000"),
    ("ECOMM_GATEWAY_UNHEALTHY_AFTER", "2"),
    ("ECOMM_GATEWAY_EJECT_AFTER", "1"),
    ("ECOMM_GATEWAY_CONNECT_TIMEOUT_MS", "1000"),
    ("ECOMM_GATEWAY_TRY_TIMEOUT_MS", "5000"),
    ("ECOMM_GATEWAY_TOTAL_TIMEOUT_MS", "15000"),
    ("ECOMM_GATEWAY_MAX_TRIES", "3"),
];

/// After this long, a dead or partitioned instance gets no more requests.
pub const EJECTION_BOUND: Duration = Duration::from_secs(2);

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}
