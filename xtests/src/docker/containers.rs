//! The whole stack as containers started through testcontainers (async runner), on one
//! user-defined network of this run. Containers are named after the declared nodes plus the run
//! id (`redis-<run>`, `postgres-<run>`, `registry-<run>`, `product-1-<run>`, …, `order-1-<run>`,
//! …, `gateway-<run>`): on a user-defined network those names are DNS names.
//! Published ports bind to 127.0.0.1 only (the network's host binding address).
//!
//! Which instances run, their ports, readiness paths and database names come from the
//! declaration (three-tier.toml's `[[services]]`); what is Docker's own — container DNS names
//! instead of tier addresses, listening on 0.0.0.0, credentials of this test network — is here.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use testcontainers::core::{ContainerPort, Healthcheck, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::api_shim::ensure_testcontainers_endpoint;
use super::engine::docker;
use super::images::ensure_images;
use super::run::{new_run_id, remove_labelled, RUN_LABEL};
use super::DockerError;

/// The PostgreSQL superuser password inside the test network.
const PG_PASSWORD: &str = "ecomm-test";
/// The registry's bearer token inside the test network.
const REGISTRY_TOKEN: &str = "ecomm-test-token";

/// What the stack takes from the declaration.
struct Declared {
    /// Service → main port.
    ports: std::collections::BTreeMap<String, u16>,
    /// The registry's DNS port.
    registry_dns: u16,
    /// Service → HTTP readiness path.
    ready: std::collections::BTreeMap<String, String>,
    /// Service → declared database.
    databases: std::collections::BTreeMap<String, String>,
    /// Service → its instances (node names), in declared order.
    instances: std::collections::BTreeMap<String, Vec<String>>,
}

impl Declared {
    fn load() -> Result<Self, DockerError> {
        use netns_kit::topology::{Ready, Topology};
        let t = Topology::from_path(crate::topology_file::shared_file())
            .map_err(|e| DockerError::Declaration(e.to_string()))?;
        let mut d = Declared {
            ports: Default::default(),
            registry_dns: 0,
            ready: Default::default(),
            databases: Default::default(),
            instances: Default::default(),
        };
        for s in &t.services {
            if let Some(p) = s.port {
                d.ports.insert(s.name.clone(), p);
            }
            if let Ready::Http { path, .. } = &s.ready {
                d.ready.insert(s.name.clone(), path.clone());
            }
            if let Some(db) = s.data.get("database") {
                d.databases.insert(s.name.clone(), db.clone());
            }
            d.instances.insert(
                s.name.clone(),
                s.instances.iter().map(|i| i.node.clone()).collect(),
            );
        }
        d.registry_dns = t
            .service("registry")
            .and_then(|s| s.ports.get("dns").copied())
            .ok_or_else(|| {
                DockerError::Declaration("service registry declares no ports.dns".into())
            })?;
        for s in [
            "redis", "postgres", "registry", "product", "order", "gateway",
        ] {
            d.port(s)?;
        }
        Ok(d)
    }

    fn port(&self, service: &str) -> Result<u16, DockerError> {
        self.ports
            .get(service)
            .copied()
            .ok_or_else(|| DockerError::Declaration(format!("service {service} declares no port")))
    }

    fn database(&self, service: &str) -> Result<&str, DockerError> {
        self.databases
            .get(service)
            .map(String::as_str)
            .ok_or_else(|| {
                DockerError::Declaration(format!("service {service} declares no data.database"))
            })
    }

    fn instances(&self, service: &str) -> Vec<String> {
        self.instances.get(service).cloned().unwrap_or_default()
    }

    fn ready_path(&self, service: &str) -> &str {
        self.ready.get(service).map_or("/readyz", String::as_str)
    }
}

/// The running stack. Dropping it removes every container and the network of its run.
pub struct ContainerStack {
    run: String,
    network: String,
    containers: Vec<ContainerAsync<GenericImage>>,
    /// The gateway's published address on 127.0.0.1.
    pub gateway: SocketAddr,
    /// The product containers' names, in start order.
    pub product_names: Vec<String>,
    declared: Declared,
}

impl ContainerStack {
    /// Builds the images if needed and starts redis, postgres, registry, every declared product
    /// and order instance and the gateway, each waited on until its health check passes.
    pub async fn start() -> Result<Self, DockerError> {
        let declared = Declared::load()?;
        ensure_images().await?;
        ensure_testcontainers_endpoint().await?;
        let run = new_run_id();
        let network = format!("ecomm-{run}");
        let mut stack = ContainerStack {
            run: run.clone(),
            network: network.clone(),
            containers: Vec::new(),
            gateway: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            product_names: declared
                .instances("product")
                .iter()
                .map(|n| format!("{n}-{run}"))
                .collect(),
            declared,
        };
        let d = &stack.declared;
        docker(&[
            "network",
            "create",
            "--label",
            &format!("{RUN_LABEL}={run}"),
            "-o",
            "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
            &network,
        ])
        .await?;

        let redis = stack.name("redis");
        let postgres = stack.name("postgres");
        let (pg_port, redis_port) = (d.port("postgres")?, d.port("redis")?);
        let registry_url = format!("http://{}:{}", stack.name("registry"), d.port("registry")?);
        let admin = format!("postgres://postgres:{PG_PASSWORD}@{postgres}:{pg_port}/postgres");

        let (redis_c, pg_c) = tokio::try_join!(
            stack.launch(
                "redis",
                ("ecomm-redis", "local"),
                &[],
                &[],
                &["/usr/bin/redis-cli", "ping"],
            ),
            stack.launch(
                "postgres",
                ("ecomm-postgres", "local"),
                &[],
                &[("POSTGRES_PASSWORD", PG_PASSWORD)],
                &[
                    "/usr/lib/postgresql/15/bin/pg_isready",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                ],
            ),
        )?;
        stack.containers.extend([redis_c, pg_c]);

        let dns_listen = format!("0.0.0.0:{}", stack.declared.registry_dns);
        let registry_c = stack
            .launch_ecomm(
                "registry",
                stack.declared.port("registry")?,
                &[
                    ("ECOMM_REGISTRY_TOKEN", REGISTRY_TOKEN),
                    ("ECOMM_REGISTRY_DNS_LISTEN", dns_listen.as_str()),
                ],
            )
            .await?;
        stack.containers.push(registry_c);

        let d = &stack.declared;
        let product_db = format!(
            "postgres://ecomm_product:ecomm_product@{postgres}:{pg_port}/{}",
            d.database("product")?
        );
        let redis_url = format!("redis://{redis}:{redis_port}/");
        let product_env = [
            ("ECOMM_PRODUCT_DATABASE_URL", product_db.as_str()),
            ("ECOMM_PRODUCT_ADMIN_DATABASE_URL", admin.as_str()),
            ("ECOMM_PRODUCT_REDIS_URL", redis_url.as_str()),
            ("ECOMM_REGISTRY_URL", registry_url.as_str()),
            ("ECOMM_REGISTRY_TOKEN", REGISTRY_TOKEN),
        ];
        let (product_port, order_port) = (d.port("product")?, d.port("order")?);
        let order_db = format!(
            "postgres://ecomm_order:ecomm_order@{postgres}:{pg_port}/{}",
            d.database("order")?
        );
        let (products, orders) = (d.instances("product"), d.instances("order"));
        let gateway_port = d.port("gateway")?;
        // One after the other: the first product creates the database, the rest start once
        // it exists (the same for orders).
        for node in &products {
            let c = stack
                .launch_ecomm_named(node, "product", product_port, &product_env)
                .await?;
            stack.containers.push(c);
        }
        let product_url = format!(
            "http://{}:{product_port}",
            stack.product_names.first().cloned().unwrap_or_default()
        );
        let order_env = [
            ("ECOMM_ORDER_DATABASE_URL", order_db.as_str()),
            ("ECOMM_ORDER_ADMIN_DATABASE_URL", admin.as_str()),
            ("ECOMM_ORDER_PRODUCT_URL", product_url.as_str()),
            ("ECOMM_REGISTRY_URL", registry_url.as_str()),
            ("ECOMM_REGISTRY_TOKEN", REGISTRY_TOKEN),
        ];
        for node in &orders {
            let c = stack
                .launch_ecomm_named(node, "order", order_port, &order_env)
                .await?;
            stack.containers.push(c);
        }

        let dns = |nodes: &[String], port: u16| {
            nodes
                .iter()
                .map(|n| format!("{}:{port}", stack.name(n)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let product_dns = dns(&products, product_port);
        let order_dns = dns(&orders, order_port);
        let gateway = stack
            .launch_ecomm(
                "gateway",
                gateway_port,
                &[
                    ("ECOMM_PRODUCT_DNS", product_dns.as_str()),
                    ("ECOMM_ORDER_DNS", order_dns.as_str()),
                    ("ECOMM_GATEWAY_THREADS", "2"),
                ],
            )
            .await?;
        let port = gateway
            .get_host_port_ipv4(ContainerPort::Tcp(gateway_port))
            .await
            .map_err(|e| DockerError::Container {
                name: stack.name("gateway"),
                message: e.to_string(),
            })?;
        stack.containers.push(gateway);
        stack.gateway = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Ok(stack)
    }

    /// The run id carried by every object of this stack.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// `<node>-<run>`: the container (and DNS) name of a seed node in this run.
    pub fn name(&self, node: &str) -> String {
        format!("{node}-{}", self.run)
    }

    /// A container's published 127.0.0.1 address for `port`.
    pub async fn published(&self, container: &str, port: u16) -> Result<SocketAddr, DockerError> {
        let out = docker(&["port", container, &format!("{port}/tcp")]).await?;
        out.lines()
            .filter_map(|l| l.trim().parse::<SocketAddr>().ok())
            .find(|a| a.is_ipv4())
            .ok_or_else(|| DockerError::Container {
                name: container.to_string(),
                message: format!("port {port} is not published on IPv4: {out:?}"),
            })
    }

    async fn launch_ecomm(
        &self,
        node: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> Result<ContainerAsync<GenericImage>, DockerError> {
        self.launch_ecomm_named(node, node, port, env).await
    }

    async fn launch_ecomm_named(
        &self,
        node: &str,
        service: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> Result<ContainerAsync<GenericImage>, DockerError> {
        let url = format!(
            "http://127.0.0.1:{port}{}",
            self.declared.ready_path(service)
        );
        let listen_var = format!("ECOMM_{}_LISTEN", service.to_ascii_uppercase());
        let listen = format!("0.0.0.0:{port}");
        let mut all: Vec<(&str, &str)> = vec![(listen_var.as_str(), listen.as_str())];
        all.extend_from_slice(env);
        self.launch(
            node,
            ("ecomm-services", "local"),
            &[service],
            &all,
            &["/usr/local/bin/ecomm", "healthcheck", &url],
        )
        .await
    }

    async fn launch(
        &self,
        node: &str,
        (image, tag): (&str, &str),
        cmd: &[&str],
        env: &[(&str, &str)],
        health: &[&str],
    ) -> Result<ContainerAsync<GenericImage>, DockerError> {
        let name = self.name(node);
        let mut req = GenericImage::new(image, tag)
            .with_wait_for(WaitFor::healthcheck())
            .with_cmd(cmd.iter().copied())
            .with_container_name(&name)
            .with_network(&self.network)
            .with_label(RUN_LABEL, &self.run)
            .with_health_check(
                Healthcheck::cmd(health.iter().copied())
                    .with_interval(Duration::from_millis(500))
                    .with_timeout(Duration::from_secs(2))
                    .with_retries(240),
            )
            .with_startup_timeout(Duration::from_secs(120))
            .with_env_var("RUST_LOG", "info");
        for (k, v) in env {
            req = req.with_env_var(*k, *v);
        }
        req.start().await.map_err(|e| DockerError::Container {
            name,
            message: e.to_string(),
        })
    }
}

impl Drop for ContainerStack {
    fn drop(&mut self) {
        // testcontainers removes its containers when they drop; the label sweep also catches a
        // half-built stack, the network, and anonymous volumes.
        self.containers.clear();
        remove_labelled(&self.run);
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}
