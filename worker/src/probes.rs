//! The standalone worker's small HTTP port: `/livez` (the process runs), `/readyz`
//! (its intake is reading the inbox and its store answers), for Kubernetes probes,
//! and `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::backend::Backend;

use crate::consumer::Reading;

/// What the probes look at.
#[derive(Clone)]
struct Probed {
    backend: Backend,
    reading: Reading,
}

/// The probe routes for the consumer whose intake `reading` reports on.
pub fn router(backend: Backend, reading: Reading) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(json!({"status": "alive"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Probed { backend, reading })
}

/// The worker's families (and the inbox gauges, read from the store now).
async fn metrics(State(probed): State<Probed>) -> impl IntoResponse {
    let queue = probed.backend.queue_stats().await.ok();
    (
        [(CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
        shared::metrics::render(queue),
    )
}

/// Ready while the intake runs (not before it starts, not once it stopped for
/// shutdown, not while a dead one is restarted) and Redis answers.
async fn readyz(State(probed): State<Probed>) -> (StatusCode, Json<Value>) {
    if !probed.reading.is_running() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unready", "checks": {"intake": "not reading the inbox"}})),
        );
    }
    match probed.backend.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unready", "checks": {"store": error.to_string()}})),
        ),
    }
}
