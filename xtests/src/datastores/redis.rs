//! Redis inside the `redis` namespace, listening on the node's tier address only, no
//! persistence (it is a cache), running as the `redis` account when it exists.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::LabError;
use crate::process::{Launch, RunAs};

/// One Redis server of the lab.
#[derive(Debug, Clone)]
pub struct Redis {
    /// Its working directory.
    pub dir: PathBuf,
    /// Where it listens (the redis node's address, port 6379).
    pub addr: SocketAddr,
}

impl Redis {
    /// A server working in `dir`, listening on `addr`.
    pub fn new(dir: impl Into<PathBuf>, addr: SocketAddr) -> Self {
        Self {
            dir: dir.into(),
            addr,
        }
    }

    /// `redis://<addr>/0`: the URL services connect with.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Creates the working directory (idempotent).
    pub fn prepare(&self) -> Result<(), LabError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| LabError::io(format!("create {}", self.dir.display()), e))?;
        if let Ok(account) = RunAs::lookup("redis") {
            std::os::unix::fs::chown(&self.dir, Some(account.uid), Some(account.gid))
                .map_err(|e| LabError::io(format!("chown {}", self.dir.display()), e))?;
        }
        Ok(())
    }

    /// The server process (run it inside the redis node's namespace): the declared command
    /// (`declared`, placeholders resolved), kept in the foreground with notice-level logs.
    pub fn launch(&self, declared: &[String]) -> Result<Launch, LabError> {
        let Some((program, args)) = declared.split_first() else {
            return Err(LabError::Topology(
                "redis: the declared command is empty".into(),
            ));
        };
        let mut launch =
            Launch::new(program)
                .args(args)
                .args(["--daemonize", "no", "--loglevel", "notice"]);
        if let Ok(account) = RunAs::lookup("redis") {
            launch = launch.run_as(account);
        }
        Ok(launch)
    }

    /// `redis-cli PING` against the server (run inside a namespace that can reach it).
    pub fn ping(&self) -> Launch {
        Launch::new("redis-cli")
            .arg("-h")
            .arg(self.addr.ip().to_string())
            .arg("-p")
            .arg(self.addr.port().to_string())
            .arg("PING")
    }
}
