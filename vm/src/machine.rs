//! One VM: its QEMU process, agent connection and QMP session.
//!
//! QEMU is started with `PR_SET_PDEATHSIG = SIGKILL`, so even if the test process
//! dies without unwinding no `qemu-system` outlives it; `Drop` kills and reaps it.
//! Spawn from a thread that lives as long as the VM (the test's thread): the death
//! signal follows the spawning thread.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::accel::Accel;
use crate::agent::AgentClient;
use crate::error::{Error, Result};
use crate::initramfs::ROOT_TAG;
use crate::qmp::Qmp;
use crate::switch::NicSockets;

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// Kernel command line: serial console, quiet, no reboot loop on panic, and the
/// settings that shave TCG boot time (no TSC calibration checks, no mitigations).
const CMDLINE: &str = "console=ttyS0 quiet panic=-1 tsc=reliable no_timer_check mitigations=off random.trust_cpu=on 8250.nr_uarts=1";

/// Everything needed to (re)start one VM.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// VM name (hostname, file names).
    pub name: String,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// The uncompressed kernel.
    pub vmlinux: PathBuf,
    /// The initramfs image.
    pub initrd: PathBuf,
    /// The guest agent binary's path in the guest (the host's, seen through 9p, or the
    /// pinned root's [`crate::pinned::AGENT`]).
    pub agent: PathBuf,
    /// Whether the guest mounts the host's `/` over 9p (false: the pinned image root).
    pub host_root: bool,
    /// Read-only virtio-blk drives holding the root as EROFS images, lowest layer first
    /// (`/dev/vda`, `/dev/vdb`, …): when present, init mounts them under a tmpfs overlay
    /// (`vm.root=block`) instead of using the RAM root the initrd unpacked.
    pub drives: Vec<PathBuf>,
    /// NICs: sockets and MAC address.
    pub nics: Vec<(NicSockets, String)>,
    /// The run directory holding sockets and the console log.
    pub dir: PathBuf,
    /// The accelerator.
    pub accel: Accel,
}

/// A running (or killed) VM.
#[derive(Debug)]
pub struct Machine {
    /// Its configuration.
    pub config: MachineConfig,
    child: Option<Child>,
    /// The agent connection.
    pub agent: AgentClient,
    qmp: Option<Qmp>,
}

impl MachineConfig {
    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", self.name))
    }

    /// The serial console log.
    pub fn console(&self) -> PathBuf {
        self.path("console")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(QEMU);
        let append = format!(
            "{CMDLINE} vm.agent={} vm.hostname={} vm.root={}",
            self.agent.display(),
            self.name,
            if self.host_root {
                "host"
            } else if self.drives.is_empty() {
                "image"
            } else {
                "block"
            }
        );
        cmd.args(["-M", "q35", "-m"])
            .arg(self.memory_mib.to_string());
        cmd.args(self.accel.qemu_args());
        cmd.args([
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]);
        cmd.arg("-kernel")
            .arg(&self.vmlinux)
            .arg("-initrd")
            .arg(&self.initrd)
            .arg("-append")
            .arg(append);
        cmd.arg("-chardev").arg(format!(
            "file,id=con,path={},append=on",
            self.console().display()
        ));
        cmd.args(["-serial", "chardev:con"]);
        if self.host_root {
            cmd.arg("-fsdev")
                .arg("local,id=root,path=/,security_model=none,readonly=on,multidevs=remap");
            cmd.arg("-device")
                .arg(format!("virtio-9p-pci,fsdev=root,mount_tag={ROOT_TAG}"));
        }
        for (i, drive) in self.drives.iter().enumerate() {
            cmd.arg("-drive").arg(format!(
                "file={},if=none,id=root{i},format=raw,readonly=on",
                drive.display()
            ));
            cmd.arg("-device")
                .arg(format!("virtio-blk-pci,drive=root{i}"));
        }
        cmd.args(["-device", "virtio-serial-pci"]);
        cmd.arg("-chardev").arg(format!(
            "socket,id=agent,path={},server=on,wait=off",
            self.path("agent").display()
        ));
        cmd.args(["-device", "virtserialport,chardev=agent,name=vm.agent"]);
        cmd.arg("-qmp").arg(format!(
            "unix:{},server=on,wait=off",
            self.path("qmp").display()
        ));
        for (i, (sockets, mac)) in self.nics.iter().enumerate() {
            cmd.arg("-netdev").arg(format!(
                "dgram,id=n{i},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                sockets.vm_side.display(),
                sockets.switch_side.display()
            ));
            cmd.arg("-device")
                .arg(format!("virtio-net-pci,netdev=n{i},mac={mac}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and only affects the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                Ok(())
            });
        }
        cmd
    }
}

impl Machine {
    /// Starts QEMU (without waiting for the guest).
    pub fn spawn(config: MachineConfig) -> Result<Machine> {
        let agent = AgentClient::new(&config.name, &config.path("agent"));
        let mut m = Machine {
            config,
            child: None,
            agent,
            qmp: None,
        };
        m.start_process()?;
        Ok(m)
    }

    fn start_process(&mut self) -> Result<()> {
        for suffix in ["agent", "qmp"] {
            let _ = fs::remove_file(self.config.path(suffix));
        }
        for (sockets, _) in &self.config.nics {
            let _ = fs::remove_file(&sockets.vm_side);
        }
        let child = self.config.command().spawn().map_err(|e| Error::Tool {
            tool: QEMU.into(),
            detail: format!("spawn: {e}"),
        })?;
        self.child = Some(child);
        self.agent.reset();
        self.qmp = None;
        Ok(())
    }

    /// Waits for the agent to answer; returns the guest's uptime at that moment (ms).
    pub fn wait_ready(&mut self, deadline: Duration) -> Result<u64> {
        let until = Instant::now() + deadline;
        let socket = self.config.path("agent");
        while !socket.exists() {
            self.check_alive()?;
            if Instant::now() >= until {
                return Err(self.boot_timeout(deadline));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        loop {
            self.check_alive()?;
            match self.agent.wait_ready(
                Instant::now()
                    + Duration::from_secs(1).min(until.saturating_duration_since(Instant::now())),
            ) {
                Ok(uptime) => return Ok(uptime),
                Err(_) if Instant::now() < until => continue,
                Err(_) => return Err(self.boot_timeout(deadline)),
            }
        }
    }

    fn boot_timeout(&self, after: Duration) -> Error {
        Error::BootTimeout {
            vm: self.config.name.clone(),
            after,
            accel: self.config.accel.name().into(),
        }
    }

    /// Fails if QEMU has exited (with its stderr).
    fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::Agent {
                vm: self.config.name.clone(),
                detail: "vm is not running".into(),
            });
        };
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            self.child = None;
            return Err(Error::Tool {
                tool: QEMU.into(),
                detail: format!("{status}: {}", stderr.trim()),
            });
        }
        Ok(())
    }

    fn qmp(&mut self) -> Result<&mut Qmp> {
        if self.qmp.is_none() {
            self.qmp = Some(Qmp::connect(&self.config.name, &self.config.path("qmp"))?);
        }
        self.qmp.as_mut().ok_or_else(|| Error::Qmp {
            vm: String::new(),
            command: "connect".into(),
            detail: "none".into(),
        })
    }

    /// Pauses the guest's CPUs (QMP `stop`): it stops answering but keeps its state.
    pub fn freeze(&mut self) -> Result<()> {
        self.qmp()?.execute("stop")
    }

    /// Resumes the guest's CPUs (QMP `cont`).
    pub fn thaw(&mut self) -> Result<()> {
        self.qmp()?.execute("cont")
    }

    /// Kills QEMU outright (SIGKILL): the guest dies without shutting down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.qmp = None;
        self.agent.reset();
    }

    /// The QEMU process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether QEMU is running.
    pub fn is_running(&mut self) -> bool {
        self.check_alive().is_ok()
    }

    /// Kills the VM if running and boots it again from scratch (fresh tmpfs overlay).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.start_process()
    }

    /// Shuts down through QMP `quit`, falling back to kill.
    pub fn quit(&mut self) {
        if self.child.is_some() {
            if let Ok(q) = self.qmp() {
                let _ = q.execute("quit");
            }
        }
        self.kill();
    }

    /// The last `lines` lines of the serial console.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = fs::read(self.config.console())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the QEMU binary can be run here.
pub fn qemu_available() -> bool {
    Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
