//! SQL access to orders, their lines and idempotency keys. Every call is time-bounded.

use std::time::Duration;

use deadpool_postgres::Client;
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::idempotency::StoredResponse;
use super::model::{Order, OrderItem, OrderStatus};
use crate::db::{with_timeout, DbError};

/// Result of trying to store a new order under a key.
#[derive(Debug)]
pub enum Insert {
    /// The order and key were committed together.
    Stored,
    /// Another request committed this key first; here is what it stored.
    KeyTaken(StoredResponse),
}

/// Result of a cancellation attempt.
#[derive(Debug)]
pub enum Cancel {
    /// The order moved to `cancelled`.
    Cancelled(Order),
    /// The order exists but was not `placed`.
    NotPlaced(OrderStatus),
    /// No such order.
    Missing,
}

/// Orders repository over a connection pool.
#[derive(Clone)]
pub struct OrderRepo {
    pool: Pool,
    op_timeout: Duration,
}

impl OrderRepo {
    /// A repository whose every call (including the wait for a connection) ends within
    /// `op_timeout`.
    pub fn new(pool: Pool, op_timeout: Duration) -> Self {
        Self { pool, op_timeout }
    }

    /// `SELECT 1` — for `/readyz`.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_timeout(self.op_timeout, async {
            self.pool.get().await?.query_one("SELECT 1", &[]).await?;
            Ok(())
        })
        .await
    }

    /// What was stored under `key`, if anything.
    pub async fn find_key(&self, key: &str) -> Result<Option<StoredResponse>, DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            stored_response(&client, key).await
        })
        .await
    }

    /// Inserts `order` and its lines and stores `key` with the request hash and the response,
    /// atomically, in one statement (one round trip): the key row comes first with
    /// `ON CONFLICT DO NOTHING`, and the order and its lines are inserted only if it was. A
    /// concurrent request holding the same key makes this wait (unique index) until that one
    /// commits, then report [`Insert::KeyTaken`] having written nothing.
    pub async fn insert(
        &self,
        key: &str,
        request_sha256: &[u8],
        order: &Order,
        response_status: u16,
        response_body: &str,
    ) -> Result<Insert, DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let statement = client
                .prepare_cached(
                    "WITH k AS (
                         INSERT INTO idempotency_keys
                             (key, request_sha256, response_status, response_body, order_id)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (key) DO NOTHING
                         RETURNING order_id
                     ), o AS (
                         INSERT INTO orders (id, customer, status, total_cents, created_at)
                         SELECT order_id, $6, $7, $8, $9 FROM k
                         RETURNING id
                     ), i AS (
                         INSERT INTO order_items
                             (order_id, line, product_id, quantity, unit_price_cents)
                         SELECT o.id, u.*
                         FROM o, unnest($10::int4[], $11::int8[], $12::int4[], $13::int8[]) AS u
                         RETURNING 1
                     )
                     SELECT count(*) FROM k",
                )
                .await?;
            let lines: Vec<i32> = (1..).take(order.items.len()).collect();
            let product_ids: Vec<i64> = order.items.iter().map(|i| i.product_id).collect();
            let quantities: Vec<i32> = order
                .items
                .iter()
                .map(|i| i32::try_from(i.quantity).unwrap_or(i32::MAX))
                .collect();
            let prices: Vec<i64> = order.items.iter().map(|i| i.unit_price_cents).collect();
            let status = i16::try_from(response_status).unwrap_or(i16::MAX);
            let inserted: i64 = client
                .query_one(
                    &statement,
                    &[
                        &key,
                        &request_sha256,
                        &status,
                        &response_body,
                        &order.id,
                        &order.customer,
                        &order.status.as_str(),
                        &order.total_cents,
                        &order.created_at,
                        &lines,
                        &product_ids,
                        &quantities,
                        &prices,
                    ],
                )
                .await?
                .get(0);
            if inserted == 1 {
                return Ok(Insert::Stored);
            }
            match stored_response(&client, key).await? {
                Some(stored) => Ok(Insert::KeyTaken(stored)),
                // The winner committed then the key vanished: impossible without manual deletes.
                None => Err(DbError::Inconsistent(format!(
                    "idempotency key {key:?} conflicted but is not stored"
                ))),
            }
        })
        .await
    }

    /// Deletes up to `batch` idempotency keys stored more than `ttl` ago and returns how many
    /// went. Their orders stay; a later request with such a key is a new request.
    pub async fn expire_idempotency_keys(&self, ttl: Duration, batch: i64) -> Result<u64, DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let statement = client
                .prepare_cached(
                    "DELETE FROM idempotency_keys WHERE key IN (
                         SELECT key FROM idempotency_keys
                         WHERE created_at < now() - make_interval(secs => $1)
                         ORDER BY created_at LIMIT $2
                     )",
                )
                .await?;
            Ok(client
                .execute(&statement, &[&ttl.as_secs_f64(), &batch])
                .await?)
        })
        .await
    }

    /// One order with its lines.
    pub async fn get(&self, id: Uuid) -> Result<Option<Order>, DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT id, customer, status, total_cents, created_at
                     FROM orders WHERE id = $1",
                    &[&id],
                )
                .await?;
            Ok(with_items(&client, rows).await?.pop())
        })
        .await
    }

    /// A page of orders (newest first), optionally only one customer's, and the match count.
    pub async fn list(
        &self,
        customer: Option<&str>,
        page: u32,
        size: u32,
    ) -> Result<(Vec<Order>, i64), DbError> {
        let offset = i64::from(page.saturating_sub(1)) * i64::from(size);
        let limit = i64::from(size);
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT id, customer, status, total_cents, created_at FROM orders
                     WHERE $1::text IS NULL OR customer = $1
                     ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                    &[&customer, &limit, &offset],
                )
                .await?;
            let total: i64 = client
                .query_one(
                    "SELECT count(*) FROM orders WHERE $1::text IS NULL OR customer = $1",
                    &[&customer],
                )
                .await?
                .get(0);
            Ok((with_items(&client, rows).await?, total))
        })
        .await
    }

    /// Moves a `placed` order to `cancelled` (atomically: of two concurrent cancels exactly one
    /// succeeds).
    pub async fn cancel(&self, id: Uuid) -> Result<Cancel, DbError> {
        with_timeout(self.op_timeout, async {
            let client = self.pool.get().await?;
            let updated = client
                .execute(
                    "UPDATE orders SET status = 'cancelled', updated_at = now()
                     WHERE id = $1 AND status = 'placed'",
                    &[&id],
                )
                .await?;
            let rows = client
                .query(
                    "SELECT id, customer, status, total_cents, created_at
                     FROM orders WHERE id = $1",
                    &[&id],
                )
                .await?;
            let Some(order) = with_items(&client, rows).await?.pop() else {
                return Ok(Cancel::Missing);
            };
            Ok(if updated == 1 {
                Cancel::Cancelled(order)
            } else {
                Cancel::NotPlaced(order.status)
            })
        })
        .await
    }
}

async fn stored_response(client: &Client, key: &str) -> Result<Option<StoredResponse>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT request_sha256, response_status, response_body, order_id
             FROM idempotency_keys WHERE key = $1",
        )
        .await?;
    let row = client.query_opt(&statement, &[&key]).await?;
    Ok(row.map(|row| StoredResponse {
        request_sha256: row.get(0),
        status: u16::try_from(row.get::<_, i16>(1)).unwrap_or(500),
        body: row.get(2),
        order_id: row.get(3),
    }))
}

/// Turns order rows into orders, loading all their lines with one query.
async fn with_items(
    client: &Client,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<Order>, DbError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let item_rows = client
        .query(
            "SELECT order_id, product_id, quantity, unit_price_cents FROM order_items
             WHERE order_id = ANY($1) ORDER BY order_id, line",
            &[&ids],
        )
        .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.get(0);
        let status: String = row.get(2);
        let status = OrderStatus::parse(&status).ok_or_else(|| {
            DbError::Inconsistent(format!("order {id} has unknown status {status:?}"))
        })?;
        orders.push(Order {
            id,
            customer: row.get(1),
            status,
            items: item_rows
                .iter()
                .filter(|r| r.get::<_, Uuid>(0) == id)
                .map(|r| OrderItem {
                    product_id: r.get(1),
                    quantity: i64::from(r.get::<_, i32>(2)),
                    unit_price_cents: r.get(3),
                })
                .collect(),
            total_cents: row.get(3),
            created_at: row.get(4),
        });
    }
    Ok(orders)
}
