//! Redis inside the `redis` namespace, listening on the node's tier address only, no
//! persistence (it is a cache), running as the `redis` account when it exists.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::error::LabError;
use crate::pinned::{Confine, Rootfs};
use crate::process::{Launch, RunAs};

/// One Redis server of the lab.
#[derive(Debug, Clone)]
pub struct Redis {
    /// Its working directory.
    pub dir: PathBuf,
    /// Where it listens (the redis node's address, port 6379).
    pub addr: SocketAddr,
    /// Run the pinned image's Redis (over its tree, as its own `redis` account) instead of
    /// the host's ([`Redis::pinned`]).
    pub pinned: Option<(Confine, RunAs)>,
}

impl Redis {
    /// A server working in `dir`, listening on `addr`.
    pub fn new(dir: impl Into<PathBuf>, addr: SocketAddr) -> Self {
        Self {
            dir: dir.into(),
            addr,
            pinned: None,
        }
    }

    /// Runs redis-server and redis-cli from the pinned image `root`, confined to its tree
    /// with `state_dir` (which holds [`Redis::dir`]) bound in.
    pub fn pinned(mut self, root: &Rootfs, state_dir: &Path) -> Result<Self, LabError> {
        self.pinned = Some((root.confine(state_dir), root.account("redis")?));
        Ok(self)
    }

    /// The account the server runs as: the image's `redis`, else the host's if it exists.
    fn account(&self) -> Option<RunAs> {
        match &self.pinned {
            Some((_, account)) => Some(*account),
            None => RunAs::lookup("redis").ok(),
        }
    }

    fn confine(&self) -> Option<Confine> {
        self.pinned.as_ref().map(|(c, _)| c.clone())
    }

    /// `redis://<addr>/0`: the URL services connect with.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Creates the working directory (idempotent).
    pub fn prepare(&self) -> Result<(), LabError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| LabError::io(format!("create {}", self.dir.display()), e))?;
        if let Some(account) = self.account() {
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
        let mut launch = Launch::new(program)
            .args(args)
            .args(["--daemonize", "no", "--loglevel", "notice"])
            .confined(self.confine());
        if let Some(account) = self.account() {
            launch = launch.run_as(account);
        }
        Ok(launch)
    }

    /// `redis-cli PING` against the server (run inside a namespace that can reach it).
    pub fn ping(&self) -> Launch {
        Launch::new("redis-cli")
            .confined(self.confine())
            .arg("-h")
            .arg(self.addr.ip().to_string())
            .arg("-p")
            .arg(self.addr.port().to_string())
            .arg("PING")
    }
}
