//! Idempotency keys: what a valid key is, the canonical request hash, and what a stored
//! response means for a repeated request.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::ValidOrder;
use crate::http::Problem;

/// Request header carrying the client's key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Response header set on a replayed response.
pub const IDEMPOTENT_REPLAY: &str = "idempotent-replay";
/// Longest accepted key (bytes).
pub const MAX_KEY_LEN: usize = 255;

/// Validates the `Idempotency-Key` header: present, 1..=255 visible ASCII characters.
pub fn parse_key(header: Option<&axum::http::HeaderValue>) -> Result<String, Problem> {
    let Some(value) = header else {
        return Err(Problem::bad_request(
            "missing Idempotency-Key header: POST /api/orders needs a client-chosen key \
             (e.g. a UUID) so a retry cannot create a second order",
        ));
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(Problem::bad_request(format!(
            "Idempotency-Key {:?}: expected 1..={MAX_KEY_LEN} visible ASCII characters",
            String::from_utf8_lossy(bytes)
        )));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// SHA-256 of the canonical form of a validated request: its fields re-serialised in a fixed
/// order, so whitespace and key order in the client's JSON do not matter.
pub fn request_hash(order: &ValidOrder) -> Vec<u8> {
    // Serialising a struct of strings and integers cannot fail.
    let canonical = serde_json::to_vec(order.request()).unwrap_or_default();
    Sha256::digest(&canonical).to_vec()
}

/// A response stored with a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// SHA-256 of the canonical request that produced it.
    pub request_sha256: Vec<u8>,
    /// HTTP status sent.
    pub status: u16,
    /// Body sent, byte for byte.
    pub body: String,
    /// The order it created.
    pub order_id: Uuid,
}

impl StoredResponse {
    /// The stored response when `hash` matches the original request; 422 otherwise.
    pub fn replay_for(self, key: &str, hash: &[u8]) -> Result<StoredResponse, Problem> {
        if self.request_sha256 == hash {
            Ok(self)
        } else {
            Err(Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused with a different request",
            )
            .with_detail(format!(
                "Idempotency-Key {key:?} was first used with a different request body; \
                 use a new key for a new order"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::model::{LineRequest, OrderRequest};
    use axum::http::HeaderValue;

    #[test]
    fn keys_must_be_present_and_visible_ascii() {
        assert!(parse_key(None).is_err());
        assert!(parse_key(Some(&HeaderValue::from_static(""))).is_err());
        assert!(parse_key(Some(&HeaderValue::from_static("a b"))).is_err());
        let long = HeaderValue::try_from("k".repeat(MAX_KEY_LEN + 1)).unwrap();
        assert!(parse_key(Some(&long)).is_err());
        assert_eq!(
            parse_key(Some(&HeaderValue::from_static("order-7f3a"))).unwrap(),
            "order-7f3a"
        );
    }

    #[test]
    fn the_hash_ignores_json_layout_but_not_content() {
        let parse = |json: &str| {
            serde_json::from_str::<OrderRequest>(json)
                .unwrap()
                .validate()
                .unwrap()
        };
        let a = parse(r#"{"customer":"a@example.com","items":[{"product_id":1,"quantity":2}]}"#);
        let b = parse(
            r#"{ "items": [ { "quantity": 2, "product_id": 1 } ], "customer": "a@example.com" }"#,
        );
        assert_eq!(request_hash(&a), request_hash(&b));
        let c = OrderRequest {
            customer: "a@example.com".into(),
            items: vec![LineRequest {
                product_id: 1,
                quantity: 3,
            }],
        }
        .validate()
        .unwrap();
        assert_ne!(request_hash(&a), request_hash(&c));
    }
}
