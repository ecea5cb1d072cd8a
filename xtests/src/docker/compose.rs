//! `ecomm-services/deploy/docker/compose.yml` under a unique project name, gateway published on
//! a free 127.0.0.1 port. Drop runs `down -v`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::engine::{run, wait_for};
use super::images::{ensure_images, workspace};
use super::run::new_run_id;
use super::DockerError;

/// A running Compose project of the stack.
pub struct ComposeProject {
    /// The project name (`ecomm-<run>`): every container, network and volume starts with it.
    pub project: String,
    file: PathBuf,
    down: bool,
}

impl ComposeProject {
    /// The compose file.
    pub fn file() -> PathBuf {
        workspace().join("ecomm-services/deploy/docker/compose.yml")
    }

    /// Builds the images and runs `docker-compose -p ecomm<run> up -d`.
    pub async fn up() -> Result<Self, DockerError> {
        ensure_images().await?;
        let project = ComposeProject {
            project: format!("ecomm{}", new_run_id()),
            file: Self::file(),
            down: false,
        };
        project.compose(&["up", "-d"], 300).await?;
        Ok(project)
    }

    /// Runs `docker-compose -p <project> -f compose.yml args…` (gateway published on a free
    /// 127.0.0.1 port).
    pub async fn compose(&self, args: &[&str], seconds: u64) -> Result<String, DockerError> {
        let file = self.file.to_string_lossy();
        let mut all = vec!["-p", self.project.as_str(), "-f", &file];
        all.extend_from_slice(args);
        let out = tokio::process::Command::new("docker-compose")
            .args(&all)
            .env("ECOMM_GATEWAY_PUBLISH", "127.0.0.1:")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let command = format!("docker-compose {}", all.join(" "));
        let out = tokio::time::timeout(Duration::from_secs(seconds), out)
            .await
            .map_err(|_| DockerError::Timeout {
                what: command.clone(),
                seconds,
            })?
            .map_err(|source| DockerError::Spawn {
                command: command.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(DockerError::Command {
                command,
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until every container of the project reports `healthy`.
    pub async fn wait_healthy(&self, seconds: u64) -> Result<(), DockerError> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        wait_for("every compose container healthy", seconds, || {
            let label = label.clone();
            async move {
                let ids = run(
                    "docker",
                    &["ps", "-a", "-q", "--filter", &label],
                    Duration::from_secs(20),
                )
                .await
                .ok()?;
                let ids: Vec<&str> = ids.lines().collect();
                if ids.len() < 6 {
                    return None;
                }
                let mut args = vec!["inspect", "-f", "{{.State.Health.Status}}"];
                args.extend(ids);
                let states = run("docker", &args, Duration::from_secs(20)).await.ok()?;
                states.lines().all(|s| s == "healthy").then_some(())
            }
        })
        .await
    }

    /// The gateway's published address.
    pub async fn gateway(&self) -> Result<SocketAddr, DockerError> {
        let out = self.compose(&["port", "gateway", "3000"], 30).await?;
        out.trim().parse().map_err(|_| DockerError::Command {
            command: "docker-compose port gateway 3000".into(),
            status: "unparsable".into(),
            output: out.clone(),
        })
    }

    /// `down -v --remove-orphans`: containers, networks, volumes.
    pub async fn down(mut self) -> Result<(), DockerError> {
        self.down = true;
        self.compose(&["down", "-v", "--remove-orphans"], 180)
            .await
            .map(|_| ())
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        if !self.down {
            let _ = std::process::Command::new("docker-compose")
                .args(["-p", &self.project, "-f"])
                .arg(&self.file)
                .args(["down", "-v", "--remove-orphans", "-t", "2"])
                .env("ECOMM_GATEWAY_PUBLISH", "127.0.0.1:")
                .output();
        }
    }
}
