//! Orders as stored and shown, and the validated body of `POST /api/orders`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most lines in one order.
pub const MAX_ITEMS: usize = 50;
/// Largest quantity on one line.
pub const MAX_QUANTITY: i64 = 1000;
/// Longest customer address (characters, RFC 5321 path limit).
pub const MAX_CUSTOMER_LEN: usize = 254;

/// An order's life cycle: `placed` → `cancelled` (terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Accepted; may still be cancelled.
    Placed,
    /// Cancelled; no further transitions.
    Cancelled,
}

impl OrderStatus {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "placed" => Some(OrderStatus::Placed),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// One line of an order, with the price the product service quoted when it was placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product's id in the catalogue.
    pub product_id: i64,
    /// Units ordered (1..=1000).
    pub quantity: i64,
    /// Unit price in cents at the time of ordering.
    pub unit_price_cents: i64,
}

/// An order, exactly as on the wire (see ARCHITECTURE.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Random (v4) UUID.
    pub id: Uuid,
    /// The customer's e-mail address.
    pub customer: String,
    /// Life-cycle state.
    pub status: OrderStatus,
    /// The lines, in request order.
    pub items: Vec<OrderItem>,
    /// Sum of quantity × unit price over the lines, in cents.
    pub total_cents: i64,
    /// When it was placed (RFC 3339, whole seconds, UTC).
    #[serde(
        serialize_with = "crate::db::timestamp::serialize",
        deserialize_with = "crate::db::timestamp::deserialize"
    )]
    pub created_at: DateTime<Utc>,
}

/// One page of a customer's orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPage {
    /// Newest first.
    pub items: Vec<Order>,
    /// 1-based page number.
    pub page: u32,
    /// Page size asked for.
    pub size: u32,
    /// Matching orders in total.
    pub total: i64,
}

/// The body of `POST /api/orders`. Unknown fields are rejected (a typo must not pass).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The customer's e-mail address.
    pub customer: String,
    /// 1..=50 lines, each product at most once.
    pub items: Vec<LineRequest>,
}

/// One requested line: which product, how many. Prices are never taken from the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// The product's id (positive).
    pub product_id: i64,
    /// Units (1..=1000).
    pub quantity: i64,
}

/// An [`OrderRequest`] that passed [`OrderRequest::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidOrder(OrderRequest);

impl ValidOrder {
    /// The validated request.
    pub fn request(&self) -> &OrderRequest {
        &self.0
    }
}

/// Why an order request was rejected; each message names the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// Not a plausible e-mail address.
    #[error("customer {0:?}: expected an e-mail address like alice@example.com (at most {MAX_CUSTOMER_LEN} characters)")]
    Customer(String),
    /// No lines, or too many.
    #[error("items: {0} lines; expected 1..={MAX_ITEMS}")]
    ItemCount(usize),
    /// A product id that cannot exist.
    #[error("items[{index}].product_id {value}: expected a positive integer")]
    ProductId {
        /// Line index.
        index: usize,
        /// The value given.
        value: i64,
    },
    /// Quantity out of range.
    #[error("items[{index}].quantity {value}: expected 1..={MAX_QUANTITY}")]
    Quantity {
        /// Line index.
        index: usize,
        /// The value given.
        value: i64,
    },
    /// The same product on two lines.
    #[error(
        "items[{index}].product_id {product_id}: listed twice; put the total quantity on one line"
    )]
    DuplicateProduct {
        /// Index of the second occurrence.
        index: usize,
        /// The repeated product.
        product_id: i64,
    },
}

impl OrderRequest {
    /// Checks every field; the first failure is returned.
    pub fn validate(self) -> Result<ValidOrder, OrderError> {
        if !is_plausible_email(&self.customer) {
            return Err(OrderError::Customer(self.customer));
        }
        if !(1..=MAX_ITEMS).contains(&self.items.len()) {
            return Err(OrderError::ItemCount(self.items.len()));
        }
        for (index, line) in self.items.iter().enumerate() {
            if line.product_id < 1 {
                return Err(OrderError::ProductId {
                    index,
                    value: line.product_id,
                });
            }
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                return Err(OrderError::Quantity {
                    index,
                    value: line.quantity,
                });
            }
            if self.items[..index]
                .iter()
                .any(|earlier| earlier.product_id == line.product_id)
            {
                return Err(OrderError::DuplicateProduct {
                    index,
                    product_id: line.product_id,
                });
            }
        }
        Ok(ValidOrder(self))
    }
}

/// `local@domain.tld`: one `@`, a local part of 1..=64 printable non-space characters without
/// quoting specials, a domain of dot-separated LDH labels ending in an alphabetic TLD.
pub fn is_plausible_email(text: &str) -> bool {
    if text.chars().count() > MAX_CUSTOMER_LEN {
        return false;
    }
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"@()<>[]:;,\\\"".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(customer: &str, items: &[(i64, i64)]) -> OrderRequest {
        OrderRequest {
            customer: customer.into(),
            items: items
                .iter()
                .map(|&(product_id, quantity)| LineRequest {
                    product_id,
                    quantity,
                })
                .collect(),
        }
    }

    #[test]
    fn plausible_addresses() {
        for good in ["alice@example.com", "a.b+tag@sub.example.co", "x@y.io"] {
            assert!(is_plausible_email(good), "{good}");
        }
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@@example.com",
            "alice@exa mple.com",
            "alice@-x.com",
            "alice@example.c0m",
            ".alice@example.com",
            "al..ice@example.com",
        ] {
            assert!(!is_plausible_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn each_rule_names_the_offending_value() {
        let too_many: Vec<(i64, i64)> = (1..=51).map(|id| (id, 1)).collect();
        let cases = [
            (request("bob", &[(1, 1)]), "customer \"bob\""),
            (request("bob@example.com", &[]), "items: 0 lines"),
            (request("bob@example.com", &too_many), "items: 51 lines"),
            (
                request("bob@example.com", &[(0, 1)]),
                "items[0].product_id 0",
            ),
            (request("bob@example.com", &[(1, 0)]), "items[0].quantity 0"),
            (
                request("bob@example.com", &[(1, 1001)]),
                "items[0].quantity 1001",
            ),
            (
                request("bob@example.com", &[(1, 1), (1, 2)]),
                "items[1].product_id 1: listed twice",
            ),
        ];
        for (input, expected) in cases {
            let message = input.validate().unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message:?} vs {expected:?}");
        }
        assert!(request("bob@example.com", &[(1, 1000), (2, 1)])
            .validate()
            .is_ok());
    }
}
