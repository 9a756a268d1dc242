//! The rate limits that hold across every gateway pod: REST requests (socket upgrades
//! included), session creation and user messages, each per user (a valid token) or
//! per client address, checked in the store with one GCRA step
//! (`shared::backend::limits`). The per-pod `governor` buckets in [`super::rest`] and
//! the socket loop stay in front as a cheap first line: a flood is refused without a
//! store round trip, and what passes them is counted once for the whole deployment.
//!
//! If the store cannot answer, the request passes (the per-pod limits still hold) and
//! the failure is logged and counted: an outage of Redis must not also lock out every
//! client of a service that could otherwise still serve them.

use super::rest::RateKey;
use crate::auth::caller::Authn;
use crate::error::ApiError;
use crate::limits::client_ip::ClientAddr;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::backend::{Backend, Rate, RateOutcome};
use std::time::Duration;

/// Which limit a check is for (the scope's first word, and the metric's `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `RATE_LIMIT_PER_MINUTE`: every protected REST request and socket upgrade.
    Requests,
    /// `CREATE_SESSION_PER_MINUTE`.
    Sessions,
    /// `MESSAGES_PER_MINUTE_PER_USER` / `..._PER_ADDRESS`: user messages, over all of a
    /// caller's sockets.
    Messages,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Sessions => "sessions",
            Limit::Messages => "messages",
        }
    }
}

impl RateKey {
    /// The request's caller as the `authenticate` and `record_client` layers left it.
    pub fn of_request(request: &Request) -> Option<Self> {
        let extensions = request.extensions();
        if let Some(user) = extensions.get::<Authn>().and_then(Authn::user) {
            return Some(RateKey::User(user.clone()));
        }
        extensions
            .get::<ClientAddr>()
            .map(|ClientAddr(ip)| RateKey::Addr(*ip))
    }

    /// The store scope of this caller for `what` (`requests:user:alice`, ...).
    pub fn scope(&self, what: &str) -> String {
        match self {
            RateKey::User(user) => format!("{what}:user:{user}"),
            RateKey::Addr(ip) => format!("{what}:addr:{ip}"),
        }
    }
}

/// Counts one event of `limit` for `key` across all pods: `Some(wait)` when over the rate.
pub async fn check(backend: &Backend, limit: Limit, rate: Rate, key: &RateKey) -> Option<Duration> {
    let outcome = backend.check_rate(&key.scope(limit.as_str()), rate).await;
    let refused = match outcome {
        Ok(RateOutcome::Allowed { .. }) => None,
        Ok(RateOutcome::Limited { retry_after }) => Some(retry_after),
        Err(error) => {
            tracing::warn!(%error, limit = limit.as_str(), "cross-pod rate check failed; passing the request (per-pod limits still apply)");
            shared::metrics::limit_checked(limit.as_str(), "store_error");
            return None;
        }
    };
    shared::metrics::limit_checked(
        limit.as_str(),
        if refused.is_some() {
            "refused"
        } else {
            "allowed"
        },
    );
    refused
}

/// The REST side: answers 429 `rate_limited` with `Retry-After` when over the rate.
pub async fn enforce(
    backend: &Backend,
    limit: Limit,
    rate: Rate,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = RateKey::of_request(&request) else {
        // `record_client` always runs first; refuse rather than let an unkeyed one through.
        tracing::error!("cross-pod rate limit could not key a request");
        return ApiError::RateLimited {
            retry_after_secs: 1,
        }
        .into_response();
    };
    match check(backend, limit, rate, &key).await {
        None => next.run(request).await,
        Some(wait) => ApiError::RateLimited {
            retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
        }
        .into_response(),
    }
}
