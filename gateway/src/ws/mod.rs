//! `/ws/{session_id}` and `/ws` (a new session per socket): the upgrade (query, protocol rule, auto-creation, who may open
//! it: [`admission`], whose session it is) and the per-socket loop in [`socket`];
//! [`hub`] fans the bus out to sockets; [`token`] keeps a socket's token fresh;
//! [`budget`] bounds the frames a client may send.

pub mod admission;
pub mod budget;
pub mod hub;
pub mod rejoin;
pub mod socket;
pub mod token;

use crate::auth::caller::{Authn, BEARER_PROTOCOL, Caller};
use crate::error::ErrorBody;
use crate::limits::budget::Budget;
use crate::limits::client_ip::ClientAddr;
use crate::limits::rest::RateKey;
use crate::limits::sockets::{Admission, session_scope};
use crate::routes::refusals::UpgradeRefused;
use crate::state::AppState;
use admission::Gate;
use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::backend::SlotOutcome;
use shared::clock;
use shared::ids::SessionId;
use shared::model::NewSession;
use shared::wire::{ErrorCode, Protocol, StreamEvent};
use token::SocketAuth;

/// Close codes of the contract.
pub mod close {
    pub const NORMAL: u16 = 1000;
    /// The page's origin may not open sockets here.
    pub const POLICY: u16 = 1008;
    pub const INVALID_DATA: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTARTING: u16 = 1012;
    pub const OVERLOADED: u16 = 1013;
    /// Missing, invalid or expired token.
    pub const UNAUTHORIZED: u16 = 4401;
    pub const SESSION_NOT_FOUND: u16 = 4404;
    /// Too many sockets (or sessions) for this user or address, or a socket that kept
    /// sending frames past its budget (`budget`).
    pub const TOO_MANY_CONNECTIONS: u16 = 4429;
}

/// `/ws/{id}` query parameters. Read as text: a bad value is reported on the socket.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// `stream` or `simple`; default: the session's own (see the protocol rule).
    #[param(value_type = Option<Protocol>)]
    protocol: Option<String>,
    /// Resume: first replay every retained event with `seq` greater than this.
    #[param(value_type = Option<u64>, minimum = 0)]
    last_seq: Option<String>,
}

/// Upgrades, then runs the socket. Problems found before the socket runs (bad id,
/// unknown session) are reported on the socket, as the contract says, not as HTTP.
/// A request that is no WebSocket handshake gets the REST error body.
#[utoipa::path(get, path = "/ws/{id}", operation_id = "websocket", tag = "websocket",
    params(
        ("id" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,128}$",
            description = "The session id; unknown ids are auto-created when `AUTO_CREATE_SESSIONS` is on."),
        WsQuery,
        ("token" = Option<String>, Query, description = "A JWT, when authentication is on (or `Sec-WebSocket-Protocol: bearer, <JWT>`)."),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching protocols. Frames from the client: the `ClientFrameWire` schema; from the server: `StreamEvent` (stream protocol) or `SimpleEvent` (simple protocol). Refusals after the upgrade are an `error` event and a close code (4401, 4404, 4429, 1008, 1013); see docs/protocol.md."),
        UpgradeRefused))]
pub async fn upgrade(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    handshake: Handshake,
) -> Response {
    // An id that is not even UTF-8 is refused after the upgrade like any invalid id.
    let target = Target::Existing(path.map(|Path(id)| id).unwrap_or_default());
    serve(state, target, handshake)
}

/// `/ws` with no id: each socket gets a new session (the `connected` event names it),
/// `stream` unless `?protocol=` says otherwise, for clients written for a bare `/ws`.
#[utoipa::path(get, path = "/ws", operation_id = "websocket_new_session", tag = "websocket",
    params(
        WsQuery,
        ("token" = Option<String>, Query, description = "A JWT, when authentication is on (or `Sec-WebSocket-Protocol: bearer, <JWT>`)."),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching protocols, on a new session named by the `connected` event. Frames as on `/ws/{id}`; see docs/protocol.md."),
        UpgradeRefused))]
pub async fn upgrade_new_session(State(state): State<AppState>, handshake: Handshake) -> Response {
    serve(state, Target::New, handshake)
}

/// What both socket routes read from the request; every part is kept, even when
/// missing or broken, because `serve` decides how each is refused.
#[derive(FromRequestParts)]
pub struct Handshake {
    query: Result<Query<WsQuery>, QueryRejection>,
    headers: HeaderMap,
    authn: Option<Extension<Authn>>,
    client: Option<Extension<ClientAddr>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
}

/// Which session a socket is for.
enum Target {
    /// `/ws/{id}`: the raw id, checked after the upgrade.
    Existing(String),
    /// `/ws`: a new one.
    New,
}

fn serve(state: AppState, target: Target, handshake: Handshake) -> Response {
    let Handshake {
        query,
        headers,
        authn,
        client,
        ws,
    } = handshake;
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let body = ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!(
                    "This route is a WebSocket; open it with a WebSocket client ({}).",
                    rejection.body_text().trim_end_matches('.')
                ),
            );
            return (rejection.status(), axum::Json(body)).into_response();
        }
    };
    let gate = Gate::of(
        &state,
        &headers,
        authn.map(|Extension(a)| a),
        client.map(|Extension(c)| c),
    );
    let limits = &state.settings.limits;
    // Fields are strings, so this fails only on broken encoding; the values are checked below.
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let bytes = limits.ws_buffer_bytes as usize;
    ws.max_message_size(limits.ws_max_message_bytes as usize)
        .max_frame_size(limits.ws_max_message_bytes as usize)
        .read_buffer_size(bytes)
        .write_buffer_size(bytes)
        // Bounded: a peer that stops reading fails writes instead of growing memory.
        .max_write_buffer_size(bytes.max(limits.ws_max_message_bytes as usize) * 4)
        // A client sending its token as `Sec-WebSocket-Protocol: bearer, <JWT>` must
        // get `bearer` back, or browsers drop the socket.
        .protocols([BEARER_PROTOCOL])
        .on_upgrade(move |socket| async move {
            // Set-up is boxed so this task stays small while it waits on Redis; the
            // socket then lives in a task of its own (`Live::spawn`) and this one ends.
            match Box::pin(prepare(&state, &target, &query, &gate)).await {
                Ok((start, admission)) => {
                    // Held (permit, slots kept fresh) for exactly the socket's life.
                    let guard = admission.start();
                    let opened = Box::pin(socket::open(state, socket, start)).await;
                    if let Some((live, attachment)) = opened {
                        live.spawn(attachment, guard);
                    }
                }
                Err(refusal) => refuse(socket, refusal).await,
            }
        })
}

/// What a socket starts with.
pub struct SocketStart {
    pub session_id: SessionId,
    pub protocol: Protocol,
    /// `last_seq` the client resumes from, if it asked to.
    pub resume_from: Option<u64>,
    /// Who the socket's token speaks for, and until when.
    pub auth: SocketAuth,
    /// Whom its messages count against across pods (the user, else the address).
    pub payer: RateKey,
    /// The payer's token budget (`limits::budget`).
    pub budget: Budget,
}

/// Why a socket is refused right after the upgrade.
pub struct Refusal {
    code: ErrorCode,
    message: String,
    close_code: u16,
    protocol: Protocol,
}

/// The same answer for a session that does not exist and one of another user, so ids
/// cannot be probed.
const NO_SUCH_SESSION: &str =
    "No session with this id exists; create one with POST /api/create-session.";

async fn prepare(
    state: &AppState,
    target: &Target,
    query: &WsQuery,
    gate: &Gate,
) -> Result<(SocketStart, Admission), Refusal> {
    let asked_protocol = query.protocol.as_deref().map(Protocol::parse);
    let fallback = asked_protocol.flatten().unwrap_or(Protocol::Stream);
    let refuse = |code, message: &str, close_code| Refusal {
        code,
        message: message.to_owned(),
        close_code,
        protocol: fallback,
    };
    let (auth, mut admission) = admission::admit(state, gate, fallback).await?;
    let Some(asked_protocol) = asked_protocol.map_or(Some(None), |p| p.map(Some)) else {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "protocol must be \"stream\" or \"simple\".",
            close::SESSION_NOT_FOUND,
        ));
    };
    let resume_from = match query.last_seq.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            refuse(
                ErrorCode::InvalidRequest,
                "last_seq must be a non-negative integer.",
                close::SESSION_NOT_FOUND,
            )
        })?),
    };
    let session_id = match target {
        Target::New => SessionId::new_random(),
        Target::Existing(raw_id) => SessionId::parse(raw_id).map_err(|_| {
            refuse(
                ErrorCode::InvalidRequest,
                "The session id is not valid: use 1 to 128 letters, digits, '-', '_', '.' or ':'.",
                close::SESSION_NOT_FOUND,
            )
        })?,
    };
    let new_session = matches!(target, Target::New);
    let unavailable = |_| {
        refuse(
            ErrorCode::Unavailable,
            "The service is temporarily unavailable; please reconnect.",
            close::RESTARTING,
        )
    };
    let not_found = || {
        refuse(
            ErrorCode::SessionNotFound,
            NO_SUCH_SESSION,
            close::SESSION_NOT_FOUND,
        )
    };
    let caller = Caller::from_authn(gate.authn()).map_err(|_| not_found())?;
    // The user's session slot this socket took by auto-creating (given back if the
    // creation race was lost to another user).
    let mut claimed = None;
    let existing = if new_session {
        None
    } else {
        state
            .backend
            .session(&session_id)
            .await
            .map_err(unavailable)?
    };
    let session = match existing {
        Some(session) => session,
        // `/ws` creates its session whatever `AUTO_CREATE_SESSIONS` says, as
        // `POST /api/create-session` does.
        None if new_session || state.settings.auto_create_sessions() => {
            // Auto-created sessions belong to the token's user, and count against the
            // user's sessions like created ones.
            let owner = caller.owner().cloned();
            let limit = state.security.settings.max_sessions_per_user;
            if let Some(owner) = owner.as_ref().filter(|_| limit > 0) {
                let ttl = state.settings.store.idle_ttl();
                let outcome = state
                    .backend
                    .acquire_slot(&session_scope(owner), session_id.as_str(), limit, ttl)
                    .await
                    .map_err(unavailable)?;
                if let SlotOutcome::Full { held } = outcome {
                    return Err(Refusal {
                        code: ErrorCode::RateLimited,
                        message: format!(
                            "This user already has {held} sessions; delete one or wait for one to expire."
                        ),
                        close_code: close::TOO_MANY_CONNECTIONS,
                        protocol: fallback,
                    });
                }
                claimed = Some(session_scope(owner));
            }
            let new = NewSession {
                id: session_id.clone(),
                user_id: owner,
                metadata: serde_json::json!({}),
                // The protocol the socket asked for, so `GET .../info` tells the truth
                // (when it did not ask: `simple` on `/ws/{id}`, as the contract says,
                // `stream` on `/ws`).
                protocol: asked_protocol.unwrap_or(if new_session {
                    Protocol::Stream
                } else {
                    Protocol::Simple
                }),
                created_at_ms: clock::now_millis(),
            };
            // Losing a creation race to another socket is fine: the session exists
            // (and the ownership check below still applies to it).
            state
                .backend
                .create_session(&new)
                .await
                .map_err(unavailable)?;
            state
                .backend
                .session(&session_id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| {
                    refuse(
                        ErrorCode::SessionNotFound,
                        "The session was deleted.",
                        close::SESSION_NOT_FOUND,
                    )
                })?
        }
        None => return Err(not_found()),
    };
    // A session of another user does not exist for this caller.
    if !caller.may_access(&session) {
        if let Some(scope) = claimed {
            let _ = state
                .backend
                .release_slot(&scope, session_id.as_str())
                .await;
        }
        return Err(not_found());
    }
    if let Some(owner) = &session.user_id
        && caller.owner().is_some()
    {
        admission.keep_session(owner, &session_id, state.settings.store.idle_ttl());
    }
    let start = SocketStart {
        session_id,
        protocol: asked_protocol.unwrap_or(session.protocol),
        resume_from,
        auth,
        payer: gate.payer(),
        budget: state.security.budget.for_caller(gate.claimed_budget()),
    };
    Ok((start, admission))
}

async fn refuse(mut socket: WebSocket, refusal: Refusal) {
    let event = StreamEvent::error(refusal.code, refusal.message, None);
    let text = socket::render(&event, refusal.protocol).unwrap_or_else(|| event.to_json());
    let _ = socket.send(Message::Text(text.into())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: refusal.close_code,
            reason: refusal.code.as_str().into(),
        })))
        .await;
}
