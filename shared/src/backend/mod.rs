//! Storage, inbox queue and event bus, behind one enum with a Redis and an in-memory
//! implementation. Both pass the same conformance suite (`tests/conformance.rs`).
//!
//! The operations are the domain's, not Redis primitives: "accept a message",
//! "publish events", "finish a message". Each is one atomic step in either backend,
//! which is what the contract's guarantees rest on.

// Defined before the submodules so `counters` uses the same one.
// Every call's failure is counted once here (`chat_store_errors_total`).
macro_rules! dispatch {
    ($self:expr, $b:ident => $call:expr) => {{
        let result = match $self {
            Backend::Redis($b) => $call,
            Backend::Memory($b) => $call,
        };
        crate::metrics::store_result(&result);
        result
    }};
}

pub mod batch;
mod counters;
pub mod limits;
pub mod memory;
pub mod redis;

use crate::config::StoreSettings;
use crate::ids::SessionId;
use crate::model::*;
use crate::telemetry::TraceContext;
use crate::wire::StreamEvent;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

pub use batch::{seq_of, split_batch};
pub use counters::SlotOutcome;
pub use limits::{Charge, Exceeded, Rate, RateOutcome, UsageWindow, WindowUsage};
pub use memory::MemoryBackend;
pub use redis::RedisBackend;

/// Dead letters kept (approximately, on Redis) for inspection.
pub(crate) const DEAD_LETTERS_KEPT: usize = 10_000;

/// A backend call that failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    /// A script would span two Redis Cluster slots (refused before it is sent).
    #[error("script {0} was given names in two cluster slots")]
    CrossSlot(&'static str),
    /// The deployment's stored layout does not match these settings.
    #[error("store layout: {0}")]
    Incompatible(String),
    #[error(transparent)]
    Tls(#[from] redis::tls::TlsError),
}

/// What a bus subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum BusSignal {
    Message(BusMessage),
    /// A canary arrived on this subscriber's probe channel (`Subscriber::watch_probe`).
    Probe,
    /// Messages may have been missed (reconnect, lag): re-read the event logs.
    Resync,
}

/// Whether a publish took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    Published {
        last_seq: u64,
    },
    SessionGone,
    /// A newer attempt owns the session's message; nothing was published.
    Fenced,
    /// The fenced message was cancelled; nothing was published.
    Cancelled,
}

/// The store of the deployment: Redis for scale-out, memory for one process.
#[derive(Clone)]
pub enum Backend {
    Redis(RedisBackend),
    Memory(MemoryBackend),
}

/// The bus subscription of one gateway instance.
#[derive(Clone)]
pub enum Subscriber {
    Redis(redis::RedisSubscriber),
    Memory(memory::MemorySubscriber),
}

impl Backend {
    /// Redis when a URL is configured, else memory. Never falls back silently.
    pub async fn connect(settings: &StoreSettings) -> Result<Self, StoreError> {
        match &settings.redis_url {
            Some(url) => Ok(Backend::Redis(
                RedisBackend::connect(url.expose(), settings).await?,
            )),
            None => Ok(Backend::Memory(MemoryBackend::new(settings))),
        }
    }

    /// `"redis"` or `"memory"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Redis(_) => "redis",
            Backend::Memory(_) => "memory",
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, b => b.ping().await)
    }

    /// Creates a session; false when the id is taken.
    pub async fn create_session(&self, new: &NewSession) -> Result<bool, StoreError> {
        dispatch!(self, b => b.create_session(new).await)
    }

    pub async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self, b => b.session(id).await)
    }

    /// Refreshes the idle TTL; false when the session no longer exists.
    pub async fn touch_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        dispatch!(self, b => b.touch_session(id).await)
    }

    /// Deletes a session with its history and log, and tells its sockets; false when absent.
    pub async fn delete_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        dispatch!(self, b => b.delete_session(id).await)
    }

    /// Sessions active within the idle TTL, across all instances.
    pub async fn active_sessions(&self) -> Result<u64, StoreError> {
        dispatch!(self, b => b.active_sessions().await)
    }

    /// One page of history, oldest first: the `limit` messages before `before` (or the
    /// newest). `None` when `before` is not in the retained history.
    pub async fn history(
        &self,
        id: &SessionId,
        limit: usize,
        before: Option<crate::ids::MessageId>,
    ) -> Result<Option<HistoryPage>, StoreError> {
        let all = dispatch!(self, b => b.history_all(id).await)?;
        Ok(page_of(all, limit, before))
    }

    /// Stores a user message and queues it for a worker, in one step. `trace` travels
    /// with the queued message and comes back in [`Work::trace`]; `charge` names who
    /// pays for the session's answers from now on (`None`: no one, no budget applies)
    /// and comes back in [`Work::charge`].
    pub async fn accept_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        trace: &TraceContext,
        client_message_id: Option<&str>,
        max_pending: u32,
        charge: Option<&Charge>,
    ) -> Result<AcceptOutcome, StoreError> {
        let charge = charge.map(Charge::to_json).unwrap_or_default();
        dispatch!(self, b => b.accept_message(id, message, trace, client_message_id, max_pending, &charge).await)
    }

    /// Assigns seqs to `events`, logs and publishes them as one batch. A worker passes
    /// its fence, so the publish is refused once it lost the message or it was cancelled.
    pub async fn publish(
        &self,
        id: &SessionId,
        events: &[StreamEvent],
        fence: Option<Fence<'_>>,
    ) -> Result<PublishOutcome, StoreError> {
        dispatch!(self, b => b.publish(id, events, fence).await)
    }

    /// Events with `seq > after_seq` still retained in the session's log.
    pub async fn replay(&self, id: &SessionId, after_seq: u64) -> Result<Replay, StoreError> {
        dispatch!(self, b => b.replay(id, after_seq).await)
    }

    /// A bus subscription for one gateway instance.
    pub async fn subscriber(&self) -> Result<Subscriber, StoreError> {
        match self {
            Backend::Redis(b) => Ok(Subscriber::Redis(b.subscriber().await?)),
            Backend::Memory(b) => Ok(Subscriber::Memory(b.subscriber())),
        }
    }

    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        dispatch!(self, b => b.queue_stats().await)
    }

    /// Up to `max` inbox entries for this consumer, waiting at most `block`.
    pub async fn read_inbox(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        dispatch!(self, b => b.read_inbox(consumer, max, block).await)
    }

    /// Takes the session's oldest pending message with the newest attempt number.
    pub async fn begin(
        &self,
        delivery: &Delivery,
        context_messages: usize,
    ) -> Result<Begin, StoreError> {
        dispatch!(self, b => b.begin(delivery, context_messages).await)
    }

    /// Entries delivered to any worker and idle (unrefreshed) for at least `min_idle`,
    /// now claimed by `consumer`: the messages of a worker that died.
    pub async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        dispatch!(self, b => b.reclaim(consumer, min_idle, max).await)
    }

    /// Keeps this live worker's claims fresh so they are not reclaimed.
    pub async fn refresh_claims(
        &self,
        consumer: &str,
        entry_ids: &[String],
    ) -> Result<(), StoreError> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        dispatch!(self, b => b.refresh_claims(consumer, entry_ids).await)
    }

    /// Records a message given up on (after `finish`-ing it with an error).
    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        work: &Work,
        reason: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.dead_letter(delivery, work, reason).await)
    }

    /// Asks the session's generation in progress to stop, wherever it runs.
    pub async fn cancel(&self, id: &SessionId) -> Result<CancelOutcome, StoreError> {
        dispatch!(self, b => b.cancel(id).await)
    }

    /// Cancel requests for workers, as they are made.
    pub async fn cancel_requests(&self) -> Result<mpsc::Receiver<CancelRequest>, StoreError> {
        dispatch!(self, b => b.cancel_requests().await)
    }

    /// Publishes a canary on instance `probe`'s probe channel (an internal channel no
    /// session id names, `keys::Keys::probe`), to prove its subscription still delivers.
    pub async fn send_canary(&self, probe: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.send_canary(probe).await)
    }

    /// Stores tool calls of the fenced message (new ones, or finished ones with their
    /// result) and publishes `events` with them, in one step. A later `begin` of the
    /// same message returns them, so a restarted answer reuses finished results.
    pub async fn save_tool_calls(
        &self,
        id: &SessionId,
        fence: Fence<'_>,
        calls: &[FunctionCall],
        events: &[StreamEvent],
    ) -> Result<SaveOutcome, StoreError> {
        dispatch!(self, b => b.save_tool_calls(id, fence, calls, events).await)
    }

    /// Stores `answer` (if any), publishes `events`, acknowledges, queues the next message.
    pub async fn finish(
        &self,
        delivery: &Delivery,
        work: &Work,
        answer: Option<&StoredMessage>,
        events: &[StreamEvent],
    ) -> Result<FinishOutcome, StoreError> {
        dispatch!(self, b => b.finish(delivery, work, answer, events).await)
    }
}

impl Subscriber {
    pub async fn subscribe(&self, id: &SessionId) -> Result<(), StoreError> {
        match self {
            Subscriber::Redis(s) => s.subscribe(id).await,
            Subscriber::Memory(s) => {
                s.subscribe(id);
                Ok(())
            }
        }
    }

    pub async fn unsubscribe(&self, id: &SessionId) -> Result<(), StoreError> {
        match self {
            Subscriber::Redis(s) => s.unsubscribe(id).await,
            Subscriber::Memory(s) => {
                s.unsubscribe(id);
                Ok(())
            }
        }
    }

    /// Subscribes to instance `probe`'s canaries, delivered as [`BusSignal::Probe`].
    /// Not a session channel: `unsubscribe` of any session id cannot drop it.
    pub async fn watch_probe(&self, probe: &str) -> Result<(), StoreError> {
        match self {
            Subscriber::Redis(s) => s.watch_probe(probe).await,
            Subscriber::Memory(s) => {
                s.watch_probe(probe);
                Ok(())
            }
        }
    }

    /// Subscribes again to every channel (a subscription that went quiet).
    pub async fn resubscribe(&self) -> Result<(), StoreError> {
        match self {
            Subscriber::Redis(s) => s.resubscribe().await,
            Subscriber::Memory(_) => Ok(()),
        }
    }

    /// Hands every message on subscribed channels (and resyncs, probes) to `sink`, in
    /// the subscriber's own task, until `sink` returns false; call once per subscriber.
    /// A sink that never waits (the gateway's hub) costs no task hop per message.
    pub fn dispatch<F, Fut>(&self, sink: F)
    where
        F: FnMut(BusSignal) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        match self {
            Subscriber::Redis(s) => s.dispatch(sink),
            Subscriber::Memory(s) => s.dispatch(sink),
        }
    }

    /// The stream of messages on subscribed channels, through a channel of
    /// `capacity`; call once per subscriber (instead of [`Self::dispatch`]).
    pub fn signals(&self, capacity: usize) -> mpsc::Receiver<BusSignal> {
        let (tx, rx) = mpsc::channel(capacity);
        self.dispatch(move |signal| {
            let tx = tx.clone();
            async move { tx.send(signal).await.is_ok() }
        });
        rx
    }
}

/// Keeps the lines past `after_seq` and says whether the replay is gap-free.
pub(crate) fn finish_replay(lines: Vec<String>, after_seq: u64, last_seq: u64) -> Replay {
    let events: Vec<String> = lines
        .into_iter()
        .filter(|line| seq_of(line).is_some_and(|seq| seq > after_seq))
        .collect();
    let first = events.first().and_then(|line| seq_of(line));
    let recovered = match first {
        Some(first) => first == after_seq + 1,
        None => after_seq == last_seq,
    };
    Replay {
        events,
        recovered,
        last_seq,
    }
}

fn page_of(
    all: Vec<StoredMessage>,
    limit: usize,
    before: Option<crate::ids::MessageId>,
) -> Option<HistoryPage> {
    let end = match before {
        Some(before) => all.iter().position(|m| m.id == before)?,
        None => all.len(),
    };
    let start = end.saturating_sub(limit);
    Some(HistoryPage {
        has_more: start > 0,
        messages: all[start..end].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_reports_gaps() {
        let lines = |seqs: &[u64]| {
            seqs.iter()
                .map(|s| batch::splice_seq(*s, "{\"x\":1}"))
                .collect()
        };
        assert!(finish_replay(lines(&[4, 5, 6]), 3, 6).recovered);
        let r = finish_replay(lines(&[4, 5, 6]), 4, 6);
        assert_eq!(r.events.len(), 2);
        assert!(r.recovered);
        assert!(!finish_replay(lines(&[8, 9]), 3, 9).recovered);
        assert!(!finish_replay(Vec::new(), 3, 9).recovered);
        assert!(finish_replay(Vec::new(), 9, 9).recovered);
    }

    #[test]
    fn history_pages_walk_backwards() {
        let msgs: Vec<StoredMessage> = (0..5)
            .map(|i| StoredMessage::user(format!("m{i}")))
            .collect();
        let page = page_of(msgs.clone(), 2, None).unwrap();
        assert_eq!(page.messages, msgs[3..5]);
        assert!(page.has_more);
        let page = page_of(msgs.clone(), 2, Some(msgs[3].id)).unwrap();
        assert_eq!(page.messages, msgs[1..3]);
        assert!(page.has_more);
        let page = page_of(msgs.clone(), 5, Some(msgs[1].id)).unwrap();
        assert_eq!(page.messages, msgs[0..1]);
        assert!(!page.has_more);
        assert!(page_of(msgs, 2, Some(crate::ids::MessageId::new_random())).is_none());
    }
}
