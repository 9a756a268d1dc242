//! Which web origins may call the gateway: CORS for REST, and the `Origin` check of
//! socket upgrades (the defence against cross-site WebSocket hijacking, which CORS does
//! not cover: browsers open sockets to any origin).
//!
//! `CORS_ALLOWED_ORIGINS` is a comma-separated list or `*`. Unset, it is `*` while
//! authentication is off (as the seeds run) and empty once it is on. A page served by
//! the gateway itself (same origin as the request's `Host`, or as `PUBLIC_URL`) is
//! always allowed, and so is a socket without an `Origin` header (a non-browser client
//! such as Node's `ws`, which no web page can impersonate).

use crate::config_error::ConfigError;
use axum::http::{HeaderName, HeaderValue, Method, header};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// Request headers a cross-origin page may send. Listed, not `*`: the Fetch standard
/// does not let `*` cover `Authorization`, so a strict browser would refuse every
/// authenticated call. `traceparent` / `tracestate` carry a caller's trace.
pub const ALLOWED_REQUEST_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

/// Response headers a cross-origin page may read besides the CORS-safelisted ones:
/// how long to wait after a 429, and what a 401 wants.
pub const EXPOSED_RESPONSE_HEADERS: [HeaderName; 2] =
    [header::RETRY_AFTER, header::WWW_AUTHENTICATE];

/// The allowed origins, normalised (lower case, no trailing slash).
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any: bool,
    allowed: Vec<String>,
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl OriginPolicy {
    /// From `CORS_ALLOWED_ORIGINS` (`None`: the default for the auth mode).
    pub fn parse(raw: Option<&str>, auth_on: bool) -> Result<Self, ConfigError> {
        let raw = match raw {
            Some(raw) => raw,
            None if auth_on => "",
            None => "*",
        };
        if raw.trim() == "*" {
            return Ok(Self {
                any: true,
                allowed: Vec::new(),
            });
        }
        let mut allowed = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if !item.contains("://") || HeaderValue::from_str(item).is_err() || item.contains('*') {
                return Err(ConfigError::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!(
                        "{item:?} is not an origin like https://app.example.com (or use * alone)"
                    ),
                ));
            }
            allowed.push(normalise(item));
        }
        Ok(Self {
            any: false,
            allowed,
        })
    }

    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// The CORS layer for REST.
    pub fn cors_layer(&self) -> CorsLayer {
        let layer = CorsLayer::new()
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers(ALLOWED_REQUEST_HEADERS)
            .expose_headers(EXPOSED_RESPONSE_HEADERS)
            .max_age(Duration::from_secs(600));
        if self.any {
            return layer.allow_origin(Any);
        }
        let list: Vec<HeaderValue> = self
            .allowed
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }

    /// Whether a socket upgrade with this `Origin` may proceed. `host` is the request's
    /// `Host`; `public_url` the configured `PUBLIC_URL`.
    pub fn allows_socket(
        &self,
        origin: Option<&HeaderValue>,
        host: Option<&HeaderValue>,
        public_url: Option<&str>,
    ) -> bool {
        let Some(origin) = origin else {
            return true; // not a browser
        };
        if self.any {
            return true;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = normalise(origin);
        if self.allowed.contains(&origin) {
            return true;
        }
        // Same origin: a page this gateway served (the demo) opening its own socket.
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        let same_host = host
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| authority == Some(h.trim().to_ascii_lowercase().as_str()));
        let same_public = public_url.is_some_and(|url| normalise(url) == origin);
        same_host || same_public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn the_default_depends_on_authentication() {
        assert!(OriginPolicy::parse(None, false).unwrap().allows_any());
        let closed = OriginPolicy::parse(None, true).unwrap();
        assert!(!closed.allows_any());
        assert!(!closed.allows_socket(
            Some(&hv("https://evil.example")),
            Some(&hv("gw:8002")),
            None
        ));
    }

    #[test]
    fn sockets_from_listed_same_or_no_origin_only() {
        let policy =
            OriginPolicy::parse(Some("https://App.example.com/, https://b.example"), true).unwrap();
        let host = hv("gw.example:8002");
        let allows = |origin: Option<&str>| {
            policy.allows_socket(
                origin.map(hv).as_ref(),
                Some(&host),
                Some("https://chat.example"),
            )
        };
        assert!(allows(None));
        assert!(allows(Some("https://app.example.com")));
        assert!(allows(Some("https://b.example")));
        assert!(
            allows(Some("http://gw.example:8002")),
            "same origin as Host"
        );
        assert!(allows(Some("https://chat.example")), "PUBLIC_URL");
        assert!(!allows(Some("https://evil.example")));
        assert!(!allows(Some("https://app.example.com.evil.example")));
        assert!(!allows(Some("null")));
    }

    #[test]
    fn bad_entries_name_the_variable() {
        for bad in ["app.example.com", "https://*.example.com"] {
            let error = OriginPolicy::parse(Some(bad), false).unwrap_err();
            assert!(
                error.to_string().starts_with("CORS_ALLOWED_ORIGINS: "),
                "{error}"
            );
        }
    }
}
