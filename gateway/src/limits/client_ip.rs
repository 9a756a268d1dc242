//! The client's address, for rate limits and per-address socket caps.
//!
//! The peer's address is the client's unless the peer is a configured trusted proxy.
//! Then the forwarding header that proxies write (one, chosen by configuration) is read
//! **from the right**: each trusted hop vouches for the address to its left, and the
//! first address not in the trusted list is the client. Anything left of it was
//! written by the client and is ignored, which is what makes a spoofed
//! `X-Forwarded-For: 1.2.3.4` useless. (tower_governor's `SmartIpKeyExtractor` takes
//! the leftmost entry, from anyone, so it is not used.)

use super::settings::ClientIpHeader;
use crate::config_error::ConfigError;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The resolved client address of a request (an extension set by [`record_client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    pub fn of<B>(request: &Request<B>, trusted: &TrustedProxies) -> Self {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Self(trusted.client_of(peer, request.headers()))
    }
}

/// Resolves the client's address once per request and leaves it in the request's
/// extensions for the layers and handlers after it (rate limits, socket caps).
pub async fn record_client(proxies: &TrustedProxies, mut request: Request, next: Next) -> Response {
    let client = ClientAddr::of(&request, proxies);
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// The reverse proxies whose forwarding header is believed.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ClientIpHeader,
}

impl TrustedProxies {
    /// Parses `TRUSTED_PROXIES` (comma-separated addresses or CIDRs; unset: none).
    pub fn parse(raw: Option<&str>, header: ClientIpHeader) -> Result<Self, ConfigError> {
        let mut nets = Vec::new();
        for item in raw.unwrap_or_default().split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "TRUSTED_PROXIES",
                        format!("{item:?} is not an IP address or CIDR"),
                    )
                })?;
            nets.push(net);
        }
        Ok(Self { nets, header })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` (a connection's peer) is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted, else the first
    /// untrusted address walking the forwarding chain from the right.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for hop in self.chain(headers).into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop {
                Some(ip) => client = ip.to_canonical(),
                // An entry we cannot read (`unknown`, an obfuscated name): stop at the
                // last hop we could vouch for.
                None => break,
            }
        }
        client
    }

    /// The addresses of the configured header, oldest (leftmost) first, across every
    /// occurrence of the header in order.
    fn chain(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let name = match self.header {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
        };
        let mut out = Vec::new();
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else {
                out.push(None);
                continue;
            };
            for element in value.split(',') {
                let address = match self.header {
                    ClientIpHeader::XForwardedFor => Some(element.trim()),
                    ClientIpHeader::Forwarded => element.split(';').find_map(|pair| {
                        let (key, value) = pair.trim().split_once('=')?;
                        key.trim()
                            .eq_ignore_ascii_case("for")
                            .then_some(value.trim())
                    }),
                };
                out.push(address.and_then(parse_node));
            }
        }
        out
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:80"`, `::1`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    raw.strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|inner| inner.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let proxies = TrustedProxies::parse(None, ClientIpHeader::XForwardedFor).unwrap();
        let spoof = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(proxies.client_of(ip("9.9.9.9"), &spoof), ip("9.9.9.9"));
    }

    #[test]
    fn the_chain_is_read_from_the_right_past_trusted_proxies_only() {
        let proxies =
            TrustedProxies::parse(Some("10.0.0.0/8, 127.0.0.1"), ClientIpHeader::XForwardedFor)
                .unwrap();
        let h = |v: &[&str]| headers("x-forwarded-for", v);
        // client -> 10.0.0.5 (LB) -> 127.0.0.1 (sidecar) -> us
        let chain = h(&["6.6.6.6, 5.5.5.5, 10.0.0.5"]);
        assert_eq!(proxies.client_of(ip("127.0.0.1"), &chain), ip("5.5.5.5"));
        // The leftmost entry is the client's own claim and never wins.
        assert_eq!(
            proxies.client_of(ip("10.1.1.1"), &h(&["1.1.1.1, 5.5.5.5"])),
            ip("5.5.5.5")
        );
        // Several header lines form one list.
        assert_eq!(
            proxies.client_of(ip("10.1.1.1"), &h(&["1.1.1.1", "5.5.5.5"])),
            ip("5.5.5.5")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(proxies.client_of(ip("8.8.8.8"), &chain), ip("8.8.8.8"));
        // Garbage stops the walk at the last hop we trust.
        assert_eq!(
            proxies.client_of(ip("10.1.1.1"), &h(&["1.1.1.1, garbage"])),
            ip("10.1.1.1")
        );
        // IPv4-mapped IPv6 peers count as their IPv4 address.
        assert_eq!(
            proxies.client_of(ip("::ffff:127.0.0.1"), &h(&["5.5.5.5"])),
            ip("5.5.5.5")
        );
    }

    #[test]
    fn forwarded_is_read_when_configured() {
        let proxies = TrustedProxies::parse(Some("127.0.0.1"), ClientIpHeader::Forwarded).unwrap();
        let forwarded = headers(
            "forwarded",
            &[r#"for=1.1.1.1, for="[2001:db8::1]:4711";proto=https"#],
        );
        assert_eq!(
            proxies.client_of(ip("127.0.0.1"), &forwarded),
            ip("2001:db8::1")
        );
        // X-Forwarded-For is not what this deployment's proxy writes: ignored.
        let xff = headers("x-forwarded-for", &["5.5.5.5"]);
        assert_eq!(proxies.client_of(ip("127.0.0.1"), &xff), ip("127.0.0.1"));
    }

    #[test]
    fn bad_entries_name_the_variable() {
        let error = TrustedProxies::parse(Some("10.0.0.0/8, nope"), ClientIpHeader::XForwardedFor)
            .unwrap_err();
        assert!(
            error.to_string().starts_with("TRUSTED_PROXIES: "),
            "{error}"
        );
    }
}
