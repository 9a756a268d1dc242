//! Who is calling: the `authenticate` middleware reads the token from where the
//! contract puts it, verifies it once, and leaves the outcome in the request's
//! extensions ([`Authn`]) for the rate limiter (which keys by user), the
//! `require_caller` middleware (401 on REST) and the socket upgrade (4401 after the
//! upgrade, as the contract wants). Handlers take a [`Caller`].
//!
//! Where a token may be: `Authorization: Bearer <JWT>` on every route; on `/ws/{id}`
//! also `?token=<JWT>` or `Sec-WebSocket-Protocol: bearer, <JWT>` (browsers cannot set
//! headers on a WebSocket). A token in the query of a REST route is ignored: it would
//! end up in access logs and browser history.

use super::jwt::{AuthError, Identity, Verifier};
use crate::error::ApiError;
use axum::extract::{FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::ids::UserId;
use shared::model::SessionRecord;

/// The subprotocol a socket client offers, followed by its token, to authenticate.
pub const BEARER_PROTOCOL: &str = "bearer";

/// The outcome of authenticating one request.
#[derive(Debug, Clone)]
pub enum Authn {
    /// Authentication is off: everyone may do everything (as the seeds expect).
    Off,
    Verified(Identity),
    Failed(AuthError),
}

impl Authn {
    /// The user a valid token speaks for.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Authn::Verified(identity) => Some(&identity.user),
            _ => None,
        }
    }
}

/// The caller of a REST handler that passed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off.
    Anonymous,
    User(UserId),
}

impl Caller {
    /// The caller from an authentication outcome; a failure is the 401 to answer.
    pub fn from_authn(authn: &Authn) -> Result<Self, AuthError> {
        match authn {
            Authn::Off => Ok(Caller::Anonymous),
            Authn::Verified(identity) => Ok(Caller::User(identity.user.clone())),
            Authn::Failed(error) => Err(error.clone()),
        }
    }

    /// The owner a session created by this caller gets (`None` when auth is off: the
    /// body's `user_id`, if any, is then just a label).
    pub fn owner(&self) -> Option<&UserId> {
        match self {
            Caller::Anonymous => None,
            Caller::User(user) => Some(user),
        }
    }

    /// Whether this caller may see the session. With authentication on, a session
    /// belongs to the user who created it and does not exist for anyone else; a
    /// session with no owner (made while auth was off) belongs to no one.
    pub fn may_access(&self, session: &SessionRecord) -> bool {
        match self {
            Caller::Anonymous => true,
            Caller::User(user) => session.user_id.as_ref() == Some(user),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Authn>() {
            Some(authn) => Caller::from_authn(authn).map_err(ApiError::Unauthorized),
            // The middleware did not run: a wiring bug, refused rather than let through.
            None => Err(ApiError::Unauthorized(AuthError::Missing)),
        }
    }
}

/// Verifies the request's token (if authentication is on) and records the outcome for
/// the layers and handlers after it. Never refuses by itself.
/// `verifier` is `None` when authentication is off.
pub async fn authenticate(
    verifier: Option<&Verifier>,
    mut request: Request,
    next: Next,
) -> Response {
    let authn = match verifier {
        None => Authn::Off,
        Some(verifier) => {
            let path = request.uri().path();
            let socket = path == "/ws" || path.starts_with("/ws/");
            match token_of(request.headers(), request.uri(), socket) {
                None => Authn::Failed(AuthError::Missing),
                Some(token) => match verifier.verify(&token) {
                    Ok(identity) => Authn::Verified(identity),
                    Err(error) => {
                        tracing::debug!(%error, "token refused");
                        Authn::Failed(error)
                    }
                },
            }
        }
    };
    request.extensions_mut().insert(authn);
    next.run(request).await
}

/// Answers 401 to a REST request whose authentication failed.
pub async fn require_caller(request: Request, next: Next) -> Response {
    let outcome = request
        .extensions()
        .get::<Authn>()
        .map(Caller::from_authn)
        .unwrap_or(Err(AuthError::Missing));
    match outcome {
        Ok(_) => next.run(request).await,
        Err(error) => ApiError::Unauthorized(error).into_response(),
    }
}

/// The token of a request: the `Authorization: Bearer` header; on a socket also the
/// `token` query parameter or the `bearer` subprotocol.
pub fn token_of(headers: &HeaderMap, uri: &Uri, socket: bool) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = value.trim().splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
            && !token.trim().is_empty()
        {
            return Some(token.trim().to_owned());
        }
    }
    if !socket {
        return None;
    }
    if let Some(token) = uri.query().and_then(query_token) {
        return Some(token);
    }
    subprotocol_token(headers)
}

/// `token=<JWT>` from a query string (JWTs are base64url and dots: no decoding needed,
/// but percent-escapes are honoured for clients that escape everything).
fn query_token(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| percent_decode(value))
        .filter(|token| !token.is_empty())
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URI as it may be logged: the value of a `token` query parameter is replaced, so
/// tokens never reach logs.
pub fn redacted_uri(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("token") => format!("{name}=[redacted]"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), redacted.join("&"))
}

/// `Sec-WebSocket-Protocol: bearer, <JWT>`: the value after `bearer`.
fn subprotocol_token(headers: &HeaderMap) -> Option<String> {
    let offered: Vec<&str> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let at = offered
        .iter()
        .position(|p| p.eq_ignore_ascii_case(BEARER_PROTOCOL))?;
    offered
        .get(at + 1)
        .filter(|t| !t.is_empty())
        .map(|t| (*t).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn tokens_are_read_only_where_the_contract_puts_them() {
        let uri: Uri = "/ws/s1?protocol=stream&token=q.t.k".parse().unwrap();
        let none = headers(&[]);
        assert_eq!(token_of(&none, &uri, true).as_deref(), Some("q.t.k"));
        assert_eq!(
            token_of(&none, &uri, false),
            None,
            "no query tokens on REST"
        );
        let bearer = headers(&[("authorization", "Bearer h.t.k")]);
        assert_eq!(token_of(&bearer, &uri, false).as_deref(), Some("h.t.k"));
        let basic = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(token_of(&basic, &"/api".parse().unwrap(), false), None);
        let proto = headers(&[("sec-websocket-protocol", "bearer, p.t.k")]);
        let plain: Uri = "/ws/s1".parse().unwrap();
        assert_eq!(token_of(&proto, &plain, true).as_deref(), Some("p.t.k"));
        assert_eq!(token_of(&proto, &plain, false), None);
        let lone = headers(&[("sec-websocket-protocol", "bearer")]);
        assert_eq!(token_of(&lone, &plain, true), None);
    }

    #[test]
    fn logged_uris_carry_no_token() {
        let uri: Uri = "/ws/s1?protocol=stream&token=eyJ.secret.sig&last_seq=3"
            .parse()
            .unwrap();
        let logged = redacted_uri(&uri);
        assert_eq!(logged, "/ws/s1?protocol=stream&token=[redacted]&last_seq=3");
        assert!(!logged.contains("secret"));
        assert_eq!(redacted_uri(&"/health".parse().unwrap()), "/health");
    }

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(query_token("a=1&token=x%2Ey.z").as_deref(), Some("x.y.z"));
        assert_eq!(query_token("token=&a=1"), None);
        assert_eq!(query_token("tokens=x"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
