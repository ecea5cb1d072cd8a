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

/// The orders database: what the declaration gives the order service (`data.database`).
fn order_db(state: &crate::state::LabState) -> Result<String, LabError> {
    state
        .components
        .iter()
        .find(|c| c.service == "order")
        .and_then(|c| c.database())
        .map(str::to_string)
        .ok_or_else(|| LabError::Invalid {
            what: "lab state".into(),
            value: "order service".into(),
            expected: "an order service declaring data.database (bring the lab up again)".into(),
        })
}

fn postgres(lab: &LabDir) -> Result<(Postgres, crate::ns::NsHandle, String, String), LabError> {
    let state = lab.state()?;
    let db = order_db(&state)?;
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
        db,
    ))
}

/// Writes a dump of the orders database to `file`.
pub fn backup(lab: &LabDir, file: &Path) -> Result<(), LabError> {
    require_root()?;
    let (pg, ns, run_id, order_db) = postgres(lab)?;
    let out =
        File::create(file).map_err(|e| LabError::io(format!("create {}", file.display()), e))?;
    pg.dump(&order_db)?
        .pipe(Some(&ns), &run_id, Stdio::null(), Stdio::from(out))?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let orders = pg
        .query(&ns, &run_id, &order_db, "SELECT count(*) FROM orders")
        .unwrap_or_else(|_| "?".into());
    println!(
        "lab: backed up database {order_db:?} ({orders} orders) to {} ({size} bytes)",
        file.display()
    );
    Ok(())
}

/// Replaces the orders database's contents with the dump in `file`.
pub fn restore(lab: &LabDir, file: &Path) -> Result<(), LabError> {
    require_root()?;
    let (pg, ns, run_id, order_db) = postgres(lab)?;
    let input =
        File::open(file).map_err(|e| LabError::io(format!("open {}", file.display()), e))?;
    pg.restore(&order_db)?
        .pipe(Some(&ns), &run_id, Stdio::from(input), Stdio::null())?;
    let orders = pg
        .query(&ns, &run_id, &order_db, "SELECT count(*) FROM orders")
        .unwrap_or_else(|_| "?".into());
    println!(
        "lab: restored database {order_db:?} from {} ({orders} orders now)",
        file.display()
    );
    Ok(())
}
