//! Placing an order: validate, replay or reject a reused key, price the lines from the product
//! service, and store order + key + response in one transaction.

use std::collections::HashSet;

use chrono::{SubsecRound, Utc};
use uuid::Uuid;

use super::idempotency::{request_hash, StoredResponse};
use super::model::{Order, OrderItem, OrderRequest, OrderStatus};
use super::products::ProductClient;
use super::repo::{Insert, OrderRepo};
use crate::http::Problem;

/// The response to a POST, fresh or replayed.
#[derive(Debug)]
pub struct Placed {
    /// Status to send (201 for a created order).
    pub status: u16,
    /// Body to send, byte for byte as the first time.
    pub body: String,
    /// The order's id (for `Location`).
    pub order_id: Uuid,
    /// True when this is a replay of an earlier response.
    pub replayed: bool,
}

impl Placed {
    fn replay(stored: StoredResponse) -> Self {
        Self {
            status: stored.status,
            body: stored.body,
            order_id: stored.order_id,
            replayed: true,
        }
    }
}

/// Runs the whole POST /api/orders use case for `key` and the parsed `request`.
/// Nothing is written unless the order is accepted.
pub async fn place_order(
    repo: &OrderRepo,
    products: &ProductClient,
    key: &str,
    request: OrderRequest,
) -> Result<Placed, Problem> {
    let valid = request
        .validate()
        .map_err(|e| Problem::validation(e.to_string()))?;
    let hash = request_hash(&valid);
    if let Some(stored) = repo.find_key(key).await? {
        return stored.replay_for(key, &hash).map(Placed::replay);
    }
    let request = valid.request();
    let ids: Vec<i64> = request.items.iter().map(|l| l.product_id).collect();
    let quotes = products.quotes(&ids).await?;
    let currencies: HashSet<&str> = quotes.values().map(|q| q.currency.as_str()).collect();
    if currencies.len() > 1 {
        let mut listed: Vec<&str> = currencies.into_iter().collect();
        listed.sort_unstable();
        return Err(Problem::validation(format!(
            "items are priced in several currencies ({}); one order takes one currency",
            listed.join(", ")
        )));
    }
    let mut items = Vec::with_capacity(request.items.len());
    let mut total_cents: i64 = 0;
    for line in &request.items {
        let quote = quotes.get(&line.product_id).ok_or_else(|| {
            Problem::validation(format!(
                "product_id {}: no such product in the catalogue",
                line.product_id
            ))
        })?;
        let line_total = quote
            .price_cents
            .checked_mul(line.quantity)
            .and_then(|t| total_cents.checked_add(t))
            .ok_or_else(|| {
                Problem::validation("the order total overflows a 64-bit amount of cents")
            })?;
        total_cents = line_total;
        items.push(OrderItem {
            product_id: line.product_id,
            quantity: line.quantity,
            unit_price_cents: quote.price_cents,
        });
    }
    let order = Order {
        id: Uuid::new_v4(),
        customer: request.customer.clone(),
        status: OrderStatus::Placed,
        items,
        total_cents,
        created_at: Utc::now().trunc_subsecs(0),
    };
    let body = serde_json::to_string(&order)
        .map_err(|e| Problem::internal(format!("serialising the order: {e}")))?;
    match repo.insert(key, &hash, &order, 201, &body).await? {
        Insert::Stored => Ok(Placed {
            status: 201,
            body,
            order_id: order.id,
            replayed: false,
        }),
        Insert::KeyTaken(stored) => stored.replay_for(key, &hash).map(Placed::replay),
    }
}
