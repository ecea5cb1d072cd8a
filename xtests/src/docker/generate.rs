//! `compose.yml` and `swarm-stack.yml` generated from the declaration (`lab compose`, `lab
//! swarm`), so the Docker files carry no second copy of an address, port, database name or
//! dependency. `tests/docker_files.rs` asserts the committed files equal what this prints.
//!
//! From the declaration: one Docker network per tier (subnet; `.128/25` left for scaled
//! replicas; every tier but the one the host reaches is `internal`), one Docker service per
//! declared service, its tier address when it has a single instance, its ports, readiness URL,
//! database name, `depends_on`, and the networks of the services it depends on (so the gateway
//! has no leg on the database tier). Docker's own: images, limits, hardening, DNS names instead
//! of addresses (services listen on 0.0.0.0), the local credentials, health-check timing.

use std::fmt::Write as _;

use netns_kit::topology::{Ready, Service, Topology};

use super::DockerError;

/// The path of the declaration, as named in the generated files' headers.
const SOURCE: &str = "ecomm-services/deploy/three-tier.toml";

/// Which flavour of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Compose,
    Swarm,
}

/// The Compose file (docker-compose v1 syntax 2.4) of the declaration.
pub fn compose(t: &Topology) -> Result<String, DockerError> {
    generate(t, Flavour::Compose)
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
        Flavour::Compose => {
            let _ = writeln!(w, "# The e-commerce stack on Docker Compose (docker-compose v1 and `docker compose` both read it).");
            let _ = writeln!(
                w,
                "# GENERATED from {SOURCE} by `lab compose`: edit the declaration, then"
            );
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
            let _ = writeln!(w, "#   just docker-up                      # images + `up -d`, waits healthy, prints the URL");
            let _ = writeln!(w, "#   docker-compose -f ecomm-services/deploy/docker/compose.yml up -d --scale product=3");
            let _ = writeln!(w, "#   just docker-down                    # `down -v`: containers, networks and volumes");
            let _ = writeln!(w, "#");
            let _ = writeln!(
                w,
                "# The tiers of the declaration, one network each, same subnets as the netns lab:"
            );
            for n in &t.networks {
                let members: Vec<&str> = t
                    .services
                    .iter()
                    .filter(|s| service_networks(t, s).is_ok_and(|v| v.contains(&n.name)))
                    .map(|s| s.name.as_str())
                    .collect();
                let internal = if Some(&n.name) == front.as_ref() {
                    ""
                } else {
                    " (internal: no way out)"
                };
                let _ = writeln!(
                    w,
                    "#   {:<8} {:<15} {}{internal}",
                    n.name,
                    n.subnet.to_string(),
                    members.join(", ")
                );
            }
            let _ = writeln!(w, "# A service has legs on its own tier and on the tiers of what it depends on; Docker gives no");
            let _ = writeln!(w, "# route between networks, so what the tier policy forbids (frontend → database) is impossible.");
            let _ = writeln!(w, "# Single-instance services keep their declared address; scaled replicas get addresses from");
            let _ = writeln!(w, "# the upper half of the subnet.");
            let _ = writeln!(w, "#");
            let _ = writeln!(w, "# The gateway finds product and order replicas by DNS: on a Compose network a service name");
            let _ = writeln!(w, "# resolves to every replica, re-resolved every 2 s, so `--scale product=3` needs no restart.");
            let _ = writeln!(w, "#");
            let _ = writeln!(
                w,
                "# Settings (environment or an .env file next to this one):"
            );
            let _ = writeln!(w, "#   ECOMM_GATEWAY_PUBLISH  host side of the gateway port (default 127.0.0.1:<port>; `127.0.0.1:`");
            let _ = writeln!(w, "#                          picks a free port — `docker-compose port gateway <port>` tells which)");
            let _ = writeln!(w, "#   POSTGRES_PASSWORD      PostgreSQL superuser password (default ecomm-local; local use only)");
            let _ = writeln!(w, "#   ECOMM_REGISTRY_TOKEN   bearer token for registry writes (default ecomm-local-token)");
            let _ = writeln!(w, "version: \"2.4\"");
            let _ = writeln!(w);
            let _ = writeln!(w, "x-ecomm: &ecomm");
            let _ = writeln!(w, "  image: ecomm-services:local");
            let _ = writeln!(w, "  restart: unless-stopped");
            let _ = writeln!(w, "  read_only: true");
            let _ = writeln!(w, "  cap_drop: [ALL]");
            let _ = writeln!(w, "  security_opt: [\"no-new-privileges:true\"]");
            let _ = writeln!(w, "  environment: &ecomm-env");
            let _ = writeln!(w, "    RUST_LOG: info");
            let _ = writeln!(
                w,
                "    ECOMM_REGISTRY_URL: http://{}:{}",
                registry.name,
                port(registry)?
            );
            let _ = writeln!(
                w,
                "    ECOMM_REGISTRY_TOKEN: ${{ECOMM_REGISTRY_TOKEN:-ecomm-local-token}}"
            );
            let _ = writeln!(w, "  mem_limit: 256m");
            let _ = writeln!(w, "  cpus: 1.0");
            let _ = writeln!(w, "  pids_limit: 256");
        }
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
        Flavour::Compose => "${POSTGRES_PASSWORD:-ecomm-local}",
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
            Flavour::Compose => {
                let _ = writeln!(w, "    <<: *ecomm");
            }
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
                    Flavour::Compose => d.name.clone(),
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
            if f == Flavour::Compose {
                let _ = writeln!(w, "    ports:");
                let _ = writeln!(w, "      - \"${{ECOMM_{env}_PUBLISH:-127.0.0.1:{p}}}:{p}\"");
            }
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
            (Flavour::Compose, true, _) => Some("2s"),
            (Flavour::Compose, false, _) => Some("5s"),
            (Flavour::Swarm, true, _) => None,
            (Flavour::Swarm, false, true) => Some("20s"),
            (Flavour::Swarm, false, false) => Some("30s"),
        };
        if let Some(sp) = start_period {
            let _ = writeln!(w, "      start_period: {sp}");
        }
        match f {
            Flavour::Compose => {
                if !deps.is_empty() {
                    let _ = writeln!(w, "    depends_on:");
                    for d in &deps {
                        let _ = writeln!(w, "      {}: {{ condition: service_healthy }}", d.name);
                    }
                }
            }
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
        if f == Flavour::Compose {
            let upper_half = n
                .subnet
                .subnets(n.subnet.prefix_len().saturating_add(1))
                .ok()
                .and_then(|mut it| it.nth(1))
                .ok_or_else(|| bad(format!("network {}: subnet too small", n.name)))?;
            let _ = writeln!(w, "    ipam:");
            let _ = writeln!(w, "      config:");
            let _ = writeln!(w, "        - subnet: {}", n.subnet);
            let _ = writeln!(w, "          ip_range: {upper_half}");
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
        Flavour::Compose => {
            let _ = writeln!(w, "    networks:");
            for (k, n) in nets.iter().enumerate() {
                match (k, s.instances.as_slice()) {
                    (0, [one]) => {
                        let _ = writeln!(w, "      {n}: {{ ipv4_address: {} }}", one.address);
                    }
                    _ => {
                        let _ = writeln!(w, "      {n}: {{}}");
                    }
                }
            }
        }
    }
    Ok(())
}

fn write_redis(w: &mut String, t: &Topology, s: &Service, f: Flavour) -> Result<(), DockerError> {
    let _ = writeln!(w, "  {}:", s.name);
    let _ = writeln!(w, "    image: ecomm-redis:local");
    if f == Flavour::Compose {
        let _ = writeln!(w, "    restart: unless-stopped");
        let _ = writeln!(w, "    read_only: true");
        let _ = writeln!(w, "    cap_drop: [ALL]");
        let _ = writeln!(w, "    security_opt: [\"no-new-privileges:true\"]");
    }
    write_networks(w, t, s, f)?;
    if f == Flavour::Compose {
        let _ = writeln!(w, "    mem_limit: 128m");
        let _ = writeln!(w, "    cpus: 0.5");
        let _ = writeln!(w, "    pids_limit: 64");
    }
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
    if f == Flavour::Compose {
        let _ = writeln!(w, "    restart: unless-stopped");
        let _ = writeln!(w, "    cap_drop: [ALL]");
        let _ = writeln!(w, "    security_opt: [\"no-new-privileges:true\"]");
    }
    let _ = writeln!(w, "    environment:");
    let _ = writeln!(w, "      POSTGRES_PASSWORD: {password}");
    let _ = writeln!(w, "    volumes:");
    let _ = writeln!(w, "      - pgdata:/var/lib/postgresql/data");
    write_networks(w, t, s, f)?;
    if f == Flavour::Compose {
        let _ = writeln!(w, "    mem_limit: 512m");
        let _ = writeln!(w, "    cpus: 1.0");
        let _ = writeln!(w, "    pids_limit: 256");
        let _ = writeln!(w, "    shm_size: 128m");
    }
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
        Flavour::Compose => "5s",
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
