//! The Docker sides, through the Docker backends' public entry points: the Compose
//! deployment of the declaration ([`ComposeDeployment`]: the router wired, the gateway
//! published on a free 127.0.0.1 port) and the one-node Swarm stack, whose generated file
//! publishes nothing.
//!
//! Swarm on loopback: the ingress mesh needs the kernel's IPVS (`ip_vs`), which these hosts
//! lack, and would answer on every host address anyway. So after the deploy the gateway
//! service gets a host-mode publish (`docker service update --publish-add
//! mode=host,published=<free port>,target=<gateway port>`): Docker maps it on the task's
//! `docker_gwbridge` leg, and its userland proxy answers on 127.0.0.1 — the same path
//! Compose's published port takes. Swarm cannot bind a publish to one host address, so the
//! port listens on every address for the minutes of the run (a free high port, removed with
//! the stack).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use super::CompareError;
use crate::docker::deployment::ComposeDeployment;
use crate::docker::engine::{docker, wait_for};
use crate::docker::http::get;
use crate::docker::run::leftovers;
use crate::docker::swarm::SwarmStack;
use crate::docker::DockerError;

/// Seconds allowed for a stack to become healthy on a loaded 2-core machine.
const HEALTHY_S: u64 = 300;

/// The Compose deployment, up and ready, with its gateway's loopback address.
pub struct ComposeSide {
    /// The deployment (its Drop runs `down -v` and removes what carries its run label).
    pub project: ComposeDeployment,
    /// The published gateway, on 127.0.0.1.
    pub gateway: SocketAddr,
}

impl ComposeSide {
    /// Starts the Compose deployment of the declaration `file` (every node ready, the router
    /// wired) on a plain thread — it blocks, and runs a runtime of its own for the images.
    pub async fn up(file: &Path) -> Result<Self, CompareError> {
        let file: PathBuf = file.to_path_buf();
        let project = blocking(move || ComposeDeployment::start(&file)).await??;
        let gateway = project.gateway();
        if !gateway.ip().is_loopback() {
            return Err(CompareError::Invalid {
                what: "Compose gateway publish".into(),
                value: gateway.to_string(),
                expected: "a 127.0.0.1 address".into(),
            });
        }
        Ok(Self { project, gateway })
    }

    /// In words, for the report.
    pub fn reached(&self) -> String {
        format!(
            "from the host's root namespace on {} (Compose's published port)",
            self.gateway
        )
    }

    /// `down -v` (the deployment's Drop), then what is left of the project.
    pub async fn down(self) -> Result<Vec<String>, CompareError> {
        let name = self.project.project().to_string();
        let project = self.project;
        blocking(move || drop(project)).await?;
        Ok(leftovers(&name).await?)
    }
}

/// Runs `f` on a new OS thread (outside any runtime) and awaits its result.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CompareError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.map_err(|_| CompareError::Tool {
        command: "docker-compose (Compose deployment thread)".into(),
        status: "panicked".into(),
        output: String::new(),
    })
}

/// The Swarm stack, deployed and healthy, its gateway published in host mode.
pub struct SwarmSide {
    /// The stack (its Drop removes it and leaves a swarm it initialised).
    pub stack: SwarmStack,
    /// The gateway's host-mode publish, dialled on 127.0.0.1.
    pub gateway: SocketAddr,
}

impl SwarmSide {
    /// Deploys the stack, waits for the declared replicas, publishes the gateway's
    /// `target_port` in host mode on a free port and waits until it answers on loopback.
    pub async fn up(
        replicas: &[(String, usize)],
        target_port: u16,
        path: &str,
    ) -> Result<Self, CompareError> {
        let stack = SwarmStack::deploy().await?;
        for (service, n) in replicas {
            stack.wait_healthy(service, *n, HEALTHY_S).await?;
        }
        let port = free_port()?;
        let service = format!("{}_gateway", stack.stack);
        docker(&[
            "service",
            "update",
            "--detach",
            "--publish-add",
            &format!("mode=host,published={port},target={target_port}"),
            &service,
        ])
        .await?;
        let gateway = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(
            &format!("the swarm gateway on {gateway}{path}"),
            HEALTHY_S,
            || async move {
                get(gateway, path)
                    .await
                    .ok()
                    .filter(|r| r.status == 200)
                    .map(|_| ())
            },
        )
        .await?;
        Ok(Self { stack, gateway })
    }

    /// In words, for the report.
    pub fn reached(&self) -> String {
        format!(
            "from the host's root namespace on {} (host-mode publish of the gateway task)",
            self.gateway
        )
    }

    /// `docker stack rm` (volumes too, the swarm left if this run made it), then what is
    /// left of the stack: containers, networks, volumes, services.
    pub async fn remove(self) -> Result<Vec<String>, CompareError> {
        let name = self.stack.stack.clone();
        self.stack.remove().await?;
        let mut left = leftovers(&name).await?;
        let services = docker(&["service", "ls", "-q", "--filter", &format!("name={name}")])
            .await
            .unwrap_or_default();
        left.extend(
            services
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| format!("service {l}")),
        );
        Ok(left)
    }
}

/// GET `path` on a loopback address: (status, body).
pub async fn fetch(addr: SocketAddr, path: &str) -> Result<(u16, String), CompareError> {
    let r = get(addr, path).await?;
    Ok((r.status, r.body))
}

/// A port nothing listens on now (the kernel's pick for 127.0.0.1:0).
fn free_port() -> Result<u16, CompareError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            CompareError::Docker(DockerError::Spawn {
                command: "bind 127.0.0.1:0 for a free port".into(),
                source: e,
            })
        })
}
