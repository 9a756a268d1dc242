//! Server events as the load client reads them: only the fields it checks, borrowed
//! from the frame (this runs for every event of a saturated run). Unknown fields are
//! ignored, as the contract allows extra ones.

use std::borrow::Cow;

use serde::Deserialize;

/// One server event of either protocol.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    pub seq: Option<u64>,
    #[serde(borrow, default)]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub full_response: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub code: Option<Cow<'a, str>>,
    pub last_seq: Option<u64>,
    /// `assistant` (simple protocol).
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
}

/// What an event means to the session driver.
#[derive(Debug, PartialEq)]
pub enum Kind<'e> {
    Connected {
        last_seq: u64,
    },
    Typing,
    Restarted,
    FunctionCalled,
    Chunk(&'e str),
    Complete(&'e str),
    /// An `error`: with a `seq` it answers a message, without one it is a per-socket
    /// reply (the frame was refused).
    Error {
        code: &'e str,
        session_event: bool,
    },
    Ready,
    /// Simple protocol: the whole answer.
    Assistant,
    Pong,
    /// Anything else (`authenticated`, future events).
    Other,
}

impl Event<'_> {
    /// Parses a text frame.
    pub fn parse(text: &str) -> Result<Event<'_>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Classifies the event.
    pub fn kind(&self) -> Kind<'_> {
        match (self.kind.as_ref(), self.status.as_deref()) {
            ("status", Some("connected")) => Kind::Connected {
                last_seq: self.last_seq.unwrap_or(0),
            },
            ("status", Some("typing")) | ("typing", _) => Kind::Typing,
            ("status", Some("restarted")) => Kind::Restarted,
            ("status", Some("ready")) => Kind::Ready,
            ("function_called", _) => Kind::FunctionCalled,
            ("chunk", _) => Kind::Chunk(self.content.as_deref().unwrap_or("")),
            ("complete", _) => Kind::Complete(self.full_response.as_deref().unwrap_or("")),
            ("error", _) => Kind::Error {
                code: self.code.as_deref().unwrap_or("unknown"),
                session_event: self.seq.is_some(),
            },
            ("assistant", _) => Kind::Assistant,
            ("pong", _) => Kind::Pong,
            _ => Kind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_events_classify() {
        let cases = [
            (
                r#"{"type":"status","status":"connected","session_id":"s","timestamp":"t","last_seq":7}"#,
                Kind::Connected { last_seq: 7 },
            ),
            (
                r#"{"seq":8,"type":"status","status":"typing","session_id":"s","message_id":"m","timestamp":"t"}"#,
                Kind::Typing,
            ),
            (
                r#"{"seq":9,"type":"chunk","content":"Hi \"x\"","message_id":"m","timestamp":"t"}"#,
                Kind::Chunk("Hi \"x\""),
            ),
            (
                r#"{"seq":10,"type":"complete","full_response":"Hi","message_id":"m","timestamp":"t"}"#,
                Kind::Complete("Hi"),
            ),
            (
                r#"{"seq":11,"type":"error","error":"x","code":"llm_error","message_id":"m"}"#,
                Kind::Error {
                    code: "llm_error",
                    session_event: true,
                },
            ),
            (
                r#"{"type":"error","error":"x","code":"rate_limited","retry_after_ms":5}"#,
                Kind::Error {
                    code: "rate_limited",
                    session_event: false,
                },
            ),
            (
                r#"{"seq":12,"type":"status","status":"ready","session_id":"s","message_id":"m"}"#,
                Kind::Ready,
            ),
            (r#"{"type":"typing"}"#, Kind::Typing),
            (r#"{"type":"assistant","message":"Hi"}"#, Kind::Assistant),
            (r#"{"type":"pong"}"#, Kind::Pong),
            (
                r#"{"type":"function_called","function_name":"f","timestamp":"t"}"#,
                Kind::FunctionCalled,
            ),
            (r#"{"type":"status","status":"authenticated"}"#, Kind::Other),
        ];
        for (text, expected) in cases {
            let event = Event::parse(text).unwrap();
            assert_eq!(event.kind(), expected, "{text}");
        }
    }

    #[test]
    fn seq_and_message_id_are_read() {
        let event =
            Event::parse(r#"{"seq":3,"type":"chunk","content":"a","message_id":"m-1"}"#).unwrap();
        assert_eq!(event.seq, Some(3));
        assert_eq!(event.message_id.as_deref(), Some("m-1"));
        assert!(Event::parse("not json").is_err());
    }
}
