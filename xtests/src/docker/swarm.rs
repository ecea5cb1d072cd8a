//! `ecomm-services/deploy/docker/swarm-stack.yml` deployed on a one-node swarm under a unique
//! stack name. If the engine was not in a swarm, this fixture initialises one and leaves it
//! again on drop (and removes the `docker_gwbridge` that init created); a swarm that was
//! already there is left as it was.

use std::path::PathBuf;
use std::time::Duration;

use super::engine::{docker, run, wait_for};
use super::images::{ensure_images, workspace};
use super::run::new_run_id;
use super::DockerError;

/// A deployed stack.
pub struct SwarmStack {
    /// The stack name (`ecomm<run>`): services, networks and volumes start with it.
    pub stack: String,
    initialised_swarm: bool,
    /// `docker swarm init` creates the bridge `docker_gwbridge`; removed again when it did.
    created_gwbridge: bool,
    removed: bool,
}

impl SwarmStack {
    /// The stack file.
    pub fn file() -> PathBuf {
        workspace().join("ecomm-services/deploy/docker/swarm-stack.yml")
    }

    /// Builds the images, makes sure a swarm is active, deploys the stack.
    pub async fn deploy() -> Result<Self, DockerError> {
        ensure_images().await?;
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).await?;
        let initialised_swarm = state != "active";
        let gwbridge =
            docker(&["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"]).await?;
        if initialised_swarm {
            if gwbridge.is_empty() {
                // Numbered by us: left to Docker it may take 172.20-22.0.0/16 and collide with
                // the Compose tiers.
                docker(&[
                    "network",
                    "create",
                    "--subnet",
                    "10.202.0.0/24",
                    "-o",
                    "com.docker.network.bridge.name=docker_gwbridge",
                    "-o",
                    "com.docker.network.bridge.enable_icc=false",
                    "-o",
                    "com.docker.network.bridge.enable_ip_masquerade=true",
                    "docker_gwbridge",
                ])
                .await?;
            }
            docker(&[
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--default-addr-pool",
                "10.201.0.0/16",
            ])
            .await?;
        }
        let stack = SwarmStack {
            stack: format!("ecomm{}", new_run_id()),
            initialised_swarm,
            created_gwbridge: initialised_swarm && gwbridge.is_empty(),
            removed: false,
        };
        let file = Self::file();
        docker(&[
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            &file.to_string_lossy(),
            &stack.stack,
        ])
        .await?;
        Ok(stack)
    }

    /// Waits until `service` (short name) runs `replicas` healthy tasks; returns their containers.
    pub async fn wait_healthy(
        &self,
        service: &str,
        replicas: usize,
        seconds: u64,
    ) -> Result<Vec<String>, DockerError> {
        let filter = format!(
            "label=com.docker.swarm.service.name={}_{service}",
            self.stack
        );
        wait_for(
            &format!("{replicas} healthy {service} task(s)"),
            seconds,
            || {
                let filter = filter.clone();
                async move {
                    let out = run(
                        "docker",
                        &[
                            "ps",
                            "--filter",
                            &filter,
                            "--filter",
                            "health=healthy",
                            "--format",
                            "{{.Names}}",
                        ],
                        Duration::from_secs(20),
                    )
                    .await
                    .ok()?;
                    let names: Vec<String> = out.lines().map(str::to_string).collect();
                    (names.len() == replicas).then_some(names)
                }
            },
        )
        .await
    }

    /// `docker stack rm`, then waits for its containers and networks to go and removes its
    /// volumes (a stack never removes volumes itself).
    pub async fn remove(mut self) -> Result<(), DockerError> {
        self.removed = true;
        docker(&["stack", "rm", &self.stack]).await?;
        let label = format!("label=com.docker.stack.namespace={}", self.stack);
        wait_for("the stack's containers and networks to go", 90, || {
            let label = label.clone();
            async move {
                let c = run(
                    "docker",
                    &["ps", "-aq", "--filter", &label],
                    Duration::from_secs(20),
                )
                .await
                .ok()?;
                let n = run(
                    "docker",
                    &["network", "ls", "-q", "--filter", &label],
                    Duration::from_secs(20),
                )
                .await
                .ok()?;
                (c.is_empty() && n.is_empty()).then_some(())
            }
        })
        .await?;
        let volumes = docker(&["volume", "ls", "-q", "--filter", &label]).await?;
        for v in volumes.lines().filter(|l| !l.is_empty()) {
            docker(&["volume", "rm", v]).await?;
        }
        if self.initialised_swarm {
            self.initialised_swarm = false;
            docker(&["swarm", "leave", "--force"]).await?;
            if self.created_gwbridge {
                self.created_gwbridge = false;
                docker(&["network", "rm", "docker_gwbridge"]).await?;
            }
        }
        Ok(())
    }
}

impl Drop for SwarmStack {
    fn drop(&mut self) {
        let sh = |args: &[&str]| {
            let _ = std::process::Command::new("docker").args(args).output();
        };
        if !self.removed {
            sh(&["stack", "rm", &self.stack]);
            let label = format!("label=com.docker.stack.namespace={}", self.stack);
            for _ in 0..60 {
                let left = std::process::Command::new("docker")
                    .args(["ps", "-aq", "--filter", &label])
                    .output()
                    .map(|o| !o.stdout.is_empty())
                    .unwrap_or(false);
                if !left {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            if let Ok(o) = std::process::Command::new("docker")
                .args(["volume", "ls", "-q", "--filter", &label])
                .output()
            {
                for v in String::from_utf8_lossy(&o.stdout).lines() {
                    sh(&["volume", "rm", "-f", v]);
                }
            }
        }
        if self.initialised_swarm {
            sh(&["swarm", "leave", "--force"]);
            if self.created_gwbridge {
                sh(&["network", "rm", "docker_gwbridge"]);
            }
        }
    }
}
