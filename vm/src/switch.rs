//! The virtual switch: every VM NIC is a QEMU `-netdev dgram` whose frames arrive on a
//! unix datagram socket the driver owns; one thread forwards them per segment (a
//! learning switch: known unicast to its port, everything else flooded) and applies
//! the faults — a cut pair, a one-way blackhole, a disconnected VM, a loss rate.
//! No root, no multicast; the sockets live in the run's own directory, so parallel
//! runs cannot cross-talk.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::pcap::PcapWriter;

/// One switch port: a VM's NIC on a segment.
#[derive(Debug)]
struct Port {
    vm: String,
    segment: String,
    sock: UnixDatagram,
    /// QEMU's end (`local.path` of its netdev).
    peer: PathBuf,
}

/// The fault state the forwarding thread consults for every frame.
#[derive(Debug, Default)]
struct Faults {
    /// Directed pairs (from, to) whose frames are dropped.
    blocked: HashSet<(String, String)>,
    /// VMs whose every link is down.
    down: HashSet<String>,
    /// Drop probability per VM link, in percent (0..=100).
    loss: HashMap<String, u32>,
    /// Frame captures per VM: every frame it sends and every frame delivered to it.
    captures: HashMap<String, PcapWriter>,
}

#[derive(Debug, Default)]
struct Shared {
    faults: Mutex<Faults>,
    stop: AtomicBool,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// The switch; dropping it stops the forwarding thread.
#[derive(Debug)]
pub struct Switch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Socket paths of one NIC, for QEMU's command line.
#[derive(Debug, Clone)]
pub struct NicSockets {
    /// QEMU binds this (`local.path`).
    pub vm_side: PathBuf,
    /// The switch binds this (`remote.path`).
    pub switch_side: PathBuf,
}

/// Builds the port list before the forwarding thread starts.
#[derive(Debug, Default)]
pub struct SwitchBuilder {
    ports: Vec<Port>,
}

impl SwitchBuilder {
    /// Adds a port for `vm`'s NIC `nic` on `segment`; sockets are created under `dir`.
    pub fn port(&mut self, dir: &Path, vm: &str, nic: usize, segment: &str) -> Result<NicSockets> {
        let switch_side = dir.join(format!("{vm}.{nic}.sw"));
        let vm_side = dir.join(format!("{vm}.{nic}.vm"));
        let sock = UnixDatagram::bind(&switch_side)
            .map_err(Error::io("bind switch port", &switch_side))?;
        sock.set_nonblocking(true)
            .map_err(Error::io("set nonblocking", &switch_side))?;
        self.ports.push(Port {
            vm: vm.to_string(),
            segment: segment.to_string(),
            sock,
            peer: vm_side.clone(),
        });
        Ok(NicSockets {
            vm_side,
            switch_side,
        })
    }

    /// Starts forwarding.
    pub fn start(self) -> Switch {
        let shared = Arc::new(Shared::default());
        let ports = self.ports;
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("vm-switch".into())
                .spawn(move || forward(&ports, &shared))
                .ok()
        };
        Switch { shared, thread }
    }
}

impl Switch {
    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.shared.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every frame between `a` and `b`, both ways.
    pub fn cut(&self, a: &str, b: &str) {
        let mut f = self.faults();
        f.blocked.insert((a.into(), b.into()));
        f.blocked.insert((b.into(), a.into()));
    }

    /// Undoes [`Switch::cut`] and [`Switch::blackhole`] between `a` and `b`.
    pub fn restore(&self, a: &str, b: &str) {
        let mut f = self.faults();
        f.blocked.remove(&(a.to_string(), b.to_string()));
        f.blocked.remove(&(b.to_string(), a.to_string()));
    }

    /// Drops frames from `from` to `to` only (the reverse direction still flows).
    pub fn blackhole(&self, from: &str, to: &str) {
        self.faults().blocked.insert((from.into(), to.into()));
    }

    /// Takes all of `vm`'s links down (the VM keeps running).
    pub fn disconnect(&self, vm: &str) {
        self.faults().down.insert(vm.into());
    }

    /// Brings `vm`'s links back up.
    pub fn reconnect(&self, vm: &str) {
        self.faults().down.remove(vm);
    }

    /// Drops `percent` % of the frames on `vm`'s links (0 clears it).
    pub fn set_loss(&self, vm: &str, percent: u32) {
        let mut f = self.faults();
        if percent == 0 {
            f.loss.remove(vm);
        } else {
            f.loss.insert(vm.into(), percent.min(100));
        }
    }

    /// Records every frame `vm` sends and every frame delivered to it into the pcap
    /// file `path` (replacing an earlier capture of that VM).
    pub fn capture(&self, vm: &str, path: &Path) -> Result<()> {
        let writer = PcapWriter::create(path)?;
        self.faults().captures.insert(vm.into(), writer);
        Ok(())
    }

    /// Stops capturing `vm`'s frames (the file stays).
    pub fn stop_capture(&self, vm: &str) {
        self.faults().captures.remove(vm);
    }

    /// Frames forwarded and dropped so far.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.shared.forwarded.load(Ordering::Relaxed),
            self.shared.dropped.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cheap xorshift generator for loss decisions (no crypto needed).
struct Rng(u64);

impl Rng {
    fn percent(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 100) as u32
    }
}

fn forward(ports: &[Port], shared: &Shared) {
    let mut fds: Vec<libc::pollfd> = ports
        .iter()
        .map(|p| libc::pollfd {
            fd: p.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut macs: HashMap<(String, [u8; 6]), usize> = HashMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; 65536];
    while !shared.stop.load(Ordering::Relaxed) {
        // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if n <= 0 {
            continue;
        }
        for (i, port) in ports.iter().enumerate() {
            if fds[i].revents & libc::POLLIN == 0 {
                continue;
            }
            while let Ok(len) = port.sock.recv(&mut buf) {
                let frame = &buf[..len];
                if len < 14 {
                    continue;
                }
                let mut dst = [0u8; 6];
                let mut src = [0u8; 6];
                dst.copy_from_slice(&frame[..6]);
                src.copy_from_slice(&frame[6..12]);
                macs.insert((port.segment.clone(), src), i);
                let targets: Vec<usize> = match macs.get(&(port.segment.clone(), dst)) {
                    Some(&j) if dst[0] & 1 == 0 && j != i => vec![j],
                    _ => (0..ports.len())
                        .filter(|&j| j != i && ports[j].segment == port.segment)
                        .collect(),
                };
                let mut faults = shared.faults.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(w) = faults.captures.get_mut(&port.vm) {
                    w.record(frame);
                }
                for j in targets {
                    let to = &ports[j];
                    let loss = faults
                        .loss
                        .get(&port.vm)
                        .copied()
                        .unwrap_or(0)
                        .max(faults.loss.get(&to.vm).copied().unwrap_or(0));
                    let drop = faults.down.contains(&port.vm)
                        || faults.down.contains(&to.vm)
                        || faults.blocked.contains(&(port.vm.clone(), to.vm.clone()))
                        || (loss > 0 && rng.percent() < loss);
                    if drop {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // Nonblocking: a VM that is dead, frozen or slow loses the frame, like a real wire.
                    if port_send(to, frame) {
                        shared.forwarded.fetch_add(1, Ordering::Relaxed);
                        if let Some(w) = faults.captures.get_mut(&to.vm) {
                            w.record(frame);
                        }
                    } else {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Sends a frame out of port `to` toward its VM; false if it could not be delivered.
fn port_send(to: &Port, frame: &[u8]) -> bool {
    to.sock.send_to(frame, &to.peer).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A fake VM end: binds the path QEMU would bind.
    fn nic(sockets: &NicSockets) -> UnixDatagram {
        let s = UnixDatagram::bind(&sockets.vm_side).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    }

    fn frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(payload);
        f
    }

    fn recv(s: &UnixDatagram) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    const A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    const B: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];
    const BCAST: [u8; 6] = [0xff; 6];

    struct Rig {
        _dir: PathBuf,
        switch: Switch,
        a: UnixDatagram,
        b: UnixDatagram,
        c: UnixDatagram,
        other: UnixDatagram,
    }

    /// a, b, c on segment "lan"; `other` alone on segment "wan".
    fn rig(tag: &str) -> Rig {
        let dir = std::env::temp_dir().join(format!("vm-switch-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut b = SwitchBuilder::default();
        let pa = b.port(&dir, "a", 0, "lan").unwrap();
        let pb = b.port(&dir, "b", 0, "lan").unwrap();
        let pc = b.port(&dir, "c", 0, "lan").unwrap();
        let po = b.port(&dir, "o", 0, "wan").unwrap();
        let (a, bb, c, other) = (nic(&pa), nic(&pb), nic(&pc), nic(&po));
        for (s, p) in [(&a, &pa), (&bb, &pb), (&c, &pc), (&other, &po)] {
            s.connect(&p.switch_side).unwrap();
        }
        Rig {
            _dir: dir,
            switch: b.start(),
            a,
            b: bb,
            c,
            other,
        }
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self._dir);
        }
    }

    #[test]
    fn broadcasts_flood_the_segment_and_unicast_goes_to_the_learned_port() {
        let r = rig("learn");
        r.a.send(&frame(BCAST, A, b"who-has")).unwrap();
        assert_eq!(recv(&r.b).unwrap(), frame(BCAST, A, b"who-has"));
        assert!(recv(&r.c).is_some());
        assert!(
            recv(&r.other).is_none(),
            "another segment must not see the broadcast"
        );
        r.b.send(&frame(A, B, b"reply")).unwrap();
        assert_eq!(recv(&r.a).unwrap(), frame(A, B, b"reply"));
        assert!(
            recv(&r.c).is_none(),
            "a learned unicast must not be flooded"
        );
    }

    #[test]
    fn a_cut_drops_both_ways_until_restored() {
        let r = rig("cut");
        r.switch.cut("a", "b");
        r.a.send(&frame(BCAST, A, b"x")).unwrap();
        assert!(recv(&r.b).is_none());
        assert!(recv(&r.c).is_some(), "only the a-b link is cut");
        r.b.send(&frame(BCAST, B, b"y")).unwrap();
        assert!(recv(&r.a).is_none());
        r.switch.restore("a", "b");
        r.a.send(&frame(BCAST, A, b"z")).unwrap();
        assert!(recv(&r.b).is_some());
    }

    #[test]
    fn a_blackhole_is_one_way_and_disconnect_isolates_a_vm() {
        let r = rig("hole");
        r.switch.blackhole("a", "b");
        r.a.send(&frame(BCAST, A, b"x")).unwrap();
        assert!(recv(&r.c).is_some());
        assert!(recv(&r.b).is_none());
        r.b.send(&frame(BCAST, B, b"y")).unwrap();
        assert!(recv(&r.a).is_some(), "the reverse direction still flows");
        assert!(recv(&r.c).is_some());
        r.switch.disconnect("c");
        r.a.send(&frame(BCAST, A, b"z")).unwrap();
        assert!(recv(&r.c).is_none());
        r.switch.reconnect("c");
        r.a.send(&frame(BCAST, A, b"w")).unwrap();
        assert!(recv(&r.c).is_some());
    }

    #[test]
    fn a_capture_records_what_a_vm_sends_and_receives() {
        let r = rig("capture");
        let path = r._dir.join("c.pcap");
        r.switch.capture("c", &path).unwrap();
        r.a.send(&frame(BCAST, A, b"to-all")).unwrap();
        assert!(recv(&r.c).is_some());
        r.c.send(&frame(A, [0x52, 0x54, 0, 0, 0, 3], b"from-c"))
            .unwrap();
        assert!(recv(&r.a).is_some());
        std::thread::sleep(Duration::from_millis(50));
        r.switch.stop_capture("c");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            bytes.len(),
            24 + 2 * 16 + frame(BCAST, A, b"to-all").len() + frame(A, B, b"from-c").len()
        );
    }

    #[test]
    fn full_loss_drops_everything_on_that_vms_links() {
        let r = rig("loss");
        r.switch.set_loss("b", 100);
        r.a.send(&frame(BCAST, A, b"x")).unwrap();
        assert!(recv(&r.b).is_none());
        assert!(recv(&r.c).is_some());
        r.switch.set_loss("b", 0);
        r.a.send(&frame(BCAST, A, b"y")).unwrap();
        assert!(recv(&r.b).is_some());
        assert!(recv(&r.c).is_some());
        std::thread::sleep(Duration::from_millis(50));
        let (forwarded, dropped) = r.switch.counters();
        assert!(forwarded >= 3 && dropped >= 1);
    }
}
