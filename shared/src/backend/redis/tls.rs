//! TLS to Redis (`rediss://`, `rediss-cluster://`): the rustls client configuration
//! built from `REDIS_TLS_CA_FILE` (a private CA, as Kubernetes and self-hosted Redis
//! use) and `REDIS_TLS_CERT_FILE` + `REDIS_TLS_KEY_FILE` (mutual TLS). Without any of
//! them fred's default applies (the platform's roots, no client certificate).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS setting that cannot be used; start-up ends with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{setting}={}: {reason}", path.display())]
    File {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Combination(&'static str),
    #[error("REDIS_TLS_*: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The loaded client configuration (cheap to clone; `Debug` names no key material).
#[derive(Clone)]
pub struct RedisTls(pub(crate) Arc<ClientConfig>);

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisTls(..)")
    }
}

/// Whether `url` asks for TLS (`rediss://`, `rediss-cluster://`, ...).
pub(crate) fn url_uses_tls(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.split('-').next() == Some("rediss"))
}

/// Reads the files the settings name. `None` when none is set.
pub(crate) fn load(
    url: Option<&str>,
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Option<RedisTls>, TlsError> {
    if ca_file.is_none() && cert_file.is_none() && key_file.is_none() {
        return Ok(None);
    }
    if !url.is_some_and(url_uses_tls) {
        return Err(TlsError::Combination(
            "REDIS_TLS_* is set but REDIS_URL is not rediss:// or rediss-cluster://",
        ));
    }
    let client_files = match (cert_file, key_file) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(TlsError::Combination(
                "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE are set together or not at all",
            ));
        }
    };
    let roots = match ca_file {
        Some(path) => roots_from(path)?,
        None => platform_roots(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match client_files {
        Some((cert, key)) => {
            builder.with_client_auth_cert(certificates(cert)?, private_key(key)?)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Some(RedisTls(Arc::new(config))))
}

fn file_error(setting: &'static str, path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::File {
        setting,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(setting, path, e))?;
    if certs.is_empty() {
        return Err(file_error(setting, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn roots_from(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates("REDIS_TLS_CA_FILE", path)? {
        roots
            .add(cert)
            .map_err(|e| file_error("REDIS_TLS_CA_FILE", path, e))?;
    }
    Ok(roots)
}

/// The platform's roots, as fred's default connector trusts (unreadable ones skipped).
fn platform_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_certificates("REDIS_TLS_CERT_FILE", path)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error("REDIS_TLS_KEY_FILE", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_schemes_are_recognised() {
        assert!(url_uses_tls("rediss://a:1"));
        assert!(url_uses_tls("rediss-cluster://a:1,b:2"));
        assert!(!url_uses_tls("redis://a:1"));
        assert!(!url_uses_tls("redis-cluster://a:1"));
    }

    #[test]
    fn no_setting_is_no_configuration() {
        assert!(
            load(Some("redis://a:1"), None, None, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn tls_settings_on_a_plain_url_are_refused() {
        let ca = Path::new("/nonexistent.pem");
        for url in [Some("redis://a:1"), Some("redis-cluster://a:1"), None] {
            let error = load(url, Some(ca), None, None).unwrap_err();
            assert!(matches!(error, TlsError::Combination(_)), "{error}");
        }
    }

    #[test]
    fn a_missing_file_names_its_setting() {
        let missing = Path::new("/nonexistent/ca.pem");
        let error = load(Some("rediss://a:1"), Some(missing), None, None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("REDIS_TLS_CA_FILE=/nonexistent/ca.pem: "),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = load(Some("rediss://a:1"), Some(&empty), None, None).unwrap_err();
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let cert = Path::new("/nonexistent/cert.pem");
        let error = load(Some("rediss://a:1"), None, Some(cert), None).unwrap_err();
        assert!(matches!(error, TlsError::Combination(_)), "{error}");
    }
}
