//! SQL access to the `products` table. Every call is bounded by the operation timeout.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::model::{Product, ValidProduct};
use crate::db::{with_timeout, DbError};

/// SQLSTATE of a unique-constraint violation (duplicate SKU).
const UNIQUE_VIOLATION: &str = "23505";

const COLUMNS: &str = "id, sku, name, description, price_cents, currency, stock, updated_at";

/// Outcome of a write that may collide with another product's SKU.
#[derive(Debug)]
pub enum WriteError {
    /// Another product already has this SKU.
    DuplicateSku(String),
    /// The database failed.
    Db(DbError),
}

impl From<DbError> for WriteError {
    fn from(e: DbError) -> Self {
        WriteError::Db(e)
    }
}

/// The catalogue's repository over a connection pool.
#[derive(Clone)]
pub struct ProductRepo {
    pool: Pool,
    op_timeout: Duration,
}

fn to_product(row: &Row) -> Product {
    Product {
        id: row.get(0),
        sku: row.get(1),
        name: row.get(2),
        description: row.get(3),
        price_cents: row.get(4),
        currency: row.get(5),
        stock: row.get(6),
        updated_at: row.get(7),
    }
}

fn classify(e: DbError, sku: &str) -> WriteError {
    if e.sqlstate() == Some(UNIQUE_VIOLATION) {
        WriteError::DuplicateSku(sku.to_owned())
    } else {
        WriteError::Db(e)
    }
}

impl ProductRepo {
    /// A repository whose every call (including the wait for a connection) ends within
    /// `op_timeout`.
    pub fn new(pool: Pool, op_timeout: Duration) -> Self {
        Self { pool, op_timeout }
    }

    /// The pool (for readiness checks).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// `SELECT 1` — for `/readyz`.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            client.query_one("SELECT 1", &[]).await?;
            Ok(())
        })
        .await
    }

    /// One product by id.
    pub async fn get(&self, id: i64) -> Result<Option<Product>, DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let statement = client
                .prepare_cached(&format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
                .await?;
            Ok(client
                .query_opt(&statement, &[&id])
                .await?
                .as_ref()
                .map(to_product))
        })
        .await
    }

    /// Page `page` (1-based) of `size` products ordered by id, and the catalogue's total.
    pub async fn list(&self, page: u32, size: u32) -> Result<(Vec<Product>, i64), DbError> {
        let offset = i64::from(page.saturating_sub(1)) * i64::from(size);
        let limit = i64::from(size);
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM products ORDER BY id LIMIT $1 OFFSET $2"
                ))
                .await?;
            let rows = client.query(&statement, &[&limit, &offset]).await?;
            let total: i64 = client
                .query_one("SELECT count(*) FROM products", &[])
                .await?
                .get(0);
            Ok((rows.iter().map(to_product).collect(), total))
        })
        .await
    }

    /// Inserts a product; its id and `updated_at` come from the database.
    pub async fn create(&self, input: &ValidProduct) -> Result<Product, WriteError> {
        let p = input.fields();
        let result = with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let row = client
                .query_one(
                    &format!(
                        "INSERT INTO products (sku, name, description, price_cents, currency, stock)
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
                    ),
                    &[
                        &p.sku,
                        &p.name,
                        &p.description,
                        &p.price_cents,
                        &p.currency,
                        &p.stock,
                    ],
                )
                .await?;
            Ok(to_product(&row))
        })
        .await;
        result.map_err(|e| classify(e, &p.sku))
    }

    /// Replaces product `id`'s fields; `None` when it does not exist.
    pub async fn update(
        &self,
        id: i64,
        input: &ValidProduct,
    ) -> Result<Option<Product>, WriteError> {
        let p = input.fields();
        let result = with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt(
                    &format!(
                        "UPDATE products SET sku = $2, name = $3, description = $4,
                             price_cents = $5, currency = $6, stock = $7, updated_at = now()
                         WHERE id = $1 RETURNING {COLUMNS}"
                    ),
                    &[
                        &id,
                        &p.sku,
                        &p.name,
                        &p.description,
                        &p.price_cents,
                        &p.currency,
                        &p.stock,
                    ],
                )
                .await?;
            Ok(row.as_ref().map(to_product))
        })
        .await;
        result.map_err(|e| classify(e, &p.sku))
    }

    /// Deletes product `id`; false when it did not exist.
    pub async fn delete(&self, id: i64) -> Result<bool, DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            Ok(client
                .execute("DELETE FROM products WHERE id = $1", &[&id])
                .await?
                == 1)
        })
        .await
    }

    /// Number of products.
    pub async fn count(&self) -> Result<i64, DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            Ok(client
                .query_one("SELECT count(*) FROM products", &[])
                .await?
                .get(0))
        })
        .await
    }

    /// Inserts `products` in order when the catalogue is empty, in one transaction under an
    /// advisory lock: instances seeding at the same time insert once, and the ids are 1..=n on
    /// a fresh database. Returns how many were inserted (0 when the catalogue had rows).
    pub async fn seed_if_empty(&self, products: &[ValidProduct]) -> Result<u64, DbError> {
        /// Advisory lock key serialising seeders ("seed" in ASCII).
        const SEED_LOCK: i64 = 0x7365_6564;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SEED_LOCK])
            .await?;
        let existing: i64 = tx
            .query_one("SELECT count(*) FROM products", &[])
            .await?
            .get(0);
        if existing > 0 {
            return Ok(0);
        }
        let mut inserted = 0;
        for input in products {
            let p = input.fields();
            inserted += tx
                .execute(
                    "INSERT INTO products (sku, name, description, price_cents, currency, stock)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sku) DO NOTHING",
                    &[
                        &p.sku,
                        &p.name,
                        &p.description,
                        &p.price_cents,
                        &p.currency,
                        &p.stock,
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }
}
