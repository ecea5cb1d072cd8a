//! The multi-VM lab: three VMs on one switched underlay segment.
//!
//! - vm1: the router, the frontend tier (gateway) and the database tier (redis, postgres);
//! - vm2: backend nodes registry, product-1, order-1;
//! - vm3: backend nodes product-2, order-2.
//!
//! Every VM applies the same topology file with `netns-kit apply` (the shared
//! three-tier file plus an `order-2` slot so orders survive the loss of one backend VM),
//! then deletes the namespaces of the nodes it does not host. The backend bridge of every
//! VM is joined by a VXLAN (VNI 100, multicast group over eth0) into one segment: nodes
//! on vm2/vm3 keep their default route to the router's 172.21.0.1 on vm1, so the tier
//! policy of vm1's router applies to cross-host traffic exactly as on one host.
//!
//! The VXLAN is part of the topology file ([`OVERLAY`], `underlay = "host"`): netns-kit
//! creates it in each guest's root namespace, bound to eth0 (a VXLAN keeps its UDP socket
//! in the namespace it was created in), and moves it into the fabric namespace, enslaved
//! to the backend bridge, in the same message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vm::{Cluster, ClusterSpec, Vm, VmSpec};

/// The run name given to `netns-kit apply --name`; namespaces are `lab-<node>`.
pub const RUN: &str = "lab";
/// The underlay segment all three VMs share.
pub const UNDERLAY: &str = "underlay";
/// Where the derived topology file is written in each guest.
const TOPOLOGY_IN_GUEST: &str = "/run/three-tier.toml";
/// The registry's bearer token (test-only).
pub const REGISTRY_TOKEN: &str = "vm-suite-token";

/// Which VM hosts which topology node.
pub const PLACEMENT: &[(&str, &[&str])] = &[
    ("vm1", &["router", "gateway", "redis", "postgres"]),
    ("vm2", &["registry", "product-1", "order-1"]),
    ("vm3", &["product-2", "order-2"]),
];

/// Every node of the derived topology.
pub const ALL_NODES: &[&str] = &[
    "router",
    "gateway",
    "registry",
    "product-1",
    "product-2",
    "order-1",
    "order-2",
    "redis",
    "postgres",
];

/// The second order slot the suite adds to the shared file (172.21.0.32, same policy as order-1).
const ORDER_2: &str = r#"
# --- added by the VM suite: a second order instance on the other backend VM ---
[[nodes]]
name = "order-2"
interfaces = [{ network = "backend", address = "172.21.0.32" }]

[[policy]]
from = "order-2"
to = "postgres"
proto = "tcp"
ports = [5432]
"#;

/// The overlay the suite adds to the shared file: VNI 100 over every guest's eth0
/// (multicast group, flooded by the switch), stretching the backend bridge across the VMs.
const OVERLAY: &str = r#"
# --- added by the VM suite: the backend segment stretched across the VMs ---
[[vxlans]]
name = "vxb"
network = "backend"
vni = 100
group = "239.1.1.100"
port = 4789
dev = "eth0"
underlay = "host"
"#;

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
    /// The three VMs.
    pub cluster: Cluster,
    /// The binaries in use.
    pub bins: Bins,
    topology: String,
}

impl Lab {
    /// Boots the three VMs and builds the tiers, the overlay and the datastores.
    pub fn start(bins: Bins) -> Option<Lab> {
        let spec = ClusterSpec::new()
            .vm(VmSpec::new("vm1").memory_mib(1024).nic(UNDERLAY))
            .vm(VmSpec::new("vm2").memory_mib(768).nic(UNDERLAY))
            .vm(VmSpec::new("vm3").memory_mib(768).nic(UNDERLAY));
        let cluster = crate::common::start(spec)?;
        let shared =
            std::fs::read_to_string(workspace().join("ecomm-services/deploy/three-tier.toml"))
                .unwrap_or_else(|e| panic!("read the shared topology file: {e}"));
        let lab = Lab {
            cluster,
            bins,
            topology: format!("{shared}{ORDER_2}{OVERLAY}"),
        };
        lab.cluster.phase("tiers, overlay and datastores", || {
            std::thread::scope(|s| {
                for (name, _) in PLACEMENT {
                    let lab = &lab;
                    s.spawn(move || {
                        lab.build_host(name);
                        if *name == "vm1" {
                            lab.start_datastores();
                        }
                    });
                }
            });
        });
        if lab.bins.has_services {
            lab.cluster.phase("services", || {
                // The registry first (everything registers with it), then the rest at
                // once: the gateway learns its upstreams from the registry as they come.
                lab.start_nodes("vm2", &["registry"]);
                std::thread::scope(|s| {
                    let lab = &lab;
                    s.spawn(move || lab.start_nodes("vm2", &["product-1", "order-1"]));
                    s.spawn(move || lab.start_services("vm3"));
                    s.spawn(move || lab.start_services("vm1"));
                });
            });
        }
        Some(lab)
    }

    /// The VM by name.
    pub fn vm(&self, name: &str) -> &Vm {
        self.cluster.vm(name)
    }

    /// The VM hosting `node`.
    pub fn host_of(&self, node: &str) -> &Vm {
        let vm = PLACEMENT
            .iter()
            .find(|(_, nodes)| nodes.contains(&node))
            .map(|(vm, _)| *vm);
        self.vm(vm.unwrap_or_else(|| panic!("node {node} is not placed")))
    }

    /// The shell prefix running a command in `node`'s namespace.
    pub fn in_node(&self, node: &str) -> String {
        format!("{} exec {RUN} {node} --", self.bins.netns_kit.display())
    }

    /// Applies the topology on `vm`, keeps only its nodes, joins the overlay.
    pub fn build_host(&self, vm_name: &str) {
        let vm = self.vm(vm_name);
        let mine = PLACEMENT
            .iter()
            .find(|(v, _)| *v == vm_name)
            .map(|(_, n)| *n)
            .unwrap_or(&[]);
        vm.write_file(TOPOLOGY_IN_GUEST, self.topology.as_bytes());
        // MTU room for the VXLAN header on the underlay (the VXLAN takes eth0's MTU − 50),
        // then the tiers and the overlay in one apply.
        vm.succeed(&format!(
            "ip link set eth0 mtu 1600 && {} apply {TOPOLOGY_IN_GUEST} --name {RUN} 2>&1",
            self.bins.netns_kit.display()
        ));
        let others: Vec<String> = ALL_NODES
            .iter()
            .filter(|n| !mine.contains(n))
            .map(|n| format!("ip netns del {RUN}-{n}"))
            .collect();
        vm.succeed(&others.join(" && "));
    }

    /// Starts Redis and PostgreSQL in their namespaces on vm1 and waits for them.
    fn start_datastores(&self) {
        let vm1 = self.vm("vm1");
        vm1.spawn(
            &format!(
                "{} redis-server --bind 172.22.0.10 --port 6379 --save '' --appendonly no --protected-mode no",
                self.in_node("redis")
            ),
            "/run/redis.log",
        );
        let pg = "/usr/lib/postgresql/15/bin";
        // initdb takes ~25 s under TCG; a template made natively on the host (once, cached)
        // is copied instead. The guest's copy lives in its tmpfs overlay.
        let template = pg_template();
        vm1.succeed(&format!(
            "install -d -o postgres -g postgres -m 700 /run/pg && cp -a {} /run/pg/data && \
             echo 'host all all 0.0.0.0/0 trust' >> /run/pg/data/pg_hba.conf",
            template.display()
        ));
        vm1.spawn(
            &format!(
                "{} runuser -u postgres -- {pg}/postgres -D /run/pg/data -k /tmp -c listen_addresses=172.22.0.20 \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                self.in_node("postgres")
            ),
            "/run/postgres.log",
        );
        vm1.wait_until_succeeds(
            &format!(
                "{} && {}",
                self.tcp_probe("redis", address("redis"), 6379, 2),
                self.tcp_probe("postgres", address("postgres"), 5432, 2)
            ),
            Duration::from_secs(30),
        );
        let createdb = format!(
            "{} runuser -u postgres -- createdb -h /tmp",
            self.in_node("postgres")
        );
        vm1.succeed(&format!("{createdb} {PRODUCT_DB} && {createdb} {ORDER_DB}"));
    }

    /// Runs SQL against `db` on vm1's PostgreSQL; returns psql's unaligned output.
    pub fn sql(&self, db: &str, query: &str) -> String {
        self.vm("vm1").succeed(&format!(
            "{} runuser -u postgres -- psql -h /tmp -d {db} -AtX -v ON_ERROR_STOP=1 -c \"{query}\"",
            self.in_node("postgres")
        ))
    }

    /// Starts the ecomm services `vm` hosts (registry first; the gateway last) and waits
    /// until each listens.
    pub fn start_services(&self, vm_name: &str) {
        let mine = PLACEMENT
            .iter()
            .find(|(v, _)| *v == vm_name)
            .map(|(_, n)| *n)
            .unwrap_or(&[]);
        self.start_nodes(vm_name, mine);
    }

    /// Starts the ecomm services of `nodes` on `vm_name` (all at once) and waits until
    /// every one listens (one guest command probing them all).
    pub fn start_nodes(&self, vm_name: &str, nodes: &[&str]) {
        let vm = self.vm(vm_name);
        let mine = nodes;
        let mut listening = Vec::new();
        let ecomm = self.bins.ecomm.display().to_string();
        let registry = format!("http://{}:8500", address("registry"));
        let token = REGISTRY_TOKEN;
        for node in mine {
            let ip = address_or_none(node);
            let (cmd, port) = match *node {
                "registry" => (format!("{ecomm} registry --listen {ip}:8500 --dns-listen {ip}:8600 --token {token}"), 8500),
                "product-1" | "product-2" => (
                    format!(
                        "{ecomm} product --listen {ip}:8001 --instance-id {node} \
                         --database-url postgres://postgres@{pg}:5432/{PRODUCT_DB} --redis-url redis://{redis}:6379 \
                         --registry-url {registry} --registry-token {token} --registry-ttl-seconds {LEASE_TTL}",
                        pg = address("postgres"),
                        redis = address("redis"),
                    ),
                    8001,
                ),
                "order-1" | "order-2" => (
                    format!(
                        "{ecomm} order --listen {ip}:8002 --instance-id {node} \
                         --database-url postgres://postgres@{pg}:5432/{ORDER_DB} \
                         --registry-url {registry} --registry-token {token} --registry-ttl-seconds {LEASE_TTL}",
                        pg = address("postgres"),
                    ),
                    8002,
                ),
                "gateway" => (
                    format!("{ecomm} gateway --listen {ip}:3000 --registry-url {registry} --registry-token {token} --registry-ttl-seconds {LEASE_TTL} {GATEWAY_TUNING}"),
                    3000,
                ),
                _ => continue,
            };
            vm.spawn(
                &format!("RUST_LOG=info {} {cmd}", self.in_node(node)),
                &format!("/run/{node}.log"),
            );
            listening.push(self.tcp_probe(node, ip, port, 2));
        }
        if !listening.is_empty() {
            vm.wait_until_succeeds(&listening.join(" && "), Duration::from_secs(30));
        }
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
    pub fn tcp_probe(&self, node: &str, ip: &str, port: u16, secs: u32) -> String {
        format!(
            "{} timeout {secs} bash -c 'exec 3<>/dev/tcp/{ip}/{port}'",
            self.in_node(node)
        )
    }

    /// Whether `from` (a node) can open a TCP connection to `ip:port`: retried for up
    /// to 30 s (a loaded TCG guest can miss a short deadline), so `false` means blocked.
    pub fn can_connect(&self, from: &str, ip: &str, port: u16) -> bool {
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
                    probes.push(self.tcp_probe(node, address(node), *port, 2));
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
                    .filter(|(from, to, port)| !self.can_connect(from, address(to), *port))
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
                            self.tcp_probe(from, address(to), *port, 3)
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
            let handles: Vec<_> = PLACEMENT
                .iter()
                .map(|(vm_name, nodes)| {
                    let mine: Vec<&T> = items
                        .iter()
                        .filter(|i| nodes.contains(&node_of(i)))
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

/// A PostgreSQL data directory made by `initdb` on the host, cached under the VM cache.
fn pg_template() -> PathBuf {
    let dir = vm::kernel::cache_root().join("pg15-template");
    if dir.join("PG_VERSION").exists() {
        return dir;
    }
    let tmp = vm::kernel::cache_root().join(format!("pg15-template.{}", std::process::id()));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "install -d -o postgres -g postgres -m 700 {tmp} && \
             runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D {tmp} -A trust -U postgres -N \
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

/// Databases the services use (created by the suite; the services migrate them).
pub const PRODUCT_DB: &str = "products";
/// The orders database.
pub const ORDER_DB: &str = "orders";

/// Gateway settings, sized for TCG guests sharing two host cores (everything is 10-50×
/// slower than native, so tight timeouts would eject live instances): instances are
/// health-checked every 500 ms (2 s timeout, out of rotation after 2 failures) and
/// passively ejected on the first failed try; connects give up after 1 s, a try after
/// 5 s, and safe requests (GETs; POSTs with an Idempotency-Key) are retried on another
/// instance. The ejection bound the scenarios assert is [`EJECTION_BOUND`].
const GATEWAY_TUNING: &str = "--health-interval-ms 500 --health-timeout-ms 2000 --unhealthy-after 2 \\
    --eject-after 1 --connect-timeout-ms 1000 --try-timeout-ms 5000 --total-timeout-ms 15000 --max-tries 3";

/// Registry lease length, seconds. Longer than the services' 10 s default: a TCG guest
/// on an oversubscribed host can stall for several seconds, and a lapsed lease empties
/// the gateway's upstream set. Dead instances leave rotation through the gateway's
/// health checks and ejection long before their lease ends.
const LEASE_TTL: u32 = 30;

/// After this long, a dead or partitioned instance gets no more requests.
pub const EJECTION_BOUND: Duration = Duration::from_secs(2);

fn address_or_none(node: &str) -> &'static str {
    match node {
        "router" => "",
        other => address(other),
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}

/// The address of a node in the derived topology.
pub fn address(node: &str) -> &'static str {
    match node {
        "gateway" => "172.20.0.10",
        "registry" => "172.21.0.10",
        "product-1" => "172.21.0.21",
        "product-2" => "172.21.0.22",
        "order-1" => "172.21.0.31",
        "order-2" => "172.21.0.32",
        "redis" => "172.22.0.10",
        "postgres" => "172.22.0.20",
        other => panic!("no address for node {other}"),
    }
}
