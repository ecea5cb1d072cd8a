//! `compose.yml` and `swarm-stack.yml` generated from the declaration (`lab compose`, `lab
//! swarm`), so the Docker files carry no second copy of an address, port, database name or
//! dependency. `tests/docker_files.rs` asserts the committed files equal what this prints.
//!
//! Compose ([`compose`]): the declaration's shape — one container per declared node (its
//! declared address on its one tier network, its declared command with the runtime variables
//! filled from Compose settings), and a router container holding the router's declared
//! addresses on every tier. The tier policy holds as in the netns lab: each node's routes and
//! the router's nftables ruleset come from the netns-kit plan of the declaration, carried as
//! labels and applied inside each container's network namespace right after it starts
//! ([`super::deployment`], scripts/docker-up.sh).
//!
//! Swarm ([`swarm`]): one Docker service per declared service with the declared instances as
//! replicas, the networks of the services it depends on (so the gateway has no leg on the
//! database tier), DNS names instead of addresses (services listen on 0.0.0.0).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use netns_kit::topology::plan::{Naming, Plan};
use netns_kit::topology::service::substitute;
use netns_kit::topology::{Ready, Service, Topology};

use super::run::RUN_LABEL;
use super::DockerError;

/// The path of the declaration, as named in the generated files' headers.
const SOURCE: &str = "ecomm-services/deploy/three-tier.toml";

/// Which flavour of file (the Compose file has its own generator, [`compose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Swarm,
}

/// The Swarm stack file (version 3.8) of the declaration.
pub fn swarm(t: &Topology) -> Result<String, DockerError> {
    generate(t, Flavour::Swarm)
}

fn bad(msg: String) -> DockerError {
    DockerError::Declaration(msg)
}

/// The node network a service's instances sit on (their first interface's network).
fn network_of(t: &Topology, s: &Service) -> Result<String, DockerError> {
    let node = s
        .instances
        .first()
        .ok_or_else(|| bad(format!("service {} has no instance", s.name)))?;
    t.node(&node.node)
        .and_then(|n| n.interfaces.first())
        .map(|i| i.network.clone())
        .ok_or_else(|| bad(format!("node {} has no interface", node.node)))
}

/// The node the host reaches (over the host link) — published by Compose.
fn published_node(t: &Topology) -> Option<String> {
    t.host.as_ref()?.allow.iter().find_map(|a| match &a.to {
        netns_kit::topology::Target::Node(n) => Some(n.clone()),
        _ => None,
    })
}

fn port(s: &Service) -> Result<u16, DockerError> {
    s.port
        .ok_or_else(|| bad(format!("service {} declares no port", s.name)))
}

/// `ecomm <sub>`: the subcommand, for ecomm services.
fn ecomm_sub(s: &Service) -> Option<&str> {
    match s.command_template.as_slice() {
        [prog, sub, ..] if prog == crate::services::ECOMM => Some(sub.as_str()),
        _ => None,
    }
}

fn upper(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

fn generate(t: &Topology, f: Flavour) -> Result<String, DockerError> {
    let svc = |name: &str| {
        t.service(name)
            .ok_or_else(|| bad(format!("no service {name:?} declared")))
    };
    let registry = svc("registry")?;
    let postgres = svc("postgres")?;
    let redis = svc("redis")?;
    let published = published_node(t);
    let front = match &published {
        Some(n) => t
            .node(n)
            .and_then(|n| n.interfaces.first())
            .map(|i| i.network.clone()),
        None => None,
    };
    let mut out = String::new();
    let w = &mut out;

    // Header.
    match f {
        Flavour::Swarm => {
            let _ = writeln!(w, "# The e-commerce stack on Docker Swarm (seed 001's multi-host part), the same tiers as");
            let _ = writeln!(w, "# compose.yml on overlay networks. GENERATED from {SOURCE} by `lab swarm`: edit the");
            let _ = writeln!(
                w,
                "# declaration, then `lab swarm > ecomm-services/deploy/docker/swarm-stack.yml`"
            );
            let _ = writeln!(w, "# (xtests/tests/docker_files.rs fails while the two differ). Replicas: the declared instances.");
            let _ = writeln!(w, "# Images are local (scripts/docker-images.sh); on a multi-node swarm load them on every node");
            let _ = writeln!(
                w,
                "# (`docker save | ssh node docker load`) — nothing is pulled."
            );
            let _ = writeln!(w, "#");
            let _ = writeln!(
                w,
                "#   docker swarm init --advertise-addr 127.0.0.1          # one node is enough"
            );
            let _ = writeln!(w, "#   docker stack deploy --resolve-image never -c ecomm-services/deploy/docker/swarm-stack.yml ecomm");
            let _ = writeln!(
                w,
                "#   docker stack rm ecomm && docker volume rm ecomm_pgdata"
            );
            let _ = writeln!(w, "#");
            let _ = writeln!(w, "# Discovery: the gateway asks DNS for `tasks.<service>`, which on an overlay network resolves to");
            let _ = writeln!(w, "# every running replica's address (the plain service name would give one virtual IP and hide the");
            let _ = writeln!(w, "# replicas from the gateway's round-robin and ejection). Re-resolved every 2 s, so");
            let _ = writeln!(
                w,
                "# `docker service scale ecomm_product=4` needs no gateway restart."
            );
            let _ = writeln!(w, "#");
            let _ = writeln!(w, "# The gateway is not published: Swarm's ingress mesh would listen on every host address, and the");
            let _ = writeln!(w, "# stack is meant for a lab. Reach it from inside (`docker exec <gateway task> busybox wget -qO-");
            let _ = writeln!(w, "# http://127.0.0.1:<port>/api/products`) or add a `ports:` entry with `mode: host` consciously.");
            let _ = writeln!(w, "# Every service uses `endpoint_mode: dnsrr`: its name resolves to its tasks' addresses instead");
            let _ = writeln!(w, "# of a virtual IP. Virtual IPs need the kernel's IPVS (ip_vs), which not every host has; without");
            let _ = writeln!(
                w,
                "# it a VIP silently drops every connection (\"No route to host\")."
            );
            let _ = writeln!(w, "# Swarm ignores depends_on: product and order wait for PostgreSQL themselves (60 s), and the");
            let _ = writeln!(
                w,
                "# orchestrator restarts whatever fails its health check."
            );
            let _ = writeln!(w, "version: \"3.8\"");
            let _ = writeln!(w);
            let _ = writeln!(w, "x-ecomm-env: &ecomm-env");
            let _ = writeln!(w, "  RUST_LOG: info");
            let _ = writeln!(
                w,
                "  ECOMM_REGISTRY_URL: http://{}:{}",
                registry.name,
                port(registry)?
            );
            let _ = writeln!(w, "  ECOMM_REGISTRY_TOKEN: ecomm-local-token");
            let _ = writeln!(w);
            let _ = writeln!(w, "x-ecomm-deploy: &ecomm-deploy");
            let _ = writeln!(w, "  endpoint_mode: dnsrr");
            let _ = writeln!(w, "  restart_policy: {{ condition: any, delay: 2s }}");
            let _ = writeln!(w, "  resources:");
            let _ = writeln!(w, "    limits: {{ cpus: \"1.0\", memory: 256M }}");
            let _ = writeln!(
                w,
                "  update_config: {{ parallelism: 1, order: start-first }}"
            );
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "services:");

    let pg_password = match f {
        Flavour::Swarm => "ecomm-local",
    };
    for (k, s) in t.services.iter().enumerate() {
        if k > 0 {
            let _ = writeln!(w);
        }
        if s.name == postgres.name {
            write_postgres(w, t, s, f, pg_password)?;
            continue;
        }
        if s.name == redis.name {
            write_redis(w, t, s, f)?;
            continue;
        }
        let Some(sub) = ecomm_sub(s) else {
            return Err(bad(format!(
                "service {}: the Docker files know ecomm services, postgres and redis",
                s.name
            )));
        };
        let p = port(s)?;
        let _ = writeln!(w, "  {}:", s.name);
        match f {
            Flavour::Swarm => {
                let _ = writeln!(w, "    image: ecomm-services:local");
            }
        }
        let _ = writeln!(w, "    command: [\"{sub}\"]");
        let _ = writeln!(w, "    environment:");
        let _ = writeln!(w, "      <<: *ecomm-env");
        let env = upper(sub);
        let _ = writeln!(w, "      ECOMM_{env}_LISTEN: 0.0.0.0:{p}");
        for (name, np) in &s.ports {
            let _ = writeln!(w, "      ECOMM_{env}_{}_LISTEN: 0.0.0.0:{np}", upper(name));
        }
        let deps: Vec<&Service> = s.depends_on.iter().filter_map(|d| t.service(d)).collect();
        if deps.iter().any(|d| d.name == postgres.name) {
            if let Some(db) = s.data.get("database") {
                let pp = port(postgres)?;
                let role = format!("ecomm_{}", s.name.replace('-', "_"));
                let _ = writeln!(
                    w,
                    "      ECOMM_{env}_DATABASE_URL: postgres://{role}:{role}@{}:{pp}/{db}",
                    postgres.name
                );
                let _ = writeln!(
                    w,
                    "      ECOMM_{env}_ADMIN_DATABASE_URL: postgres://postgres:{pg_password}@{}:{pp}/postgres",
                    postgres.name
                );
            }
        }
        if deps.iter().any(|d| d.name == redis.name) {
            let _ = writeln!(
                w,
                "      ECOMM_{env}_REDIS_URL: redis://{}:{}/",
                redis.name,
                port(redis)?
            );
        }
        let is_front = published
            .as_ref()
            .is_some_and(|n| s.instances.iter().any(|i| &i.node == n));
        for d in deps
            .iter()
            .filter(|d| d.name != registry.name && d.name != postgres.name && d.name != redis.name)
        {
            let dp = port(d)?;
            if is_front {
                let host = match f {
                    Flavour::Swarm => format!("tasks.{}", d.name),
                };
                let _ = writeln!(w, "      ECOMM_{}_DNS: {host}:{dp}", upper(&d.name));
            } else {
                let _ = writeln!(
                    w,
                    "      ECOMM_{env}_{}_URL: http://{}:{dp}",
                    upper(&d.name),
                    d.name
                );
            }
        }
        if is_front {
            let _ = writeln!(w, "      ECOMM_{env}_DNS_REFRESH_MS: \"2000\"");
            let _ = writeln!(w, "      ECOMM_{env}_THREADS: \"2\"");
        }
        write_networks(w, t, s, f)?;
        let path = match &s.ready {
            Ready::Http { path, .. } => path.clone(),
            _ => "/readyz".to_string(),
        };
        let ready_port = match &s.ready {
            Ready::Http { port, .. } | Ready::Tcp { port } => *port,
            Ready::None => p,
        };
        let _ = writeln!(w, "    healthcheck:");
        let _ = writeln!(
            w,
            "      test: [\"CMD\", \"/usr/local/bin/ecomm\", \"healthcheck\", \"http://127.0.0.1:{ready_port}{path}\"]"
        );
        let _ = writeln!(w, "      interval: 2s");
        let _ = writeln!(w, "      timeout: 2s");
        let _ = writeln!(w, "      retries: 30");
        let start_period = match (f, s.depends_on.is_empty(), is_front) {
            (Flavour::Swarm, true, _) => None,
            (Flavour::Swarm, false, true) => Some("20s"),
            (Flavour::Swarm, false, false) => Some("30s"),
        };
        if let Some(sp) = start_period {
            let _ = writeln!(w, "      start_period: {sp}");
        }
        match f {
            Flavour::Swarm => {
                if s.instances.len() > 1 {
                    let _ = writeln!(w, "    deploy:");
                    let _ = writeln!(w, "      <<: *ecomm-deploy");
                    let _ = writeln!(w, "      replicas: {}", s.instances.len());
                } else {
                    let _ = writeln!(w, "    deploy: *ecomm-deploy");
                }
            }
        }
    }

    // Networks and volumes.
    let _ = writeln!(w);
    if f == Flavour::Swarm {
        let _ = writeln!(w, "# Overlay subnets are left to Docker's pool so the stack can run next to the Compose project");
        let _ = writeln!(
            w,
            "# (which holds the tiers' subnets as bridges on this host)."
        );
    }
    let _ = writeln!(w, "networks:");
    for n in &t.networks {
        let _ = writeln!(w, "  {}:", n.name);
        if f == Flavour::Swarm {
            let _ = writeln!(w, "    driver: overlay");
        }
        if Some(&n.name) != front.as_ref() {
            let _ = writeln!(w, "    internal: true");
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "volumes:");
    let _ = writeln!(w, "  pgdata: {{}}");
    Ok(out)
}

/// The tiers a service joins: its node's, then those of the services it depends on.
fn service_networks(t: &Topology, s: &Service) -> Result<Vec<String>, DockerError> {
    let mut nets = vec![network_of(t, s)?];
    for d in s.depends_on.iter().filter_map(|d| t.service(d)) {
        let n = network_of(t, d)?;
        if !nets.contains(&n) {
            nets.push(n);
        }
    }
    Ok(nets)
}

fn write_networks(
    w: &mut String,
    t: &Topology,
    s: &Service,
    f: Flavour,
) -> Result<(), DockerError> {
    let nets = service_networks(t, s)?;
    match f {
        Flavour::Swarm => {
            let _ = writeln!(w, "    networks: [{}]", nets.join(", "));
        }
    }
    Ok(())
}

fn write_redis(w: &mut String, t: &Topology, s: &Service, f: Flavour) -> Result<(), DockerError> {
    let _ = writeln!(w, "  {}:", s.name);
    let _ = writeln!(w, "    image: ecomm-redis:local");
    write_networks(w, t, s, f)?;
    let _ = writeln!(w, "    healthcheck:");
    let _ = writeln!(
        w,
        "      test: [\"CMD\", \"/usr/bin/redis-cli\", \"-p\", \"{}\", \"ping\"]",
        port(s)?
    );
    let _ = writeln!(w, "      interval: 2s");
    let _ = writeln!(w, "      timeout: 2s");
    let _ = writeln!(w, "      retries: 30");
    if f == Flavour::Swarm {
        let _ = writeln!(w, "    deploy:");
        let _ = writeln!(w, "      endpoint_mode: dnsrr");
        let _ = writeln!(w, "      restart_policy: {{ condition: any, delay: 2s }}");
        let _ = writeln!(w, "      resources:");
        let _ = writeln!(w, "        limits: {{ cpus: \"0.5\", memory: 128M }}");
    }
    Ok(())
}

fn write_postgres(
    w: &mut String,
    t: &Topology,
    s: &Service,
    f: Flavour,
    password: &str,
) -> Result<(), DockerError> {
    let _ = writeln!(w, "  {}:", s.name);
    let _ = writeln!(w, "    image: ecomm-postgres:local");
    let _ = writeln!(w, "    environment:");
    let _ = writeln!(w, "      POSTGRES_PASSWORD: {password}");
    let _ = writeln!(w, "    volumes:");
    let _ = writeln!(w, "      - pgdata:/var/lib/postgresql/data");
    write_networks(w, t, s, f)?;
    let _ = writeln!(w, "    healthcheck:");
    let _ = writeln!(
        w,
        "      test: [\"CMD\", \"/usr/lib/postgresql/15/bin/pg_isready\", \"-h\", \"127.0.0.1\", \"-p\", \"{}\", \"-U\", \"postgres\"]",
        port(s)?
    );
    let _ = writeln!(w, "      interval: 2s");
    let _ = writeln!(w, "      timeout: 2s");
    let _ = writeln!(w, "      retries: 30");
    let sp = match f {
        Flavour::Swarm => "10s",
    };
    let _ = writeln!(w, "      start_period: {sp}");
    if f == Flavour::Swarm {
        let _ = writeln!(w, "    deploy:");
        let _ = writeln!(w, "      endpoint_mode: dnsrr");
        let _ = writeln!(w, "      restart_policy: {{ condition: any, delay: 2s }}");
        let _ = writeln!(w, "      resources:");
        let _ = writeln!(w, "        limits: {{ cpus: \"1.0\", memory: 512M }}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// compose.yml: one container per declared node, a router container, the declared commands.
// ---------------------------------------------------------------------------------------------

/// The run id used to resolve the plan the compose file's wiring labels come from (routes and
/// the router's ruleset do not depend on it).
const PLAN_RUN: &str = "00000000";

/// The label that names the declared node a container carries.
pub const NODE_LABEL: &str = "ecomm.node";
/// The label with the node's routes, `;`-separated `ip route replace` arguments.
pub const ROUTES_LABEL: &str = "ecomm.routes";
/// The label with the router's nftables ruleset (nft JSON), on the router container.
pub const NFT_LABEL: &str = "ecomm.nft";

/// The address the Docker bridge of `n` takes in the host: the last host address of the
/// subnet (the declared `.1` belongs to the router container). An error names the network if
/// it is not IPv4 or a declared address uses it.
pub fn bridge_address(
    t: &Topology,
    n: &netns_kit::topology::Network,
) -> Result<Ipv4Addr, DockerError> {
    let IpAddr::V4(broadcast) = n.subnet.broadcast() else {
        return Err(bad(format!(
            "network {}: subnet {} is not IPv4 (the Compose file is IPv4 only)",
            n.name, n.subnet
        )));
    };
    let addr = Ipv4Addr::from(u32::from(broadcast).saturating_sub(1));
    let declared = t
        .nodes
        .iter()
        .flat_map(|node| node.interfaces.iter())
        .chain(t.router.iter().flat_map(|r| r.interfaces.iter()))
        .any(|i| i.address == IpAddr::V4(addr));
    if declared {
        return Err(bad(format!(
            "network {}: address {addr} is declared, but Docker's bridge needs it",
            n.name
        )));
    }
    Ok(addr)
}

/// A YAML double-quoted scalar (JSON string syntax), Compose interpolation left intact.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn flow(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The runtime variables of the declaration (`vars`), as Compose sees them.
fn compose_vars(s: &Service, data_dir: Option<&str>) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::from([(
        "registry_token".to_string(),
        "${ECOMM_REGISTRY_TOKEN:-ecomm-local-token}".to_string(),
    )]);
    if let Some(db) = s.data.get("database") {
        vars.insert(
            "db_auth".to_string(),
            format!("{db}:${{ECOMM_DB_PASSWORD:-ecomm-local}}"),
        );
    }
    if let Some(d) = data_dir {
        vars.insert("data_dir".to_string(), d.to_string());
    }
    vars
}

/// The declared command of instance `i`, runtime variables filled for Compose.
fn resolved_command(
    s: &Service,
    i: &netns_kit::topology::service::Instance,
    data_dir: Option<&str>,
) -> Result<Vec<String>, DockerError> {
    let vars = compose_vars(s, data_dir);
    i.command
        .iter()
        .enumerate()
        .map(|(k, a)| {
            substitute(&format!("{}.command[{k}]", i.node), a, &vars)
                .map_err(|e| bad(e.to_string()))
        })
        .collect()
}

/// Per-node wiring from the netns-kit plan of the declaration: node → routes.
fn planned_routes(plan: &Plan, node: &str) -> Vec<String> {
    plan.routes
        .iter()
        .filter(|r| r.ns == node)
        .map(|r| {
            let dest = if r.dest.prefix_len() == 0 {
                "default".to_string()
            } else {
                r.dest.to_string()
            };
            match r.via {
                Some(via) => format!("{dest} via {via}"),
                None => dest,
            }
        })
        .collect()
}

/// What the declaration says about one node container.
struct NodeBox<'a> {
    service: &'a Service,
    instance: &'a netns_kit::topology::service::Instance,
    network: String,
}

fn node_boxes(t: &Topology) -> Result<Vec<NodeBox<'_>>, DockerError> {
    let mut services: Vec<&Service> = t.services.iter().collect();
    services.sort_by_key(|s| s.stage);
    let mut out = Vec::new();
    for s in services {
        for i in &s.instances {
            let network = t
                .node(&i.node)
                .and_then(|n| n.interfaces.first())
                .map(|i| i.network.clone())
                .ok_or_else(|| bad(format!("node {} has no interface", i.node)))?;
            out.push(NodeBox {
                service: s,
                instance: i,
                network,
            });
        }
    }
    Ok(out)
}

/// The declared nodes in the order the Compose deployment starts them (stage by stage,
/// instances in declared order), each with its service's name.
pub fn start_order(t: &Topology) -> Result<Vec<(String, String)>, DockerError> {
    Ok(node_boxes(t)?
        .into_iter()
        .map(|b| (b.instance.node.clone(), b.service.name.clone()))
        .collect())
}

/// The Compose file (docker-compose v1 syntax 2.4) of the declaration: one container per
/// declared node plus the router.
pub fn compose(t: &Topology) -> Result<String, DockerError> {
    let router = t
        .router
        .as_ref()
        .ok_or_else(|| bad("no [router] declared: the tiers need one on Docker too".into()))?;
    let plan = Plan::for_run(t, PLAN_RUN, Naming::Anonymous).map_err(|e| bad(e.to_string()))?;
    let ruleset = plan
        .firewalls
        .iter()
        .find(|f| f.ns == router.name)
        .map(|f| f.ruleset.to_nft_json())
        .ok_or_else(|| {
            bad(format!(
                "the plan has no ruleset for router {}",
                router.name
            ))
        })?;
    let postgres = t.service("postgres");
    let published = published_node(t);
    let boxes = node_boxes(t)?;
    let mut out = String::new();
    let w = &mut out;

    let _ = writeln!(w, "# The e-commerce stack on Docker Compose: one container per declared node, same addresses,");
    let _ = writeln!(
        w,
        "# same tier policy as the netns lab. GENERATED from {SOURCE} by `lab compose`:"
    );
    let _ = writeln!(w, "# edit the declaration, then");
    let _ = writeln!(
        w,
        "#   lab compose > ecomm-services/deploy/docker/compose.yml"
    );
    let _ = writeln!(
        w,
        "# (xtests/tests/docker_files.rs fails while the two differ)."
    );
    let _ = writeln!(w, "# Images are built locally by scripts/docker-images.sh (`just docker-images`); nothing is pulled.");
    let _ = writeln!(w, "#");
    let _ = writeln!(w, "#   just docker-up       # images, router first, then every node in start order, wired, healthy");
    let _ = writeln!(
        w,
        "#   just docker-down     # `down -v`: containers, networks and volumes"
    );
    let _ = writeln!(w, "#");
    let _ = writeln!(
        w,
        "# The tiers, one Docker network each (the declared subnet; Docker's bridge takes the last"
    );
    let _ = writeln!(
        w,
        "# address, the declared router address belongs to the `{}` container):",
        router.name
    );
    for n in &t.networks {
        let members: Vec<&str> = boxes
            .iter()
            .filter(|b| b.network == n.name)
            .map(|b| b.instance.node.as_str())
            .collect();
        let _ = writeln!(
            w,
            "#   {:<8} {:<15} {}",
            n.name,
            n.subnet.to_string(),
            members.join(", ")
        );
    }
    let _ = writeln!(w, "# Every node has one leg, on its own tier, as in the declaration. Docker only gives per-network");
    let _ = writeln!(w, "# reachability, so the tiers are joined exactly as in the netns lab: by the router container,");
    let _ = writeln!(w, "# which has a leg on every tier and forwards under the declared policy. The router's nftables");
    let _ = writeln!(w, "# ruleset (label {NFT_LABEL}, the same netns-kit derives for the netns lab) and each node's");
    let _ = writeln!(w, "# routes (label {ROUTES_LABEL}) are applied from outside, inside each container's own network");
    let _ = writeln!(w, "# namespace, right after it starts (scripts/docker-up.sh; the xtests Compose deployment) —");
    let _ = writeln!(
        w,
        "# never in the host's. The containers keep cap_drop ALL: none can change its own routes."
    );
    let _ = writeln!(w, "# No network is `internal`: Docker's internal-network rules drop bridged frames whose address");
    let _ = writeln!(w, "# is outside the subnet, i.e. everything the router forwards; the way out is closed instead by");
    let _ = writeln!(
        w,
        "# each node's default route to the router, which has none."
    );
    let _ = writeln!(
        w,
        "# A (re)started container has a new network namespace: start nodes through the harness or"
    );
    let _ = writeln!(
        w,
        "# the script (restart: \"no\"), never by a restart policy that would leave them unwired."
    );
    let _ = writeln!(w, "#");
    let _ = writeln!(w, "# No CPU quota: a CFS quota throttles a container in bursts longer than the services' 50 ms");
    let _ = writeln!(w, "# Redis budget. Commands, ports, readiness and start order are the declaration's; Docker's own:");
    let _ = writeln!(w, "# images, memory and pid limits,");
    let _ = writeln!(
        w,
        "# hardening, the data directories inside the images, health-check timing, and the local"
    );
    let _ = writeln!(
        w,
        "# credentials. Settings (environment or an .env file next to this one):"
    );
    if let Some(p) = &published {
        let _ = writeln!(w, "#   ECOMM_{}_PUBLISH  host side of the {p} port (default 127.0.0.1:<port>; `127.0.0.1:`", upper(p));
        let _ = writeln!(w, "#                          picks a free port — `docker-compose port {p} <port>` tells which)");
    }
    let _ = writeln!(w, "#   POSTGRES_PASSWORD      PostgreSQL superuser password (default ecomm-local; local use only)");
    let _ = writeln!(
        w,
        "#   ECOMM_DB_PASSWORD      password of each service's database role (default ecomm-local)"
    );
    let _ = writeln!(
        w,
        "#   ECOMM_REGISTRY_TOKEN   bearer token for registry writes (default ecomm-local-token)"
    );
    let _ = writeln!(
        w,
        "#   ECOMM_REGISTRY_TTL_SECONDS  registry lease of the services (default 10)"
    );
    let _ = writeln!(w, "#   ECOMM_REDIS_TIMEOUT_MS the services' Redis budget (default 500; theirs is 50 ms, but here");
    let _ = writeln!(w, "#                          Redis is behind the router container, two bridges and the host's");
    let _ = writeln!(w, "#                          bridge netfilter: on a loaded machine 50 ms is exceeded, reads miss)");
    let _ = writeln!(
        w,
        "#   ECOMM_RUN              the run id in every object's `ecomm.run` label (default local)"
    );
    let _ = writeln!(w, "version: \"2.4\"");
    let _ = writeln!(w);
    let _ = writeln!(w, "x-hardening: &hardening");
    let _ = writeln!(w, "  restart: \"no\"");
    let _ = writeln!(w, "  cap_drop: [ALL]");
    let _ = writeln!(w, "  security_opt: [\"no-new-privileges:true\"]");
    let _ = writeln!(w);
    let _ = writeln!(w, "services:");

    // The router.
    let _ = writeln!(w, "  {}:", router.name);
    let _ = writeln!(w, "    <<: *hardening");
    let _ = writeln!(w, "    image: ecomm-services:local");
    let _ = writeln!(
        w,
        "    entrypoint: [\"/bin/busybox\", \"sleep\", \"2147483647\"]"
    );
    let _ = writeln!(w, "    read_only: true");
    let _ = writeln!(w, "    sysctls: {{ net.ipv4.ip_forward: \"1\" }}");
    let _ = writeln!(w, "    labels:");
    let _ = writeln!(w, "      {RUN_LABEL}: ${{ECOMM_RUN:-local}}");
    let _ = writeln!(w, "      {NODE_LABEL}: {}", router.name);
    let _ = writeln!(w, "      {NFT_LABEL}: '{}'", ruleset.replace('\'', "''"));
    let _ = writeln!(w, "    networks:");
    for i in &router.interfaces {
        let _ = writeln!(w, "      {}: {{ ipv4_address: {} }}", i.network, i.address);
    }
    let _ = writeln!(w, "    mem_limit: 32m");
    let _ = writeln!(w, "    pids_limit: 16");

    for b in &boxes {
        let s = b.service;
        let i = b.instance;
        let _ = writeln!(w);
        let _ = writeln!(w, "  {}:", i.node);
        let _ = writeln!(w, "    <<: *hardening");
        let p = port(s)?;
        let program = s.command_template.first().map(String::as_str).unwrap_or("");
        let (image, data_dir, health, limits): (&str, Option<&str>, Vec<String>, [&str; 2]) =
            match program {
                "postgres" => (
                    "ecomm-postgres:local",
                    Some("/var/lib/postgresql/data"),
                    vec![
                        "CMD".into(),
                        "/usr/lib/postgresql/15/bin/pg_isready".into(),
                        "-h".into(),
                        "/run/postgresql".into(),
                        "-p".into(),
                        p.to_string(),
                        "-U".into(),
                        "postgres".into(),
                    ],
                    ["512m", "256"],
                ),
                "redis-server" => (
                    "ecomm-redis:local",
                    Some("/data"),
                    vec![
                        "CMD".into(),
                        "/usr/bin/redis-cli".into(),
                        "-h".into(),
                        i.address.to_string(),
                        "-p".into(),
                        p.to_string(),
                        "ping".into(),
                    ],
                    ["128m", "64"],
                ),
                crate::services::ECOMM => {
                    let (ready_port, path) = match &s.ready {
                        Ready::Http { port, path } => (*port, path.clone()),
                        Ready::Tcp { port } => (*port, "/readyz".to_string()),
                        Ready::None => (p, "/readyz".to_string()),
                    };
                    (
                        "ecomm-services:local",
                        None,
                        vec![
                            "CMD".into(),
                            "/usr/local/bin/ecomm".into(),
                            "healthcheck".into(),
                            format!("http://{}{path}", SocketAddr::new(i.address, ready_port)),
                        ],
                        ["256m", "256"],
                    )
                }
                other => {
                    return Err(bad(format!(
                        "service {}: the Compose file knows ecomm services, postgres and redis-server, not {other:?}",
                        s.name
                    )))
                }
            };
        let command = resolved_command(s, i, data_dir)?;
        let _ = writeln!(w, "    image: {image}");
        // The images' entrypoints are the program (the PostgreSQL one runs initdb first).
        let _ = writeln!(w, "    command: {}", flow(&command[1.min(command.len())..]));
        if program != "postgres" {
            let _ = writeln!(w, "    read_only: true");
        }
        let mut env: Vec<(String, String)> = i
            .env
            .iter()
            .map(|(k, v)| {
                substitute(
                    &format!("{}.env.{k}", i.node),
                    v,
                    &compose_vars(s, data_dir),
                )
                .map(|v| (k.clone(), v))
                .map_err(|e| bad(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        match program {
            "postgres" => env.push((
                "POSTGRES_PASSWORD".into(),
                "${POSTGRES_PASSWORD:-ecomm-local}".into(),
            )),
            "redis-server" => {}
            _ => {
                if let (Some(_), Some(pg), [_, sub, ..]) = (
                    s.data.get("database"),
                    postgres,
                    s.command_template.as_slice(),
                ) {
                    let pg_addr = pg
                        .instances
                        .first()
                        .and_then(|pi| pg.listen(&pi.node))
                        .ok_or_else(
                            || bad("service postgres has no instance with a port".into()),
                        )?;
                    env.push((
                        format!("ECOMM_{}_ADMIN_DATABASE_URL", upper(sub)),
                        format!("postgres://postgres:${{POSTGRES_PASSWORD:-ecomm-local}}@{pg_addr}/postgres"),
                    ));
                }
                env.push((
                    "ECOMM_REGISTRY_TTL_SECONDS".into(),
                    "${ECOMM_REGISTRY_TTL_SECONDS:-10}".into(),
                ));
                let uses_redis = s.depends_on.iter().filter_map(|d| t.service(d)).any(|d| {
                    d.command_template.first().map(String::as_str) == Some("redis-server")
                });
                if let (true, [_, sub, ..]) = (uses_redis, s.command_template.as_slice()) {
                    env.push((
                        format!("ECOMM_{}_REDIS_TIMEOUT_MS", upper(sub)),
                        "${ECOMM_REDIS_TIMEOUT_MS:-500}".into(),
                    ));
                }
            }
        }
        if !env.is_empty() {
            let _ = writeln!(w, "    environment:");
            for (k, v) in &env {
                let _ = writeln!(w, "      {k}: {}", q(v));
            }
        }
        if program == "postgres" {
            let _ = writeln!(w, "    volumes:");
            let _ = writeln!(w, "      - pgdata:/var/lib/postgresql/data");
            let _ = writeln!(w, "    shm_size: 128m");
        }
        if published.as_deref() == Some(i.node.as_str()) {
            let _ = writeln!(w, "    ports:");
            let _ = writeln!(
                w,
                "      - \"${{ECOMM_{}_PUBLISH:-127.0.0.1:{p}}}:{p}\"",
                upper(&i.node)
            );
        }
        let _ = writeln!(w, "    labels:");
        let _ = writeln!(w, "      {RUN_LABEL}: ${{ECOMM_RUN:-local}}");
        let _ = writeln!(w, "      {NODE_LABEL}: {}", i.node);
        let _ = writeln!(
            w,
            "      {ROUTES_LABEL}: {}",
            q(&planned_routes(&plan, &i.node).join(";"))
        );
        let _ = writeln!(w, "    networks:");
        let _ = writeln!(w, "      {}: {{ ipv4_address: {} }}", b.network, i.address);
        let _ = writeln!(w, "    mem_limit: {}", limits[0]);
        let _ = writeln!(w, "    pids_limit: {}", limits[1]);
        let _ = writeln!(w, "    healthcheck:");
        let _ = writeln!(w, "      test: {}", flow(&health));
        let _ = writeln!(w, "      interval: 1s");
        let _ = writeln!(w, "      timeout: 2s");
        let _ = writeln!(w, "      retries: 60");
        let mut deps = vec![router.name.clone()];
        for d in s.depends_on.iter().filter_map(|d| t.service(d)) {
            deps.extend(d.instances.iter().map(|di| di.node.clone()));
        }
        let _ = writeln!(w, "    depends_on: [{}]", deps.join(", "));
    }

    let _ = writeln!(w);
    let _ = writeln!(w, "networks:");
    for n in &t.networks {
        let _ = writeln!(w, "  {}:", n.name);
        let _ = writeln!(
            w,
            "    labels: {{ {RUN_LABEL}: \"${{ECOMM_RUN:-local}}\" }}"
        );
        let _ = writeln!(w, "    ipam:");
        let _ = writeln!(w, "      config:");
        let _ = writeln!(w, "        - subnet: {}", n.subnet);
        let _ = writeln!(w, "          gateway: {}", bridge_address(t, n)?);
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "volumes:");
    let _ = writeln!(w, "  pgdata:");
    let _ = writeln!(
        w,
        "    labels: {{ {RUN_LABEL}: \"${{ECOMM_RUN:-local}}\" }}"
    );
    Ok(out)
}
