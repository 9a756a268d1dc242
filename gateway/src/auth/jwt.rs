//! Token verification: one pinned algorithm, one key source (a static key, or a JWKS
//! file whose `kid` picks the key), and the claim checks of `docs/protocol.md`.
//!
//! The known traps of `jsonwebtoken` are handled here, once: the algorithm list is the
//! one configured algorithm and the token header never chooses it (`alg: none`, HS256
//! tokens signed with an RSA public key as the secret, and every other family are
//! refused before any key is touched); `exp` is a *required* claim unless configured
//! off; `nbf` is checked; `iss` and `aud`, when configured, are required claims too
//! (the library otherwise lets a token without them pass); leeway is small.
//!
//! `exp` and `nbf` are read and checked here (`expiry`), in milliseconds, not by the
//! library: it reads only integer seconds, and the socket deadline must come from the
//! same value the check used. A claim name that repeats refuses the token (`claims`).
//! A configured issuer must be the token's `iss` string (the library also accepts an
//! array naming it; RFC 7519 makes `iss` one string). A header with `crit` is refused:
//! this server implements no JWS extension, and RFC 7515 §4.1.11 says a token naming
//! one it does not understand is invalid (the library ignores `crit`).

use super::claims::{DUPLICATE, UniqueClaims};
use super::expiry;
use super::jwks::Jwks;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use shared::ids::UserId;
use thiserror::Error;

/// Longest token looked at; anything longer is refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused. Every case answers 401 `unauthorized` (REST) or closes the
/// socket with 4401; the message says which, without echoing the token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("a token is required")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token uses an algorithm this server does not accept")]
    WrongAlgorithm,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token names a key this server does not have")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token lacks the required claim {0:?}")]
    MissingClaim(String),
    #[error("the token carries no usable user id in its {0:?} claim")]
    NoUser(String),
    #[error("the token's {0:?} claim is not a number of seconds")]
    InvalidClaim(String),
    #[error(
        "the token's {0:?} claim is not a budget ({{\"tokens_per_day\": N, \"tokens_per_minute\": N}})"
    )]
    InvalidBudget(String),
    #[error("the token repeats a claim name")]
    DuplicateClaim,
    #[error("the token requires header extensions (crit) this server does not support")]
    UnsupportedCritical,
}

impl AuthError {
    /// One sentence for the client.
    pub fn client_message(&self) -> String {
        match self {
            AuthError::Missing => {
                "A token is required: send Authorization: Bearer <JWT>.".to_owned()
            }
            AuthError::Expired => "The token has expired; get a fresh one.".to_owned(),
            other => {
                let text = other.to_string();
                let mut chars = text.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase());
                format!(
                    "{}{}.",
                    first.map(String::from).unwrap_or_default(),
                    chars.as_str()
                )
            }
        }
    }
}

/// Who a valid token speaks for, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    /// The user's own token budget, from the claim `JWT_BUDGET_CLAIM` names.
    pub budget: Option<ClaimedBudget>,
    /// The token's `exp` in epoch milliseconds (fractions of a second kept), when it
    /// has one.
    pub expires_at_ms: Option<u64>,
}

/// A token budget a token carries (`JWT_BUDGET_CLAIM`); a window left out keeps the
/// configured budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimedBudget {
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
}

/// Where verification keys come from.
pub enum KeySource {
    /// `JWT_SECRET` or `JWT_PUBLIC_KEY_FILE`.
    Static(DecodingKey),
    /// `JWT_JWKS_FILE`, re-read when it changes.
    Jwks(Jwks),
}

/// Verifies tokens for one deployment; built once at start-up from `AuthSettings`.
pub struct Verifier {
    algorithm: Algorithm,
    keys: KeySource,
    validation: Validation,
    user_claim: String,
    /// `JWT_BUDGET_CLAIM`, if set.
    budget_claim: Option<String>,
    require_exp: bool,
    /// An issuer is configured: `iss` must be one string naming it.
    check_issuer: bool,
    leeway_secs: u64,
    max_user_chars: usize,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm)
            .field("user_claim", &self.user_claim)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        algorithm: Algorithm,
        keys: KeySource,
        issuers: Vec<String>,
        audiences: Vec<String>,
        user_claim: String,
        require_exp: bool,
        leeway_secs: u64,
        max_user_chars: usize,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = leeway_secs;
        // `exp` is checked whenever present, required unless configured off, and `nbf`
        // is checked whenever present; all in `verify` (`expiry`), not by the library.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let check_issuer = !issuers.is_empty();
        let mut required = Vec::new();
        if !issuers.is_empty() {
            validation.set_issuer(&issuers);
            required.push("iss");
        }
        if audiences.is_empty() {
            // Nothing configured to compare with: a token's `aud` is someone else's business.
            validation.validate_aud = false;
        } else {
            validation.set_audience(&audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Self {
            algorithm,
            keys,
            validation,
            user_claim,
            budget_claim: None,
            require_exp,
            check_issuer,
            leeway_secs,
            max_user_chars,
        }
    }

    /// Reads each token's own budget from `claim` (`JWT_BUDGET_CLAIM`).
    pub fn with_budget_claim(mut self, claim: Option<String>) -> Self {
        self.budget_claim = claim;
        self
    }

    /// The clock skew allowed on `exp`, also used for a socket's token deadline.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway_secs
    }

    /// Checks a token and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
            return Err(AuthError::Malformed);
        }
        // The header is read only to refuse a foreign algorithm early and to find the
        // `kid`; the algorithm used is always the configured one.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != self.algorithm {
            return Err(AuthError::WrongAlgorithm);
        }
        if header.crit.is_some() {
            return Err(AuthError::UnsupportedCritical);
        }
        let claims = match &self.keys {
            KeySource::Static(key) => self.decode(token, key)?,
            KeySource::Jwks(jwks) => {
                let key = jwks
                    .key_for(header.kid.as_deref())
                    .ok_or(AuthError::UnknownKey)?;
                self.decode(token, &key)?
            }
        };
        if self.check_issuer && !matches!(claims.get("iss"), Some(Value::String(_))) {
            return Err(AuthError::WrongIssuer);
        }
        let now = u64::try_from(shared::clock::now_millis()).unwrap_or(0);
        let leeway_ms = self.leeway_secs.saturating_mul(1000);
        let expires_at_ms = expiry::expiry_ms(&claims)?;
        match expires_at_ms {
            None if self.require_exp => return Err(AuthError::MissingClaim("exp".into())),
            Some(exp) if exp.saturating_add(leeway_ms) <= now => return Err(AuthError::Expired),
            _ => {}
        }
        if let Some(nbf) = expiry::not_before_ms(&claims)?
            && nbf > now.saturating_add(leeway_ms)
        {
            return Err(AuthError::NotYetValid);
        }
        let user = self.user_of(&claims)?;
        let budget = match self.budget_claim.as_ref() {
            None => None,
            Some(name) => match claims.get(name) {
                None => None,
                Some(value) => Some(
                    ClaimedBudget::deserialize(value)
                        .map_err(|_| AuthError::InvalidBudget(name.clone()))?,
                ),
            },
        };
        Ok(Identity {
            user,
            budget,
            expires_at_ms,
        })
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Map<String, Value>, AuthError> {
        jsonwebtoken::decode::<UniqueClaims>(token, key, &self.validation)
            .map(|data| data.claims.0)
            .map_err(|error| match error.into_kind() {
                // Ours (`UniqueClaims`, read first) or the library's own claims struct.
                ErrorKind::Json(error) if error.to_string().starts_with(DUPLICATE) => {
                    AuthError::DuplicateClaim
                }
                ErrorKind::Json(error) if error.to_string().starts_with("duplicate field") => {
                    AuthError::DuplicateClaim
                }
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::WrongAlgorithm
                }
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
                ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(claim),
                _ => AuthError::Malformed,
            })
    }

    /// The configured user claim: a non-empty string (or an integer, as some issuers
    /// number their users) no longer than `MAX_USER_ID_CHARS`.
    fn user_of(&self, claims: &Map<String, Value>) -> Result<UserId, AuthError> {
        let no_user = || AuthError::NoUser(self.user_claim.clone());
        let raw = match claims.get(&self.user_claim) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => return Err(no_user()),
        };
        if raw.trim().is_empty() || raw.chars().count() > self.max_user_chars {
            return Err(no_user());
        }
        Ok(UserId::new(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn verifier(issuers: &[&str], audiences: &[&str], require_exp: bool) -> Verifier {
        Verifier::new(
            Algorithm::HS256,
            KeySource::Static(DecodingKey::from_secret(SECRET.as_bytes())),
            issuers.iter().map(|s| s.to_string()).collect(),
            audiences.iter().map(|s| s.to_string()).collect(),
            "sub".into(),
            require_exp,
            5,
            16,
        )
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn sign(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn a_good_token_names_its_user_and_expiry() {
        let exp = now() + 60;
        let identity = verifier(&[], &[], true)
            .verify(&sign(json!({"sub": "alice", "exp": exp})))
            .unwrap();
        assert_eq!(identity.user, UserId::new("alice"));
        assert_eq!(identity.expires_at_ms, Some(exp * 1000));
    }

    #[test]
    fn configured_claims_are_required_not_just_compared() {
        let v = verifier(&["issuer"], &["gateway"], true);
        let exp = now() + 60;
        let cases = [
            (
                json!({"sub": "a", "iss": "issuer", "aud": "gateway"}),
                AuthError::MissingClaim("exp".into()),
            ),
            (
                json!({"sub": "a", "exp": exp, "aud": "gateway"}),
                AuthError::MissingClaim("iss".into()),
            ),
            (
                json!({"sub": "a", "exp": exp, "iss": "issuer"}),
                AuthError::MissingClaim("aud".into()),
            ),
            (
                json!({"sub": "a", "exp": exp, "iss": "other", "aud": "gateway"}),
                AuthError::WrongIssuer,
            ),
            (
                json!({"sub": "a", "exp": exp, "iss": "issuer", "aud": "other"}),
                AuthError::WrongAudience,
            ),
            (
                json!({"sub": "a", "exp": now() - 60, "iss": "issuer", "aud": "gateway"}),
                AuthError::Expired,
            ),
            (
                json!({"sub": "a", "exp": exp, "nbf": now() + 60, "iss": "issuer", "aud": "gateway"}),
                AuthError::NotYetValid,
            ),
            (
                json!({"exp": exp, "iss": "issuer", "aud": "gateway"}),
                AuthError::NoUser("sub".into()),
            ),
            (
                json!({"sub": "x".repeat(17), "exp": exp, "iss": "issuer", "aud": "gateway"}),
                AuthError::NoUser("sub".into()),
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(v.verify(&sign(claims.clone())), Err(expected), "{claims}");
        }
        let ok = json!({"sub": 42, "exp": exp, "iss": "issuer", "aud": ["x", "gateway"]});
        assert_eq!(v.verify(&sign(ok)).unwrap().user, UserId::new("42"));
    }

    #[test]
    fn exp_may_be_optional_but_is_still_checked_when_present() {
        let v = verifier(&[], &[], false);
        assert!(v.verify(&sign(json!({"sub": "a"}))).is_ok());
        assert_eq!(
            v.verify(&sign(json!({"sub": "a", "exp": now() - 60}))),
            Err(AuthError::Expired)
        );
        // A token's `aud` is ignored when none is configured.
        assert!(v.verify(&sign(json!({"sub": "a", "aud": "x"}))).is_ok());
    }

    #[test]
    fn foreign_algorithms_and_garbage_are_refused() {
        let v = verifier(&[], &[], true);
        let claims = json!({"sub": "a", "exp": now() + 60});
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(v.verify(&hs512), Err(AuthError::WrongAlgorithm));
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(claims.to_string().as_bytes())
        );
        assert_eq!(v.verify(&none), Err(AuthError::Malformed));
        // Change the signature's first character: every bit of it counts (the last one
        // carries padding bits, so changing it may only make the base64 non-canonical).
        let good = sign(claims);
        let at = good.rfind('.').unwrap() + 1;
        let flipped = if &good[at..at + 1] == "A" { "B" } else { "A" };
        let forged = format!("{}{}{}", &good[..at], flipped, &good[at + 1..]);
        assert_eq!(v.verify(&forged), Err(AuthError::BadSignature));
        for junk in [
            "",
            "   ",
            "abc",
            "a.b.c",
            "a.b",
            &"x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(v.verify(junk).is_err(), "{junk}");
        }
    }

    fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn exp_of_any_numeric_shape_is_checked_to_the_millisecond() {
        let v = verifier(&[], &[], true);
        let now_ms = jsonwebtoken::get_current_timestamp() * 1000;
        let fractional = (now_ms + 60_500) as f64 / 1000.0;
        let identity = v
            .verify(&sign(json!({"sub": "a", "exp": fractional})))
            .unwrap();
        let exp = identity.expires_at_ms.unwrap();
        assert!(exp.abs_diff(now_ms + 60_500) <= 1, "{exp}");
        // Past by more than the leeway, with a fraction: expired.
        let past = (now_ms - 5_500) as f64 / 1000.0;
        assert_eq!(
            v.verify(&sign(json!({"sub": "a", "exp": past}))),
            Err(AuthError::Expired)
        );
        let huge = v
            .verify(&sign(json!({"sub": "a", "exp": u64::MAX})))
            .unwrap();
        assert_eq!(huge.expires_at_ms, Some(u64::MAX));
        assert!(v.verify(&sign(json!({"sub": "a", "exp": 1e300}))).is_ok());
        // Refused, by the library's parse (it trips over some shapes) or by ours.
        for bad in [
            json!("9999999999"),
            json!([now() + 60]),
            json!(null),
            json!({}),
        ] {
            let refused = v.verify(&sign(json!({"sub": "a", "exp": bad.clone()})));
            assert!(
                matches!(
                    refused,
                    Err(AuthError::InvalidClaim(_) | AuthError::Malformed)
                ),
                "{bad}: {refused:?}"
            );
        }
    }

    #[test]
    fn nbf_of_any_numeric_shape_repeats_and_issuer_arrays() {
        let v = verifier(&["issuer"], &[], true);
        let now_ms = jsonwebtoken::get_current_timestamp() * 1000;
        let exp = now() + 60;
        let with = |extra: serde_json::Value| {
            let mut claims = json!({"sub": "a", "exp": exp, "iss": "issuer"});
            for (k, val) in extra.as_object().unwrap() {
                claims[k] = val.clone();
            }
            v.verify(&sign(claims))
        };
        // A fractional nbf in the past is a good token; in the future, not yet valid.
        assert!(with(json!({"nbf": (now_ms - 10_500) as f64 / 1000.0})).is_ok());
        assert_eq!(
            with(json!({"nbf": (now_ms + 60_500) as f64 / 1000.0})),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(with(json!({"nbf": u64::MAX})), Err(AuthError::NotYetValid));
        assert!(with(json!({"nbf": -1})).is_ok());
        assert_eq!(
            with(json!({"nbf": "0"})),
            Err(AuthError::InvalidClaim("nbf".into()))
        );
        // `iss` is one string; an array naming the issuer is not it.
        assert_eq!(
            with(json!({"iss": ["issuer", "other"]})),
            Err(AuthError::WrongIssuer)
        );
        // A repeated claim, registered or not, refuses the token.
        let repeated = |payload: &str| {
            let message = format!(
                "{}.{}",
                b64(br#"{"alg":"HS256","typ":"JWT"}"#),
                b64(payload.as_bytes())
            );
            let key = EncodingKey::from_secret(SECRET.as_bytes());
            let signature =
                jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
            v.verify(&format!("{message}.{signature}"))
        };
        for payload in [
            format!(r#"{{"sub":"a","sub":"b","exp":{exp},"iss":"issuer"}}"#),
            format!(r#"{{"sub":"a","exp":{exp},"exp":{exp},"iss":"issuer"}}"#),
            format!(r#"{{"sub":"a","exp":{exp},"iss":"issuer","role":1,"role":2}}"#),
        ] {
            assert_eq!(
                repeated(&payload),
                Err(AuthError::DuplicateClaim),
                "{payload}"
            );
        }
        let once = format!(r#"{{"sub":"a","exp":{exp},"iss":"issuer","role":1}}"#);
        assert!(repeated(&once).is_ok());
    }

    #[test]
    fn a_crit_header_is_refused() {
        let v = verifier(&[], &[], true);
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["urn:example:unknown".into()]);
        let token = encode(
            &header,
            &json!({"sub": "a", "exp": now() + 60}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(v.verify(&token), Err(AuthError::UnsupportedCritical));
    }

    #[test]
    fn messages_are_sentences() {
        assert_eq!(
            AuthError::WrongIssuer.client_message(),
            "The token's issuer is not accepted."
        );
        assert!(AuthError::Missing.client_message().contains("Bearer"));
    }
}
