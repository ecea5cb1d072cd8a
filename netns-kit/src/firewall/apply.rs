//! Loading a ruleset into a namespace and deleting it. Loading is one nf_tables netlink
//! transaction (see [`super::netlink`]) sent on a socket opened inside the namespace, so the
//! table is replaced atomically and no process is spawned. The `nft` CLI is still used to
//! read a table back as JSON ([`table_json`]) and, as the reference the netlink encoding is
//! tested against, to load the JSON rendering ([`load_with_nft`]); it runs inside the
//! namespace (the child enters it between fork and exec).

use std::io::Write;
use std::process::Stdio;

use super::netlink::{Batch, NfSocket};
use super::render::FAMILY;
use super::Ruleset;
use crate::error::{Error, Result};
use crate::netns::{Netns, NsChild};

/// The nft binary (found on PATH).
pub const NFT: &str = "nft";

/// Replace `ruleset.table` in `ns` with `ruleset`, atomically (one netlink transaction).
/// A ruleset that does not validate is refused before anything is sent.
pub fn load(ns: &Netns, ruleset: &Ruleset) -> Result<()> {
    let batch = replacement(ruleset)?;
    commit(ns, batch)
}

/// Create `ruleset.table` with `ruleset` in a namespace that does not have it yet (one just
/// created), on a socket already opened inside it (the topology executor opens it while
/// creating the namespace). Nothing is deleted, so nothing is left for the kernel to free
/// when the socket closes; a table that exists is an error (EEXIST), never merged into.
pub fn create_via(socket: &mut NfSocket, ruleset: &Ruleset) -> Result<()> {
    let batch = Batch::create_table(ruleset).map_err(invalid)?;
    socket.commit(batch.finish())
}

fn replacement(ruleset: &Ruleset) -> Result<Batch> {
    Batch::replace_table(ruleset).map_err(invalid)
}

fn invalid(e: super::RulesetError) -> Error {
    Error::Invalid {
        kind: "firewall ruleset",
        value: e.to_string(),
        expected: "a ruleset that passes Ruleset::validate",
    }
}

/// Send one nf_tables transaction into `ns`: all of it is applied or, if the kernel rejects
/// any message, none of it (the error names the first rejected table, chain or rule).
pub fn commit(ns: &Netns, batch: Batch) -> Result<()> {
    NfSocket::open_in(ns)?.commit(batch.finish())
}

/// Replace the table like [`load`], but through `nft -j -f -` and the JSON rendering (the
/// reference path: what the seeds' scripts and `netns-kit plan --nft | nft -j -f -` do).
pub fn load_with_nft(ns: &Netns, ruleset: &Ruleset) -> Result<()> {
    spawn_load(ns, &ruleset.to_nft_json())?.wait()
}

/// An `nft` transaction running in a namespace; [`PendingLoad::wait`] for its verdict.
/// Lets a caller start one load per namespace and wait for all of them together.
#[derive(Debug)]
pub struct PendingLoad {
    child: NsChild,
    ns: String,
}

/// Start loading the nft JSON document `json` into `ns` (returns once nft has its input).
pub fn spawn_load(ns: &Netns, json: &str) -> Result<PendingLoad> {
    let mut child = ns
        .command(NFT)
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.child_mut().stdin.take() {
        stdin
            .write_all(json.as_bytes())
            .map_err(|e| Error::io("write ruleset to", format!("nft in {}", ns.label()), e))?;
    }
    Ok(PendingLoad {
        child,
        ns: ns.label(),
    })
}

impl PendingLoad {
    /// Wait for nft; an error carries what it printed.
    pub fn wait(mut self) -> Result<()> {
        let status = self.child.wait()?;
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut e) = self.child.child_mut().stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        Err(Error::Tool {
            program: format!("{NFT} -j -f -"),
            ns: self.ns,
            status: status.to_string(),
            stderr: stderr.trim().to_string(),
        })
    }
}

/// Delete netns-kit's table `table` from `ns`; a table that is not there is not an error
/// (one transaction: add the table, which is a no-op if it exists, then delete it).
pub fn delete_table(ns: &Netns, table: &str) -> Result<()> {
    check_table(table)?;
    let mut batch = Batch::new();
    batch.add_table(table);
    batch.delete_table(table);
    commit(ns, batch)
}

/// Whether `table` (family inet) exists in `ns`.
pub fn table_exists(ns: &Netns, table: &str) -> Result<bool> {
    check_table(table)?;
    NfSocket::open_in(ns)?.table_exists(table)
}

/// The table `table` as nft JSON, if it exists.
pub fn table_json(ns: &Netns, table: &str) -> Result<Option<String>> {
    check_table(table)?;
    let out = ns
        .command(NFT)
        .args(["-j", "list", "table", FAMILY, table])
        .output()?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn check_table(table: &str) -> Result<()> {
    let ok = !table.is_empty()
        && table.len() <= 64
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            kind: "nftables table name",
            value: table.to_string(),
            expected: "1-64 letters, digits, '_' or '-'",
        })
    }
}
