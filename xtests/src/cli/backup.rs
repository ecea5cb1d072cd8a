//! `lab backup FILE` / `lab restore FILE`: the orders database, dumped with `pg_dump` and
//! restored with `psql`, both run inside the postgres node's namespace over its tier address
//! (the seeds' `pg_dump -U postgres orders > backup.sql`, without Docker).
//!
//! The dump is plain SQL with `DROP … IF EXISTS` first, so a restore replaces the current
//! orders with the backup's, in one transaction.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;

use super::{open_namespaces, require_root, LabDir};
use crate::datastores::Postgres;
use crate::error::LabError;
use crate::services::ORDER_DB;

fn postgres(lab: &LabDir) -> Result<(Postgres, crate::ns::NsHandle, String), LabError> {
    let state = lab.state()?;
    let addr = state
        .components
        .iter()
        .find(|c| c.name == "postgres")
        .map(|c| c.addr)
        .ok_or_else(|| LabError::UnknownComponent {
            name: "postgres".into(),
            known: state.enabled.join(", "),
        })?;
    let ns = open_namespaces(&state)?
        .remove("postgres")
        .ok_or_else(|| LabError::Topology("no postgres namespace".into()))?;
    Ok((
        Postgres::new(lab.dir.join("postgres"), addr, false),
        ns,
        state.run_id,
    ))
}

/// Writes a dump of the orders database to `file`.
pub fn backup(lab: &LabDir, file: &Path) -> Result<(), LabError> {
    require_root()?;
    let (pg, ns, run_id) = postgres(lab)?;
    let out =
        File::create(file).map_err(|e| LabError::io(format!("create {}", file.display()), e))?;
    pg.dump(ORDER_DB)?
        .pipe(Some(&ns), &run_id, Stdio::null(), Stdio::from(out))?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let orders = pg
        .query(&ns, &run_id, ORDER_DB, "SELECT count(*) FROM orders")
        .unwrap_or_else(|_| "?".into());
    println!(
        "lab: backed up database {ORDER_DB:?} ({orders} orders) to {} ({size} bytes)",
        file.display()
    );
    Ok(())
}

/// Replaces the orders database's contents with the dump in `file`.
pub fn restore(lab: &LabDir, file: &Path) -> Result<(), LabError> {
    require_root()?;
    let (pg, ns, run_id) = postgres(lab)?;
    let input =
        File::open(file).map_err(|e| LabError::io(format!("open {}", file.display()), e))?;
    pg.restore(ORDER_DB)?
        .pipe(Some(&ns), &run_id, Stdio::from(input), Stdio::null())?;
    let orders = pg
        .query(&ns, &run_id, ORDER_DB, "SELECT count(*) FROM orders")
        .unwrap_or_else(|_| "?".into());
    println!(
        "lab: restored database {ORDER_DB:?} from {} ({orders} orders now)",
        file.display()
    );
    Ok(())
}
