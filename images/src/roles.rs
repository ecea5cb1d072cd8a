//! The roles an image is built for: which locked packages they start from, what they take
//! from them, and how they run. Only what a role runs goes in: its binaries, their
//! `DT_NEEDED` closure inside the packages, and the data files named here.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::docker::Config;
use crate::error::{Error, Result};
use crate::fetch::Cache;
use crate::rootfs::{Closure, Kind, Tree};
use crate::stub::{self, Stub};

/// The root packages of every role; `just lock` locks their dependency closure.
pub const ROOTS: &[&str] = &[
    "bash",
    "busybox-static",
    "curl",
    "dash",
    "iproute2",
    "libc6",
    "nftables",
    "postgresql-15",
    "procps",
    "redis-server",
];

/// PostgreSQL's bin dir in every image that carries it (Debian's layout for the locked
/// `postgresql-15`).
pub const PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// What an image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A `docker load` archive.
    Container,
    /// A VM root image unpacked into guest RAM with the initramfs (newc cpio).
    Vm,
    /// A VM root image on a read-only virtio-blk drive (uncompressed EROFS, [`crate::erofs`]),
    /// under a tmpfs overlay in the guest: only what the guest reads is read.
    VmBlock,
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
            ecomm: strip_debug(ecomm, cache)?,
            postgres_entrypoint: fs::read(&script).map_err(Error::io("read input", &script))?,
        })
    }
}

/// The bytes of `binary` without its debug info (`strip --strip-debug`: the same input gives
/// the same output; symbols stay, so backtraces still name functions).
pub fn strip_debug(binary: &Path, cache: &Cache) -> Result<Vec<u8>> {
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
    /// Libraries its closure takes as stubs instead of from the packages.
    pub stubs: &'static [Stub],
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
        stubs: &[],
        output: Output::Container,
        assemble: ecomm,
        config: ecomm_config,
    },
    Role {
        name: "ecomm-redis",
        packages: &["redis-server"],
        prune: &[],
        stubs: &[stub::SYSTEMD],
        output: Output::Container,
        assemble: redis,
        config: redis_config,
    },
    Role {
        name: "ecomm-postgres",
        packages: &["busybox-static", "postgresql-15"],
        // libllvm14 (and libz3) serve only llvmjit.so, which the role leaves out.
        prune: &["libllvm14"],
        stubs: &[stub::SYSTEMD],
        output: Output::Container,
        assemble: postgres,
        config: postgres_config,
    },
    Role {
        name: "vm-base",
        packages: &["busybox-static", "dash", "iproute2", "nftables"],
        prune: &[],
        stubs: &[],
        output: Output::Vm,
        assemble: vm_base,
        config: Config::default,
    },
    Role {
        name: STACK_ROLE,
        packages: &[
            "bash",
            "busybox-static",
            "curl",
            "dash",
            "iproute2",
            "nftables",
            "postgresql-15",
            "procps",
            "redis-server",
        ],
        // As for ecomm-postgres: libllvm14 serves only llvmjit.so.
        prune: &["libllvm14"],
        // procps' libproc2 uses more of libsystemd than sd_notify: the real one stays.
        stubs: &[],
        output: Output::VmBlock,
        assemble: vm_stack,
        config: Config::default,
    },
];

/// The role of the full guest image a placement host boots: [`vm_base`] plus PostgreSQL,
/// Redis, bash, curl and pgrep (see [`STACK`]).
pub const STACK_ROLE: &str = "vm-stack";

/// Where things are in the [`STACK_ROLE`] image, for the code that drives a guest booted from
/// it; the image carries the same facts as `key=value` lines in [`Stack::PATH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stack {
    /// The netns-kit CLI (a workspace binary: it enters through the run's layer).
    pub netns_kit: &'static str,
    /// The `ecomm` services binary (a workspace binary: it enters through the run's layer).
    pub ecomm: &'static str,
    /// PostgreSQL's bin dir: postgres, initdb, pg_ctl, pg_isready, psql, createdb.
    pub pg_bindir: &'static str,
    /// The PostgreSQL server's user (and group); the image's `/etc/passwd` has it.
    pub pg_user: &'static str,
    /// Its uid (and gid).
    pub pg_uid: u32,
    /// `redis-server`.
    pub redis_server: &'static str,
    /// `redis-cli`.
    pub redis_cli: &'static str,
    /// The Redis user (and group).
    pub redis_user: &'static str,
    /// Its uid (and gid).
    pub redis_uid: u32,
    /// curl, for HTTP probes.
    pub curl: &'static str,
    /// bash (`/dev/tcp` probes).
    pub bash: &'static str,
    /// `runuser -u USER [--] CMD ARG…` (a shell shim over busybox `su`: the image has no PAM).
    pub runuser: &'static str,
}

/// The stack image's layout.
pub const STACK: Stack = Stack {
    netns_kit: "/usr/local/bin/netns-kit",
    ecomm: "/usr/local/bin/ecomm",
    pg_bindir: PG_BINDIR,
    pg_user: "postgres",
    pg_uid: 999,
    redis_server: "/usr/bin/redis-server",
    redis_cli: "/usr/bin/redis-cli",
    redis_user: "redis",
    redis_uid: 998,
    curl: "/usr/bin/curl",
    bash: "/bin/bash",
    runuser: "/usr/sbin/runuser",
};

impl Stack {
    /// Where the image holds its manifest.
    pub const PATH: &'static str = "/etc/stack-manifest";

    /// The manifest's text: one `key=value` line per field, sorted by key.
    pub fn manifest(&self) -> String {
        let mut lines = [
            ("bash", self.bash.to_string()),
            ("curl", self.curl.to_string()),
            ("ecomm", self.ecomm.to_string()),
            ("netns_kit", self.netns_kit.to_string()),
            ("pg_bindir", self.pg_bindir.to_string()),
            ("pg_uid", self.pg_uid.to_string()),
            ("pg_user", self.pg_user.to_string()),
            ("redis_cli", self.redis_cli.to_string()),
            ("redis_server", self.redis_server.to_string()),
            ("redis_uid", self.redis_uid.to_string()),
            ("redis_user", self.redis_user.to_string()),
            ("runuser", self.runuser.to_string()),
        ];
        lines.sort();
        let mut out = String::from("# The vm-stack image's layout (images::roles::STACK).\n");
        for (k, v) in lines {
            out.push_str(&format!("{k}={v}\n"));
        }
        out
    }

    /// A guest command that makes a fresh PostgreSQL cluster in `dir` with the image's initdb,
    /// as [`Stack::pg_user`]: trust authentication, superuser `postgres`, no fsync, the C
    /// locale (the image ships no locale data) and UTF-8; `TZ=UTC` spares initdb its scan of
    /// the zoneinfo tree.
    pub fn initdb_command(&self, dir: &str) -> String {
        format!(
            "mkdir -p {dir} && chown {u}:{u} {dir} && chmod 700 {dir} && TZ=UTC {r} -u {u} -- {b}/initdb -D {dir} -A trust -U postgres -N --locale=C -E UTF8 >/dev/null",
            u = self.pg_user,
            r = self.runuser,
            b = self.pg_bindir,
        )
    }
}

/// util-linux's `runuser -u USER [--] CMD ARG…` for root, over busybox `su` (no PAM in the
/// image): the command's arguments pass through unchanged.
const RUNUSER: &str = r#"#!/bin/sh
# runuser -u USER [--] COMMAND [ARG...], as util-linux's for root, over busybox su.
if [ "$1" != -u ] || [ -z "$2" ]; then
  echo "runuser: usage: runuser -u USER [--] COMMAND [ARG...]" >&2
  exit 1
fi
user=$2
shift 2
[ "$1" = -- ] && shift
# Options first and `--`: busybox su would take the command's own options as its.
exec /bin/busybox su -s /bin/sh -c 'exec "$@"' -- "$user" runuser "$@"
"#;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// [`accounts`] plus busybox as `/bin/sh`.
fn base(c: &mut Closure, user: &str, uid: u32, home: &str) -> Result<()> {
    accounts(c, user, uid, home);
    c.tree.symlink("bin/sh", "busybox");
    c.add("/bin/busybox", &[])?;
    Ok(())
}

/// `/etc/passwd` and `/etc/group` (root, one unprivileged user, nobody), nsswitch.conf,
/// `/tmp` (1777), the mount points and the user's home.
fn accounts(c: &mut Closure, user: &str, uid: u32, home: &str) {
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
    .dir(home, 0o755, uid, uid);
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

/// Redis without a shell (its healthcheck runs `redis-cli` directly): busybox's 2 MB would
/// be most of what keeps it over the 15 MB goal.
fn redis(c: &mut Closure, _: &Inputs) -> Result<()> {
    accounts(c, "redis", 999, "/data");
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
    // pg_dump: `lab backup` on a `--pinned` lab.
    postgres_files(c, &["pg_dump"])?;
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

/// The PostgreSQL programs every image with PostgreSQL carries.
const PG_PROGRAMS: &[&str] = &["postgres", "initdb", "pg_ctl", "pg_isready", "psql"];

/// PostgreSQL's [`PG_PROGRAMS`] and `extra` programs, its server modules but llvmjit, its
/// share dir and the zoneinfo.
fn postgres_files(c: &mut Closure, extra: &[&str]) -> Result<()> {
    for bin in PG_PROGRAMS.iter().chain(extra) {
        c.add_elf(&format!("{PG_BINDIR}/{bin}"))?;
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
    cut_icu_data(c)
}

/// Replaces ICU's 31 MB data library in the tree with one holding only what PostgreSQL
/// loads (see [`crate::icu`]).
fn cut_icu_data(c: &mut Closure) -> Result<()> {
    for (path, entry) in c.tree.entries.iter_mut() {
        let name = path.rsplit('/').next().unwrap_or("");
        if let (true, Kind::File(data)) = (name.starts_with("libicudata.so."), &mut entry.kind) {
            *data = crate::icu::reduce(path, data, crate::icu::kept)?;
        }
    }
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

/// The full guest of a placement host: [`vm_base`], PostgreSQL (server, initdb, psql,
/// createdb), Redis, bash, curl and pgrep, the users they run as, a `runuser` and the
/// manifest ([`STACK`]). The workspace's binaries enter through the run's layer.
fn vm_stack(c: &mut Closure, inputs: &Inputs) -> Result<()> {
    vm_base(c, inputs)?;
    let s = STACK;
    let (pg, pu, rd, ru) = (s.pg_user, s.pg_uid, s.redis_user, s.redis_uid);
    c.tree
        .file(
            "etc/passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\n{pg}:x:{pu}:{pu}:PostgreSQL:/var/lib/postgresql:/bin/sh\n\
                 {rd}:x:{ru}:{ru}:Redis:/var/lib/redis:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            )
            .into_bytes(),
            0o644,
        )
        .file(
            "etc/group",
            format!("root:x:0:\n{pg}:x:{pu}:\n{rd}:x:{ru}:\nnogroup:x:65534:\n").into_bytes(),
            0o644,
        )
        .file(
            "etc/nsswitch.conf",
            b"passwd: files\ngroup: files\nhosts: files dns\n".to_vec(),
            0o644,
        )
        .file("etc/shells", b"/bin/sh\n/bin/dash\n/bin/bash\n".to_vec(), 0o644)
        .file(Stack::PATH, s.manifest().into_bytes(), 0o644)
        .file(s.runuser, RUNUSER.as_bytes().to_vec(), 0o755)
        .dir("var/lib/postgresql", 0o755, pu, pu)
        .dir("var/lib/redis", 0o750, ru, ru);
    c.add_elf(s.bash)?;
    c.add_elf(s.curl)?;
    c.add_elf("/usr/bin/pgrep")?;
    c.add_elf("/usr/bin/pkill")?;
    postgres_files(c, &["createdb"])?;
    c.add_elf(s.redis_server)?;
    c.add_elf(s.redis_cli)
}
