//! Ids parsed once at the edge, so the inside never sees an unchecked string.
//!
//! Session ids may be chosen by clients (the simple client opens `/ws/user123`), so
//! they are not required to be UUIDs; they are restricted to a short, safe alphabet
//! because they are embedded in Redis keys as a `{hash tag}`, where a brace would
//! change the slot.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest session id accepted.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// Why a client-supplied id was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error(
        "session id must be 1 to {MAX_SESSION_ID_LEN} characters of letters, digits, '-', '_', '.' or ':'"
    )]
    InvalidSessionId,
    #[error("message id must be a UUID")]
    InvalidMessageId,
}

/// A chat session's id: a server-made UUID v4 or a client-chosen safe string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "4b4f8a5e-3f0c-4a8e-9d55-0d7e5b1c2a10")]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4().to_string())
    }

    /// Parses a client-supplied id.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_SESSION_ID_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::InvalidSessionId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SessionId> for String {
    fn from(value: SessionId) -> Self {
        value.0
    }
}

impl FromStr for SessionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored message's id (always server-made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[schema(value_type = String, format = Uuid)]
pub struct MessageId(Uuid);

impl MessageId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl FromStr for MessageId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| IdError::InvalidMessageId)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The user a session belongs to (from a token's claim, or the create body).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct UserId(String);

impl UserId {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_accept_seed_styles_and_refuse_the_rest() {
        for ok in [
            "user123",
            "react_user",
            "550e8400-e29b-41d4-a716-446655440000",
            "a.b:c",
        ] {
            assert!(SessionId::parse(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(MAX_SESSION_ID_LEN + 1);
        for bad in ["", "a{b}", "a b", "é", "a/b", long.as_str()] {
            assert_eq!(
                SessionId::parse(bad),
                Err(IdError::InvalidSessionId),
                "{bad}"
            );
        }
    }

    #[test]
    fn message_ids_are_uuids() {
        let id = MessageId::new_random();
        assert_eq!(id.to_string().parse::<MessageId>(), Ok(id));
        assert!("nope".parse::<MessageId>().is_err());
    }
}
