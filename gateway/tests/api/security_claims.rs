//! Property tests of token expiry (issue 10): whatever shape a signed token's `exp`
//! has — integers, fractions, numbers past `u64`, negative ones, strings, arrays,
//! objects, `null`, several `exp` keys at once — verification never panics, a token
//! is accepted only with a numeric `exp` still in the future, and an accepted token
//! always gives its socket a deadline no later than the earliest `exp` it carries.
//! The tokens are properly signed (HS256 over the raw claims text, so duplicate keys
//! survive), so every case reaches the claim checks, not just the signature check.

use crate::security_support::{SECRET, b64};
use gateway::Settings;
use gateway::auth::jwt::Verifier;
use gateway::ws::token::deadline_of;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LEEWAY_SECS: u64 = 0;

fn verifier() -> Verifier {
    let mut settings = Settings::defaults();
    settings.auth.jwt_secret = Some(SECRET.into());
    settings.auth.jwt_leeway_secs = LEEWAY_SECS;
    settings.auth.verifier(64).unwrap().expect("auth on")
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// An HS256 token over exactly `payload`.
fn sign_raw(payload: &str) -> String {
    let message = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(payload.as_bytes())
    );
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

/// One `exp` value, as JSON text.
fn exp_literal() -> impl Strategy<Value = String> {
    let now = now_secs() as i64;
    prop_oneof![
        // Integers around now: past and future.
        (-600i64..600).prop_map(move |d| (now + d).to_string()),
        // Fractions around now.
        (-600_000i64..600_000).prop_map(move |d| format!("{:.3}", now as f64 + d as f64 / 1000.0)),
        // Huge, tiny and out-of-range numbers.
        Just(u64::MAX.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("1e300".to_owned()),
        Just("-1e300".to_owned()),
        Just(i64::MIN.to_string()),
        Just("0".to_owned()),
        Just("-0.5".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::to_string(&f).unwrap()),
        // Not numbers at all.
        (0i64..600).prop_map(move |d| format!("\"{}\"", now + d)),
        (0i64..600).prop_map(move |d| format!("[{}]", now + d)),
        Just("{}".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
    ]
}

/// A claims text with zero to three `exp` keys (duplicates included).
fn claims_text() -> impl Strategy<Value = (String, Vec<String>)> {
    prop::collection::vec(exp_literal(), 0..=3).prop_map(|exps| {
        let mut fields = vec![r#""sub":"alice""#.to_owned()];
        fields.extend(exps.iter().map(|e| format!(r#""exp":{e}"#)));
        (format!("{{{}}}", fields.join(",")), exps)
    })
}

/// The exp literal as seconds, when it is a JSON number.
fn seconds(literal: &str) -> Option<f64> {
    match serde_json::from_str::<Value>(literal).ok()? {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn exp_of_any_shape_gives_a_safe_answer((payload, exps) in claims_text()) {
        let verifier = verifier();
        let outcome = verifier.verify(&sign_raw(&payload));
        let numbers: Vec<Option<f64>> = exps.iter().map(|e| seconds(e)).collect();
        let now = now_secs();
        match outcome {
            Ok(identity) => {
                // Accepted: exp was there, every exp was a number, in the future.
                prop_assert!(!exps.is_empty(), "accepted without exp: {payload}");
                prop_assert!(numbers.iter().all(Option::is_some), "accepted a non-number exp: {payload}");
                let earliest = numbers.iter().flatten().cloned().fold(f64::INFINITY, f64::min);
                prop_assert!(earliest + 1.0 > now, "accepted an expired token: {payload}");
                let ms = identity.expires_at_ms.expect("an expiry") as f64;
                let bound = (earliest * 1000.0).min(u64::MAX as f64);
                prop_assert!(ms <= bound + 1.0, "deadline {ms} after exp {bound}: {payload}");
                // ... and a socket deadline an Instant can hold, never past the exp.
                let deadline = deadline_of(&identity, LEEWAY_SECS).expect("a socket deadline");
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                prop_assert!(left.as_secs_f64() <= (earliest - now).max(0.0) + 1.0);
                prop_assert!(left <= Duration::from_secs(366 * 24 * 3600));
            }
            Err(_) => {
                // Refused: then it was not one clean, future, numeric exp.
                let clean_future = exps.len() == 1
                    && numbers[0].is_some_and(|secs| secs > now + 5.0);
                prop_assert!(!clean_future, "refused a good token: {payload}");
            }
        }
    }
}
