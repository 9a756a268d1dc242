//! `GET /metrics`: the Prometheus text of every family this process records (see
//! `shared::metrics`); a public route, like the probes, so scrapers need no token.

use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// `GET /metrics`. The inbox gauges are read from the store at scrape time; when it
/// cannot be reached they keep their last value (and `/health` says why).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.",
        content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let queue = state.backend.queue_stats().await.ok();
    (
        [(CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
        shared::metrics::render(queue),
    )
}
