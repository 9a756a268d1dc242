//! The session API: create, info, history, delete.

use super::ownership::{claim_session_slot, load_owned, release_session_slot, require_owner};
use crate::auth::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::clock;
use shared::ids::{MessageId, SessionId, UserId};
use shared::model::{CancelOutcome, NewSession};
use shared::wire::Protocol;
use std::collections::HashMap;

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

fn parse_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).map_err(|e| ApiError::InvalidRequest(format!("{e}.")))
}

/// `POST /api/create-session`.
///
/// With authentication on, the session belongs to the token's user: a `user_id` in the
/// body is checked for length like any input but does not choose the owner.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body?;
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
        id: SessionId::new_random(),
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
    let websocket_url = websocket_url(&state, &headers, &new.id);
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

/// The socket URL clients should use: the configured public URL, else what the
/// request says about how it reached us.
fn websocket_url(state: &AppState, headers: &HeaderMap, id: &SessionId) -> String {
    if let Some(public) = &state.settings.public_url {
        let base = public.trim_end_matches('/');
        let base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_owned()
        };
        return format!("{base}/ws/{id}");
    }
    let header_str = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header_str(header::HOST.as_str())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '@']))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("localhost:{}", state.settings.port));
    let secure = header_str("x-forwarded-proto")
        .and_then(|p| p.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let scheme = if secure { "wss" } else { "ws" };
    format!("{scheme}://{host}/ws/{id}")
}

/// `GET /api/session/{id}/info`.
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id)?;
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
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id)?;
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
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id)?;
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
    Path(raw_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id)?;
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
