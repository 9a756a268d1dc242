//! Tokens for authenticated runs: either one ready token for every session
//! (`--token`), or an HS256 token signed per session (`--jwt-secret`), each for its
//! own user `loadtest-<n>`, so per-user limits and ownership behave as with real users.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use super::settings::RunSettings;

/// Where a session's token comes from.
#[derive(Clone)]
pub enum Auth {
    /// No authentication.
    None,
    /// The same token for everyone.
    Static(String),
    /// Signs one token per user.
    Hs256 {
        key: EncodingKey,
        claim: String,
        ttl_secs: u64,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token or a key.
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Static(_) => "Auth::Static(..)",
            Auth::Hs256 { .. } => "Auth::Hs256(..)",
        })
    }
}

impl Auth {
    /// From `--token` / `--jwt-secret`.
    pub fn from_settings(settings: &RunSettings) -> Self {
        match (&settings.token, &settings.jwt_secret) {
            (Some(token), _) => Auth::Static(token.clone()),
            (None, Some(secret)) => Auth::Hs256 {
                key: EncodingKey::from_secret(secret.as_bytes()),
                claim: settings.jwt_claim.clone(),
                ttl_secs: settings.jwt_ttl_secs,
            },
            (None, None) => Auth::None,
        }
    }

    /// The token of `user`, if the run is authenticated.
    pub fn token_for(&self, user: &str) -> anyhow::Result<Option<String>> {
        match self {
            Auth::None => Ok(None),
            Auth::Static(token) => Ok(Some(token.clone())),
            Auth::Hs256 {
                key,
                claim,
                ttl_secs,
            } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let mut claims = Map::new();
                claims.insert(claim.clone(), Value::String(user.to_owned()));
                claims.insert("iat".into(), now.into());
                claims.insert("exp".into(), (now + ttl_secs).into());
                let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)?;
                Ok(Some(token))
            }
        }
    }
}

/// The user name of session `index`.
pub fn user_of(index: usize) -> String {
    format!("loadtest-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    #[test]
    fn signed_tokens_name_the_user_in_the_configured_claim() {
        let settings =
            RunSettings::try_from_args(["--jwt-secret", "s3cret", "--jwt-claim", "userId"])
                .unwrap();
        let auth = Auth::from_settings(&settings);
        let token = auth.token_for(&user_of(7)).unwrap().unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        let data =
            decode::<Map<String, Value>>(&token, &DecodingKey::from_secret(b"s3cret"), &validation)
                .unwrap();
        assert_eq!(data.claims["userId"], "loadtest-7");
        assert!(data.claims["exp"].as_u64().unwrap() > data.claims["iat"].as_u64().unwrap());
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[test]
    fn no_settings_no_token() {
        let settings = RunSettings::try_from_args(Vec::<String>::new()).unwrap();
        assert!(
            Auth::from_settings(&settings)
                .token_for("u")
                .unwrap()
                .is_none()
        );
    }
}
