//! `GET /api/usage`: the caller's token budget, window by window (`limits::budget`).

use super::refusals::{TooManyRequests, Unauthenticated, Unavailable};
use crate::auth::caller::{Authn, Caller};
use crate::error::ApiError;
use crate::limits::budget;
use crate::limits::rest::RateKey;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Request, State};
use serde::Serialize;
use utoipa::ToSchema;

/// One window of the caller's budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowReport {
    /// `day` (UTC) or `minute`.
    #[schema(example = "day")]
    pub window: &'static str,
    /// Tokens (prompt + completion) spent in the current window.
    pub used: u64,
    pub limit: u64,
    /// `limit - used`, never below 0.
    pub remaining: u64,
    /// When the window starts over, RFC 3339 UTC.
    pub resets_at: String,
}

/// The caller's usage: one entry per window with a budget (none when no budget is set).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub windows: Vec<WindowReport>,
}

/// `GET /api/usage`: tokens the caller (its user, else its address) used and has left.
#[utoipa::path(get, path = "/api/usage", operation_id = "usage", tag = "usage",
    security((), ("bearer" = [])), responses(
    (status = 200, description = "Tokens used and left per budget window.", body = UsageReport),
    Unauthenticated, TooManyRequests, Unavailable))]
pub async fn usage(
    State(state): State<AppState>,
    _caller: Caller,
    request: Request,
) -> Result<Json<UsageReport>, ApiError> {
    let payer = RateKey::of_request(&request).ok_or(ApiError::RateLimited {
        retry_after_secs: 1,
    })?;
    let claimed = match request.extensions().get::<Authn>() {
        Some(Authn::Verified(identity)) => identity.budget,
        _ => None,
    };
    let limits = state.security.budget.for_caller(claimed.as_ref());
    let windows = budget::usage(&state.backend, &payer, limits)
        .await?
        .into_iter()
        .map(|(w, limit)| WindowReport {
            window: w.window.name(),
            used: w.used,
            limit,
            remaining: limit.saturating_sub(w.used),
            resets_at: shared::clock::millis_to_rfc3339(w.resets_at_ms),
        })
        .collect();
    Ok(Json(UsageReport { windows }))
}
