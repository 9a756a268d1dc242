//! Authentication settings (`JWT_*`), read with the rest of the gateway's settings, and
//! their start-up check: a bad value or a bad combination stops the process with one
//! line naming the variable. Authentication is on exactly when one verification key is
//! set (`JWT_SECRET`, `JWT_PUBLIC_KEY_FILE` or `JWT_JWKS_FILE`); any other `JWT_*`
//! setting without a key is refused rather than silently running open.

use super::jwks::Jwks;
use super::jwt::{KeySource, Verifier};
use crate::config_error::ConfigError;
use clap::{Args, ValueEnum};
use jsonwebtoken::{Algorithm, DecodingKey};
use shared::config::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// Shortest HS256 secret accepted: RFC 7518 §3.2 wants a key at least as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// The algorithms a deployment may pin. Tokens signed with anything else (including
/// `none` and the other families) are refused; the token header never chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithm {
    #[value(name = "HS256")]
    Hs256,
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
}

impl JwtAlgorithm {
    pub fn algorithm(self) -> Algorithm {
        match self {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::Es256 => Algorithm::ES256,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
        }
    }
}

/// `JWT_*`: how tokens are verified. All unset: authentication is off.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthSettings {
    /// HS256 shared secret (at least 32 bytes). Setting a key turns authentication on.
    #[arg(long, env = "JWT_SECRET")]
    pub jwt_secret: Option<Secret>,

    /// PEM file with the RS256 or ES256 public key that verifies tokens.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// JWKS file (`{"keys": [...]}`); a token's `kid` picks the key. Re-read when it
    /// changes, so keys rotate without a restart.
    #[arg(long, env = "JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,

    /// The one algorithm tokens may use. Default HS256 with `JWT_SECRET`; required
    /// (RS256 or ES256) with a public key or JWKS.
    #[arg(long, env = "JWT_ALGORITHM", ignore_case = true)]
    pub jwt_algorithm: Option<JwtAlgorithm>,

    /// Required `iss` (comma-separated to accept several). Unset: not checked.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` (comma-separated to accept several). Unset: not checked.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The claim holding the user id (the streaming seed's tokens use `userId`).
    #[arg(long, env = "JWT_USER_CLAIM", default_value = "sub")]
    pub jwt_user_claim: String,

    /// A claim carrying the user's own token budget (e.g. from their plan), an object
    /// `{"tokens_per_day": N, "tokens_per_minute": N}` (either may be left out); it
    /// replaces `BUDGET_TOKENS_PER_*` for that user. A token whose claim has another
    /// shape is refused. Unset: every user gets the configured budget.
    #[arg(long, env = "JWT_BUDGET_CLAIM")]
    pub jwt_budget_claim: Option<String>,

    /// Refuse tokens without `exp`. Off only for issuers that cannot set one.
    #[arg(long, env = "JWT_REQUIRE_EXP", default_value_t = true, action = clap::ArgAction::Set)]
    pub jwt_require_exp: bool,

    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 300).
    #[arg(long, env = "JWT_LEEWAY_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub jwt_leeway_secs: u64,

    /// Seconds between checks of `JWT_JWKS_FILE` for changes (an unknown `kid` also
    /// triggers a check, at most once a second).
    #[arg(long, env = "JWT_JWKS_RELOAD_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub jwt_jwks_reload_secs: u64,
}

impl AuthSettings {
    /// True when a verification key is configured.
    pub fn enabled(&self) -> bool {
        self.jwt_secret.is_some()
            || self.jwt_public_key_file.is_some()
            || self.jwt_jwks_file.is_some()
    }

    /// Checks the combination and loads the key: `None` when authentication is off.
    /// `max_user_chars` bounds the user id a token may carry (`MAX_USER_ID_CHARS`).
    pub fn verifier(&self, max_user_chars: usize) -> Result<Option<Verifier>, ConfigError> {
        let sources = [
            self.jwt_secret.is_some(),
            self.jwt_public_key_file.is_some(),
            self.jwt_jwks_file.is_some(),
        ];
        if !self.enabled() {
            let stray = [
                ("JWT_ALGORITHM", self.jwt_algorithm.is_some()),
                ("JWT_ISSUER", self.jwt_issuer.is_some()),
                ("JWT_AUDIENCE", self.jwt_audience.is_some()),
                ("JWT_BUDGET_CLAIM", self.jwt_budget_claim.is_some()),
            ];
            if let Some((variable, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    variable,
                    "is set but no verification key is: set JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE (authentication would otherwise be off)",
                ));
            }
            return Ok(None);
        }
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(ConfigError::new(
                "JWT_SECRET",
                "JWT_SECRET, JWT_PUBLIC_KEY_FILE and JWT_JWKS_FILE exclude each other: set exactly one",
            ));
        }
        let claim = self.jwt_user_claim.trim();
        if claim.is_empty() {
            return Err(ConfigError::new("JWT_USER_CLAIM", "must name a claim"));
        }
        let (algorithm, keys) = if let Some(secret) = &self.jwt_secret {
            let algorithm = self.jwt_algorithm.unwrap_or(JwtAlgorithm::Hs256);
            if algorithm != JwtAlgorithm::Hs256 {
                return Err(ConfigError::new(
                    "JWT_ALGORITHM",
                    format!(
                        "{} needs a public key (JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE); JWT_SECRET is for HS256 only",
                        algorithm.name()
                    ),
                ));
            }
            if secret.expose().len() < MIN_SECRET_BYTES {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    format!("must be at least {MIN_SECRET_BYTES} bytes for HS256"),
                ));
            }
            let key = DecodingKey::from_secret(secret.expose().as_bytes());
            (algorithm, KeySource::Static(key))
        } else {
            let variable = if self.jwt_public_key_file.is_some() {
                "JWT_PUBLIC_KEY_FILE"
            } else {
                "JWT_JWKS_FILE"
            };
            let algorithm = match self.jwt_algorithm {
                Some(JwtAlgorithm::Hs256) => {
                    return Err(ConfigError::new(
                        "JWT_ALGORITHM",
                        format!("HS256 takes JWT_SECRET, not {variable}; use RS256 or ES256"),
                    ));
                }
                Some(algorithm) => algorithm,
                None => {
                    return Err(ConfigError::new(
                        "JWT_ALGORITHM",
                        format!("required with {variable}: RS256 or ES256"),
                    ));
                }
            };
            let keys = if let Some(path) = &self.jwt_public_key_file {
                KeySource::Static(load_pem(path, algorithm)?)
            } else {
                let path = self.jwt_jwks_file.clone().expect("one source is set");
                let reload = Duration::from_secs(self.jwt_jwks_reload_secs);
                let jwks = Jwks::load(path, algorithm.algorithm(), reload)
                    .map_err(|e| ConfigError::new("JWT_JWKS_FILE", e.to_string()))?;
                KeySource::Jwks(jwks)
            };
            (algorithm, keys)
        };
        let list = |raw: &Option<String>, variable| -> Result<Vec<String>, ConfigError> {
            let Some(raw) = raw else {
                return Ok(Vec::new());
            };
            let items: Vec<String> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if items.is_empty() {
                return Err(ConfigError::new(variable, "is set but empty"));
            }
            Ok(items)
        };
        let budget_claim = match self.jwt_budget_claim.as_deref().map(str::trim) {
            Some("") => return Err(ConfigError::new("JWT_BUDGET_CLAIM", "must name a claim")),
            other => other.map(str::to_owned),
        };
        Ok(Some(
            Verifier::new(
                algorithm.algorithm(),
                keys,
                list(&self.jwt_issuer, "JWT_ISSUER")?,
                list(&self.jwt_audience, "JWT_AUDIENCE")?,
                claim.to_owned(),
                self.jwt_require_exp,
                self.jwt_leeway_secs,
                max_user_chars,
            )
            .with_budget_claim(budget_claim),
        ))
    }
}

fn load_pem(path: &PathBuf, algorithm: JwtAlgorithm) -> Result<DecodingKey, ConfigError> {
    let variable = "JWT_PUBLIC_KEY_FILE";
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::new(variable, format!("cannot read {}: {e}", path.display())))?;
    let parsed = match algorithm {
        JwtAlgorithm::Rs256 => DecodingKey::from_rsa_pem(&pem),
        JwtAlgorithm::Es256 => DecodingKey::from_ec_pem(&pem),
        JwtAlgorithm::Hs256 => unreachable!("HS256 takes a secret"),
    };
    parsed.map_err(|e| {
        ConfigError::new(
            variable,
            format!(
                "{} is not a PEM public key for {}: {e}",
                path.display(),
                algorithm.name()
            ),
        )
    })
}
