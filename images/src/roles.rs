//! The roles an image is built for: which locked packages they start from, what they take
//! from them, and how they run. Only what a role runs goes in: its binaries, their
//! `DT_NEEDED` closure inside the packages, and the data files named here.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::docker::Config;
use crate::error::{Error, Result};
use crate::fetch::Cache;
use crate::rootfs::{Closure, Tree};

/// The root packages of every role; `just lock` locks their dependency closure.
pub const ROOTS: &[&str] = &[
    "busybox-static",
    "dash",
    "iproute2",
    "libc6",
    "nftables",
    "postgresql-15",
    "redis-server",
];

/// What an image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A `docker load` archive.
    Container,
    /// A VM root image (newc cpio).
    Vm,
}

/// The workspace's own files that enter images: built, not locked, and so named by the
/// hash of their bytes like everything else.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The `ecomm` release binary, debug info stripped.
    pub ecomm: Vec<u8>,
    /// `ecomm-services/deploy/docker/postgres-entrypoint.sh`.
    pub postgres_entrypoint: Vec<u8>,
}

impl Inputs {
    /// `ecomm` stripped of its debug info (`strip --strip-debug`, deterministic for the same
    /// input: a third of a release binary, useless in an image) and the workspace's
    /// PostgreSQL entrypoint script.
    pub fn from_workspace(ecomm: &Path, cache: &Cache) -> Result<Inputs> {
        let script = crate::workspace().join("ecomm-services/deploy/docker/postgres-entrypoint.sh");
        Ok(Inputs {
            ecomm: stripped(ecomm, cache)?,
            postgres_entrypoint: fs::read(&script).map_err(Error::io("read input", &script))?,
        })
    }
}

fn stripped(binary: &Path, cache: &Cache) -> Result<Vec<u8>> {
    fs::create_dir_all(&cache.work).map_err(Error::io("create cache dir", &cache.work))?;
    let out = cache
        .work
        .join(format!(".stripped-{}", crate::fetch::unique()));
    let tool = format!("strip --strip-debug {}", binary.display());
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return Err(Error::Tool {
                tool,
                detail: s.to_string(),
            })
        }
        Err(e) => {
            return Err(Error::Tool {
                tool,
                detail: e.to_string(),
            })
        }
    }
    let bytes = fs::read(&out).map_err(Error::io("read stripped binary", &out));
    let _ = fs::remove_file(&out);
    bytes
}

/// One role.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    /// The output's name (the docker repository for containers).
    pub name: &'static str,
    /// The locked packages its closure starts from.
    pub packages: &'static [&'static str],
    /// Locked packages left out of its closure (with everything only they pull in): the
    /// dependencies of files the role does not take.
    pub prune: &'static [&'static str],
    /// Container or VM image.
    pub output: Output,
    assemble: fn(&mut Closure, &Inputs) -> Result<()>,
    config: fn() -> Config,
}

impl Role {
    /// Fills `closure`'s tree with what the role runs.
    pub fn assemble(&self, closure: &mut Closure, inputs: &Inputs) -> Result<()> {
        (self.assemble)(closure, inputs)
    }

    /// The container config (empty for VM images).
    pub fn config(&self) -> Config {
        (self.config)()
    }
}

/// Every role, in output order.
pub const ROLES: &[Role] = &[
    Role {
        name: "ecomm-services",
        packages: &["busybox-static", "libc6"],
        prune: &[],
        output: Output::Container,
        assemble: ecomm,
        config: ecomm_config,
    },
    Role {
        name: "ecomm-redis",
        packages: &["busybox-static", "redis-server"],
        prune: &[],
        output: Output::Container,
        assemble: redis,
        config: redis_config,
    },
    Role {
        name: "ecomm-postgres",
        packages: &["busybox-static", "postgresql-15"],
        // libllvm14 (and libz3) serve only llvmjit.so, which the role leaves out.
        prune: &["libllvm14"],
        output: Output::Container,
        assemble: postgres,
        config: postgres_config,
    },
    Role {
        name: "vm-base",
        packages: &["busybox-static", "dash", "iproute2", "nftables"],
        prune: &[],
        output: Output::Vm,
        assemble: vm_base,
        config: Config::default,
    },
];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `/etc/passwd` and `/etc/group` (root, one unprivileged user, nobody), nsswitch.conf,
/// `/tmp` (1777), the mount points, busybox as `/bin/sh`, and the user's home.
fn base(c: &mut Closure, user: &str, uid: u32, home: &str) -> Result<()> {
    let t: &mut Tree = &mut c.tree;
    t.file(
        "etc/passwd",
        format!("root:x:0:0:root:/root:/bin/sh\n{user}:x:{uid}:{uid}:{user}:{home}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n").into_bytes(),
        0o644,
    )
    .file("etc/group", format!("root:x:0:\n{user}:x:{uid}:\nnogroup:x:65534:\n").into_bytes(), 0o644)
    .file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n".to_vec(), 0o644)
    .dir("tmp", 0o1777, 0, 0)
    .dir("proc", 0o755, 0, 0)
    .dir("sys", 0o755, 0, 0)
    .dir("dev", 0o755, 0, 0)
    .dir("run", 0o755, 0, 0)
    .dir(home, 0o755, uid, uid)
    .symlink("bin/sh", "busybox");
    c.add("/bin/busybox", &[])?;
    Ok(())
}

fn ecomm(c: &mut Closure, inputs: &Inputs) -> Result<()> {
    base(c, "ecomm", 10001, "/home/ecomm")?;
    c.tree
        .file("usr/local/bin/ecomm", inputs.ecomm.clone(), 0o755);
    c.needs("usr/local/bin/ecomm")
}

fn ecomm_config() -> Config {
    Config {
        entrypoint: strings(&["/usr/local/bin/ecomm"]),
        cmd: strings(&["--help"]),
        user: "10001:10001".into(),
        workdir: "/home/ecomm".into(),
        env: strings(&["PATH=/usr/local/bin:/bin"]),
        expose: strings(&["3000/tcp", "8001/tcp", "8002/tcp", "8500/tcp", "8600/udp"]),
        volumes: Vec::new(),
    }
}

fn redis(c: &mut Closure, _: &Inputs) -> Result<()> {
    base(c, "redis", 999, "/data")?;
    c.add_elf("/usr/bin/redis-server")?;
    c.add_elf("/usr/bin/redis-cli")
}

fn redis_config() -> Config {
    Config {
        entrypoint: strings(&["/usr/bin/redis-server"]),
        cmd: strings(&[
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ]),
        user: "999:999".into(),
        workdir: "/data".into(),
        env: strings(&["PATH=/usr/bin:/bin"]),
        expose: strings(&["6379/tcp"]),
        volumes: Vec::new(),
    }
}

/// PostgreSQL's binaries and server modules; `llvmjit*` is left out (it drags in libLLVM,
/// over 100 MB; JIT is off without it).
fn postgres(c: &mut Closure, inputs: &Inputs) -> Result<()> {
    base(c, "postgres", 999, "/var/lib/postgresql")?;
    for bin in ["postgres", "initdb", "pg_ctl", "pg_isready", "psql"] {
        c.add_elf(&format!("/usr/lib/postgresql/15/bin/{bin}"))?;
    }
    for module in c.list("/usr/lib/postgresql/15/lib")? {
        if module.ends_with(".so") && !module.contains("llvmjit") {
            c.add_elf(&format!("/usr/lib/postgresql/15/lib/{module}"))?;
        }
    }
    c.add(
        "/usr/share/postgresql/15",
        &["/usr/share/postgresql/15/man"],
    )?;
    c.add("/usr/share/zoneinfo", &[])?;
    c.tree
        .file(
            "usr/local/bin/postgres-entrypoint",
            inputs.postgres_entrypoint.clone(),
            0o755,
        )
        .dir("var/lib/postgresql/data", 0o700, 999, 999)
        .dir("run/postgresql", 0o755, 999, 999);
    Ok(())
}

fn postgres_config() -> Config {
    Config {
        entrypoint: strings(&["/usr/local/bin/postgres-entrypoint"]),
        cmd: Vec::new(),
        user: "999:999".into(),
        workdir: String::new(),
        env: strings(&[
            "PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/bin",
            "PGDATA=/var/lib/postgresql/data",
        ]),
        expose: strings(&["5432/tcp"]),
        volumes: strings(&["/var/lib/postgresql/data"]),
    }
}

/// The VM guest's base: busybox, dash as `/bin/sh`, ip (at `/bin/ip` and `/sbin/ip`, with its `/etc/iproute2`
/// tables), tc, ss and nft. Init links busybox's other applets at boot, never over these.
fn vm_base(c: &mut Closure, _: &Inputs) -> Result<()> {
    c.add("/bin/busybox", &[])?;
    // dash as /bin/sh, as on Debian: busybox's sh runs its own applets before PATH, so
    // `ip` there would be busybox's, not iproute2's.
    c.add_elf("/bin/dash")?;
    c.tree.symlink("bin/sh", "dash");
    c.add_elf("/bin/ip")?;
    c.add("/sbin/ip", &[])?;
    c.add_elf("/sbin/tc")?;
    c.add_elf("/bin/ss")?;
    c.add("/etc/iproute2", &[])?;
    c.add_elf("/usr/sbin/nft")?;
    c.tree
        .dir("tmp", 0o1777, 0, 0)
        .dir("proc", 0o755, 0, 0)
        .dir("sys", 0o755, 0, 0)
        .dir("dev", 0o755, 0, 0)
        .dir("run", 0o755, 0, 0)
        .dir("root", 0o700, 0, 0);
    Ok(())
}
