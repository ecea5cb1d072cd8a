//! Embedded, ordered, transactional schema migrations.

use deadpool_postgres::Pool;

use super::DbError;

/// One schema change, embedded in the binary with `include_str!`.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Strictly increasing version number (1, 2, …).
    pub version: i32,
    /// Short name recorded alongside the version.
    pub name: &'static str,
    /// The SQL to run (may hold several statements).
    pub sql: &'static str,
}

/// Advisory lock key serialising concurrent migrators (any constant; "ecomm" in ASCII).
const MIGRATION_LOCK: i64 = 0x65_63_6f_6d_6d;

/// Applies every migration not yet recorded in `schema_migrations`, in one transaction, holding
/// an advisory lock so instances starting together do not race. Returns how many ran.
pub async fn migrate(pool: &Pool, migrations: &[Migration]) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut ran = 0;
    for migration in migrations {
        if applied.contains(&migration.version) {
            continue;
        }
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migrated"
        );
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}
