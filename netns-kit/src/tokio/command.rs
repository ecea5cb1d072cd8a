//! Async processes inside a namespace: [`AsyncNsCommand`] (a [`tokio::process::Command`]
//! whose child enters the namespace before exec) and [`AsyncNsChild`] (killed on drop).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};

use tokio::process::{Child, Command};

use super::current_runtime;
use crate::error::{Error, Result};
use crate::netns::{Netns, NsCommand};

impl Netns {
    /// An async process builder whose child enters this namespace before exec; the child
    /// is killed (SIGKILL) when its [`AsyncNsChild`] drops.
    pub fn command_async(&self, program: impl AsRef<OsStr>) -> AsyncNsCommand {
        self.command(program).into_async()
    }
}

impl NsCommand {
    /// The same command for tokio: arguments, environment and stdio set so far are kept,
    /// and so is the `pre_exec` that enters the namespace. The child is killed on drop
    /// (`kill_on_drop(true)`; undo with [`AsyncNsCommand::as_command_mut`]).
    pub fn into_async(self) -> AsyncNsCommand {
        let (std_cmd, ns) = self.into_parts();
        let mut cmd = Command::from(std_cmd);
        cmd.kill_on_drop(true);
        AsyncNsCommand { cmd, ns }
    }
}

/// A [`tokio::process::Command`] whose child enters a namespace between fork and exec.
#[derive(Debug)]
pub struct AsyncNsCommand {
    cmd: Command,
    /// Keeps open the descriptor the child's `pre_exec` enters.
    ns: Netns,
}

impl AsyncNsCommand {
    /// Add an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Add arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Set an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env(key, value);
        self
    }

    /// Set the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Configure the child's stdin (default: inherited).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdin(cfg);
        self
    }

    /// Configure the child's stdout (default: inherited).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdout(cfg);
        self
    }

    /// Configure the child's stderr (default: inherited).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stderr(cfg);
        self
    }

    /// The underlying [`tokio::process::Command`], for options not mirrored here.
    pub fn as_command_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Spawn the child (must be called inside a tokio runtime).
    pub fn spawn(&mut self) -> Result<AsyncNsChild> {
        current_runtime("AsyncNsCommand::spawn")?;
        let what = self.describe();
        let child = self
            .cmd
            .spawn()
            .map_err(|e| Error::io("spawn", what.clone(), e))?;
        Ok(AsyncNsChild { child, what })
    }

    /// Run to completion, capturing stdout and stderr.
    pub async fn output(&mut self) -> Result<Output> {
        current_runtime("AsyncNsCommand::output")?;
        let what = self.describe();
        self.cmd
            .output()
            .await
            .map_err(|e| Error::io("run", what, e))
    }

    /// Run to completion with the configured stdio, returning the exit status.
    pub async fn status(&mut self) -> Result<ExitStatus> {
        current_runtime("AsyncNsCommand::status")?;
        let what = self.describe();
        self.cmd
            .status()
            .await
            .map_err(|e| Error::io("run", what, e))
    }

    /// `<program> in <namespace>`, for errors.
    fn describe(&self) -> String {
        let program = self.cmd.as_std().get_program().to_string_lossy();
        format!("{program} in {}", self.ns.label())
    }
}

/// A child process inside a namespace, driven by tokio; killed (SIGKILL) on drop and then
/// reaped by tokio, unless `kill_on_drop(false)` was set on the command.
#[derive(Debug)]
pub struct AsyncNsChild {
    child: Child,
    /// `<program> in <namespace>`, for errors.
    what: String,
}

impl AsyncNsChild {
    /// The child's pid, while it has not been reaped.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The tokio child (for its stdin/stdout pipes, try_wait...).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Wait for the child to exit.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        self.child
            .wait()
            .await
            .map_err(|e| Error::io("wait for", self.what.clone(), e))
    }

    /// Wait for the child to exit, collecting the stdout and stderr that were piped.
    pub async fn wait_with_output(self) -> Result<Output> {
        let what = self.what;
        self.child
            .wait_with_output()
            .await
            .map_err(|e| Error::io("wait for", what, e))
    }

    /// Kill the child (SIGKILL) and wait until it is reaped.
    pub async fn kill(&mut self) -> Result<()> {
        self.child
            .kill()
            .await
            .map_err(|e| Error::io("kill", self.what.clone(), e))
    }
}
