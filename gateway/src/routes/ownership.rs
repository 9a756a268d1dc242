//! Whose session it is, for the session routes: with authentication on, a session
//! belongs to the user who created it and, for anyone else, does not exist (404 on
//! every route, same body as a missing one, so ids cannot be probed). A created session
//! takes a slot in its owner's cross-pod session count (`MAX_SESSIONS_PER_USER`).

use crate::auth::caller::Caller;
use crate::error::ApiError;
use crate::limits::sockets::session_scope;
use crate::state::AppState;
use shared::backend::SlotOutcome;
use shared::ids::{SessionId, UserId};
use shared::model::SessionRecord;

/// How long a client is told to wait when it holds too many sessions.
const TOO_MANY_SESSIONS_RETRY_SECS: u64 = 60;

/// The session, if it exists and the caller may see it.
pub async fn load_owned(
    state: &AppState,
    caller: &Caller,
    id: &SessionId,
) -> Result<SessionRecord, ApiError> {
    match state.backend.session(id).await? {
        Some(session) if caller.may_access(&session) => Ok(session),
        _ => Err(ApiError::SessionNotFound),
    }
}

/// For routes that act on a session without showing it (delete, cancel): with auth
/// on, the session must be the caller's, and its owner is returned; with auth off this
/// costs nothing (the action itself says whether the session exists).
pub async fn require_owner(
    state: &AppState,
    caller: &Caller,
    id: &SessionId,
) -> Result<Option<UserId>, ApiError> {
    match caller {
        Caller::Anonymous => Ok(None),
        Caller::User(_) => Ok(load_owned(state, caller, id).await?.user_id),
    }
}

/// Takes a slot for a new session among its owner's sessions (when limited).
pub async fn claim_session_slot(
    state: &AppState,
    owner: &UserId,
    id: &SessionId,
) -> Result<(), ApiError> {
    let limit = state.security.settings.max_sessions_per_user;
    if limit == 0 {
        return Ok(());
    }
    let ttl = state.settings.store.idle_ttl();
    match state
        .backend
        .acquire_slot(&session_scope(owner), id.as_str(), limit, ttl)
        .await?
    {
        SlotOutcome::Acquired { .. } => Ok(()),
        SlotOutcome::Full { held } => {
            tracing::info!(user = %owner, held, "session limit reached");
            Err(ApiError::RateLimited {
                retry_after_secs: TOO_MANY_SESSIONS_RETRY_SECS,
            })
        }
    }
}

/// Gives a deleted (or never created) session's slot back to its owner.
pub async fn release_session_slot(state: &AppState, owner: Option<&UserId>, id: &SessionId) {
    let Some(owner) = owner else { return };
    if let Err(error) = state
        .backend
        .release_slot(&session_scope(owner), id.as_str())
        .await
    {
        // It lapses on its own after the idle TTL.
        tracing::warn!(%error, "could not free a session's slot");
    }
}
