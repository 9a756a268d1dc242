//! A live socket's token: who it speaks for and until when. The socket loop closes the
//! socket with 4401 when the deadline passes unrefreshed ([`expiry`]), and a client
//! replaces the token in band with `{"type":"auth","token":"<JWT>"}` ([`SocketAuth::refresh`])
//! — so long chats do not drop and stale tokens do not live on.

use crate::auth::jwt::Identity;
use crate::state::AppState;
use shared::clock;
use shared::ids::{SessionId, UserId};
use shared::wire::{ErrorCode, Status, StatusEvent, StreamEvent};
use std::time::Duration;
use tokio::time::Instant;

/// The token state of one socket.
#[derive(Debug, Clone, Default)]
pub struct SocketAuth {
    /// `None` while authentication is off.
    user: Option<UserId>,
    /// When the token (plus leeway) expires; `None`: it does not (no `exp`, or auth off).
    deadline: Option<Instant>,
}

impl SocketAuth {
    /// Authentication is off: nothing expires.
    pub fn off() -> Self {
        Self::default()
    }

    /// The socket of a verified token.
    pub fn of(identity: &Identity, leeway_secs: u64) -> Self {
        Self {
            user: Some(identity.user.clone()),
            deadline: deadline_of(identity, leeway_secs),
        }
    }

    pub fn user(&self) -> Option<&UserId> {
        self.user.as_ref()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Replaces the token with a fresh one of the same user. On refusal the socket
    /// keeps its current token (and deadline) and gets an error event.
    pub fn refresh(&mut self, state: &AppState, token: &str) -> Result<(), (ErrorCode, String)> {
        let Some(verifier) = &state.security.verifier else {
            return Err((
                ErrorCode::InvalidRequest,
                "Authentication is not enabled on this server.".to_owned(),
            ));
        };
        let identity = verifier
            .verify(token)
            .map_err(|error| (ErrorCode::Unauthorized, error.client_message()))?;
        if self.user.as_ref() != Some(&identity.user) {
            return Err((
                ErrorCode::Unauthorized,
                "The new token is for another user; a socket keeps its user.".to_owned(),
            ));
        }
        self.deadline = deadline_of(&identity, verifier.leeway_secs());
        Ok(())
    }
}

/// Longest a socket deadline is set ahead: a token valid for centuries (or
/// `exp: 18446744073709551615`) still gets a deadline, one an `Instant` can hold.
const MAX_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

/// When the socket of this token must close: `exp` plus leeway, to the millisecond;
/// `None` only for a token without `exp` (allowed by `JWT_REQUIRE_EXP=false`).
pub fn deadline_of(identity: &Identity, leeway_secs: u64) -> Option<Instant> {
    let exp_ms = identity.expires_at_ms?;
    let now_ms = u64::try_from(clock::now_millis()).unwrap_or(0);
    let left_ms = exp_ms
        .saturating_add(leeway_secs.saturating_mul(1000))
        .saturating_sub(now_ms);
    let left = Duration::from_millis(left_ms).min(MAX_DEADLINE);
    let now = Instant::now();
    Some(now.checked_add(left).unwrap_or(now))
}

/// `{"type":"status","status":"authenticated"}`, the answer to a refresh.
pub fn authenticated(session_id: &SessionId) -> StreamEvent {
    StreamEvent::Status(StatusEvent {
        seq: None,
        status: Status::Authenticated,
        session_id: Some(session_id.clone()),
        message_id: None,
        timestamp: clock::now_rfc3339(),
        last_seq: None,
        recovered: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires_at_ms: Option<u64>) -> Identity {
        Identity {
            user: UserId::new("a"),
            budget: None,
            expires_at_ms,
        }
    }

    #[tokio::test]
    async fn every_exp_gives_a_deadline_an_instant_can_hold() {
        let now_ms = u64::try_from(clock::now_millis()).unwrap();
        for exp in [0, now_ms + 2_500, u64::MAX] {
            let deadline = deadline_of(&identity(Some(exp)), u64::MAX).expect("a deadline");
            assert!(deadline <= Instant::now() + MAX_DEADLINE);
        }
        let soon = deadline_of(&identity(Some(now_ms + 2_500)), 0).unwrap();
        let left = soon - Instant::now();
        assert!(left > Duration::from_millis(2_000) && left <= Duration::from_millis(2_500));
        assert_eq!(deadline_of(&identity(None), 0), None);
    }
}
