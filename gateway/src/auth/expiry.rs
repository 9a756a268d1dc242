//! A token's NumericDate claims (`exp`, `nbf`), read by us and not by `jsonwebtoken`.
//!
//! RFC 7519 makes them NumericDates: any JSON number of seconds, fractions allowed.
//! The library reads them as a `u64` only, so a fractional `exp` was either refused or,
//! read elsewhere with `Value::as_u64`, silently became "no deadline" for a socket; a
//! fractional `nbf` refused a good token; and a huge `exp` overflowed the socket's
//! `Instant`. Here every shape has one answer: a number (integer or not, however
//! large) is a time in milliseconds, saturating; anything else (string, array, object,
//! bool, null) refuses the token. The verifier checks expiry against this value, and
//! the socket deadline is built from it, so the two can never disagree.

use super::jwt::AuthError;
use serde_json::{Map, Value};

/// The token's `exp` in epoch milliseconds (`None`: the token has none).
pub fn expiry_ms(claims: &Map<String, Value>) -> Result<Option<u64>, AuthError> {
    numeric_date_ms(claims, "exp")
}

/// The token's `nbf` in epoch milliseconds (`None`: the token has none).
pub fn not_before_ms(claims: &Map<String, Value>) -> Result<Option<u64>, AuthError> {
    numeric_date_ms(claims, "nbf")
}

fn numeric_date_ms(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    let invalid = || AuthError::InvalidClaim(name.to_owned());
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(secs) = n.as_u64() {
                Ok(Some(secs.saturating_mul(1000)))
            } else if n.as_i64().is_some() {
                // Negative: long past.
                Ok(Some(0))
            } else {
                // A float; JSON has no NaN or infinity. `as` saturates (and maps
                // negatives to 0), so no value overflows.
                let secs = n.as_f64().ok_or_else(invalid)?;
                Ok(Some((secs * 1000.0).floor() as u64))
            }
        }
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invalid() -> AuthError {
        AuthError::InvalidClaim("exp".into())
    }

    fn of(value: Value) -> Result<Option<u64>, AuthError> {
        let Value::Object(claims) = json!({ "exp": value }) else {
            unreachable!()
        };
        expiry_ms(&claims)
    }

    #[test]
    fn every_number_is_a_time_and_nothing_else_is() {
        assert_eq!(of(json!(1_764_620_005)), Ok(Some(1_764_620_005_000)));
        assert_eq!(of(json!(1_764_620_005.5)), Ok(Some(1_764_620_005_500)));
        assert_eq!(of(json!(u64::MAX)), Ok(Some(u64::MAX)));
        assert_eq!(of(json!(1e300)), Ok(Some(u64::MAX)));
        assert_eq!(of(json!(-5)), Ok(Some(0)));
        assert_eq!(of(json!(-5.5)), Ok(Some(0)));
        for bad in [
            json!("1764620005"),
            json!([1]),
            json!({}),
            json!(true),
            json!(null),
        ] {
            assert_eq!(of(bad.clone()), Err(invalid()), "{bad}");
        }
        assert_eq!(expiry_ms(&Map::new()), Ok(None));
    }

    #[test]
    fn nbf_is_read_the_same_way() {
        let Value::Object(claims) = json!({ "nbf": 1_764_620_005.25, "exp": "x" }) else {
            unreachable!()
        };
        assert_eq!(not_before_ms(&claims), Ok(Some(1_764_620_005_250)));
        let Value::Object(claims) = json!({ "nbf": [1] }) else {
            unreachable!()
        };
        assert_eq!(
            not_before_ms(&claims),
            Err(AuthError::InvalidClaim("nbf".into()))
        );
    }
}
