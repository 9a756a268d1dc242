//! `JWT_JWKS_FILE`: verification keys from a JWKS file, picked by the token's `kid`
//! and re-read when the file changes, so keys rotate without a restart.
//!
//! The file is checked (size and modification time) at most every `reload` interval,
//! on the request path, and at most once a second when a token names a `kid` the
//! current set lacks (the usual sign of a rotation that just happened). A file that
//! becomes unreadable or invalid keeps the last good keys (logged): a bad deploy of the
//! key file must not lock every user out. Only keys usable with the pinned algorithm
//! are kept: an RSA key for RS256, a P-256 key for ES256, never a symmetric `oct` key.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use thiserror::Error;

/// Least time between two checks triggered by unknown `kid`s.
const UNKNOWN_KID_RECHECK: Duration = Duration::from_secs(1);

/// Why a JWKS file could not be used.
#[derive(Debug, Error)]
pub enum JwksError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a JWKS document: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has no key usable with {algorithm:?}")]
    NoUsableKey { path: String, algorithm: Algorithm },
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

struct KeySet {
    /// `(kid, key)`; a key without a `kid` can only be chosen when it is the only one.
    keys: Vec<(Option<String>, Arc<DecodingKey>)>,
    stamp: Stamp,
}

/// The keys of a JWKS file; cheap to query from many tasks.
pub struct Jwks {
    path: PathBuf,
    algorithm: Algorithm,
    reload: Duration,
    current: RwLock<Arc<KeySet>>,
    /// When the file was last checked; also serializes checks.
    checked: Mutex<Instant>,
}

impl Jwks {
    /// Loads the file; fails when it cannot be read or holds no usable key.
    pub fn load(path: PathBuf, algorithm: Algorithm, reload: Duration) -> Result<Self, JwksError> {
        let set = read_set(&path, algorithm)?;
        Ok(Self {
            path,
            algorithm,
            reload,
            current: RwLock::new(Arc::new(set)),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// The key for a token's `kid` (`None`: only if the set has exactly one key).
    pub fn key_for(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        self.maybe_reload(false);
        if let Some(key) = self.find(kid) {
            return Some(key);
        }
        // Perhaps the keys rotated since the last check.
        self.maybe_reload(true).then(|| self.find(kid)).flatten()
    }

    fn find(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        let set = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match kid {
            Some(kid) => set
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key.clone()),
            None if set.keys.len() == 1 => Some(set.keys[0].1.clone()),
            None => None,
        }
    }

    /// Re-reads the file if it is time to check and it changed. Returns true when the
    /// keys were replaced.
    fn maybe_reload(&self, unknown_kid: bool) -> bool {
        let wait = if unknown_kid {
            UNKNOWN_KID_RECHECK.min(self.reload)
        } else {
            self.reload
        };
        let Ok(mut checked) = self.checked.try_lock() else {
            return false; // another task is checking right now
        };
        if checked.elapsed() < wait {
            return false;
        }
        *checked = Instant::now();
        let known = self.current.read().unwrap_or_else(|e| e.into_inner()).stamp;
        if stamp(&self.path).ok() == Some(known) {
            return false;
        }
        match read_set(&self.path, self.algorithm) {
            Ok(set) => {
                tracing::info!(path = %self.path.display(), keys = set.keys.len(), "JWKS reloaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "JWKS reload failed; keeping the previous keys");
                false
            }
        }
    }
}

fn stamp(path: &PathBuf) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

fn read_set(path: &PathBuf, algorithm: Algorithm) -> Result<KeySet, JwksError> {
    let shown = path.display().to_string();
    let read_error = |source| JwksError::Read {
        path: shown.clone(),
        source,
    };
    let stamp = stamp(path).map_err(read_error)?;
    let text = std::fs::read(path).map_err(read_error)?;
    let set: JwkSet = serde_json::from_slice(&text).map_err(|source| JwksError::Parse {
        path: shown.clone(),
        source,
    })?;
    let keys: Vec<_> = set
        .keys
        .iter()
        .filter(|jwk| usable(jwk, algorithm))
        .filter_map(|jwk| match DecodingKey::from_jwk(jwk) {
            Ok(key) => Some((jwk.common.key_id.clone(), Arc::new(key))),
            Err(error) => {
                tracing::warn!(%error, kid = ?jwk.common.key_id, "skipping a JWKS key");
                None
            }
        })
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey {
            path: shown,
            algorithm,
        });
    }
    Ok(KeySet { keys, stamp })
}

/// A key fits when its type matches the pinned algorithm and its optional `alg` and
/// `use` do not say otherwise.
fn usable(jwk: &jsonwebtoken::jwk::Jwk, algorithm: Algorithm) -> bool {
    if let Some(declared) = jwk.common.key_algorithm
        && declared != KeyAlgorithm::from(algorithm)
    {
        return false;
    }
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return false;
    }
    match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa_jwk(kid: Option<&str>, extra: serde_json::Value) -> serde_json::Value {
        // The modulus and exponent need not be a real key to be loaded.
        let mut jwk = json!({"kty": "RSA", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"});
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        if let (Some(jwk), Some(extra)) = (jwk.as_object_mut(), extra.as_object()) {
            jwk.extend(extra.clone());
        }
        jwk
    }

    fn write(path: &std::path::Path, keys: Vec<serde_json::Value>) {
        std::fs::write(path, json!({"keys": keys}).to_string()).unwrap();
    }

    #[test]
    fn keys_are_filtered_by_algorithm_and_use_and_picked_by_kid() {
        let dir = std::env::temp_dir().join(format!("jwks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwks.json");
        write(
            &path,
            vec![
                rsa_jwk(Some("a"), json!({})),
                rsa_jwk(Some("enc"), json!({"use": "enc"})),
                rsa_jwk(Some("ps"), json!({"alg": "PS256"})),
                json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            ],
        );
        let jwks = Jwks::load(path.clone(), Algorithm::RS256, Duration::from_secs(3600)).unwrap();
        assert!(jwks.key_for(Some("a")).is_some());
        for refused in ["enc", "ps", "hmac", "missing"] {
            assert!(jwks.key_for(Some(refused)).is_none(), "{refused}");
        }
        assert!(jwks.key_for(None).is_some(), "the only usable key");

        // An ES256 deployment finds nothing usable in an RSA-only file.
        assert!(matches!(
            Jwks::load(path.clone(), Algorithm::ES256, Duration::from_secs(1)),
            Err(JwksError::NoUsableKey { .. })
        ));

        // Rotation: a new kid appears in the file and is found at once.
        write(
            &path,
            vec![rsa_jwk(Some("a"), json!({})), rsa_jwk(Some("b"), json!({}))],
        );
        *jwks.checked.lock().unwrap() = Instant::now() - Duration::from_secs(5);
        assert!(jwks.key_for(Some("b")).is_some());
        assert!(jwks.key_for(None).is_none(), "two keys: a kid is needed");

        // A broken file keeps the previous keys.
        std::fs::write(&path, "not json, and longer than before").unwrap();
        *jwks.checked.lock().unwrap() = Instant::now() - Duration::from_secs(5);
        assert!(jwks.key_for(Some("b")).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
