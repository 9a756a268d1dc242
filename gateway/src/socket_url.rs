//! What `POST /api/create-session` tells clients to connect to (`websocket_url`).
//!
//! The answer is built from `PUBLIC_URL` when it is set (checked at start-up: an
//! `http` or `https` URL with a host, no credentials, query or fragment). Without it,
//! from the request: its `Host` only if it is a plain `host[:port]` (anything else,
//! `"><script>` say, is refused with 400 rather than reflected to the client), and
//! `X-Forwarded-Proto` only from a peer in `TRUSTED_PROXIES` (anyone else could make
//! a client of a plain-text gateway believe it talks TLS, or the reverse).

use crate::config_error::ConfigError;
use axum::http::{HeaderMap, header};
use shared::ids::SessionId;
use std::net::Ipv6Addr;

/// The configured base of socket URLs, if any; built once.
#[derive(Debug, Clone)]
pub struct SocketUrls {
    /// `ws[s]://host[:port][/path]`, no trailing slash.
    public: Option<String>,
}

/// The request's `Host` cannot be used in a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHost;

impl SocketUrls {
    /// Checks `PUBLIC_URL`.
    pub fn parse(public_url: Option<&str>) -> Result<Self, ConfigError> {
        let Some(raw) = public_url.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Self { public: None });
        };
        let bad = |why: &str| ConfigError::new("PUBLIC_URL", format!("{raw:?} {why}"));
        let url = url::Url::parse(raw).map_err(|_| bad("is not a URL"))?;
        let scheme = match url.scheme() {
            "https" => "wss",
            "http" => "ws",
            _ => return Err(bad("must start with http:// or https://")),
        };
        let host = url.host_str().ok_or_else(|| bad("has no host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let path = url.path().trim_end_matches('/');
        Ok(Self {
            public: Some(format!("{scheme}://{host}{port}{path}")),
        })
    }

    /// The socket URL of session `id` for this request. `proxied` says whether the
    /// peer is a trusted proxy (whose `X-Forwarded-Proto` is believed);
    /// `fallback_port` is used when the request has no `Host` at all.
    pub fn for_request(
        &self,
        headers: &HeaderMap,
        proxied: bool,
        fallback_port: u16,
        id: &SessionId,
    ) -> Result<String, BadHost> {
        if let Some(base) = &self.public {
            return Ok(format!("{base}/ws/{id}"));
        }
        let host = match headers.get(header::HOST) {
            None => format!("localhost:{fallback_port}"),
            Some(value) => {
                let host = value.to_str().map_err(|_| BadHost)?.trim();
                if !valid_authority(host) {
                    return Err(BadHost);
                }
                host.to_owned()
            }
        };
        let secure = proxied
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|p| p.split(',').next())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        let scheme = if secure { "wss" } else { "ws" };
        Ok(format!("{scheme}://{host}/ws/{id}"))
    }
}

/// `host[:port]` as RFC 3986 has it, narrowed to what a `Host` header of a browser or
/// client holds: a DNS name or IPv4 address (letters, digits, `-`, `.`), or an IPv6
/// address in brackets; an optional port of digits.
fn valid_authority(authority: &str) -> bool {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.len() <= 253
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !h.starts_with(['-', '.'])
    });
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn hosts_are_plain_authorities_or_refused() {
        for good in [
            "chat.example.com",
            "localhost:8002",
            "10.0.0.1:80",
            "[::1]:8002",
            "[::1]",
        ] {
            assert!(valid_authority(good), "{good}");
        }
        for bad in [
            "\"><script>",
            "a b",
            "evil.com/x",
            "user@host",
            "host:port",
            "host:123456",
            "",
            "[zz]",
            "-x",
            ":80",
        ] {
            assert!(!valid_authority(bad), "{bad}");
        }
    }

    #[test]
    fn forwarded_proto_counts_only_from_trusted_proxies() {
        let urls = SocketUrls::parse(None).unwrap();
        let id = SessionId::parse("s").unwrap();
        let h = headers(&[("host", "chat.example.com"), ("x-forwarded-proto", "https")]);
        assert_eq!(
            urls.for_request(&h, false, 1, &id).unwrap(),
            "ws://chat.example.com/ws/s"
        );
        assert_eq!(
            urls.for_request(&h, true, 1, &id).unwrap(),
            "wss://chat.example.com/ws/s"
        );
        assert_eq!(
            urls.for_request(&HeaderMap::new(), false, 8002, &id)
                .unwrap(),
            "ws://localhost:8002/ws/s"
        );
        let evil = headers(&[("host", "\"><script>")]);
        assert_eq!(urls.for_request(&evil, true, 1, &id), Err(BadHost));
    }

    #[test]
    fn public_url_wins_and_is_checked() {
        let id = SessionId::parse("s").unwrap();
        let evil = headers(&[("host", "\"><script>")]);
        let urls = SocketUrls::parse(Some("https://chat.example.com/base/")).unwrap();
        assert_eq!(
            urls.for_request(&evil, false, 1, &id).unwrap(),
            "wss://chat.example.com/base/ws/s"
        );
        let urls = SocketUrls::parse(Some("http://127.0.0.1:8080")).unwrap();
        assert_eq!(
            urls.for_request(&evil, false, 1, &id).unwrap(),
            "ws://127.0.0.1:8080/ws/s"
        );
        for bad in [
            "javascript:alert(1)",
            "ftp://x",
            "https://u:p@x",
            "https://x/?q=1",
            "https://x/#f",
            "not a url",
        ] {
            let error = SocketUrls::parse(Some(bad)).unwrap_err();
            assert_eq!(error.variable, "PUBLIC_URL", "{bad}");
        }
    }
}
