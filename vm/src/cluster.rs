//! The test API: a cluster of VMs on switched segments, started from a description,
//! driven like a NixOS test (`vm.succeed(..)`, `vm.wait_for_open_port(..)`,
//! `net.cut(a, b)`). VMs boot in parallel; each boot and phase prints one line with
//! its duration to stderr; on a panic every VM's console and agent transcript are
//! printed; dropping the cluster kills every VM and removes the run directory.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::accel::{Accel, KVM_PROBE_DEADLINE};
use crate::agent::{ExchangeOutcome, Output};
use crate::error::{Error, Result};
use crate::initramfs;
use crate::kernel::{cache_root, Kernel};
use crate::machine::{qemu_available, Machine, MachineConfig};
use crate::switch::{Switch, SwitchBuilder};

/// One VM in a cluster description.
#[derive(Debug, Clone)]
pub struct VmSpec {
    name: String,
    memory_mib: u32,
    segments: Vec<String>,
}

impl VmSpec {
    /// A VM named `name` with 512 MiB and no NICs.
    pub fn new(name: &str) -> VmSpec {
        VmSpec {
            name: name.to_string(),
            memory_mib: 512,
            segments: Vec::new(),
        }
    }

    /// Guest RAM in MiB (default 512).
    pub fn memory_mib(mut self, mib: u32) -> VmSpec {
        self.memory_mib = mib;
        self
    }

    /// Adds a NIC on `segment` (NICs appear as eth0, eth1, … in this order).
    pub fn nic(mut self, segment: &str) -> VmSpec {
        self.segments.push(segment.to_string());
        self
    }
}

/// A cluster description: VMs and, implicitly, the segments their NICs name.
#[derive(Debug, Clone, Default)]
pub struct ClusterSpec {
    vms: Vec<VmSpec>,
    agent: Option<PathBuf>,
    pinned: Vec<(String, PathBuf)>,
    pinned_dirs: Vec<(String, PathBuf)>,
    pinned_root: Option<&'static str>,
}

impl ClusterSpec {
    /// An empty description.
    pub fn new() -> ClusterSpec {
        ClusterSpec::default()
    }

    /// Adds a VM.
    pub fn vm(mut self, vm: VmSpec) -> ClusterSpec {
        self.vms.push(vm);
        self
    }

    /// The guest agent binary (default: `$VM_AGENT`, else `vm-agent` next to the test binary).
    pub fn agent(mut self, path: impl Into<PathBuf>) -> ClusterSpec {
        self.agent = Some(path.into());
        self
    }

    /// Boots every VM from the pinned image (see [`crate::pinned`]) instead of the host's
    /// `/` over 9p (the default).
    pub fn pinned_root(mut self) -> ClusterSpec {
        self.pinned_root = Some(crate::pinned::BASE_ROLE);
        self
    }

    /// Boots every VM from the full stack image (see [`crate::pinned::STACK`]): PostgreSQL,
    /// Redis, curl, bash, ip, nft and busybox from `images.lock`, with `netns_kit` and `ecomm`
    /// (host files) in the run's layer at [`crate::pinned::Stack::netns_kit`] and
    /// [`crate::pinned::Stack::ecomm`]. No 9p: nothing of the host is visible in the guest.
    pub fn stack_root(
        mut self,
        netns_kit: impl Into<PathBuf>,
        ecomm: impl Into<PathBuf>,
    ) -> ClusterSpec {
        let stack = crate::pinned::STACK;
        self.pinned_root = Some(crate::pinned::STACK_ROLE);
        self.pinned
            .push((stack.netns_kit.to_string(), netns_kit.into()));
        self.pinned.push((stack.ecomm.to_string(), ecomm.into()));
        self
    }

    /// With [`ClusterSpec::stack_root`]: also puts the host directory `host` at `guest` in the
    /// run's layer, as it is (modes and owners kept; read-only in the guest).
    pub fn pinned_dir(mut self, guest: &str, host: impl Into<PathBuf>) -> ClusterSpec {
        self.pinned_dirs.push((guest.to_string(), host.into()));
        self
    }

    /// With [`ClusterSpec::pinned_root`] or [`ClusterSpec::stack_root`]: also puts the host file `host` at `guest` in the
    /// run's layer (its libraries resolved in the locked packages).
    pub fn pinned_binary(mut self, guest: &str, host: impl Into<PathBuf>) -> ClusterSpec {
        self.pinned.push((guest.to_string(), host.into()));
        self
    }
}

/// The assets every VM boots from.
#[derive(Debug, Clone)]
struct Assets {
    vmlinux: PathBuf,
    initrd: PathBuf,
}

fn assets() -> Result<Assets> {
    static ASSETS: OnceLock<std::result::Result<Assets, String>> = OnceLock::new();
    ASSETS
        .get_or_init(|| {
            if !qemu_available() {
                return Err(format!(
                    "{} not found (install qemu-system-x86)",
                    crate::machine::QEMU
                ));
            }
            let kernel = Kernel::fetch().map_err(|e| e.to_string())?;
            let initrd = initramfs::build(&kernel).map_err(|e| e.to_string())?;
            Ok(Assets {
                vmlinux: kernel.vmlinux,
                initrd,
            })
        })
        .clone()
        .map_err(Error::Missing)
}

/// Whether VMs can be booted here (QEMU present, kernel fetched, initramfs built).
/// Tests skip on `Err` unless `ECOMM_REQUIRE_ALL=1`.
pub fn available() -> Result<()> {
    assets().map(|_| ())
}

fn default_agent() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("VM_AGENT") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(Error::io("locate current exe", "/proc/self/exe"))?;
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("vm-agent");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::Missing(format!(
        "vm-agent not found next to {} (set VM_AGENT)",
        exe.display()
    )))
}

/// The accelerator for this host: forced by `VM_ACCEL`, else the cached probe verdict,
/// else a KVM probe boot.
pub fn accel(agent: &Path) -> Result<Accel> {
    if let Some(forced) = Accel::forced()? {
        return Ok(forced);
    }
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    if let Some(a) = ACCEL.get() {
        return Ok(*a);
    }
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let verdict = cache_root().join(format!("accel-{}", boot_id.trim()));
    if let Ok(text) = fs::read_to_string(&verdict) {
        if let Ok(a) = Accel::parse(text.trim()) {
            return Ok(*ACCEL.get_or_init(|| a));
        }
    }
    let a = if Path::new("/dev/kvm").exists() && probe_kvm(agent).is_ok() {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    let _ = fs::create_dir_all(cache_root());
    let _ = fs::write(&verdict, a.name());
    eprintln!("[vm] accelerator probe: {}", a.name());
    Ok(*ACCEL.get_or_init(|| a))
}

fn probe_kvm(agent: &Path) -> Result<()> {
    let assets = assets()?;
    let dir = RunDir::create("probe")?;
    let config = MachineConfig {
        name: "kvm-probe".into(),
        memory_mib: 256,
        vmlinux: assets.vmlinux,
        initrd: assets.initrd,
        agent: agent.to_path_buf(),
        host_root: true,
        drives: Vec::new(),
        nics: Vec::new(),
        dir: dir.0.clone(),
        accel: Accel::Kvm,
    };
    let mut m = Machine::spawn(config)?;
    m.wait_ready(KVM_PROBE_DEADLINE).map(|_| ())
}

/// A per-run directory under the temp dir (sockets, consoles), removed on drop.
#[derive(Debug)]
struct RunDir(PathBuf);

impl RunDir {
    fn create(tag: &str) -> Result<RunDir> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "vm-{tag}-{}-{}-{nanos:x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).map_err(Error::io("create run dir", &dir))?;
        Ok(RunDir(dir))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A VM of a running cluster. Methods take `&self` (a VM can be driven from several
/// threads; requests to one agent are serialised).
#[derive(Debug)]
pub struct Vm {
    name: String,
    accel: Accel,
    addresses: Vec<(String, String)>,
    machine: Mutex<Machine>,
}

/// The network of a running cluster: fault injection on the switch.
#[derive(Debug)]
pub struct Net {
    switch: Switch,
}

/// A running cluster; dropping it kills every VM and removes the run directory.
#[derive(Debug)]
pub struct Cluster {
    vms: Vec<Vm>,
    net: Net,
    accel: Accel,
    boot_times: Vec<(String, Duration)>,
    // Dropped last: the VMs and the switch use its sockets.
    _dir: RunDir,
}

/// Prints one progress line to stderr.
fn progress(msg: &str) {
    eprintln!("[vm] {msg}");
}

impl Cluster {
    /// Boots every VM of `spec` in parallel, waits for their agents and configures
    /// each NIC with its segment address (see [`Vm::ip`]).
    pub fn start(spec: ClusterSpec) -> Result<Cluster> {
        let assets = assets()?;
        let agent = match spec.agent.clone() {
            Some(a) => a,
            None => default_agent()?,
        };
        let accel = accel(&agent)?;
        let (initrd, drives, agent) = if let Some(role) = spec.pinned_root {
            let mut files: Vec<(&str, &Path)> = vec![(crate::pinned::AGENT, agent.as_path())];
            files.extend(spec.pinned.iter().map(|(g, h)| (g.as_str(), h.as_path())));
            let (initrd, drives, lines) = if crate::pinned::is_block(role) {
                let dirs: Vec<(&str, &Path)> = spec
                    .pinned_dirs
                    .iter()
                    .map(|(g, h)| (g.as_str(), h.as_path()))
                    .collect();
                let (drives, lines) = crate::pinned::drives(role, &files, &dirs)?;
                (assets.initrd.clone(), drives, lines)
            } else {
                let (initrd, lines) = crate::pinned::initrd(role, &assets.initrd, &files)?;
                (initrd, Vec::new(), lines)
            };
            for line in lines {
                progress(&line);
            }
            (initrd, drives, PathBuf::from(crate::pinned::AGENT))
        } else {
            (assets.initrd.clone(), Vec::new(), agent)
        };
        let dir = RunDir::create("run")?;
        let mut segments: Vec<String> = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for vm in &spec.vms {
            if !names.insert(vm.name.clone()) {
                return Err(Error::Spec(format!("vm name `{}` used twice", vm.name)));
            }
            if vm.name.is_empty()
                || vm.name.len() > 32
                || !vm
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(Error::Spec(format!(
                    "vm name `{}`: expected 1-32 of [A-Za-z0-9-]",
                    vm.name
                )));
            }
            for s in &vm.segments {
                if !segments.contains(s) {
                    segments.push(s.clone());
                }
            }
        }
        let mut switch = SwitchBuilder::default();
        let mut machines = Vec::new();
        for (v, vm) in spec.vms.iter().enumerate() {
            let mut nics = Vec::new();
            let mut addresses = Vec::new();
            for (n, seg) in vm.segments.iter().enumerate() {
                let sockets = switch.port(&dir.0, &vm.name, n, seg)?;
                let mac = format!("52:54:00:{:02x}:{:02x}:01", v + 1, n);
                let s = segments.iter().position(|x| x == seg).unwrap_or(0);
                addresses.push((seg.clone(), format!("10.10.{s}.{}", v + 1)));
                nics.push((sockets, mac));
            }
            machines.push((vm, nics, addresses));
        }
        let net = Net {
            switch: switch.start(),
        };
        let mut vms = Vec::new();
        // Spawn on this thread (QEMU's death signal follows the spawning thread) ...
        for (vm, nics, addresses) in machines {
            let config = MachineConfig {
                name: vm.name.clone(),
                memory_mib: vm.memory_mib,
                vmlinux: assets.vmlinux.clone(),
                initrd: initrd.clone(),
                agent: agent.clone(),
                host_root: spec.pinned_root.is_none(),
                drives: drives.clone(),
                nics,
                dir: dir.0.clone(),
                accel,
            };
            let machine = Machine::spawn(config)?;
            vms.push(Vm {
                name: vm.name.clone(),
                accel,
                addresses,
                machine: Mutex::new(machine),
            });
        }
        let mut cluster = Cluster {
            vms,
            net,
            accel,
            boot_times: Vec::new(),
            _dir: dir,
        };
        // ... and wait for all of them in parallel.
        let started = Instant::now();
        let results: Vec<Result<Duration>> = std::thread::scope(|s| {
            let handles: Vec<_> = cluster
                .vms
                .iter()
                .map(|vm| s.spawn(move || vm.wait_booted(started)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Spec("boot thread panicked".into())))
                })
                .collect()
        });
        for (vm, r) in cluster.vms.iter().zip(results) {
            match r {
                Ok(d) => cluster.boot_times.push((vm.name.clone(), d)),
                Err(e) => {
                    cluster.dump();
                    return Err(e);
                }
            }
        }
        Ok(cluster)
    }

    /// The VM named `name`; panics with the known names otherwise (test API).
    pub fn vm(&self, name: &str) -> &Vm {
        match self.try_vm(name) {
            Ok(vm) => vm,
            Err(e) => panic!("{e}"),
        }
    }

    /// The VM named `name`.
    pub fn try_vm(&self, name: &str) -> Result<&Vm> {
        self.vms
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| Error::UnknownName {
                kind: "vm",
                name: name.to_string(),
                have: self
                    .vms
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Every VM, in description order.
    pub fn vms(&self) -> &[Vm] {
        &self.vms
    }

    /// The switch, for fault injection.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The accelerator the VMs run on.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The run directory (sockets, consoles); removed when the cluster is dropped.
    pub fn run_dir(&self) -> &Path {
        &self._dir.0
    }

    /// Each VM's boot time to a ready agent (wall clock from cluster start).
    pub fn boot_times(&self) -> &[(String, Duration)] {
        &self.boot_times
    }

    /// Runs `f` as a named phase and prints its duration.
    pub fn phase<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        progress(&format!(
            "phase {name}: {:.2}s",
            started.elapsed().as_secs_f64()
        ));
        out
    }

    /// Prints every VM's console tail and agent transcript to stderr.
    pub fn dump(&self) {
        let mut out = String::new();
        for vm in &self.vms {
            let m = vm.lock();
            let _ = writeln!(
                out,
                "===== {}: serial console (last 150 lines) =====\n{}",
                vm.name,
                m.console_tail(150)
            );
            let _ = writeln!(
                out,
                "===== {}: agent transcript =====\n{}",
                vm.name,
                m.agent.transcript.join("\n")
            );
        }
        eprintln!("{out}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        for vm in &self.vms {
            vm.lock().kill();
        }
    }
}

impl Vm {
    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The VM's name (also its hostname).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address of this VM's NIC on `segment` (10.10.<segment index>.<vm index + 1>, /24).
    pub fn ip(&self, segment: &str) -> &str {
        self.addresses
            .iter()
            .find(|(s, _)| s == segment)
            .map(|(_, a)| a.as_str())
            .unwrap_or_else(|| {
                panic!("vm {} has no NIC on segment {segment}", self.name);
            })
    }

    fn wait_booted(&self, since: Instant) -> Result<Duration> {
        let mut m = self.lock();
        let uptime = m.wait_ready(self.accel.boot_deadline())?;
        let took = since.elapsed();
        let phases = boot_phases(&m.console_tail(400), uptime)
            .map(|(kernel, init, agent)| {
                format!("; kernel+unpack {kernel:.2}s, init {init:.2}s, agent {agent:.2}s")
            })
            .unwrap_or_default();
        progress(&format!(
            "{}: booted in {:.2}s ({}, guest uptime {:.2}s{phases})",
            self.name,
            took.as_secs_f64(),
            self.accel.name(),
            uptime as f64 / 1000.0
        ));
        let mut script = String::new();
        for (i, (_, mac)) in m.config.nics.iter().enumerate() {
            let addr = &self.addresses[i].1;
            let _ = write!(
                script,
                "for d in /sys/class/net/*; do [ \"$(cat $d/address)\" = {mac} ] && n=${{d##*/}}; done; ip link set \"$n\" up && ip addr add {addr}/24 dev \"$n\"; "
            );
        }
        if !script.is_empty() {
            let out = m.agent.run(&script, self.accel.command_timeout())?;
            if out.code != 0 {
                return Err(Error::Agent {
                    vm: self.name.clone(),
                    detail: format!("configuring NICs: {}", out.stderr),
                });
            }
        }
        Ok(took)
    }

    /// Runs `cmd` (via `/bin/sh -c`) with the accelerator's default timeout.
    pub fn execute(&self, cmd: &str) -> Result<Output> {
        self.execute_timeout(cmd, self.accel.command_timeout())
    }

    /// Runs `cmd` with an explicit timeout.
    pub fn execute_timeout(&self, cmd: &str, timeout: Duration) -> Result<Output> {
        self.lock().agent.run(cmd, timeout)
    }

    /// Runs `cmd`, panics unless it exits 0; returns its stdout.
    pub fn succeed(&self, cmd: &str) -> String {
        match self.execute(cmd) {
            Ok(out) if out.code == 0 => out.stdout,
            Ok(out) => panic!(
                "{}: `{cmd}` exited {}\n--- stdout\n{}\n--- stderr\n{}",
                self.name, out.code, out.stdout, out.stderr
            ),
            Err(e) => panic!("{}: `{cmd}`: {e}", self.name),
        }
    }

    /// Runs `cmd`, panics if it exits 0; returns its stderr.
    pub fn fail(&self, cmd: &str) -> String {
        match self.execute(cmd) {
            Ok(out) if out.code != 0 => out.stderr,
            Ok(out) => panic!(
                "{}: `{cmd}` unexpectedly succeeded\n--- stdout\n{}",
                self.name, out.stdout
            ),
            Err(e) => panic!("{}: `{cmd}`: {e}", self.name),
        }
    }

    /// Retries `cmd` (every 250 ms) until it exits 0 or `timeout` (scaled for the
    /// accelerator) passes; returns its stdout, panics on timeout with the last output.
    pub fn wait_until_succeeds(&self, cmd: &str, timeout: Duration) -> String {
        let timeout = self.accel.scale(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.execute_timeout(cmd, timeout);
            match &last {
                Ok(out) if out.code == 0 => return out.stdout.clone(),
                _ if Instant::now() >= deadline => {
                    panic!(
                        "{}: `{cmd}` did not succeed within {timeout:?}; last: {last:?}",
                        self.name
                    )
                }
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// Waits until something listens on TCP `port` in the VM's root namespace.
    pub fn wait_for_open_port(&self, port: u16) {
        self.wait_until_succeeds(
            &format!("ss -Htln 'sport = :{port}' | grep -q ."),
            Duration::from_secs(30),
        );
    }

    /// Starts `cmd` in the background; output appended to `/tmp/<name>.log` style `log`.
    pub fn spawn(&self, cmd: &str, log: &str) -> u32 {
        match self.lock().agent.spawn(cmd, log) {
            Ok(pid) => pid,
            Err(e) => panic!("{}: spawn `{cmd}`: {e}", self.name),
        }
    }

    /// Starts `cmd` in the background like [`Vm::spawn`]; `Err` instead of a panic.
    pub fn try_spawn(&self, cmd: &str, log: &str) -> Result<u32> {
        self.lock().agent.spawn(cmd, log)
    }

    /// Starts a TCP exchange from the guest's namespace `netns` (a pinned path; `None` for
    /// its root namespace) to `addr`; returns the job id a later [`Vm::collect`] reports.
    /// No guest process runs: the agent connects on a thread of its own.
    pub fn exchange(
        &self,
        netns: Option<&str>,
        addr: &str,
        data: &[u8],
        timeout: Duration,
    ) -> Result<u64> {
        self.lock().agent.exchange(netns, addr, data, timeout)
    }

    /// The exchanges that finished since the last collect (each is reported once).
    pub fn collect(&self) -> Result<Vec<(u64, ExchangeOutcome)>> {
        self.lock().agent.collect()
    }

    /// Writes a file in the guest like [`Vm::write_file`]; `Err` instead of a panic.
    pub fn try_write_file(&self, path: &str, data: &[u8]) -> Result<()> {
        self.lock().agent.write_file(path, data, 0o644)
    }

    /// Writes a file in the guest.
    pub fn write_file(&self, path: &str, data: &[u8]) {
        if let Err(e) = self.lock().agent.write_file(path, data, 0o644) {
            panic!("{}: write {path}: {e}", self.name);
        }
    }

    /// Reads a file from the guest.
    pub fn read_file(&self, path: &str) -> Vec<u8> {
        match self.lock().agent.read_file(path) {
            Ok(d) => d,
            Err(e) => panic!("{}: read {path}: {e}", self.name),
        }
    }

    /// Pauses the VM's CPUs (it stops answering; state is kept).
    pub fn freeze(&self) {
        if let Err(e) = self.lock().freeze() {
            panic!("{}: freeze: {e}", self.name);
        }
    }

    /// Resumes a frozen VM.
    pub fn thaw(&self) {
        if let Err(e) = self.lock().thaw() {
            panic!("{}: thaw: {e}", self.name);
        }
    }

    /// Kills the VM's QEMU outright.
    pub fn kill(&self) {
        self.lock().kill();
        progress(&format!("{}: killed", self.name));
    }

    /// Kills (if running) and boots the VM again, waiting for its agent and NICs.
    /// Call it from a thread that outlives the VM (QEMU's death signal follows it).
    pub fn restart(&self) -> Result<Duration> {
        self.lock().restart()?;
        self.wait_booted(Instant::now())
    }

    /// Whether QEMU is running.
    pub fn is_running(&self) -> bool {
        self.lock().is_running()
    }

    /// The QEMU process id, while running (for leak checks).
    pub fn qemu_pid(&self) -> Option<u32> {
        self.lock().pid()
    }
}

/// The boot's phases from the init script's console lines (`vm-init: start <uptime>`,
/// `vm-init: agent <uptime>`) and the agent's uptime when it answered (ms): the kernel with
/// the initramfs unpack, init (modules, mounts), the agent's start; seconds each.
fn boot_phases(console: &str, ready_ms: u64) -> Option<(f64, f64, f64)> {
    let at = |tag: &str| {
        console
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(tag))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let (start, agent) = (at("vm-init: start ")?, at("vm-init: agent ")?);
    let ready = ready_ms as f64 / 1000.0;
    Some((start, agent - start, ready - agent))
}

impl Net {
    /// Cuts the link between VMs `a` and `b` (frames both ways are dropped).
    pub fn cut(&self, a: &str, b: &str) {
        self.switch.cut(a, b);
        progress(&format!("net: cut {a} <-> {b}"));
    }

    /// Restores the link between `a` and `b`.
    pub fn restore(&self, a: &str, b: &str) {
        self.switch.restore(a, b);
        progress(&format!("net: restored {a} <-> {b}"));
    }

    /// Drops frames from `from` to `to` only.
    pub fn blackhole(&self, from: &str, to: &str) {
        self.switch.blackhole(from, to);
        progress(&format!("net: blackhole {from} -> {to}"));
    }

    /// Takes every link of `vm` down.
    pub fn disconnect(&self, vm: &str) {
        self.switch.disconnect(vm);
        progress(&format!("net: disconnected {vm}"));
    }

    /// Brings `vm`'s links back.
    pub fn reconnect(&self, vm: &str) {
        self.switch.reconnect(vm);
        progress(&format!("net: reconnected {vm}"));
    }

    /// Drops `percent` % of frames on `vm`'s links (0 clears).
    pub fn set_loss(&self, vm: &str, percent: u32) {
        self.switch.set_loss(vm, percent);
    }

    /// Captures every frame `vm` sends or receives into the pcap file `path`.
    pub fn capture(&self, vm: &str, path: &Path) -> Result<()> {
        self.switch.capture(vm, path)
    }

    /// Stops capturing `vm`'s frames.
    pub fn stop_capture(&self, vm: &str) {
        self.switch.stop_capture(vm);
    }

    /// Frames (forwarded, dropped) by the switch so far.
    pub fn counters(&self) -> (u64, u64) {
        self.switch.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_phases_come_from_the_init_lines_and_the_agent_uptime() {
        let console = "vm-init: start 2.50\nnoise\nvm-init: agent 3.25\nvm-agent: serving\n";
        let (kernel, init, agent) = boot_phases(console, 4000).unwrap();
        assert!((kernel - 2.5).abs() < 1e-9);
        assert!((init - 0.75).abs() < 1e-9);
        assert!((agent - 0.75).abs() < 1e-9);
        assert_eq!(boot_phases("vm-agent: serving\n", 4000), None);
    }
}
