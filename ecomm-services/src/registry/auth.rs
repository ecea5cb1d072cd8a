//! Bearer-token check for registry writes.

use http::{header, HeaderMap};

use super::RegistryError;

/// Accepts only `Authorization: Bearer <token>` with exactly `token` (compared in constant time).
pub fn require_bearer(headers: &HeaderMap, token: &str) -> Result<(), RegistryError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(RegistryError::Unauthorized)?;
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(RegistryError::Unauthorized)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
