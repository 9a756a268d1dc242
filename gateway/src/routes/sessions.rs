//! The session API: create, info, history, delete, cancel. Bodies are typed, so
//! `/openapi.json` describes exactly what is sent; the request body is parsed here (not
//! by axum's `Json`), so every malformed body gets the contract's 400, never a 415/422.

use super::ownership::{claim_session_slot, load_owned, release_session_slot, require_owner};
use super::refusals::{
    InvalidSessionId, SessionNotFound, TooManyRequests, Unauthenticated, Unavailable,
};
use crate::auth::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::socket_url::BadHost;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::clock;
use shared::ids::{MessageId, SessionId, UserId};
use shared::model::{CancelOutcome, NewSession, StoredMessage};
use shared::wire::Protocol;
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};

/// Default and largest `?limit=` of `GET .../messages`.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// The optional body of `POST /api/create-session` (an empty body is the same as `{}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    /// Owner when authentication is off (ignored with auth on: the token's user owns it).
    #[schema(max_length = 256)]
    user_id: Option<String>,
    /// Any JSON object, kept with the session (at most `MAX_METADATA_BYTES`).
    metadata: Option<Map<String, Value>>,
    /// The socket's event vocabulary; default `stream`.
    protocol: Option<Protocol>,
}

/// `201` of `POST /api/create-session`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    session_id: SessionId,
    /// `ws://` or `wss://` URL of the session's socket.
    websocket_url: String,
    created_at: String,
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    protocol: Protocol,
}

/// `GET /api/session/{id}/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    session_id: SessionId,
    created_at: String,
    last_activity_at: String,
    /// User and assistant messages stored.
    message_count: u64,
    user_id: Option<UserId>,
    /// Always `active`.
    #[schema(example = "active")]
    status: &'static str,
    protocol: Protocol,
    metadata: Value,
    /// Newest position of the session's event log (resume with `last_seq`).
    last_seq: u64,
}

/// `DELETE /api/session/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDeleted {
    /// Always `deleted`.
    #[schema(example = "deleted")]
    status: &'static str,
    session_id: SessionId,
    deleted_at: String,
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelStatus {
    /// The generation in progress (or next in line) was asked to stop.
    Cancelled,
    /// Nothing was being generated.
    Idle,
}

/// `POST /api/session/{id}/cancel`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelResult {
    status: CancelStatus,
    session_id: SessionId,
}

/// `GET /api/session/{id}/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagesPage {
    session_id: SessionId,
    /// Oldest first.
    messages: Vec<StoredMessage>,
    /// Older messages exist before the first one returned.
    has_more: bool,
}

/// Query of `GET /api/session/{id}/messages`. Read as text and checked here, so a bad
/// value gets a sentence saying what is allowed.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The id of a message of this session: the page ends just before it.
    #[param(value_type = Option<String>, format = Uuid)]
    before: Option<String>,
}

/// The `{id}` of a session route, parsed once (read as [`SessionPathParams`], which
/// `/openapi.json` describes). Every way it can be wrong (its
/// percent-escapes decode to no UTF-8 text, or it is not a valid id) is the contract's
/// JSON `invalid_request`, never axum's plain-text rejection.
pub struct SessionPath(pub SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(SessionPathParams { id: raw }) = Path::<SessionPathParams>::from_request_parts(parts, state)
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

/// The raw path parameters of a session route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPathParams {
    /// A session id (server-made UUID or client-chosen: 1 to 128 of letters, digits,
    /// `-`, `_`, `.`, `:`).
    #[param(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    id: String,
}

/// `POST /api/create-session`.
///
/// With authentication on, the session belongs to the token's user: a `user_id` in the
/// body is checked for length like any input but does not choose the owner.
#[utoipa::path(post, path = "/api/create-session", operation_id = "create_session", tag = "sessions",
    security((), ("bearer" = [])),
    request_body(content = Option<CreateSessionBody>, content_type = "application/json",
        description = "Optional; any content type is read as JSON."),
    responses(
        (status = 201, description = "Created.", body = SessionCreated),
        (status = 400, description = "The body is not a JSON object of these fields, `user_id` is too long, or the Host header is unusable (`invalid_request`).", body = ErrorBody),
        Unauthenticated,
        (status = 408, description = "The body did not arrive within `HTTP_REQUEST_TIMEOUT_SECS`.", body = ErrorBody),
        (status = 413, description = "The body is over `MAX_BODY_BYTES` or the metadata over `MAX_METADATA_BYTES` (`payload_too_large`).", body = ErrorBody),
        (status = 429, description = "Too many requests or sessions for this user or address; see `Retry-After`.", body = ErrorBody),
        Unavailable))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SessionCreated>), ApiError> {
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
    // No body, an empty one and `null` all mean "no options".
    let request: CreateSessionBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSessionBody::default()
    } else {
        serde_json::from_slice::<Option<CreateSessionBody>>(&body)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
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
        Json(SessionCreated {
            session_id: new.id,
            websocket_url,
            created_at: clock::millis_to_rfc3339(created_at_ms),
            status: "ready",
            protocol: new.protocol,
        }),
    ))
}

/// `GET /api/session/{id}/info`.
#[utoipa::path(get, path = "/api/session/{id}/info", operation_id = "session_info", tag = "sessions",
    params(SessionPathParams), security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The session.", body = SessionInfo),
        InvalidSessionId, Unauthenticated, SessionNotFound, TooManyRequests, Unavailable))]
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<SessionInfo>, ApiError> {
    let session = load_owned(&state, &caller, &id).await?;
    Ok(Json(SessionInfo {
        session_id: session.id,
        created_at: clock::millis_to_rfc3339(session.created_at_ms),
        last_activity_at: clock::millis_to_rfc3339(session.last_activity_ms),
        message_count: session.message_count,
        user_id: session.user_id,
        status: "active",
        protocol: session.protocol,
        metadata: session.metadata,
        last_seq: session.last_seq,
    }))
}

/// `DELETE /api/session/{id}`: drops everything and closes its sockets (4404).
#[utoipa::path(delete, path = "/api/session/{id}", operation_id = "delete_session", tag = "sessions",
    params(SessionPathParams), security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted; its sockets were closed with 4404.", body = SessionDeleted),
        InvalidSessionId, Unauthenticated, SessionNotFound, TooManyRequests, Unavailable))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<SessionDeleted>, ApiError> {
    // Checked, then deleted: only a client-chosen id deleted and re-created by another
    // user in between could be hit, and only by its former owner.
    let owner = require_owner(&state, &caller, &id).await?;
    if !state.backend.delete_session(&id).await? {
        return Err(ApiError::SessionNotFound);
    }
    release_session_slot(&state, owner.as_ref(), &id).await;
    Ok(Json(SessionDeleted {
        status: "deleted",
        session_id: id,
        deleted_at: clock::now_rfc3339(),
    }))
}

/// `POST /api/session/{id}/cancel`: stops the generation in progress from any
/// instance (for dashboards without a socket).
#[utoipa::path(post, path = "/api/session/{id}/cancel", operation_id = "cancel_generation", tag = "sessions",
    params(SessionPathParams), security((), ("bearer" = [])),
    responses(
        (status = 200, description = "`cancelled` (its `complete` follows, marked `cancelled`) or `idle`.", body = CancelResult),
        InvalidSessionId, Unauthenticated, SessionNotFound, TooManyRequests, Unavailable))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<CancelResult>, ApiError> {
    require_owner(&state, &caller, &id).await?;
    let status = match state.backend.cancel(&id).await? {
        CancelOutcome::Cancelled => CancelStatus::Cancelled,
        CancelOutcome::Idle => CancelStatus::Idle,
        CancelOutcome::SessionNotFound => return Err(ApiError::SessionNotFound),
    };
    Ok(Json(CancelResult {
        status,
        session_id: id,
    }))
}

/// `GET /api/session/{id}/messages?limit=&before=`.
#[utoipa::path(get, path = "/api/session/{id}/messages", operation_id = "session_messages", tag = "sessions",
    params(SessionPathParams, MessagesQuery), security((), ("bearer" = [])),
    responses(
        (status = 200, description = "One page of history, oldest first.", body = MessagesPage),
        (status = 400, description = "A bad id, `limit` or `before` (`invalid_request`).", body = ErrorBody),
        Unauthenticated, SessionNotFound, TooManyRequests, Unavailable))]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Json<MessagesPage>, ApiError> {
    let Query(query) = query?;
    let limit = match &query.limit {
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
    let before = match &query.before {
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
    Ok(Json(MessagesPage {
        session_id: id,
        messages: page.messages,
        has_more: page.has_more,
    }))
}
