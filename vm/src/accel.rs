//! The accelerator: KVM when a probe guest actually boots on it, else TCG.
//!
//! On these machines /dev/kvm exists but a real guest hangs on it, so presence proves
//! nothing: the driver boots a probe VM under KVM with a short deadline. The verdict is
//! cached per host boot (keyed by /proc/sys/kernel/random/boot_id) so only the first
//! run after a reboot pays for the probe. `VM_ACCEL=tcg|kvm` skips the probe.

use std::time::Duration;

use crate::error::{Error, Result};

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's binary translator: slow, always available.
    Tcg,
}

/// Deadline for the KVM probe guest to get a ready agent (a working KVM needs ~1 s).
pub const KVM_PROBE_DEADLINE: Duration = Duration::from_secs(6);

impl Accel {
    /// The accelerator `VM_ACCEL` forces, if set.
    pub fn forced() -> Result<Option<Accel>> {
        match std::env::var("VM_ACCEL") {
            Err(_) => Ok(None),
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => Accel::parse(&v).map(Some),
        }
    }

    /// Parses `tcg` or `kvm`.
    pub fn parse(s: &str) -> Result<Accel> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(Error::BadAccel(other.to_string())),
        }
    }

    /// The name QEMU and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// QEMU arguments selecting this accelerator and a matching CPU model.
    pub fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "qemu64"],
        }
    }

    /// Deadline for a VM to get a ready agent: 20 s on KVM, 120 s on TCG (several
    /// guests booting at once on two cores).
    pub fn boot_deadline(self) -> Duration {
        match self {
            Accel::Kvm => Duration::from_secs(20),
            Accel::Tcg => Duration::from_secs(120),
        }
    }

    /// Default timeout of one guest command: 30 s on KVM, 120 s on TCG.
    pub fn command_timeout(self) -> Duration {
        match self {
            Accel::Kvm => Duration::from_secs(30),
            Accel::Tcg => Duration::from_secs(120),
        }
    }

    /// Multiplies a KVM-calibrated duration for this accelerator (×1 KVM, ×4 TCG).
    pub fn scale(self, d: Duration) -> Duration {
        match self {
            Accel::Kvm => d,
            Accel::Tcg => d * 4,
        }
    }
}
