//! A token's claims set, refused when a claim name repeats.
//!
//! RFC 7519 §4 lets a parser either refuse duplicate claim names or keep the last one.
//! `jsonwebtoken` refuses them for the claims it looks at itself (`exp`, `nbf`, `sub`,
//! `iss`, `aud`), while a plain map keeps the last, so a repeated custom user claim
//! (`JWT_USER_CLAIM=userId`) would mean whatever its last copy says, and another
//! parser (the issuer's, a proxy's) may read the first. One rule for every name: a
//! token with a repeated claim is refused.

use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// What the error of a repeated claim starts with (mapped to `AuthError::DuplicateClaim`).
pub const DUPLICATE: &str = "duplicate claim";

/// The claims of a token, every name once.
#[derive(Debug)]
pub struct UniqueClaims(pub Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = UniqueClaims;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueClaims, A::Error> {
        let mut claims = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if claims.contains_key(&name) {
                return Err(A::Error::custom(format!("{DUPLICATE} {name:?}")));
            }
            claims.insert(name, value);
        }
        Ok(UniqueClaims(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_once_or_refused() {
        let ok: UniqueClaims = serde_json::from_str(r#"{"a":1,"b":{"a":2}}"#).unwrap();
        assert_eq!(ok.0.len(), 2);
        let error = serde_json::from_str::<UniqueClaims>(r#"{"userId":"a","userId":"b"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with(DUPLICATE), "{error}");
        assert!(serde_json::from_str::<UniqueClaims>("[1]").is_err());
    }
}
