//! REST rate limits with `tower_governor`: one general limit on every authenticated
//! route (socket upgrades included) and a stricter one on session creation, each keyed
//! by the token's user when the request has a valid one, else by the client address
//! (`client_ip`, which only believes trusted proxies). Refusals are the contract's 429
//! `rate_limited` with `Retry-After`.
//!
//! These buckets are per pod (in memory): behind N pods a client could get up to N
//! times the rate, so they are only the cheap first line against floods. Behind them
//! the same limits are counted once for every pod in the store (`shared_rate`), which
//! is what holds a client to the configured rate in total.

use crate::auth::caller::Authn;
use crate::error::ApiError;
use crate::limits::client_ip::ClientAddr;
use axum::body::Body;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use governor::middleware::NoOpMiddleware;
use shared::ids::UserId;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

/// Whom a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    User(UserId),
    Addr(IpAddr),
}

/// Keys by the verified user, else the resolved client address (both set by the
/// `authenticate` middleware, which runs first).
#[derive(Debug, Clone, Copy)]
pub struct CallerKey;

impl KeyExtractor for CallerKey {
    type Key = RateKey;

    fn name(&self) -> &'static str {
        "caller"
    }

    fn extract<T>(&self, request: &Request<T>) -> Result<Self::Key, GovernorError> {
        let extensions = request.extensions();
        if let Some(user) = extensions.get::<Authn>().and_then(Authn::user) {
            return Ok(RateKey::User(user.clone()));
        }
        extensions
            .get::<ClientAddr>()
            .map(|ClientAddr(ip)| RateKey::Addr(*ip))
            .ok_or(GovernorError::UnableToExtractKey)
    }

    fn key_name(&self, key: &Self::Key) -> Option<String> {
        Some(match key {
            RateKey::User(user) => format!("user {user}"),
            RateKey::Addr(ip) => format!("address {ip}"),
        })
    }
}

type Config = GovernorConfig<CallerKey, NoOpMiddleware>;

/// A limit of `per_minute` requests with bursts of `burst`; `None` when `per_minute` is 0.
pub struct RestLimit {
    config: Arc<Config>,
}

impl RestLimit {
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        if per_minute == 0 {
            return None;
        }
        let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute))
            .max(Duration::from_nanos(1));
        let config = GovernorConfigBuilder::default()
            .key_extractor(CallerKey)
            .period(period)
            .burst_size(burst.max(1))
            .finish()?;
        Some(Self {
            config: Arc::new(config),
        })
    }

    /// The layer answering the contract's 429.
    pub fn layer(&self) -> GovernorLayer<CallerKey, NoOpMiddleware, Body> {
        GovernorLayer::new(self.config.clone()).error_handler(refusal)
    }

    /// Forgets idle keys now and then, so memory does not grow with every address seen.
    pub fn spawn_cleanup(&self, shutdown: CancellationToken) {
        let config = self.config.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {
                        config.limiter().retain_recent();
                        config.limiter().shrink_to_fit();
                    }
                }
            }
        });
    }
}

fn refusal(error: GovernorError) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => ApiError::RateLimited {
            retry_after_secs: wait_time.max(1),
        }
        .into_response(),
        // Cannot happen with `authenticate` in front; refuse rather than let through.
        other => {
            tracing::error!(%other, "rate limiter could not key a request");
            ApiError::RateLimited {
                retry_after_secs: 1,
            }
            .into_response()
        }
    }
}
