//! Creating a service's role and database on start when they are missing.

use std::str::FromStr;

use tokio_postgres::{Client, Config, NoTls};

use super::{DbError, DbSettings};

/// SQLSTATE of `CREATE DATABASE` racing another instance that created it first.
const DUPLICATE_DATABASE: &str = "42P04";
/// SQLSTATE of `CREATE ROLE` racing another instance that created it first.
const DUPLICATE_OBJECT: &str = "42710";
/// SQLSTATE of a catalog unique-index violation: how a lost creation race can also surface.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE when connecting to a database that does not exist.
const INVALID_CATALOG_NAME: &str = "3D000";

/// Makes sure the database named in `target.url` exists (and, given `admin_url`, its role).
///
/// With `admin_url` (a superuser or a role with CREATEROLE and CREATEDB), the target URL's user
/// is created with LOGIN and the URL's password when missing, and the database is created owned
/// by it. Without `admin_url`, the target user itself must be allowed to create databases, and
/// nothing is created when the database already exists. Concurrent starts are safe: losing a
/// creation race counts as success.
pub async fn ensure_database(admin_url: Option<&str>, target: &DbSettings) -> Result<(), DbError> {
    let config = target.pg_config()?;
    let database = config
        .get_dbname()
        .ok_or_else(|| DbError::Url {
            url: redact_url(&target.url),
            reason: "no database name; expected postgres://user@host:port/<database>".into(),
        })?
        .to_owned();
    let user = config.get_user().map(str::to_owned);

    let admin = match admin_url {
        Some(url) => {
            let mut admin = Config::from_str(url).map_err(|e| DbError::Url {
                url: redact_url(url),
                reason: e.to_string(),
            })?;
            admin.connect_timeout(target.connect_timeout);
            let client = connect(&admin).await?;
            if let Some(user) = &user {
                let password = config
                    .get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
                ensure_role(&client, user, password.as_deref()).await?;
            }
            client
        }
        None => {
            match connect(&config).await {
                Ok(_) => return Ok(()),
                Err(DbError::Postgres(e))
                    if e.code().map(|c| c.code()) == Some(INVALID_CATALOG_NAME) => {}
                Err(e) => return Err(e),
            }
            let mut maintenance = config.clone();
            maintenance.dbname("postgres");
            connect(&maintenance).await?
        }
    };
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await?
        .is_some();
    if !exists {
        let statement: String = match (&user, admin_url) {
            (Some(owner), Some(_)) => admin
                .query_one(
                    "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)",
                    &[&database, owner],
                )
                .await?
                .get(0),
            _ => admin
                .query_one(
                    "SELECT format('CREATE DATABASE %I', $1::text)",
                    &[&database],
                )
                .await?
                .get(0),
        };
        tolerate(admin.batch_execute(&statement).await, DUPLICATE_DATABASE)?;
        tracing::info!(%database, "created database");
    }
    Ok(())
}

async fn ensure_role(client: &Client, user: &str, password: Option<&str>) -> Result<(), DbError> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    let statement: String = match password {
        Some(password) => client
            .query_one(
                "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                &[&user, &password],
            )
            .await?
            .get(0),
        None => client
            .query_one("SELECT format('CREATE ROLE %I LOGIN', $1::text)", &[&user])
            .await?
            .get(0),
    };
    tolerate(client.batch_execute(&statement).await, DUPLICATE_OBJECT)?;
    tracing::info!(role = %user, "created role");
    Ok(())
}

async fn connect(config: &Config) -> Result<Client, DbError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "provisioning connection closed");
        }
    });
    Ok(client)
}

/// Treats the given SQLSTATE, or a catalog unique violation (a lost creation race), as success.
fn tolerate(result: Result<(), tokio_postgres::Error>, sqlstate: &str) -> Result<(), DbError> {
    match result {
        Err(e) if matches!(e.code().map(|c| c.code()), Some(code) if code == sqlstate || code == UNIQUE_VIOLATION) => {
            Ok(())
        }
        other => other.map_err(DbError::from),
    }
}

/// The URL with its password replaced by `***`, safe to log.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_url("postgres://order:s3cret@10.0.0.1:5432/orders"),
            "postgres://order:***@10.0.0.1:5432/orders"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(
            redact_url("host=a password=x dbname=y"),
            "host=a password=*** dbname=y"
        );
    }
}
