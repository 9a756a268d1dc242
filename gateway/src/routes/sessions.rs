//! The session API: create, info, history, delete.

use super::ownership::{claim_session_slot, load_owned, release_session_slot, require_owner};
use crate::auth::caller::Caller;
use crate::error::ApiError;
use crate::socket_url::BadHost;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::clock;
use shared::ids::{MessageId, SessionId, UserId};
use shared::model::{CancelOutcome, NewSession};
use shared::wire::Protocol;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Default and largest `?limit=` of `GET .../messages`.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// The optional body of `POST /api/create-session`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSessionBody {
    user_id: Option<String>,
    metadata: Option<Map<String, Value>>,
    protocol: Option<Protocol>,
}

/// The `{id}` of a session route, parsed once. Every way it can be wrong (its
/// percent-escapes decode to no UTF-8 text, or it is not a valid id) is the contract's
/// JSON `invalid_request`, never axum's plain-text rejection.
pub struct SessionPath(pub SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::InvalidRequest(
                    "The session id in the path is not valid: its percent-escapes do not decode to UTF-8 text."
                        .into(),
                )
            })?;
        SessionId::parse(&raw)
            .map(SessionPath)
            .map_err(|e| ApiError::InvalidRequest(format!("{e}.")))
    }
}

/// `POST /api/create-session`.
///
/// With authentication on, the session belongs to the token's user: a `user_id` in the
/// body is checked for length like any input but does not choose the owner.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body?;
    // Checked before anything is created: a Host that cannot be used is refused.
    let new_id = SessionId::new_random();
    let proxied = peer.is_some_and(|Extension(ConnectInfo(addr))| {
        state.security.trusted_proxies.trusts(addr.ip())
    });
    let websocket_url = state
        .security
        .socket_urls
        .for_request(&headers, proxied, state.settings.port, &new_id)
        .map_err(|BadHost| {
            ApiError::InvalidRequest(
                "The Host header is not a valid host[:port]; the server cannot tell clients where to connect.".into(),
            )
        })?;
    let limits = &state.settings.limits;
    let request: CreateSessionBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSessionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::InvalidRequest(format!(
                "The body must be a JSON object with optional user_id (string), metadata (object) and protocol (\"stream\" or \"simple\"): {e}."
            ))
        })?
    };
    let user_id = match request.user_id {
        Some(user) if user.chars().count() > limits.max_user_id_chars as usize => {
            return Err(ApiError::InvalidRequest(format!(
                "user_id is longer than {} characters.",
                limits.max_user_id_chars
            )));
        }
        Some(user) if user.trim().is_empty() => None,
        other => other.map(UserId::new),
    };
    let user_id = caller.owner().cloned().or(user_id);
    let metadata = Value::Object(request.metadata.unwrap_or_default());
    if metadata.to_string().len() > limits.max_metadata_bytes as usize {
        return Err(ApiError::PayloadTooLarge(format!(
            "metadata is larger than {} bytes.",
            limits.max_metadata_bytes
        )));
    }
    let created_at_ms = clock::now_millis();
    let new = NewSession {
        id: new_id,
        user_id,
        metadata,
        protocol: request.protocol.unwrap_or(Protocol::Stream),
        created_at_ms,
    };
    if let Some(owner) = caller.owner() {
        claim_session_slot(&state, owner, &new.id).await?;
    }
    let created = state.backend.create_session(&new).await;
    if !matches!(created, Ok(true)) {
        release_session_slot(&state, caller.owner(), &new.id).await;
    }
    if !created? {
        // A random v4 UUID collided: astronomically unlikely, but never overwrite.
        return Err(ApiError::InvalidRequest("Please retry.".into()));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "session_id": new.id,
            "websocket_url": websocket_url,
            "created_at": clock::millis_to_rfc3339(created_at_ms),
            "status": "ready",
            "protocol": new.protocol,
        })),
    ))
}

/// `GET /api/session/{id}/info`.
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<Value>, ApiError> {
    let session = load_owned(&state, &caller, &id).await?;
    Ok(Json(json!({
        "session_id": session.id,
        "created_at": clock::millis_to_rfc3339(session.created_at_ms),
        "last_activity_at": clock::millis_to_rfc3339(session.last_activity_ms),
        "message_count": session.message_count,
        "user_id": session.user_id,
        "status": "active",
        "protocol": session.protocol,
        "metadata": session.metadata,
        "last_seq": session.last_seq,
    })))
}

/// `DELETE /api/session/{id}`: drops everything and closes its sockets (4404).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<Value>, ApiError> {
    // Checked, then deleted: only a client-chosen id deleted and re-created by another
    // user in between could be hit, and only by its former owner.
    let owner = require_owner(&state, &caller, &id).await?;
    if !state.backend.delete_session(&id).await? {
        return Err(ApiError::SessionNotFound);
    }
    release_session_slot(&state, owner.as_ref(), &id).await;
    Ok(Json(json!({
        "status": "deleted",
        "session_id": id,
        "deleted_at": clock::now_rfc3339(),
    })))
}

/// `POST /api/session/{id}/cancel`: stops the generation in progress from any
/// instance (for dashboards without a socket).
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<Value>, ApiError> {
    require_owner(&state, &caller, &id).await?;
    let status = match state.backend.cancel(&id).await? {
        CancelOutcome::Cancelled => "cancelled",
        CancelOutcome::Idle => "idle",
        CancelOutcome::SessionNotFound => return Err(ApiError::SessionNotFound),
    };
    Ok(Json(json!({"status": status, "session_id": id})))
}

/// `GET /api/session/{id}/messages?limit=&before=`.
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE}."
                ))
            })?,
    };
    let before = match query.get("before") {
        None => None,
        Some(raw) => Some(raw.parse::<MessageId>().map_err(|_| {
            ApiError::InvalidRequest("before must be the id of a message of this session.".into())
        })?),
    };
    load_owned(&state, &caller, &id).await?;
    let page = state
        .backend
        .history(&id, limit, before)
        .await?
        .ok_or_else(|| {
            ApiError::InvalidRequest("before is not a message of this session's history.".into())
        })?;
    Ok(Json(json!({
        "session_id": id,
        "messages": page.messages,
        "has_more": page.has_more,
    })))
}
