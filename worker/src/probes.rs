//! The standalone worker's small HTTP port: `/livez` (the process runs), `/readyz`
//! (it can reach its store), for Kubernetes probes, and `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::backend::Backend;

/// The probe routes.
pub fn router(backend: Backend) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(json!({"status": "alive"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(backend)
}

/// The worker's families (and the inbox gauges, read from the store now).
async fn metrics(State(backend): State<Backend>) -> impl IntoResponse {
    let queue = backend.queue_stats().await.ok();
    (
        [(CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
        shared::metrics::render(queue),
    )
}

async fn readyz(State(backend): State<Backend>) -> (StatusCode, Json<Value>) {
    match backend.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unready", "checks": {"store": error.to_string()}})),
        ),
    }
}
