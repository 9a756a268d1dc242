//! The client-facing wire format of `docs/protocol.md`: frames clients send, events the
//! server sends in the `stream` protocol, and their `simple`-protocol rendering.
//!
//! Events that belong to a session (everything but per-socket replies) get their
//! `seq` from the event log when they are published, so producers leave it `None`.

use crate::ids::{MessageId, SessionId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use utoipa::ToSchema;

/// Which event vocabulary a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `status` / `function_called` / `chunk` / `complete` / `error`, with `seq`.
    #[default]
    Stream,
    /// `typing`, then one `assistant` message (or `error`).
    Simple,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Stream => "stream",
            Protocol::Simple => "simple",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "stream" => Some(Protocol::Stream),
            "simple" => Some(Protocol::Simple),
            _ => None,
        }
    }
}

/// Machine-readable error codes, shared by REST bodies and `error` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    /// A path that is no route (`GET /` lists them).
    NotFound,
    SessionNotFound,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    Internal,
    InvalidJson,
    UnsupportedFrame,
    InvalidMessage,
    EmptyMessage,
    MessageTooLong,
    TooManyPending,
    /// The caller's token budget for the current day or minute is used up; the
    /// `error` event's `retry_after_ms` says when it resets.
    BudgetExceeded,
    /// The LLM failed or refused and retries gave up.
    LlmError,
    /// The LLM did not answer within its deadline.
    LlmTimeout,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::SessionNotFound => "session_not_found",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnsupportedFrame => "unsupported_frame",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::TooManyPending => "too_many_pending",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::LlmError => "llm_error",
            ErrorCode::LlmTimeout => "llm_timeout",
        }
    }
}

// ---------------------------------------------------------------------------
// Client to server

/// Longest `client_message_id` accepted.
pub const MAX_CLIENT_MESSAGE_ID_LEN: usize = 128;

/// A parsed client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// A user message; `client_message_id` makes a resend idempotent.
    Message {
        text: String,
        client_message_id: Option<String>,
    },
    Cancel,
    Ping,
    Auth {
        token: String,
    },
}

// The documented shape of a client frame (the schema in `/openapi.json`,
// `/asyncapi.json` and `docs/protocol.md`). Parsing is `parse_client_frame`'s job (it
// ignores extra fields and tells `invalid_json` from `invalid_message`);
// `ClientFrame::to_wire` maps a parsed frame onto this type, so tests hold the two
// together.
/// A text frame from the client (JSON): a user message or a control frame. Extra
/// fields are ignored; a frame of neither shape is answered with an `error` event
/// (`invalid_json` or `invalid_message`) and the socket stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ClientFrameWire {
    /// `{"type": "cancel" | "ping" | "auth", ...}`; a known `type` wins over `message`.
    Control(ControlFrame),
    /// `{"message": "...", "client_message_id"?: "..."}`: a user message. Extra fields
    /// (`user_id`, `session_id`, ...) are ignored.
    Message(MessageFrame),
}

/// A user message frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageFrame {
    /// The text; empty or whitespace-only gets `empty_message`, longer than
    /// `MAX_MESSAGE_CHARS` gets `message_too_long`.
    pub message: String,
    /// Makes a resend idempotent: the same id is answered once (1 to 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 128)]
    pub client_message_id: Option<String>,
}

/// A control frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlFrame {
    /// Stop the generation in progress.
    Cancel,
    /// Answered by `{"type":"pong"}`.
    Ping,
    /// Replaces the socket's token before it expires (same user only).
    Auth { token: String },
}

impl ClientFrame {
    /// The frame in its documented JSON shape.
    pub fn to_wire(&self) -> ClientFrameWire {
        match self {
            ClientFrame::Message {
                text,
                client_message_id,
            } => ClientFrameWire::Message(MessageFrame {
                message: text.clone(),
                client_message_id: client_message_id.clone(),
            }),
            ClientFrame::Cancel => ClientFrameWire::Control(ControlFrame::Cancel),
            ClientFrame::Ping => ClientFrameWire::Control(ControlFrame::Ping),
            ClientFrame::Auth { token } => ClientFrameWire::Control(ControlFrame::Auth {
                token: token.clone(),
            }),
        }
    }
}

/// Why a text frame could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame is not valid JSON")]
    InvalidJson,
    #[error("frame needs a string \"message\" or a known \"type\" (cancel, ping, auth)")]
    InvalidMessage,
}

impl FrameError {
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::InvalidJson => ErrorCode::InvalidJson,
            FrameError::InvalidMessage => ErrorCode::InvalidMessage,
        }
    }
}

/// Parses one text frame. Unknown extra fields (`user_id`, `session_id`, ...) are
/// ignored, as both reference clients send them.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::InvalidJson)?;
    let Value::Object(map) = value else {
        return Err(FrameError::InvalidMessage);
    };
    match map.get("type").and_then(Value::as_str) {
        Some("cancel") => return Ok(ClientFrame::Cancel),
        Some("ping") => return Ok(ClientFrame::Ping),
        Some("auth") => {
            return match map.get("token").and_then(Value::as_str) {
                Some(token) => Ok(ClientFrame::Auth {
                    token: token.to_owned(),
                }),
                None => Err(FrameError::InvalidMessage),
            };
        }
        _ => {}
    }
    let Some(Value::String(text)) = map.get("message") else {
        return Err(FrameError::InvalidMessage);
    };
    let client_message_id = match map.get("client_message_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_CLIENT_MESSAGE_ID_LEN => {
            Some(id.clone())
        }
        Some(_) => return Err(FrameError::InvalidMessage),
    };
    Ok(ClientFrame::Message {
        text: text.clone(),
        client_message_id,
    })
}

// ---------------------------------------------------------------------------
// Server to client, `stream` protocol

/// The `status` values of the stream protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Connected,
    Typing,
    Ready,
    Restarted,
    Authenticated,
}

/// One server event of the `stream` protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    Status(StatusEvent),
    FunctionCalled(FunctionCalledEvent),
    Chunk(ChunkEvent),
    Complete(CompleteEvent),
    Error(ErrorEvent),
    Pong {},
}

/// `{"type":"status", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    pub timestamp: String,
    /// On `connected`: the newest position of the session's event log at attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// On `connected` after a `last_seq` resume: whether every event was replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

/// `{"type":"function_called", ...}`: sent when the model calls a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCalledEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub function_name: String,
    /// The provider's id of the call (the same `call_id` as in history's
    /// `function_calls`).
    #[serde(default)]
    pub call_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    pub timestamp: String,
}

/// `{"type":"chunk", ...}`: a piece of the streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    pub timestamp: String,
}

/// `{"type":"complete", ...}`: the authoritative full answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompleteEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub full_response: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// True when the generation was stopped and `full_response` is partial.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// The tokens the answer cost, as the LLM provider reported them (over all its
    /// tool rounds); absent when the provider reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    pub timestamp: String,
}

/// LLM tokens of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// `{"type":"error", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// One human sentence.
    pub error: String,
    pub code: ErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    pub timestamp: String,
}

impl StreamEvent {
    /// A `status` event for a session, stamped now.
    pub fn status(status: Status, session_id: &SessionId, message_id: Option<MessageId>) -> Self {
        StreamEvent::Status(StatusEvent {
            seq: None,
            status,
            session_id: Some(session_id.clone()),
            message_id,
            timestamp: crate::clock::now_rfc3339(),
            last_seq: None,
            recovered: None,
        })
    }

    /// An `error` event, stamped now.
    pub fn error(code: ErrorCode, error: impl Into<String>, message_id: Option<MessageId>) -> Self {
        StreamEvent::Error(ErrorEvent {
            seq: None,
            error: error.into(),
            code,
            message_id,
            retry_after_ms: None,
            timestamp: crate::clock::now_rfc3339(),
        })
    }

    /// The event's position in its session's log, if it has one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            StreamEvent::Status(e) => e.seq,
            StreamEvent::FunctionCalled(e) => e.seq,
            StreamEvent::Chunk(e) => e.seq,
            StreamEvent::Complete(e) => e.seq,
            StreamEvent::Error(e) => e.seq,
            StreamEvent::Pong {} => None,
        }
    }

    /// Serializes to the compact JSON sent on the wire.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("wire events always serialize")
    }

    /// The `simple`-protocol rendering, or `None` when that protocol has no such event.
    pub fn to_simple(&self) -> Option<SimpleEvent> {
        match self {
            StreamEvent::Status(StatusEvent {
                status: Status::Typing,
                ..
            }) => Some(SimpleEvent::Typing),
            StreamEvent::Complete(e) => Some(SimpleEvent::Assistant {
                message: e.full_response.clone(),
            }),
            StreamEvent::Error(e) => Some(SimpleEvent::Error {
                error: e.error.clone(),
                code: e.code,
            }),
            StreamEvent::Pong {} => Some(SimpleEvent::Pong),
            _ => None,
        }
    }
}

/// One server event of the `simple` protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SimpleEvent {
    Typing,
    Assistant { message: String },
    Error { error: String, code: ErrorCode },
    Pong,
}

impl SimpleEvent {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("wire events always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn to_value(e: &StreamEvent) -> Value {
        serde_json::from_str(&e.to_json()).unwrap()
    }

    #[test]
    fn parses_both_clients_message_frames() {
        assert_eq!(
            parse_client_frame(r#"{"message":"What are your hours?"}"#),
            Ok(ClientFrame::Message {
                text: "What are your hours?".into(),
                client_message_id: None
            })
        );
        assert_eq!(
            parse_client_frame(
                r#"{"message":"hi","user_id":"web_user","session_id":"web_session"}"#
            ),
            Ok(ClientFrame::Message {
                text: "hi".into(),
                client_message_id: None
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"message":"hi","client_message_id":"c-1"}"#),
            Ok(ClientFrame::Message {
                text: "hi".into(),
                client_message_id: Some("c-1".into())
            })
        );
    }

    #[test]
    fn parses_control_frames() {
        assert_eq!(
            parse_client_frame(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"cancel"}"#),
            Ok(ClientFrame::Cancel)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"auth","token":"t"}"#),
            Ok(ClientFrame::Auth { token: "t".into() })
        );
    }

    #[test]
    fn refuses_bad_frames_with_the_contract_codes() {
        assert_eq!(parse_client_frame("not json"), Err(FrameError::InvalidJson));
        assert_eq!(
            parse_client_frame(r#"{"message":"x""#),
            Err(FrameError::InvalidJson)
        );
        for bad in [
            "5",
            "[]",
            r#""hi""#,
            "{}",
            r#"{"message":5}"#,
            r#"{"type":"dance"}"#,
            r#"{"type":"auth"}"#,
            r#"{"message":"x","client_message_id":7}"#,
        ] {
            assert_eq!(
                parse_client_frame(bad),
                Err(FrameError::InvalidMessage),
                "{bad}"
            );
        }
        let long_id = format!(
            r#"{{"message":"x","client_message_id":"{}"}}"#,
            "a".repeat(MAX_CLIENT_MESSAGE_ID_LEN + 1)
        );
        assert_eq!(
            parse_client_frame(&long_id),
            Err(FrameError::InvalidMessage)
        );
    }

    #[test]
    fn stream_events_match_the_contract_shapes() {
        let sid = SessionId::parse("s1").unwrap();
        let typing = to_value(&StreamEvent::status(Status::Typing, &sid, None));
        assert_eq!(typing["type"], "status");
        assert_eq!(typing["status"], "typing");
        assert_eq!(typing["session_id"], "s1");
        assert!(typing["timestamp"].as_str().unwrap().ends_with('Z'));

        let chunk = to_value(&StreamEvent::Chunk(ChunkEvent {
            seq: Some(3),
            content: "We are open ".into(),
            message_id: None,
            timestamp: "t".into(),
        }));
        assert_eq!(
            chunk,
            json!({"type":"chunk","seq":3,"content":"We are open ","timestamp":"t"})
        );

        let complete = to_value(&StreamEvent::Complete(CompleteEvent {
            seq: None,
            full_response: "done".into(),
            message_id: None,
            cancelled: false,
            usage: None,
            timestamp: "t".into(),
        }));
        assert_eq!(
            complete,
            json!({"type":"complete","full_response":"done","timestamp":"t"})
        );

        let called = to_value(&StreamEvent::FunctionCalled(FunctionCalledEvent {
            seq: Some(4),
            function_name: "book_appointment".into(),
            call_id: "call_1".into(),
            message_id: None,
            timestamp: "t".into(),
        }));
        assert_eq!(
            called,
            json!({"type":"function_called","seq":4,"function_name":"book_appointment",
                   "call_id":"call_1","timestamp":"t"})
        );

        let err = to_value(&StreamEvent::error(ErrorCode::EmptyMessage, "Empty.", None));
        assert_eq!(err["type"], "error");
        assert_eq!(err["error"], "Empty.");
        assert_eq!(err["code"], "empty_message");
        assert_eq!(to_value(&StreamEvent::Pong {}), json!({"type":"pong"}));
    }

    #[test]
    fn seq_spliced_in_front_still_parses() {
        let body = StreamEvent::Chunk(ChunkEvent {
            seq: None,
            content: "x".into(),
            message_id: Some(MessageId::new_random()),
            timestamp: "t".into(),
        })
        .to_json();
        let with_seq = format!("{{\"seq\":42,{}", &body[1..]);
        let parsed: StreamEvent = serde_json::from_str(&with_seq).unwrap();
        assert_eq!(parsed.seq(), Some(42));
    }

    #[test]
    fn simple_rendering_has_only_typing_assistant_error() {
        let sid = SessionId::parse("s").unwrap();
        assert_eq!(
            StreamEvent::status(Status::Typing, &sid, None)
                .to_simple()
                .unwrap()
                .to_json(),
            r#"{"type":"typing"}"#
        );
        assert!(
            StreamEvent::status(Status::Ready, &sid, None)
                .to_simple()
                .is_none()
        );
        let complete = StreamEvent::Complete(CompleteEvent {
            seq: Some(1),
            full_response: "Hello".into(),
            message_id: None,
            cancelled: false,
            usage: None,
            timestamp: "t".into(),
        });
        assert_eq!(
            complete.to_simple().unwrap().to_json(),
            r#"{"type":"assistant","message":"Hello"}"#
        );
        let chunk = StreamEvent::Chunk(ChunkEvent {
            seq: Some(1),
            content: "x".into(),
            message_id: None,
            timestamp: "t".into(),
        });
        assert!(chunk.to_simple().is_none());
    }
}
