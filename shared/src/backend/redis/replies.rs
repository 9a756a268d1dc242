//! Every script's reply, typed and parsed once. Each script returns one shape (written
//! in its header); anything else — a missing field, a field of the wrong type, an
//! unknown tag, trailing fields — is a [`StoreError::Corrupt`], never a default value.

use crate::backend::{Charge, PublishOutcome, StoreError};
use crate::ids::{MessageId, UserId};
use crate::model::*;
use fred::types::Value;

/// A script reply type: how one script's reply reads.
pub(super) trait ScriptReply: Sized {
    /// The script's name, for errors.
    const SCRIPT: &'static str;
    /// Only the one-Redis migration may span slots (`migrate_legacy.lua`).
    const SPANS_SLOTS: bool = false;
    fn parse(reply: Value) -> Result<Self, StoreError>;
}

fn corrupt(script: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{script} reply: {what}"))
}

fn text_of(script: &str, value: Option<Value>, what: &str) -> Result<String, StoreError> {
    match value {
        Some(Value::String(s)) => Ok(s.to_string()),
        Some(Value::Bytes(b)) => {
            String::from_utf8(b.to_vec()).map_err(|_| corrupt(script, format!("{what} not UTF-8")))
        }
        Some(other) => Err(corrupt(script, format!("{what} is {}", other.kind()))),
        None => Err(corrupt(script, format!("{what} missing"))),
    }
}

/// An array reply read field by field, in order.
struct Fields {
    script: &'static str,
    items: std::vec::IntoIter<Value>,
}

impl Fields {
    fn of(script: &'static str, reply: Value) -> Result<Self, StoreError> {
        match reply {
            Value::Array(items) => Ok(Self {
                script,
                items: items.into_iter(),
            }),
            other => Err(corrupt(
                script,
                format!("expected an array, got {}", other.kind()),
            )),
        }
    }

    fn text(&mut self, what: &str) -> Result<String, StoreError> {
        text_of(self.script, self.items.next(), what)
    }

    fn count(&mut self, what: &str) -> Result<u64, StoreError> {
        match self.items.next() {
            Some(Value::Integer(n)) if n >= 0 => Ok(n as u64),
            Some(other) => Err(corrupt(self.script, format!("{what} is {other:?}"))),
            None => Err(corrupt(self.script, format!("{what} missing"))),
        }
    }

    fn texts(&mut self, what: &str) -> Result<Vec<String>, StoreError> {
        match self.items.next() {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| text_of(self.script, Some(item), what))
                .collect(),
            Some(other) => Err(corrupt(self.script, format!("{what} is {}", other.kind()))),
            None => Err(corrupt(self.script, format!("{what} missing"))),
        }
    }

    fn message_id(&mut self) -> Result<MessageId, StoreError> {
        let raw = self.text("message id")?;
        raw.parse()
            .map_err(|_| corrupt(self.script, format!("message id {raw:?}")))
    }

    /// The reply has no fields left.
    fn end(mut self) -> Result<(), StoreError> {
        match self.items.next() {
            None => Ok(()),
            Some(extra) => Err(corrupt(self.script, format!("unexpected field {extra:?}"))),
        }
    }
}

fn integer(script: &str, reply: Value) -> Result<i64, StoreError> {
    match reply {
        Value::Integer(n) => Ok(n),
        other => Err(corrupt(
            script,
            format!("expected an integer, got {other:?}"),
        )),
    }
}

/// A 0 / 1 reply (create, touch, delete).
fn flag(script: &str, reply: Value) -> Result<bool, StoreError> {
    match integer(script, reply)? {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(corrupt(script, format!("flag {n}"))),
    }
}

/// `create_session.lua`: 1 created, 0 the id was taken.
pub(super) struct Created(pub bool);
impl ScriptReply for Created {
    const SCRIPT: &'static str = "create_session";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        flag(Self::SCRIPT, reply).map(Self)
    }
}

/// `requeue_entry.lua`: the entry added again, `None` when the given one was stale.
pub(super) struct Requeued(pub Option<String>);
impl ScriptReply for Requeued {
    const SCRIPT: &'static str = "requeue_entry";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        let entry = text_of(Self::SCRIPT, Some(reply), "entry id")?;
        Ok(Self(Some(entry).filter(|e| !e.is_empty())))
    }
}

/// `touch_session.lua`: 1 touched, 0 gone.
pub(super) struct Touched(pub bool);
impl ScriptReply for Touched {
    const SCRIPT: &'static str = "touch_session";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        flag(Self::SCRIPT, reply).map(Self)
    }
}

/// `delete_session.lua`: 1 deleted, 0 there was none.
pub(super) struct Deleted(pub bool);
impl ScriptReply for Deleted {
    const SCRIPT: &'static str = "delete_session";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        flag(Self::SCRIPT, reply).map(Self)
    }
}

/// `migrate_legacy.lua`: 1 moved, 0 nothing to move.
pub(super) struct Moved(pub bool);
impl ScriptReply for Moved {
    const SCRIPT: &'static str = "migrate_legacy";
    const SPANS_SLOTS: bool = true;
    fn parse(reply: Value) -> Result<Self, StoreError> {
        flag(Self::SCRIPT, reply).map(Self)
    }
}

/// `accept_message.lua`: `{'ok', id} | {'dup', id} | {'full'} | {'gone'}`.
impl ScriptReply for AcceptOutcome {
    const SCRIPT: &'static str = "accept_message";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        let mut fields = Fields::of(Self::SCRIPT, reply)?;
        let outcome = match fields.text("tag")?.as_str() {
            "ok" => AcceptOutcome::Accepted(fields.message_id()?),
            "dup" => AcceptOutcome::Duplicate(fields.message_id()?),
            "full" => AcceptOutcome::TooManyPending,
            "gone" => AcceptOutcome::SessionNotFound,
            other => return Err(corrupt(Self::SCRIPT, format!("tag {other:?}"))),
        };
        fields.end()?;
        Ok(outcome)
    }
}

/// `publish_events.lua`: the last seq, 0 gone, -1 fenced, -2 cancelled.
impl ScriptReply for PublishOutcome {
    const SCRIPT: &'static str = "publish_events";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        match integer(Self::SCRIPT, reply)? {
            0 => Ok(PublishOutcome::SessionGone),
            -1 => Ok(PublishOutcome::Fenced),
            -2 => Ok(PublishOutcome::Cancelled),
            n if n > 0 => Ok(PublishOutcome::Published { last_seq: n as u64 }),
            n => Err(corrupt(Self::SCRIPT, format!("seq {n}"))),
        }
    }
}

/// `begin_work.lua`: `{'ok', message json, attempt, tries, cancelled 0|1,
/// {history json...}, user id, metadata json, {call json...}, charge json,
/// last seq after typing} | {'gone'} | {'idle'}`.
impl ScriptReply for Begin {
    const SCRIPT: &'static str = "begin_work";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        let mut fields = Fields::of(Self::SCRIPT, reply)?;
        let begin = match fields.text("tag")?.as_str() {
            "gone" => Begin::SessionGone,
            "idle" => Begin::Idle,
            "ok" => {
                let queued = parse_queued(&fields.text("message")?)?;
                let attempt = fields.count("attempt")?;
                let tries = fields.count("tries")?;
                let cancelled = match fields.count("cancelled")? {
                    0 => false,
                    1 => true,
                    n => return Err(corrupt(Self::SCRIPT, format!("cancelled {n}"))),
                };
                let history = fields
                    .texts("history")?
                    .iter()
                    .map(|m| parse_message(m))
                    .collect::<Result<Vec<_>, _>>()?;
                let owner = fields.text("user id")?;
                let metadata = fields.text("metadata")?;
                let metadata = serde_json::from_str(&metadata)
                    .map_err(|e| corrupt(Self::SCRIPT, format!("metadata: {e}")))?;
                let mut tool_calls = fields
                    .texts("tool calls")?
                    .iter()
                    .map(|c| {
                        serde_json::from_str::<FunctionCall>(c)
                            .map_err(|e| corrupt(Self::SCRIPT, format!("tool call: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                tool_calls.sort_by_key(|c| (c.round, c.index));
                let charge = fields.text("charge")?;
                let charge = (!charge.is_empty())
                    .then(|| Charge::parse(&charge))
                    .transpose()?;
                // The seq `typing` took; 0 when begin published nothing.
                let announced_at = fields.count("last seq")?;
                Begin::Work(Box::new(Work {
                    message: queued.message,
                    trace: queued.trace,
                    attempt,
                    tries,
                    cancelled,
                    history,
                    tool_calls,
                    user_id: (!owner.is_empty()).then(|| UserId::new(owner)),
                    metadata,
                    log: if announced_at > 0 {
                        LogPosition::at(announced_at)
                    } else {
                        LogPosition::unknown()
                    },
                    charge,
                    announced: announced_at > 0,
                }))
            }
            other => return Err(corrupt(Self::SCRIPT, format!("tag {other:?}"))),
        };
        fields.end()?;
        Ok(begin)
    }
}

/// `finish_work.lua`: `'ok' | 'fenced' | 'gone'`.
impl ScriptReply for FinishOutcome {
    const SCRIPT: &'static str = "finish_work";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        match text_of(Self::SCRIPT, Some(reply), "outcome")?.as_str() {
            "ok" => Ok(FinishOutcome::Done),
            "fenced" => Ok(FinishOutcome::Fenced),
            "gone" => Ok(FinishOutcome::SessionGone),
            other => Err(corrupt(Self::SCRIPT, format!("outcome {other:?}"))),
        }
    }
}

/// `save_tool_calls.lua`: `'ok' | 'fenced' | 'cancelled' | 'gone'`.
/// `save_tool_calls.lua`: `{'ok', last seq (0: no events)} | 'fenced' | 'cancelled' |
/// 'gone'`, with the last seq kept for the worker's next publish.
pub(super) struct Saved {
    pub outcome: SaveOutcome,
    pub last_seq: Option<u64>,
}

impl ScriptReply for Saved {
    const SCRIPT: &'static str = "save_tool_calls";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        if let Value::Array(_) = reply {
            let mut fields = Fields::of(Self::SCRIPT, reply)?;
            let tag = fields.text("tag")?;
            if tag != "ok" {
                return Err(corrupt(Self::SCRIPT, format!("tag {tag:?}")));
            }
            let last_seq = fields.count("last seq")?;
            fields.end()?;
            return Ok(Saved {
                outcome: SaveOutcome::Saved,
                last_seq: (last_seq > 0).then_some(last_seq),
            });
        }
        let outcome = match text_of(Self::SCRIPT, Some(reply), "outcome")?.as_str() {
            "fenced" => SaveOutcome::Fenced,
            "cancelled" => SaveOutcome::Cancelled,
            "gone" => SaveOutcome::SessionGone,
            other => return Err(corrupt(Self::SCRIPT, format!("outcome {other:?}"))),
        };
        Ok(Saved {
            outcome,
            last_seq: None,
        })
    }
}

/// `cancel_generation.lua`: `'cancelled' | 'idle' | 'gone'`.
impl ScriptReply for CancelOutcome {
    const SCRIPT: &'static str = "cancel_generation";
    fn parse(reply: Value) -> Result<Self, StoreError> {
        match text_of(Self::SCRIPT, Some(reply), "outcome")?.as_str() {
            "cancelled" => Ok(CancelOutcome::Cancelled),
            "idle" => Ok(CancelOutcome::Idle),
            "gone" => Ok(CancelOutcome::SessionNotFound),
            other => Err(corrupt(Self::SCRIPT, format!("outcome {other:?}"))),
        }
    }
}

pub(super) fn parse_message(raw: &str) -> Result<StoredMessage, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("stored message: {e}")))
}

/// A pending list entry; entries queued before traces existed have no `trace`.
fn parse_queued(raw: &str) -> Result<QueuedMessage, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("queued message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::TraceContext;

    fn text(s: &str) -> Value {
        Value::String(s.into())
    }

    fn array(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    fn begin_ok(attempt: Value) -> Value {
        let queued = QueuedMessage {
            message: StoredMessage::user("hi"),
            trace: TraceContext::default(),
        };
        array(vec![
            text("ok"),
            text(&queued.to_json()),
            attempt,
            Value::Integer(1),
            Value::Integer(0),
            array(vec![]),
            text(""),
            text("{}"),
            array(vec![]),
            text(r#"{"scope":"user:u1","per_day":1000}"#),
            Value::Integer(7),
        ])
    }

    #[test]
    fn begin_reads_every_field() {
        let Begin::Work(work) = Begin::parse(begin_ok(Value::Integer(3))).unwrap() else {
            panic!("work");
        };
        assert_eq!((work.attempt, work.tries, work.cancelled), (3, 1, false));
        assert_eq!(work.user_id, None);
        let charge = work.charge.as_ref().expect("a charge");
        assert_eq!((&*charge.scope, charge.per_day), ("user:u1", Some(1000)));
        assert_eq!(
            (work.announced, work.log.get()),
            (true, Some(7)),
            "typing at 7"
        );
        assert!(matches!(
            Begin::parse(array(vec![text("idle")])),
            Ok(Begin::Idle)
        ));
    }

    #[test]
    fn malformed_begin_is_an_error_not_attempt_zero() {
        for bad in [Value::Null, text("3"), Value::Integer(-1)] {
            assert!(
                matches!(Begin::parse(begin_ok(bad)), Err(StoreError::Corrupt(_))),
                "a bad attempt"
            );
        }
        let Value::Array(mut short) = begin_ok(Value::Integer(3)) else {
            unreachable!()
        };
        short.pop();
        assert!(Begin::parse(array(short.clone())).is_err(), "missing seq");
        short.push(Value::Integer(0));
        short.push(text("extra"));
        assert!(Begin::parse(array(short)).is_err(), "trailing field");
        assert!(Begin::parse(array(vec![text("what")])).is_err());
        assert!(Begin::parse(text("ok")).is_err());
    }

    #[test]
    fn other_replies_refuse_unknown_shapes() {
        let id = MessageId::new_random();
        assert_eq!(
            AcceptOutcome::parse(array(vec![text("ok"), text(&id.to_string())])).unwrap(),
            AcceptOutcome::Accepted(id)
        );
        assert!(AcceptOutcome::parse(array(vec![text("ok")])).is_err());
        assert!(AcceptOutcome::parse(array(vec![text("ok"), text("not-an-id")])).is_err());
        assert!(AcceptOutcome::parse(array(vec![text("full"), text("x")])).is_err());
        assert_eq!(
            PublishOutcome::parse(Value::Integer(5)).unwrap(),
            PublishOutcome::Published { last_seq: 5 }
        );
        assert!(PublishOutcome::parse(Value::Integer(-3)).is_err());
        assert!(PublishOutcome::parse(text("5")).is_err());
        assert!(FinishOutcome::parse(text("maybe")).is_err());
        assert!(Saved::parse(Value::Integer(1)).is_err());
        assert!(Saved::parse(text("ok")).is_err(), "ok carries the last seq");
        let saved = Saved::parse(array(vec![text("ok"), Value::Integer(7)])).unwrap();
        assert_eq!(
            (saved.outcome, saved.last_seq),
            (SaveOutcome::Saved, Some(7))
        );
        let saved = Saved::parse(array(vec![text("ok"), Value::Integer(0)])).unwrap();
        assert_eq!(saved.last_seq, None, "no events, nothing learnt");
        assert_eq!(
            Saved::parse(text("fenced")).unwrap().outcome,
            SaveOutcome::Fenced
        );
        assert!(Saved::parse(array(vec![text("ok"), Value::Integer(7), text("x")])).is_err());
        assert!(CancelOutcome::parse(Value::Null).is_err());
        assert!(Created::parse(Value::Integer(2)).is_err());
        assert!(Touched::parse(Value::Integer(1)).unwrap().0);
        assert!(!Deleted::parse(Value::Integer(0)).unwrap().0);
    }
}
