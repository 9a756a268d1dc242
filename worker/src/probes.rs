//! The standalone worker's small HTTP port: `/livez` (the process runs) and `/readyz`
//! (it can reach its store), for Kubernetes probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::backend::Backend;

/// The probe routes.
pub fn router(backend: Backend) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(json!({"status": "alive"})) }))
        .route("/readyz", get(readyz))
        .with_state(backend)
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
