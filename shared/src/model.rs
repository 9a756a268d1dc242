//! What is stored and what travels inside: sessions, messages, inbox deliveries and
//! the outcomes workers write.

use crate::backend::Charge;
use crate::clock;
use crate::ids::{MessageId, SessionId, UserId};
use crate::telemetry::TraceContext;
use crate::wire::{ErrorCode, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// One message of a session's history, as stored and as `GET .../messages` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoredMessage {
    pub id: MessageId,
    pub role: Role,
    pub content: String,
    /// RFC 3339 UTC with a `Z`.
    pub created_at: String,
    /// On assistant messages: the user message this answers. History is in the order
    /// things happened, so with queued messages an answer may follow later questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// On assistant messages: the generation was stopped and this is partial.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// On assistant messages: the tools the model called for this answer, in the
    /// order they ran (turn by turn, each turn in the provider's order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub function_calls: Vec<FunctionCall>,
}

/// One tool call of an answer: stored with the answer's state as soon as the model
/// made it (without `result`), again once it ran (with it), and kept in the history
/// on the assistant message. A restarted answer reuses the calls that have a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    pub name: String,
    /// The provider's id of the call.
    pub call_id: String,
    /// The arguments as the model wrote them (JSON text).
    pub arguments: String,
    /// What the model was given: the tool's answer or `{"error": ...}`. `None` while
    /// the call runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The model turn of the answer (0-based) that made the call.
    pub round: u32,
    /// Position of the call in its turn, as the provider sent them.
    pub index: u32,
}

impl FunctionCall {
    /// The field it is stored under: sorts in run order.
    pub fn slot(&self) -> String {
        format!("{:04}:{:04}", self.round, self.index)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("function calls always serialize")
    }
}

impl StoredMessage {
    /// A user message accepted now.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            id: MessageId::new_random(),
            role: Role::User,
            content: content.into(),
            created_at: clock::now_rfc3339(),
            reply_to: None,
            cancelled: false,
            function_calls: Vec::new(),
        }
    }

    /// An assistant answer to `reply_to`, completed now.
    pub fn assistant(content: impl Into<String>, reply_to: MessageId, cancelled: bool) -> Self {
        Self {
            id: MessageId::new_random(),
            role: Role::Assistant,
            content: content.into(),
            created_at: clock::now_rfc3339(),
            reply_to: Some(reply_to),
            cancelled,
            function_calls: Vec::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("messages always serialize")
    }
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: Option<UserId>,
    /// A JSON object (validated by the gateway).
    pub metadata: Value,
    pub protocol: Protocol,
    pub created_at_ms: i64,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: Option<UserId>,
    pub created_at_ms: i64,
    pub last_activity_ms: i64,
    /// User and assistant messages ever stored.
    pub message_count: u64,
    pub protocol: Protocol,
    pub metadata: Value,
    /// Newest position of the session's event log.
    pub last_seq: u64,
}

/// One page of history, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub messages: Vec<StoredMessage>,
    /// Older messages exist before the first one returned.
    pub has_more: bool,
}

/// What became of a user message handed to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum AcceptOutcome {
    /// Stored and queued.
    Accepted(MessageId),
    /// The same `client_message_id` was accepted before, as this message.
    Duplicate(MessageId),
    /// The session already has the configured maximum of unanswered messages.
    TooManyPending,
    SessionNotFound,
}

/// Events replayed from a session's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// JSON events with `seq` greater than asked for, in order.
    pub events: Vec<String>,
    /// False when events after the asked position were no longer retained.
    pub recovered: bool,
    /// Newest position of the log.
    pub last_seq: u64,
}

/// The inbox's backlog, for `/status` and autoscaling.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueueStats {
    /// Sessions waiting for or being answered.
    pub backlog: u64,
    /// Age of the oldest entry, in milliseconds.
    pub oldest_age_ms: u64,
    /// Messages given up on after too many tries (the dead-letter stream's length).
    pub dead_letters: u64,
}

/// A user message as the session's pending list holds it until answered: the
/// message's fields, plus the trace it was accepted in (under `trace`, absent when
/// traces are off), so whichever worker answers it, even after a crash, continues
/// that trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedMessage {
    #[serde(flatten)]
    pub message: StoredMessage,
    #[serde(default, skip_serializing_if = "TraceContext::is_empty")]
    pub trace: TraceContext,
}

impl QueuedMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("messages always serialize")
    }
}

/// An inbox entry handed to a worker: "this session has a message to answer".
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub entry_id: String,
    pub session_id: SessionId,
}

/// What a worker needs to answer the session's oldest pending message.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub message: StoredMessage,
    /// The trace the message was accepted in.
    pub trace: TraceContext,
    /// The fence: only the holder of the newest attempt may publish or finish.
    pub attempt: u64,
    /// How many times this message was started (1 = first try; more = restarted).
    pub tries: u64,
    /// A cancel was requested before this try began.
    pub cancelled: bool,
    /// The session's most recent history (includes `message` and possibly later ones).
    pub history: Vec<StoredMessage>,
    /// Tool calls an earlier try of this message stored, in run order (empty on a
    /// first try).
    pub tool_calls: Vec<FunctionCall>,
    /// The session's owner, for tool calls.
    pub user_id: Option<UserId>,
    /// The session's metadata (a JSON object), for tool calls.
    pub metadata: Value,
    /// The session's last seq as this attempt's own publishes left it.
    pub log: LogPosition,
    /// Who pays for the answer (`None`: no budget to check or charge).
    pub charge: Option<Charge>,
    /// The `typing` status is already published: the store does it when it begins a
    /// first try that is not cancelled and has no charge to check first.
    pub announced: bool,
}

impl Work {
    /// What a worker's publishes carry so they stop when they no longer own the message.
    pub fn fence(&self) -> Fence<'_> {
        Fence {
            attempt: self.attempt,
            message_id: self.message.id,
            log: &self.log,
        }
    }
}

/// Guards a worker's publishes: refused once another attempt owns the message or the
/// message was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence<'a> {
    pub attempt: u64,
    pub message_id: MessageId,
    /// Where the holder's last publish left the session's log; each publish moves it.
    pub log: &'a LogPosition,
}

/// The last seq of a session's log as a publisher last saw it: a publish starts
/// numbering after it without reading the log first (Redis: one command less per
/// batch), and the store checks it in the same step, so a position another publisher
/// has moved past costs only that read. Only the store sets it, and only to a last
/// seq a publish returned: a position between two batches' seqs is never held (the
/// Redis check relies on it, `publish_batch.lua`).
#[derive(Debug)]
pub struct LogPosition(std::sync::atomic::AtomicU64);

impl Default for LogPosition {
    fn default() -> Self {
        Self::unknown()
    }
}

impl LogPosition {
    /// `u64::MAX`: no publish yet (seqs never reach it).
    const UNKNOWN: u64 = u64::MAX;

    /// A position not known yet: the first publish reads the log.
    pub fn unknown() -> Self {
        Self(std::sync::atomic::AtomicU64::new(Self::UNKNOWN))
    }

    /// A position the store knows to be a last seq.
    pub(crate) fn at(last_seq: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(last_seq))
    }

    /// The last seq, once a publish told it.
    pub fn get(&self) -> Option<u64> {
        let seq = self.0.load(std::sync::atomic::Ordering::Relaxed);
        (seq != Self::UNKNOWN).then_some(seq)
    }

    /// Records the last seq a publish returned.
    pub(crate) fn set(&self, last_seq: u64) {
        self.0.store(last_seq, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clone for LogPosition {
    fn clone(&self) -> Self {
        Self(std::sync::atomic::AtomicU64::new(
            self.0.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }
}

impl PartialEq for LogPosition {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for LogPosition {}

/// What became of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The message in progress (or next in line) was asked to stop.
    Cancelled,
    /// Nothing was being generated.
    Idle,
    SessionNotFound,
}

/// A cancel request as workers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub session_id: SessionId,
    pub message_id: MessageId,
}

/// Whether a delivery has work behind it.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Boxed: a work item is far larger than the other outcomes.
    Work(Box<Work>),
    /// The session was deleted or expired; the entry was acknowledged.
    SessionGone,
    /// Nothing pending (already answered); the entry was acknowledged.
    Idle,
}

/// How a worker ends a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Answered { text: String, cancelled: bool },
    Failed { code: ErrorCode, error: String },
}

/// Whether tool calls were stored (and their events published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    /// Another attempt owns the message now; nothing was written.
    Fenced,
    /// The message was cancelled; nothing was written.
    Cancelled,
    SessionGone,
}

/// Whether a finish took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishOutcome {
    Done,
    /// Another attempt owns the message now; nothing was written.
    Fenced,
    SessionGone,
}

/// An event published on a session's bus channel.
#[derive(Debug, Clone, PartialEq)]
pub struct BusMessage {
    pub session_id: SessionId,
    /// One or more JSON events, newline-separated.
    pub payload: std::sync::Arc<str>,
}

/// Internal control events that travel on the bus but never reach clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// On a session's channel: the session was deleted; close its sockets with 4404.
    SessionDeleted,
    /// On the workers' control channel: stop generating this message.
    Cancel {
        session_id: SessionId,
        message_id: MessageId,
    },
}

impl Control {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("controls always serialize")
    }

    /// Parses a line if it is a control event. Client events always start with
    /// `{"seq":`, so they are told apart without parsing them.
    pub fn parse(line: &str) -> Option<Self> {
        if crate::backend::batch::is_event_line(line) {
            None
        } else {
            serde_json::from_str(line).ok()
        }
    }
}
