//! What every conformance case gets: a fresh store of one kind ([`Ctx`]), and small
//! helpers that build sessions, messages and events and wait for the bus with a
//! deadline, so a broken backend fails a case instead of hanging it.
//!
//! Redis cases each start their own `redis-server` (parallel-safe, never the machine's
//! Redis on 6379) and run in real time. Cluster cases share one 3-master Redis Cluster
//! per test process (each case under its own key prefix), started by the first. Memory cases run with tokio's clock paused:
//! sleeps and timeouts advance it at once, and the memory backend's idle expiry reads
//! the same clock, so the case bodies are shared and memory runs take no wall time.

use shared::backend::{Backend, BusSignal, PublishOutcome, seq_of};
use shared::clock;
use shared::config::StoreSettings;
use shared::ids::{MessageId, SessionId, UserId};
use shared::model::{AcceptOutcome, BusMessage, Delivery, NewSession, StoredMessage};
use shared::testkit::{RedisCluster, RedisServer, unique_prefix};
use shared::wire::{ChunkEvent, ErrorCode, Protocol, StreamEvent};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a case waits for something that should happen.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A short inbox block, for "nothing is queued" checks.
pub const SHORT_BLOCK: Duration = Duration::from_millis(200);

/// Pending messages allowed per session in cases that do not test the limit.
pub const ROOMY: u32 = 100;

/// Where a case's store lives.
enum Store {
    Memory,
    /// Its own `redis-server`, alive for the case.
    Redis(RedisServer),
    /// The process-wide 3-master cluster, under the case's own prefix.
    Cluster(&'static RedisCluster),
}

/// The store a case runs against.
pub struct Ctx {
    name: &'static str,
    store: Store,
}

impl Ctx {
    pub fn redis(name: &'static str) -> Self {
        Self {
            name,
            store: Store::Redis(RedisServer::start()),
        }
    }

    pub fn cluster(name: &'static str) -> Self {
        Self {
            name,
            store: Store::Cluster(RedisCluster::shared()),
        }
    }

    pub fn memory(name: &'static str) -> Self {
        Self {
            name,
            store: Store::Memory,
        }
    }

    pub fn is_redis(&self) -> bool {
        !matches!(self.store, Store::Memory)
    }

    fn url(&self) -> Option<String> {
        match &self.store {
            Store::Memory => None,
            Store::Redis(server) => Some(server.url()),
            Store::Cluster(cluster) => Some(cluster.url()),
        }
    }

    /// A fresh, empty store with the default settings.
    pub async fn backend(&self) -> Backend {
        self.connect(|_| {}).await
    }

    /// A fresh, empty store (its own key prefix on Redis) with tweaked settings.
    pub async fn connect(&self, tweak: impl FnOnce(&mut StoreSettings)) -> Backend {
        let url = self.url();
        let mut settings = StoreSettings::new(url.as_deref(), &unique_prefix(self.name));
        tweak(&mut settings);
        let backend = Backend::connect(&settings).await.expect("backend connects");
        let expected = if self.is_redis() { "redis" } else { "memory" };
        assert_eq!(backend.kind(), expected);
        backend
    }
}

/// Runs each case against every backend: `conformance!(case_a, case_b)` makes
/// `redis::case_a`, `cluster::case_a`, `memory::case_a`, ... from
/// `async fn case_a(Backend, &Ctx)`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let ctx = $crate::helpers::Ctx::redis(stringify!($case));
                    let backend = ctx.backend().await;
                    super::$case(backend, &ctx).await;
                }
            )*
        }

        mod cluster {
            $(
                #[tokio::test]
                async fn $case() {
                    let ctx = $crate::helpers::Ctx::cluster(stringify!($case));
                    let backend = ctx.backend().await;
                    super::$case(backend, &ctx).await;
                }
            )*
        }

        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $case() {
                    let ctx = $crate::helpers::Ctx::memory(stringify!($case));
                    let backend = ctx.backend().await;
                    super::$case(backend, &ctx).await;
                }
            )*
        }
    };
}
pub(crate) use conformance;

/// The session every case starts from: a user, `stream` protocol, some metadata.
pub fn new_session() -> NewSession {
    NewSession {
        id: SessionId::new_random(),
        user_id: Some(UserId::new("user-1")),
        metadata: serde_json::json!({"source": "conformance", "n": 1}),
        protocol: Protocol::Stream,
        created_at_ms: clock::now_millis(),
    }
}

/// Creates a session and returns its id.
pub async fn session(backend: &Backend) -> SessionId {
    let new = new_session();
    assert!(backend.create_session(&new).await.unwrap());
    new.id
}

/// Accepts a user message with no client id and a roomy limit; returns it as stored.
pub async fn accept(backend: &Backend, id: &SessionId, text: &str) -> StoredMessage {
    let message = StoredMessage::user(text);
    let outcome = backend
        .accept_message(id, &message, &Default::default(), None, ROOMY, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Accepted(message.id));
    message
}

/// A `chunk` event as a worker produces it (no seq yet).
pub fn chunk(text: &str) -> StreamEvent {
    StreamEvent::Chunk(ChunkEvent {
        seq: None,
        content: text.to_owned(),
        message_id: None,
        timestamp: clock::now_rfc3339(),
    })
}

/// `n` chunk events named `{tag}-0` .. `{tag}-{n-1}`.
pub fn chunks(tag: &str, n: usize) -> Vec<StreamEvent> {
    (0..n).map(|i| chunk(&format!("{tag}-{i}"))).collect()
}

/// An `error` event for a failed answer.
pub fn error_event(message_id: MessageId) -> StreamEvent {
    StreamEvent::error(ErrorCode::LlmError, "the model failed", Some(message_id))
}

/// Publishes without a fence and returns the batch's last seq.
pub async fn publish(backend: &Backend, id: &SessionId, events: &[StreamEvent]) -> u64 {
    match backend.publish(id, events, None).await.unwrap() {
        PublishOutcome::Published { last_seq } => last_seq,
        other => panic!("publish: {other:?}"),
    }
}

/// The seq of each line, checking the store's `{"seq":N,` prefix.
pub fn seqs<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<u64> {
    lines
        .into_iter()
        .map(|line| {
            let seq = seq_of(line).unwrap_or_else(|| panic!("no seq prefix: {line}"));
            assert!(line.starts_with(&format!("{{\"seq\":{seq},")), "{line}");
            seq
        })
        .collect()
}

/// The `content` of each (chunk) line.
pub fn contents<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    lines
        .into_iter()
        .map(|line| match serde_json::from_str::<StreamEvent>(line) {
            Ok(StreamEvent::Chunk(c)) => c.content,
            other => panic!("not a chunk: {line} ({other:?})"),
        })
        .collect()
}

/// The type of a line (`chunk`, `error`, `session_deleted`, ...).
pub fn type_of(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    value["type"].as_str().expect("a type").to_owned()
}

/// The next bus message, failing on a deadline or a `Resync` (nothing reconnects here).
pub async fn next_message(rx: &mut mpsc::Receiver<BusSignal>) -> BusMessage {
    match tokio::time::timeout(DEADLINE, rx.recv()).await {
        Ok(Some(BusSignal::Message(message))) => message,
        Ok(Some(BusSignal::Resync)) => panic!("unexpected resync"),
        Ok(Some(BusSignal::Probe)) => panic!("unexpected canary"),
        Ok(None) => panic!("bus closed"),
        Err(_) => panic!("no bus message within {DEADLINE:?}"),
    }
}

/// The `typing` status a first try's `begin` publishes, for `message`: its seq.
pub async fn announced(rx: &mut mpsc::Receiver<BusSignal>, message: MessageId) -> u64 {
    let published = next_message(rx).await;
    let event: serde_json::Value = serde_json::from_str(&published.payload).expect("one event");
    assert_eq!(
        (event["type"].as_str(), event["status"].as_str()),
        (Some("status"), Some("typing")),
        "{event}"
    );
    assert_eq!(event["message_id"].as_str(), Some(&*message.to_string()));
    event["seq"].as_u64().expect("a seq")
}

/// Exactly one inbox delivery, waiting for it up to the deadline.
pub async fn one_delivery(backend: &Backend) -> Delivery {
    let mut deliveries = backend.read_inbox("w1", 10, DEADLINE).await.unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries.pop().unwrap()
}

/// Asserts the inbox has nothing new to hand out.
pub async fn no_delivery(backend: &Backend) {
    let deliveries = backend.read_inbox("w1", 10, SHORT_BLOCK).await.unwrap();
    assert!(deliveries.is_empty(), "{deliveries:?}");
}
