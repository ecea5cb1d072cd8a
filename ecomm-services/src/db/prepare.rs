//! Start-up: provision, pool and migrate, retrying while PostgreSQL is not up yet.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use super::{connect_pool, ensure_database, migrate, DbError, DbSettings, Migration};

/// Creates the database (and role, given `admin_url`) if missing, builds the pool and applies
/// `migrations`. Unavailability is retried with backoff (0.2 s doubling to 2 s) until
/// `deadline` has passed; other errors (bad URL, SQL errors, permissions) fail at once.
pub async fn prepare_database(
    admin_url: Option<&str>,
    settings: &DbSettings,
    migrations: &[Migration],
    deadline: Duration,
) -> Result<Pool, DbError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        let attempt = async {
            ensure_database(admin_url, settings).await?;
            let pool = connect_pool(settings)?;
            migrate(&pool, migrations).await?;
            Ok::<_, DbError>(pool)
        }
        .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(e) if e.is_unavailable() && started.elapsed() < deadline => {
                tracing::warn!(error = %e, retry_in = ?backoff, "database not ready yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}
