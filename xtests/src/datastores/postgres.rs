//! PostgreSQL inside the `postgres` namespace: `initdb` once into the lab's state directory,
//! then `postgres` listening on the node's tier address only.
//!
//! Authentication: superuser `postgres` with a password (scram-sha-256) over TCP from any
//! address — the router's policy decides who can reach the port at all — and trust over the
//! Unix socket, which lives in the lab's state directory, not in /var/run/postgresql.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::error::LabError;
use crate::ns::NsHandle;
use crate::pinned::{Confine, Rootfs, PG_BINDIR};
use crate::process::{Launch, RunAs};

/// One PostgreSQL server of the lab (its files, address and superuser password).
#[derive(Debug, Clone)]
pub struct Postgres {
    /// The directory holding `data/`, `socket/` and the password file.
    pub dir: PathBuf,
    /// Where it listens (the postgres node's address, port 5432).
    pub addr: SocketAddr,
    /// Turn fsync off: for test fixtures, whose data dies with them. Default false.
    pub ephemeral: bool,
    /// Run the pinned image's PostgreSQL (over its tree, as its own `postgres` account)
    /// instead of the host's ([`Postgres::pinned`]).
    pub pinned: Option<(Confine, RunAs)>,
}

impl Postgres {
    /// A server keeping its files under `dir`, listening on `addr`.
    pub fn new(dir: impl Into<PathBuf>, addr: SocketAddr, ephemeral: bool) -> Self {
        Self {
            dir: dir.into(),
            addr,
            ephemeral,
            pinned: None,
        }
    }

    /// Runs every PostgreSQL program (initdb, postgres, psql, pg_dump) from the pinned image
    /// `root`, confined to its tree with `state_dir` (which holds [`Postgres::dir`]) bound in.
    pub fn pinned(mut self, root: &Rootfs, state_dir: &Path) -> Result<Self, LabError> {
        self.pinned = Some((root.confine(state_dir), root.account("postgres")?));
        Ok(self)
    }

    /// The account the server runs as: the image's `postgres`, else the host's.
    fn account(&self) -> Result<RunAs, LabError> {
        match &self.pinned {
            Some((_, account)) => Ok(*account),
            None => RunAs::lookup("postgres"),
        }
    }

    /// A launch of PostgreSQL program `name`: the image's (confined) or the host's.
    fn program(&self, name: &str) -> Result<Launch, LabError> {
        Ok(match &self.pinned {
            Some((confine, _)) => {
                Launch::new(Path::new(PG_BINDIR).join(name)).confined(Some(confine.clone()))
            }
            None => Launch::new(bin(name)?),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.join("socket")
    }

    fn password_file(&self) -> PathBuf {
        self.dir.join("superuser.password")
    }

    /// The superuser's password (created by [`Postgres::prepare`]).
    pub fn password(&self) -> Result<String, LabError> {
        let path = self.password_file();
        fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| LabError::io(format!("read {}", path.display()), e))
    }

    /// `postgres://postgres:<password>@<addr>/<database>`: the URL services connect with.
    pub fn url(&self, database: &str) -> Result<String, LabError> {
        Ok(format!(
            "postgres://postgres:{}@{}/{database}",
            self.password()?,
            self.addr
        ))
    }

    /// Creates the cluster with `initdb` unless it exists already (idempotent). The cluster is
    /// built in `data.initdb` and renamed to `data` only when complete, so a driver killed
    /// mid-initdb leaves no half-made cluster that a later start would take for a real one.
    ///
    /// `initdb` runs inside `ns` (the postgres node's namespace), so it and the bootstrap
    /// `postgres` processes it starts are found and stopped with the lab's other processes
    /// if the driver dies meanwhile: none of them is ever loose in the host's namespace.
    pub fn prepare(&self, ns: &NsHandle, run_id: &str) -> Result<(), LabError> {
        let account = self.account()?;
        let data = self.data_dir();
        if data.join("PG_VERSION").exists() {
            return Ok(());
        }
        let building = self.dir.join("data.initdb");
        for half_made in [&building, &data] {
            match fs::remove_dir_all(half_made) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(LabError::io(
                        format!("remove the unfinished cluster {}", half_made.display()),
                        e,
                    ))
                }
            }
        }
        for dir in [&self.dir, &self.socket_dir()] {
            fs::create_dir_all(dir)
                .map_err(|e| LabError::io(format!("create {}", dir.display()), e))?;
            chown(dir, account)?;
        }
        let password = random_hex(16)?;
        let pwfile = self.password_file();
        crate::stack::write_private(&pwfile, &format!("{password}\n"))?;
        chown(&pwfile, account)?;
        self.program("initdb")?
            .arg("-D")
            .arg(&building)
            .args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(self.ephemeral.then_some("--no-sync"))
            .run_as(account)
            .output(Some(ns), run_id)?;
        let hba = building.join("pg_hba.conf");
        let mut text = fs::read_to_string(&hba)
            .map_err(|e| LabError::io(format!("read {}", hba.display()), e))?;
        text.push_str("\n# ecomm lab: any tier address; the router's policy limits who gets here\nhost all all 0.0.0.0/0 scram-sha-256\n");
        fs::write(&hba, text).map_err(|e| LabError::io(format!("write {}", hba.display()), e))?;
        fs::rename(&building, &data).map_err(|e| {
            LabError::io(
                format!("rename {} to {}", building.display(), data.display()),
                e,
            )
        })?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LabError::io(format!("sync {}", self.dir.display()), e))
    }

    /// The server process (run it inside the postgres node's namespace): the declared command
    /// (`declared`, placeholders resolved; a bare `postgres` is found in the PostgreSQL bin
    /// directory), plus what only the runner knows: the socket directory, the connection
    /// limit the lab's instances need and, for a throwaway cluster, no fsync.
    pub fn launch(&self, declared: &[String]) -> Result<Launch, LabError> {
        let account = self.account()?;
        let Some((program, args)) = declared.split_first() else {
            return Err(LabError::Topology(
                "postgres: the declared command is empty".into(),
            ));
        };
        let launch = if program.contains('/') {
            Launch::new(program).confined(self.pinned.as_ref().map(|(c, _)| c.clone()))
        } else {
            self.program(program)?
        };
        let mut launch = launch
            .args(args)
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir().display()
            ))
            .args(["-c", "max_connections=200", "-c", "log_connections=off"])
            .run_as(account);
        if self.ephemeral {
            launch = launch.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
        }
        Ok(launch)
    }

    /// `psql` running `sql` against `database` over TCP from inside `ns`; unaligned tuples only.
    pub fn psql(&self, database: &str, sql: &str) -> Result<Launch, LabError> {
        Ok(self
            .program("psql")?
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.addr.ip().to_string())
            .arg("-p")
            .arg(self.addr.port().to_string())
            .args(["-U", "postgres", "-d", database, "-c", sql])
            .env("PGPASSWORD", self.password()?)
            .env("PGCONNECT_TIMEOUT", "3"))
    }

    /// Runs `sql` against `database` from inside `ns` and returns the trimmed output.
    pub fn query(
        &self,
        ns: &NsHandle,
        run_id: &str,
        database: &str,
        sql: &str,
    ) -> Result<String, LabError> {
        Ok(self
            .psql(database, sql)?
            .output(Some(ns), run_id)?
            .trim()
            .to_string())
    }

    /// Creates login role `role` (password `password`) and database `database` owned by it,
    /// unless they exist (idempotent; the password is reset to `password`).
    pub fn ensure_role_and_database(
        &self,
        ns: &NsHandle,
        run_id: &str,
        role: &str,
        password: &str,
        database: &str,
    ) -> Result<(), LabError> {
        let ident = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident(role) || !ident(database) || !password.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(LabError::Invalid {
                what: "role, database or password".into(),
                value: format!("{role}/{database}"),
                expected: "identifiers of [A-Za-z0-9_] and a hex password".into(),
            });
        }
        let exists = self.query(
            ns,
            run_id,
            "postgres",
            &format!("SELECT 1 FROM pg_roles WHERE rolname = '{role}'"),
        )?;
        let verb = if exists == "1" { "ALTER" } else { "CREATE" };
        self.query(
            ns,
            run_id,
            "postgres",
            &format!("{verb} ROLE \"{role}\" LOGIN PASSWORD '{password}'"),
        )?;
        let exists = self.query(
            ns,
            run_id,
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{database}'"),
        )?;
        if exists != "1" {
            self.query(
                ns,
                run_id,
                "postgres",
                &format!("CREATE DATABASE \"{database}\" OWNER \"{role}\""),
            )?;
        }
        Ok(())
    }

    /// A `pg_dump` of `database` (plain SQL, clean + if-exists so a restore replaces) from `ns`.
    pub fn dump(&self, database: &str) -> Result<Launch, LabError> {
        Ok(self
            .program("pg_dump")?
            .args(["--clean", "--if-exists", "--no-owner"])
            .arg("-h")
            .arg(self.addr.ip().to_string())
            .arg("-p")
            .arg(self.addr.port().to_string())
            .args(["-U", "postgres", "-d", database])
            .env("PGPASSWORD", self.password()?))
    }

    /// `psql` reading SQL from stdin into `database` (a restore), stopping at the first error.
    pub fn restore(&self, database: &str) -> Result<Launch, LabError> {
        Ok(self
            .program("psql")?
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
            .arg("-h")
            .arg(self.addr.ip().to_string())
            .arg("-p")
            .arg(self.addr.port().to_string())
            .args(["-U", "postgres", "-d", database])
            .env("PGPASSWORD", self.password()?))
    }
}

/// A PostgreSQL program: `$ECOMM_PG_BIN/<name>`, else the newest /usr/lib/postgresql/*/bin.
pub fn bin(name: &str) -> Result<PathBuf, LabError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("ECOMM_PG_BIN")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    dirs.extend(versions.into_iter().rev().map(|(_, p)| p));
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| LabError::Invalid {
            what: "PostgreSQL program".into(),
            value: name.into(),
            expected: "an installed PostgreSQL (apt-get install postgresql) or $ECOMM_PG_BIN"
                .into(),
        })
}

fn chown(path: &Path, account: RunAs) -> Result<(), LabError> {
    std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))
        .map_err(|e| LabError::io(format!("chown {}", path.display()), e))
}

/// `n` random bytes from the kernel, hex encoded.
pub fn random_hex(n: usize) -> Result<String, LabError> {
    let mut buf = vec![0u8; n];
    let mut f = fs::File::open("/dev/urandom").map_err(|e| LabError::io("open /dev/urandom", e))?;
    std::io::Read::read_exact(&mut f, &mut buf)
        .map_err(|e| LabError::io("read /dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
