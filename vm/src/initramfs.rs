//! The initramfs: a static busybox, the needed modules and an init script that
//! loads them, mounts the root read-only under a tmpfs overlay — the host's `/` over
//! virtio-9p (`vm.root=host`) or the pinned EROFS images on virtio-blk drives
//! (`vm.root=block`) — and `switch_root`s into it to exec the guest agent; or, with
//! `vm.root=image`, execs the agent in the RAM root the initrd's appended images unpacked.
//!
//! Why the host tree and not a hermetic closure: the agent and the services are
//! host-built, dynamically linked binaries, and PostgreSQL, Redis, nft and ip come
//! from the host's Debian packages — through 9p the guest sees the same glibc and the
//! same files, so nothing has to be collected. The overlay keeps the host untouched:
//! every guest write lands in guest RAM. The agent's path and the hostname come from
//! the kernel command line (`vm.agent=`, `vm.hostname=`), so the image does not change
//! when the agent is rebuilt.
//!
//! Deterministic: the same kernel modules, busybox and script give byte-identical
//! images (see [`images::cpio`]); images are cached by the SHA-256 of their content.

use std::fs;
use std::path::PathBuf;

use images::rootfs::Tree;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::kernel::{cache_root, Kernel};
use crate::modules::{resolve, WANTED};

/// The static busybox the init script runs on: `bin/busybox` of the `busybox-static`
/// package that `images.lock` pins (fetched and checked by SHA-256, never the host's).
pub fn busybox() -> Result<Vec<u8>> {
    let lock = images::lock::Lock::read(&images::lock::default_path())?;
    let pkg = lock.get("busybox-static")?;
    let root =
        images::fetch::Fetcher::from_host().unpacked(pkg, &images::fetch::Cache::from_env())?;
    let path = root.join("bin/busybox");
    fs::read(&path).map_err(Error::io("read the locked busybox", &path))
}

/// The 9p mount tag the host root is exported under.
pub const ROOT_TAG: &str = "hostroot";

/// The init script; `@ROOT_TAG@` is substituted. `/tmp` is deliberately NOT a fresh tmpfs:
/// the guest must see the host's `/tmp` through the overlay, because a checkout (and so the
/// agent and service binaries under its target dir) may live there, as CI's fresh clones do.
/// Guest writes to `/tmp` still land in the overlay's tmpfs upper layer, never on the host.
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t devtmpfs dev /dev
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
# Boot phases for the driver's boot line (kernel + initramfs unpack | init | agent start).
echo "vm-init: start $($B cut -d' ' -f1 /proc/uptime)" >/dev/ttyS0
for m in $($B cat /modules.order); do
  $B insmod /lib/modules/$m || echo "init: insmod $m failed" >/dev/ttyS0
done
agent=/bin/sh; host=vm; root=host
for a in $($B cat /proc/cmdline); do
  case $a in vm.agent=*) agent=${a#vm.agent=};; vm.hostname=*) host=${a#vm.hostname=};; vm.root=*) root=${a#vm.root=};; esac
done
if [ "$root" = image ]; then
  # The pinned image and the run's layer were unpacked into this RAM root with the
  # initramfs: no host tree. Applet links for what the image does not ship.
  $B --install -s /bin 2>/dev/null
  $B mount -t tmpfs -o mode=0755 tmpfs /run
  $B mkdir -p /dev/shm /dev/pts /run/netns /mnt /var/tmp
  $B mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  $B mount -t devpts devpts /dev/pts
  $B ln -sf /proc/self/fd /dev/fd
  $B ln -sf /proc/self/fd/0 /dev/stdin
  $B ln -sf /proc/self/fd/1 /dev/stdout
  $B ln -sf /proc/self/fd/2 /dev/stderr
  $B hostname $host
  $B ip link set lo up
  echo "vm-init: agent $($B cut -d' ' -f1 /proc/uptime)" >/dev/ttyS0
  exec $agent
fi
lower=/mnt/lower
if [ "$root" = block ]; then
  # The pinned image and the run's layer: EROFS on read-only virtio-blk drives, lowest
  # first (vda, vdb, ...); the overlay stacks them, the last drive on top.
  lower=
  n=0
  while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do $B usleep 20000; n=$((n+1)); done
  n=0
  for d in vda vdb vdc vdd; do
    [ -b /dev/$d ] || continue
    $B mkdir -p /mnt/ro$n
    $B mount -t erofs -o ro /dev/$d /mnt/ro$n || echo "init: erofs mount of $d failed" >/dev/ttyS0
    lower=/mnt/ro$n${lower:+:$lower}
    n=$((n+1))
  done
else
  $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 @ROOT_TAG@ /mnt/lower || echo "init: 9p mount failed" >/dev/ttyS0
fi
$B mount -t tmpfs -o mode=0755 tmpfs /mnt/rw
$B mkdir -p /mnt/rw/upper /mnt/rw/work
$B mount -t overlay overlay -o lowerdir=$lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot || echo "init: overlay failed" >/dev/ttyS0
$B mount --move /dev /newroot/dev
$B mount --move /proc /newroot/proc
$B mount --move /sys /newroot/sys
$B mount -t tmpfs -o mode=0755 tmpfs /newroot/run
$B mkdir -p /newroot/dev/shm /newroot/dev/pts /newroot/run/netns
$B mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
$B mount -t devpts devpts /newroot/dev/pts
$B ln -sf /proc/self/fd /newroot/dev/fd
$B ln -sf /proc/self/fd/0 /newroot/dev/stdin
$B ln -sf /proc/self/fd/1 /newroot/dev/stdout
$B ln -sf /proc/self/fd/2 /newroot/dev/stderr
$B hostname $host
$B ip link set lo up
# Applet links for what the image does not ship (into the overlay's upper layer).
[ "$root" = block ] && $B chroot /newroot /bin/busybox --install -s /bin 2>/dev/null
echo "vm-init: agent $($B cut -d' ' -f1 /newroot/proc/uptime)" >/newroot/dev/ttyS0
exec $B switch_root /newroot $agent
"#;

/// Builds (or finds in the cache) the initramfs for `kernel`; returns its path.
pub fn build(kernel: &Kernel) -> Result<PathBuf> {
    let mut tree = Tree::new();
    for dir in ["dev", "proc", "sys", "mnt/lower", "mnt/rw", "newroot"] {
        tree.dir(dir, 0o755, 0, 0);
    }
    tree.file("bin/busybox", busybox()?, 0o755);
    tree.file(
        "init",
        INIT.replace("@ROOT_TAG@", ROOT_TAG).into_bytes(),
        0o755,
    );
    let mut order = String::new();
    for (i, module) in resolve(&kernel.modules, WANTED)?.iter().enumerate() {
        let file = format!("{i:02}_{}.ko", module.name);
        let image = fs::read(&module.path).map_err(Error::io("read module", &module.path))?;
        tree.file(&format!("lib/modules/{file}"), image, 0o644);
        order.push_str(&file);
        order.push('\n');
    }
    tree.file("modules.order", order.into_bytes(), 0o644);
    let bytes = images::cpio::write(&tree);
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let dir = cache_root().join("initramfs");
    fs::create_dir_all(&dir).map_err(Error::io("create cache dir", &dir))?;
    let path = dir.join(format!("initramfs-{hex}.cpio"));
    if !path.exists() {
        let tmp = dir.join(format!(".initramfs-{hex}.{}", images::fetch::unique()));
        fs::write(&tmp, &bytes).map_err(Error::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(Error::io("rename", &path))?;
    }
    Ok(path)
}
