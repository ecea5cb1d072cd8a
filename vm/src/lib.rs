//! A QEMU test driver: boots Debian-kernel VMs whose root is the host's tree over
//! virtio-9p (read-only, tmpfs overlay), drives them through a guest agent on a
//! virtio serial port, switches their NICs in userspace and injects faults.
//!
//! ```no_run
//! use vm::{Cluster, ClusterSpec, VmSpec};
//! let cluster = Cluster::start(
//!     ClusterSpec::new().vm(VmSpec::new("a").nic("lan")).vm(VmSpec::new("b").nic("lan")),
//! )?;
//! let (a, b) = (cluster.vm("a"), cluster.vm("b"));
//! a.succeed(&format!("busybox ping -c1 -W5 {}", b.ip("lan")));
//! cluster.net().cut("a", "b");
//! a.fail(&format!("busybox ping -c1 -W1 {}", b.ip("lan")));
//! # Ok::<(), vm::Error>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod accel;
pub mod agent;
pub mod cluster;
pub mod error;
pub mod initramfs;
pub mod kernel;
pub mod machine;
pub mod modules;
pub mod pcap;
pub mod pinned;
pub mod protocol;
pub mod qmp;
pub mod switch;

pub use accel::Accel;
pub use agent::{ExchangeOutcome, Output};
pub use cluster::{available, Cluster, ClusterSpec, Net, Vm, VmSpec};
pub use error::{Error, Result};
