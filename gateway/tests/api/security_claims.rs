//! Property tests of token claims (issue 10). First `exp`: whatever shape a signed
//! token's `exp` has — integers, fractions, numbers past `u64`, negative ones, strings,
//! arrays, objects, `null`, several `exp` keys at once — verification never panics, a
//! token is accepted only with a numeric `exp` still in the future, and an accepted
//! token always gives its socket a deadline no later than the earliest `exp` it
//! carries. Then every claim the gateway checks (`sub`, `exp`, `nbf`, `iss`, `aud`,
//! and a custom one) in those shapes, repeated or not: a token is accepted exactly when
//! each is present at most once with a good value, and then speaks for the user its
//! `sub` names. The tokens are properly signed (HS256 over the raw claims text, so
//! duplicate keys survive), so every case reaches the claim checks, not just the
//! signature check.

use crate::security_support::{SECRET, b64};
use gateway::Settings;
use gateway::auth::jwt::Verifier;
use gateway::ws::token::deadline_of;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LEEWAY_SECS: u64 = 0;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "chat";
const MAX_USER_CHARS: usize = 64;

fn verifier() -> Verifier {
    let mut settings = Settings::defaults();
    settings.auth.jwt_secret = Some(SECRET.into());
    settings.auth.jwt_leeway_secs = LEEWAY_SECS;
    settings
        .auth
        .verifier(MAX_USER_CHARS)
        .unwrap()
        .expect("auth on")
}

/// With `JWT_ISSUER` and `JWT_AUDIENCE` configured.
fn strict_verifier() -> Verifier {
    let mut settings = Settings::defaults();
    settings.auth.jwt_secret = Some(SECRET.into());
    settings.auth.jwt_leeway_secs = LEEWAY_SECS;
    settings.auth.jwt_issuer = Some(ISSUER.into());
    settings.auth.jwt_audience = Some(AUDIENCE.into());
    settings
        .auth
        .verifier(MAX_USER_CHARS)
        .unwrap()
        .expect("auth on")
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
                // The gateway reads an integer exp exactly; here it went through f64,
                // which holds integers past 2^53 only to a few units in the last place.
                let rounding = bound * 4.0 * f64::EPSILON;
                prop_assert!(ms <= bound + rounding + 1.0, "deadline {ms} after exp {bound}: {payload}");
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

/// Values of every JSON shape that are no good for any claim checked here.
fn junk_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        Just(r#"{"a":1,"a":2}"#.to_owned()),
        Just("[[1],[2]]".to_owned()),
    ]
}

/// `sub`: good ones, then the rest.
fn sub_good() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-z]{1,12}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        Just(u64::MAX.to_string()),
    ]
    .boxed()
}

fn sub_bad() -> BoxedStrategy<String> {
    prop_oneof![
        Just("\"\"".to_owned()),
        Just("\"   \"".to_owned()),
        Just(format!("\"{}\"", "x".repeat(MAX_USER_CHARS + 1))),
        Just("18446744073709551616".to_owned()),
        Just("1.5".to_owned()),
        Just("1e300".to_owned()),
        Just(r#"["alice"]"#.to_owned()),
        junk_literal(),
    ]
    .boxed()
}

/// `exp`: in the future (integers, fractions, huge numbers), or not.
fn exp_good() -> BoxedStrategy<String> {
    let now = now_secs() as i64;
    prop_oneof![
        (60i64..600).prop_map(move |d| (now + d).to_string()),
        (60_000i64..600_000).prop_map(move |d| format!("{:.3}", now as f64 + d as f64 / 1000.0)),
        Just(u64::MAX.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("1e300".to_owned()),
    ]
    .boxed()
}

fn exp_bad() -> BoxedStrategy<String> {
    let now = now_secs() as i64;
    prop_oneof![
        (10i64..600).prop_map(move |d| (now - d).to_string()),
        (10_000i64..600_000).prop_map(move |d| format!("{:.3}", now as f64 - d as f64 / 1000.0)),
        Just("-1e300".to_owned()),
        Just(i64::MIN.to_string()),
        (60i64..600).prop_map(move |d| format!("\"{}\"", now + d)),
        (60i64..600).prop_map(move |d| format!("[{}]", now + d)),
        junk_literal(),
    ]
    .boxed()
}

/// `nbf`: past (integers, fractions, negative ones), or not.
fn nbf_good() -> BoxedStrategy<String> {
    let now = now_secs() as i64;
    prop_oneof![
        (10i64..600).prop_map(move |d| (now - d).to_string()),
        (10_000i64..600_000).prop_map(move |d| format!("{:.3}", now as f64 - d as f64 / 1000.0)),
        Just("-1".to_owned()),
        Just("-1e300".to_owned()),
        Just("0".to_owned()),
    ]
    .boxed()
}

fn nbf_bad() -> BoxedStrategy<String> {
    let now = now_secs() as i64;
    prop_oneof![
        (60i64..600).prop_map(move |d| (now + d).to_string()),
        (60_000i64..600_000).prop_map(move |d| format!("{:.3}", now as f64 + d as f64 / 1000.0)),
        Just(u64::MAX.to_string()),
        Just("1e300".to_owned()),
        (0i64..600).prop_map(move |d| format!("\"{}\"", now - d)),
        (0i64..600).prop_map(move |d| format!("[{}]", now - d)),
        junk_literal(),
    ]
    .boxed()
}

fn iss_good() -> BoxedStrategy<String> {
    Just(format!("\"{ISSUER}\"")).boxed()
}

fn iss_bad() -> BoxedStrategy<String> {
    prop_oneof![
        Just("\"https://evil.test\"".to_owned()),
        Just(format!("[\"{ISSUER}\"]")),
        Just(format!("[\"{ISSUER}\",\"https://evil.test\"]")),
        Just("5".to_owned()),
        Just("1.5".to_owned()),
        junk_literal(),
    ]
    .boxed()
}

fn aud_good() -> BoxedStrategy<String> {
    prop_oneof![
        Just(format!("\"{AUDIENCE}\"")),
        Just(format!("[\"{AUDIENCE}\"]")),
        Just(format!("[\"other\",\"{AUDIENCE}\"]")),
    ]
    .boxed()
}

fn aud_bad() -> BoxedStrategy<String> {
    prop_oneof![
        Just("\"other\"".to_owned()),
        Just("[\"other\"]".to_owned()),
        Just(format!("[\"{AUDIENCE}\",1]")),
        Just("7".to_owned()),
        Just(u64::MAX.to_string()),
        junk_literal(),
    ]
    .boxed()
}

/// A claim the gateway does not check: any value is good, but it may not repeat.
fn role_any() -> BoxedStrategy<String> {
    prop_oneof![Just("\"admin\"".to_owned()), junk_literal()].boxed()
}

/// Zero to two copies of one claim: mostly one good value, so that sets with every
/// claim good, or all but one, are common.
fn copies(good: BoxedStrategy<String>, bad: BoxedStrategy<String>) -> BoxedStrategy<Vec<String>> {
    let any = prop_oneof![good.clone(), bad.clone()];
    prop_oneof![
        1 => Just(Vec::new()),
        14 => good.prop_map(|l| vec![l]),
        3 => bad.prop_map(|l| vec![l]),
        1 => (any.clone(), any).prop_map(|(a, b)| vec![a, b]),
    ]
    .boxed()
}

/// One claims set: each claim's copies, and the raw text they make (in a shuffled order).
#[derive(Debug, Clone)]
struct ClaimsSet {
    claims: Vec<(&'static str, Vec<String>)>,
    text: String,
}

fn claims_set() -> impl Strategy<Value = ClaimsSet> {
    (
        copies(sub_good(), sub_bad()),
        copies(exp_good(), exp_bad()),
        copies(nbf_good(), nbf_bad()),
        copies(iss_good(), iss_bad()),
        copies(aud_good(), aud_bad()),
        copies(role_any(), role_any()),
    )
        .prop_flat_map(|(sub, exp, nbf, iss, aud, role)| {
            let claims = vec![
                ("sub", sub),
                ("exp", exp),
                ("nbf", nbf),
                ("iss", iss),
                ("aud", aud),
                ("role", role),
            ];
            let fields: Vec<String> = claims
                .iter()
                .flat_map(|(name, values)| values.iter().map(move |v| format!("\"{name}\":{v}")))
                .collect();
            (Just(claims), Just(fields).prop_shuffle())
        })
        .prop_map(|(claims, fields)| ClaimsSet {
            claims,
            text: format!("{{{}}}", fields.join(",")),
        })
}

/// The one value of a claim given exactly once, parsed.
fn only(set: &ClaimsSet, name: &str) -> Option<Option<Value>> {
    let (_, values) = set.claims.iter().find(|(n, _)| *n == name)?;
    match values.as_slice() {
        [] => Some(None),
        [one] => Some(Some(serde_json::from_str(one).expect("valid JSON literal"))),
        _ => None,
    }
}

/// The user a good `sub` names.
fn user_of(sub: &Value) -> Option<String> {
    let user = match sub {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return None,
    };
    (!user.trim().is_empty() && user.chars().count() <= MAX_USER_CHARS).then_some(user)
}

/// Whether the set is good, and whose it is; `margin` seconds keep clear of "now".
fn verdict(set: &ClaimsSet, margin: f64) -> Option<String> {
    let now = now_secs();
    let number = |v: &Value| v.as_f64();
    let user = user_of(&only(set, "sub")??)?;
    let exp = number(&only(set, "exp")??)?;
    if exp <= now + margin {
        return None;
    }
    if let Some(nbf) = only(set, "nbf")?
        && number(&nbf)? > now - margin
    {
        return None;
    }
    if only(set, "iss")?? != Value::String(ISSUER.into()) {
        return None;
    }
    let aud_ok = match only(set, "aud")?? {
        Value::String(aud) => aud == AUDIENCE,
        Value::Array(items) => {
            items.iter().all(Value::is_string) && items.contains(&Value::String(AUDIENCE.into()))
        }
        _ => false,
    };
    // A custom claim is not checked, but it may not repeat either.
    only(set, "role")?;
    aud_ok.then_some(user)
}

/// The generator reaches both answers, and refusals for many reasons: the property
/// above is not true just because every token is refused.
#[test]
fn claims_sets_reach_acceptance_and_each_refusal() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = claims_set();
    let verifier = strict_verifier();
    let mut accepted = 0;
    let mut reasons = std::collections::BTreeSet::new();
    for _ in 0..1024 {
        let set = strategy.new_tree(&mut runner).unwrap().current();
        match verifier.verify(&sign_raw(&set.text)) {
            Ok(_) => accepted += 1,
            Err(error) => {
                let name = format!("{error:?}");
                reasons.insert(name.split('(').next().unwrap().to_owned());
            }
        }
    }
    assert!(accepted >= 50, "{accepted} of 1024 accepted");
    for reason in [
        "Malformed",
        "Expired",
        "NotYetValid",
        "WrongIssuer",
        "WrongAudience",
        "MissingClaim",
        "NoUser",
        "InvalidClaim",
        "DuplicateClaim",
    ] {
        assert!(reasons.contains(reason), "no {reason} among {reasons:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn claims_of_any_shape_give_the_right_answer(set in claims_set()) {
        let outcome = strict_verifier().verify(&sign_raw(&set.text));
        match outcome {
            Ok(identity) => {
                // Accepted: good with a second of slack either way, and for that user.
                let Some(user) = verdict(&set, -1.0) else {
                    return Err(TestCaseError::fail(format!("accepted a bad token: {}", set.text)));
                };
                prop_assert_eq!(identity.user.as_str(), user.as_str(), "{}", set.text);
            }
            Err(error) => {
                // Refused: then it was not clearly good, and the reason says which claim.
                prop_assert!(verdict(&set, 5.0).is_none(), "refused a good token ({error:?}): {}", set.text);
                prop_assert!(!error.client_message().is_empty());
            }
        }
    }
}
