//! The product as stored and shown, and the validated input of POST/PUT.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest SKU (characters).
pub const MAX_SKU_LEN: usize = 32;
/// Longest name (characters).
pub const MAX_NAME_LEN: usize = 200;
/// Longest description (characters).
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// Highest price: 100 million cents (1,000,000.00 in the currency's major unit).
pub const MAX_PRICE_CENTS: i64 = 100_000_000;
/// Highest stock count.
pub const MAX_STOCK: i64 = 1_000_000;

/// A catalogue entry, exactly as on the wire (see ARCHITECTURE.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Database id (positive).
    pub id: i64,
    /// Stock-keeping unit, unique, e.g. `KB-001`.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Unit price in the currency's minor unit (cents).
    pub price_cents: i64,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// Units in stock.
    pub stock: i64,
    /// Last change (RFC 3339, whole seconds, UTC).
    #[serde(
        serialize_with = "crate::db::timestamp::serialize",
        deserialize_with = "crate::db::timestamp::deserialize"
    )]
    pub updated_at: DateTime<Utc>,
}

/// One page of the catalogue, exactly as on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPage {
    /// The products on this page, by id.
    pub items: Vec<Product>,
    /// 1-based page number.
    pub page: u32,
    /// Page size asked for.
    pub size: u32,
    /// Products in the whole catalogue.
    pub total: i64,
}

/// The body of POST and PUT, before validation. Unknown fields (e.g. `id`, `updated_at` sent
/// back from a GET) are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ProductInput {
    /// See [`Product::sku`].
    pub sku: String,
    /// See [`Product::name`].
    pub name: String,
    /// See [`Product::description`] (default empty).
    #[serde(default)]
    pub description: String,
    /// See [`Product::price_cents`].
    pub price_cents: i64,
    /// See [`Product::currency`] (default `EUR`).
    #[serde(default = "default_currency")]
    pub currency: String,
    /// See [`Product::stock`] (default 0).
    #[serde(default)]
    pub stock: i64,
}

fn default_currency() -> String {
    "EUR".into()
}

/// A [`ProductInput`] that passed [`ProductInput::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidProduct(ProductInput);

impl ValidProduct {
    /// The validated fields.
    pub fn fields(&self) -> &ProductInput {
        &self.0
    }
}

/// Why a product input was rejected; each message names the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// SKU empty, too long, or with characters outside `A-Z 0-9 - _ .`.
    #[error("sku {0:?}: expected 1..={MAX_SKU_LEN} characters of A-Z, 0-9, '-', '_', '.' starting with a letter or digit")]
    Sku(String),
    /// Name blank or too long.
    #[error(
        "name {0:?}: expected 1..={MAX_NAME_LEN} characters, not blank, no control characters"
    )]
    Name(String),
    /// Description too long or with control characters.
    #[error("description of {0} characters: expected at most {MAX_DESCRIPTION_LEN}, no control characters except newline and tab")]
    Description(usize),
    /// Price negative or too high.
    #[error("price_cents {0}: expected 0..={MAX_PRICE_CENTS}")]
    Price(i64),
    /// Currency not three upper-case letters.
    #[error("currency {0:?}: expected an ISO 4217 code of three upper-case letters, e.g. \"EUR\"")]
    Currency(String),
    /// Stock negative or too high.
    #[error("stock {0}: expected 0..={MAX_STOCK}")]
    Stock(i64),
}

impl ProductInput {
    /// Checks every field; the first failure is returned.
    pub fn validate(self) -> Result<ValidProduct, ProductError> {
        let sku_ok = (1..=MAX_SKU_LEN).contains(&self.sku.chars().count())
            && self
                .sku
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "-_.".contains(c))
            && self
                .sku
                .starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !sku_ok {
            return Err(ProductError::Sku(self.sku));
        }
        let name_len = self.name.chars().count();
        if name_len > MAX_NAME_LEN
            || self.name.trim().is_empty()
            || self.name.chars().any(char::is_control)
        {
            return Err(ProductError::Name(self.name));
        }
        let description_len = self.description.chars().count();
        if description_len > MAX_DESCRIPTION_LEN
            || self
                .description
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(ProductError::Description(description_len));
        }
        if !(0..=MAX_PRICE_CENTS).contains(&self.price_cents) {
            return Err(ProductError::Price(self.price_cents));
        }
        if !(self.currency.len() == 3 && self.currency.chars().all(|c| c.is_ascii_uppercase())) {
            return Err(ProductError::Currency(self.currency));
        }
        if !(0..=MAX_STOCK).contains(&self.stock) {
            return Err(ProductError::Stock(self.stock));
        }
        Ok(ValidProduct(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyboard() -> ProductInput {
        ProductInput {
            sku: "KB-001".into(),
            name: "Mechanical keyboard".into(),
            description: "Brown switches".into(),
            price_cents: 4999,
            currency: "EUR".into(),
            stock: 12,
        }
    }

    #[test]
    fn a_plausible_product_passes() {
        assert!(keyboard().validate().is_ok());
    }

    #[test]
    fn each_rule_names_the_offending_value() {
        let cases: Vec<(ProductInput, &str)> = vec![
            (
                ProductInput {
                    sku: "kb 1".into(),
                    ..keyboard()
                },
                "sku \"kb 1\"",
            ),
            (
                ProductInput {
                    sku: "".into(),
                    ..keyboard()
                },
                "sku \"\"",
            ),
            (
                ProductInput {
                    name: "  ".into(),
                    ..keyboard()
                },
                "name \"  \"",
            ),
            (
                ProductInput {
                    price_cents: -1,
                    ..keyboard()
                },
                "price_cents -1",
            ),
            (
                ProductInput {
                    currency: "eur".into(),
                    ..keyboard()
                },
                "currency \"eur\"",
            ),
            (
                ProductInput {
                    stock: -5,
                    ..keyboard()
                },
                "stock -5",
            ),
            (
                ProductInput {
                    description: "x".repeat(MAX_DESCRIPTION_LEN + 1),
                    ..keyboard()
                },
                "description of 2001",
            ),
        ];
        for (input, expected) in cases {
            let message = input.validate().unwrap_err().to_string();
            assert!(
                message.starts_with(expected),
                "{message:?} should start with {expected:?}"
            );
        }
    }
}
