//! What only the Redis backend has: the key schema's slots, the partition layout and
//! its migration from the layout before partitions, and a Redis Cluster master failover
//! in the middle of an answer. Real `redis-server`s and a real Redis Cluster (the
//! harness in `shared::testkit`), no mocks.

use shared::backend::redis::slot_audit;
use shared::backend::{Backend, BusSignal, Charge, PublishOutcome, StoreError};
use shared::clock;
use shared::config::StoreSettings;
use shared::ids::{SessionId, UserId};
use shared::keys::{Keys, key_slot, legacy};
use shared::model::{
    AcceptOutcome, Begin, CancelOutcome, Delivery, FinishOutcome, FunctionCall, NewSession,
    QueuedMessage, SaveOutcome, StoredMessage, Work,
};
use shared::testkit::{RedisCluster, RedisServer, TlsFiles, unique_prefix};
use shared::wire::{ChunkEvent, CompleteEvent, Protocol, StreamEvent};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);

fn new_session() -> NewSession {
    NewSession {
        id: SessionId::new_random(),
        user_id: Some(UserId::new("user-1")),
        metadata: serde_json::json!({"n": 1}),
        protocol: Protocol::Stream,
        created_at_ms: clock::now_millis(),
    }
}

fn chunk(text: &str) -> StreamEvent {
    StreamEvent::Chunk(ChunkEvent {
        seq: None,
        content: text.to_owned(),
        message_id: None,
        timestamp: clock::now_rfc3339(),
    })
}

fn complete(text: &str) -> StreamEvent {
    StreamEvent::Complete(CompleteEvent {
        seq: None,
        full_response: text.to_owned(),
        cancelled: false,
        usage: None,
        message_id: None,
        timestamp: clock::now_rfc3339(),
    })
}

async fn connect(url: &str, prefix: &str) -> Backend {
    Backend::connect(&StoreSettings::new(Some(url), prefix))
        .await
        .expect("backend connects")
}

async fn accept(backend: &Backend, id: &SessionId, text: &str) -> StoredMessage {
    let message = StoredMessage::user(text);
    let outcome = backend
        .accept_message(id, &message, &Default::default(), None, 100, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Accepted(message.id));
    message
}

/// Up to `want` deliveries, waiting up to the deadline for them.
async fn deliveries(backend: &Backend, want: usize) -> Vec<Delivery> {
    deliveries_within(backend, want, DEADLINE).await
}

async fn deliveries_within(backend: &Backend, want: usize, limit: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(
            backend
                .read_inbox("w1", want - got.len(), Duration::from_millis(500))
                .await
                .unwrap(),
        );
    }
    got
}

async fn history(backend: &Backend, id: &SessionId) -> Vec<StoredMessage> {
    let page = backend.history(id, 200, None).await.unwrap();
    page.expect("a history").messages
}

/// The seqs of the session's whole log, in order.
async fn replayed_seqs(backend: &Backend, id: &SessionId) -> Vec<u64> {
    let replay = backend.replay(id, 0).await.unwrap();
    replay
        .events
        .iter()
        .map(|l| shared::backend::seq_of(l).unwrap())
        .collect()
}

fn work_of(begin: Begin) -> Work {
    match begin {
        Begin::Work(work) => *work,
        other => panic!("expected work, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Slots

/// Runs every script on the cluster for sessions all over the slot space; the backend
/// computes the slot of every key and channel each script is given (and refuses a call
/// that spans two), and the audit shows what it saw.
#[tokio::test]
async fn every_script_stays_in_one_slot() {
    let cluster = RedisCluster::shared();
    let backend = connect(&cluster.url(), &unique_prefix("slots")).await;
    let mut slots = std::collections::HashSet::new();
    for n in 0..12 {
        let new = new_session();
        let id = new.id.clone();
        slots.insert(key_slot(&Keys::new("x", 16).meta(&id)));
        assert!(backend.create_session(&new).await.unwrap());
        assert!(backend.touch_session(&id).await.unwrap());
        let message = accept(&backend, &id, &format!("m{n}")).await;
        let delivery = deliveries(&backend, 1).await.pop().expect("a delivery");
        let work = work_of(backend.begin(&delivery, 10).await.unwrap());
        assert_eq!(work.message, message);
        let published = backend
            .publish(&id, &[chunk("a")], Some(work.fence()))
            .await
            .unwrap();
        assert!(matches!(published, PublishOutcome::Published { .. }));
        let call = FunctionCall {
            name: "tool".into(),
            call_id: "call_0_0".into(),
            arguments: "{}".into(),
            result: None,
            round: 0,
            index: 0,
        };
        let saved = backend
            .save_tool_calls(&id, work.fence(), &[call], &[])
            .await
            .unwrap();
        assert_eq!(saved, SaveOutcome::Saved);
        assert_eq!(backend.cancel(&id).await.unwrap(), CancelOutcome::Cancelled);
        let answer = StoredMessage::assistant("a", message.id, true);
        let finished = backend
            .finish(&delivery, &work, Some(&answer), &[complete("a")])
            .await
            .unwrap();
        assert_eq!(finished, FinishOutcome::Done);
        assert!(backend.delete_session(&id).await.unwrap());
    }
    assert!(slots.len() > 1, "sessions on several slots");
    let seen = slot_audit::most_slots_per_script();
    for script in [
        "create_session",
        "touch_session",
        "delete_session",
        "accept_message",
        "publish_events",
        "begin_work",
        "finish_work",
        "save_tool_calls",
        "cancel_generation",
    ] {
        assert_eq!(seen.get(script), Some(&1), "{script}: {seen:?}");
    }
}

// ---------------------------------------------------------------------------
// Partitions and migration

#[tokio::test]
async fn another_partition_count_is_refused() {
    let server = RedisServer::start();
    let prefix = unique_prefix("parts");
    connect(&server.url(), &prefix).await;
    let mut settings = StoreSettings::new(Some(&server.url()), &prefix);
    settings.store_partitions = 8;
    match Backend::connect(&settings).await {
        Err(StoreError::Incompatible(why)) => assert!(why.contains("8"), "{why}"),
        Ok(_) => panic!("started with another partition count"),
        Err(other) => panic!("{other}"),
    }
    settings.store_partitions = 16;
    Backend::connect(&settings)
        .await
        .expect("the recorded count");
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Writes a session as the release before partitions did: meta, history, pending list,
/// event log, the global index and (when `queued`) an entry on the global inbox.
fn write_legacy_session(port: u16, prefix: &str, id: &SessionId, queued: Option<&StoredMessage>) {
    let key = |suffix: &str| legacy::session_key(prefix, id, suffix);
    let now = clock::now_millis().to_string();
    let greeting = StoredMessage::user("before the upgrade");
    cli(
        port,
        &[
            "HSET",
            &key("meta"),
            "user_id",
            "old-user",
            "created_ms",
            &now,
            "last_ms",
            &now,
            "count",
            "1",
            "protocol",
            "simple",
            "metadata",
            r#"{"plan":"old"}"#,
            "seq",
            "2",
            "attempt",
            "0",
        ],
    );
    cli(port, &["RPUSH", &key("history"), &greeting.to_json()]);
    let events = [
        r#"{"seq":1,"type":"chunk","content":"x","timestamp":"t"}"#,
        r#"{"seq":2,"type":"complete","full_response":"x","timestamp":"t"}"#,
    ]
    .join("\n");
    cli(port, &["XADD", &key("events"), "2-0", "e", &events]);
    for suffix in ["meta", "history", "events"] {
        cli(port, &["EXPIRE", &key(suffix), "3600"]);
    }
    cli(
        port,
        &["ZADD", &legacy::sessions(prefix), &now, id.as_str()],
    );
    cli(
        port,
        &[
            "SET",
            &key("charge"),
            r#"{"scope":"user:old-user","per_day":1000}"#,
            "EX",
            "3600",
        ],
    );
    if let Some(message) = queued {
        cli(port, &["RPUSH", &key("history"), &message.to_json()]);
        let queued = QueuedMessage {
            message: message.clone(),
            trace: Default::default(),
        };
        cli(port, &["RPUSH", &key("pending"), &queued.to_json()]);
        let entry = cli(
            port,
            &["XADD", &legacy::inbox(prefix), "*", "session", id.as_str()],
        );
        cli(port, &["HSET", &key("meta"), "entry", &entry, "count", "2"]);
    }
}

#[tokio::test]
async fn a_deployment_on_the_old_layout_is_migrated_at_start() {
    let server = RedisServer::start();
    let port = server.port();
    let prefix = unique_prefix("migrate");
    cli(
        port,
        &[
            "XGROUP",
            "CREATE",
            &legacy::inbox(&prefix),
            "workers",
            "0",
            "MKSTREAM",
        ],
    );
    let idle = SessionId::new_random();
    let busy = SessionId::new_random();
    let waiting = StoredMessage::user("queued before the upgrade");
    write_legacy_session(port, &prefix, &idle, None);
    write_legacy_session(port, &prefix, &busy, Some(&waiting));
    // In the old index but expired: nothing to move.
    let expired = SessionId::new_random();
    cli(
        port,
        &["ZADD", &legacy::sessions(&prefix), "1", expired.as_str()],
    );

    // Two pods start at once; each session moves exactly once.
    let url = server.url();
    let (a, b) = tokio::join!(connect(&url, &prefix), connect(&url, &prefix));
    drop(b);
    let backend = a;

    let record = backend.session(&idle).await.unwrap().expect("kept");
    assert_eq!(record.user_id, Some(UserId::new("old-user")));
    assert_eq!(record.protocol, Protocol::Simple);
    assert_eq!(record.metadata, serde_json::json!({"plan": "old"}));
    assert_eq!((record.message_count, record.last_seq), (1, 2));
    let replay = backend.replay(&idle, 0).await.unwrap();
    assert!(replay.recovered);
    assert_eq!(replay.events.len(), 2, "the event log came along");
    // Its entry is keyed by its last seq (the old scheme); new ones by their first.
    let published = backend
        .publish(&idle, &[chunk("new"), chunk("er")], None)
        .await
        .unwrap();
    assert_eq!(published, PublishOutcome::Published { last_seq: 4 });
    for after in 0..=4u64 {
        let replay = backend.replay(&idle, after).await.unwrap();
        let seqs: Vec<u64> = replay
            .events
            .iter()
            .map(|l| shared::backend::seq_of(l).unwrap())
            .collect();
        assert_eq!(seqs, (after + 1..=4).collect::<Vec<_>>());
        assert!(replay.recovered && replay.last_seq == 4);
    }
    let keys = Keys::new(&prefix, 16);
    let ttl: i64 = cli(port, &["TTL", &keys.meta(&idle)]).parse().unwrap();
    assert!((1..=3600).contains(&ttl), "the TTL came along: {ttl}");
    assert_eq!(backend.active_sessions().await.unwrap(), 2);
    assert_eq!(backend.session(&expired).await.unwrap(), None);
    let charge = cli(port, &["GET", &keys.charge(&idle)]);
    assert!(
        charge.contains("user:old-user"),
        "who pays came along: {charge}"
    );

    // The queued message is answered from its partition, exactly once.
    let delivered = deliveries_within(&backend, 2, Duration::from_secs(2)).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].session_id, busy);
    let work = work_of(backend.begin(&delivered[0], 10).await.unwrap());
    assert_eq!(work.message, waiting);
    assert_eq!(work.history.len(), 2);
    let charge = work
        .charge
        .as_ref()
        .expect("charged as the old release named it");
    assert_eq!(
        (&*charge.scope, charge.per_day),
        ("user:old-user", Some(1000))
    );
    let answer = StoredMessage::assistant("answered", waiting.id, false);
    let done = backend
        .finish(&delivered[0], &work, Some(&answer), &[complete("answered")])
        .await
        .unwrap();
    assert_eq!(done, FinishOutcome::Done);
    assert_eq!(history(&backend, &busy).await.len(), 3);

    // Nothing of the old layout is left, and starting again moves nothing.
    for key in [
        legacy::inbox(&prefix),
        legacy::sessions(&prefix),
        legacy::session_key(&prefix, &idle, "meta"),
        legacy::session_key(&prefix, &busy, "history"),
    ] {
        assert_eq!(cli(port, &["EXISTS", &key]), "0", "{key}");
    }
    let again = connect(&server.url(), &prefix).await;
    assert_eq!(again.active_sessions().await.unwrap(), 2);
    assert!(
        deliveries_within(&again, 1, Duration::from_secs(1))
            .await
            .is_empty()
    );
}

// ---------------------------------------------------------------------------
// What a publish costs

/// `INFO commandstats` as (command, calls, failed calls), after `CONFIG RESETSTAT`.
fn command_stats(port: u16) -> Vec<(String, u64, u64)> {
    cli(port, &["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| -> u64 {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            Some((name.to_owned(), field("calls"), field("failed_calls")))
        })
        // The test's own.
        .filter(|(name, _, _)| !name.starts_with("config") && name != "info")
        .collect()
}

/// A session an earlier release of this layout queued (its current message first in
/// the pending list, no `head_id` or `charge` in meta, the charge in a key of its own,
/// as a rolling upgrade finds it) is answered in order: cancel finds the message, a
/// message accepted meanwhile waits behind it (the old list counted against the limit)
/// and names who pays from now on, begin moves the old message to meta, and the one
/// behind it is answered next. (Begin reading an old charge key is
/// `a_deployment_on_the_old_layout_is_migrated_at_start`'s.)
#[tokio::test]
async fn a_session_queued_by_an_earlier_release_is_answered_in_order() {
    let server = RedisServer::start();
    let port = server.port();
    let prefix = unique_prefix("earlier");
    let backend = connect(&server.url(), &prefix).await;
    let keys = Keys::new(&prefix, 16);
    let new = new_session();
    let id = new.id.clone();
    assert!(backend.create_session(&new).await.unwrap());
    let first = StoredMessage::user("queued before the upgrade");
    let queued = QueuedMessage {
        message: first.clone(),
        trace: Default::default(),
    };
    let old_charge = r#"{"scope":"user:old","per_day":50}"#;
    cli(
        port,
        &["HDEL", &keys.meta(&id), "head", "head_id", "charge"],
    );
    cli(port, &["RPUSH", &keys.history(&id), &first.to_json()]);
    cli(port, &["RPUSH", &keys.pending(&id), &queued.to_json()]);
    cli(port, &["SET", &keys.charge(&id), old_charge]);
    let inbox = keys.inbox(keys.partition_of(&id));
    let entry = cli(port, &["XADD", &inbox, "*", "session", id.as_str()]);
    cli(port, &["HSET", &keys.meta(&id), "entry", &entry]);

    assert_eq!(backend.cancel(&id).await.unwrap(), CancelOutcome::Cancelled);
    let second = StoredMessage::user("sent during the upgrade");
    let third = StoredMessage::user("one too many");
    let carol = Charge {
        scope: "user:carol".into(),
        per_day: None,
        per_minute: Some(7),
    };
    for (message, expected) in [
        (&second, AcceptOutcome::Accepted(second.id)),
        (&third, AcceptOutcome::TooManyPending),
    ] {
        let outcome = backend
            .accept_message(&id, message, &Default::default(), None, 2, Some(&carol))
            .await
            .unwrap();
        assert_eq!(outcome, expected);
    }

    let delivery = deliveries(&backend, 1).await.pop().expect("the old entry");
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(work.message, first);
    assert!(
        work.cancelled,
        "the cancel named the old layout's current message"
    );
    assert_eq!(
        work.charge.as_ref(),
        Some(&carol),
        "the latest message's payer"
    );
    let done = backend.finish(&delivery, &work, None, &[]).await.unwrap();
    assert_eq!(done, FinishOutcome::Done);

    let delivery = deliveries(&backend, 1).await.pop().expect("the next entry");
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(work.message, second);
    assert!(!work.cancelled);
    assert_eq!(work.charge.as_ref(), Some(&carol));
    let done = backend.finish(&delivery, &work, None, &[]).await.unwrap();
    assert_eq!(done, FinishOutcome::Done);
    let idle = deliveries_within(&backend, 1, Duration::from_millis(300)).await;
    assert!(idle.is_empty(), "{idle:?}");
    assert_eq!(backend.cancel(&id).await.unwrap(), CancelOutcome::Idle);
    assert_eq!(cli(port, &["EXISTS", &keys.pending(&id)]), "0");
}

/// One whole answer to a message on an idle session, counted the way figure 11
/// counts (every command a script runs): accept, the worker's read, begin (which
/// publishes `typing`), one chunk batch and the finish. A first answer made the
/// history and the log; the second one is the steady state: 21 commands + 4 per chunk
/// batch, the TTLs untouched (a refresh is due only every TTL/20), one read (the
/// blocked read Redis serves the new entry to: no notice on one Redis), no read of the
/// log (begin numbers from the last finish's seq), the message current in meta with
/// no pending list (only finish's `LPOP` finds none waiting) and the charge read with
/// meta.
#[tokio::test]
async fn a_steady_answer_costs_21_commands_and_4_per_batch() {
    let server = RedisServer::start();
    let port = server.port();
    let backend = connect(&server.url(), &unique_prefix("answer")).await;
    let new = new_session();
    let id = new.id.clone();
    assert!(backend.create_session(&new).await.unwrap());
    for round in 0..2 {
        if round == 1 {
            // An idle worker's read in between finds nothing.
            let idle = deliveries_within(&backend, 1, Duration::from_millis(200)).await;
            assert!(idle.is_empty(), "{idle:?}");
            cli(port, &["CONFIG", "RESETSTAT"]);
        }
        let message = accept(&backend, &id, "count me").await;
        let delivery = deliveries(&backend, 1).await.pop().expect("a delivery");
        let work = work_of(backend.begin(&delivery, 10).await.unwrap());
        assert!(work.announced, "typing published by begin");
        let outcome = backend
            .publish(&id, &[chunk("a"), chunk("b")], Some(work.fence()))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            PublishOutcome::Published {
                last_seq: 5 * round + 3
            }
        );
        let answer = StoredMessage::assistant("ab", message.id, false);
        let done = backend
            .finish(
                &delivery,
                &work,
                Some(&answer),
                &[complete("ab"), chunk("ready")],
            )
            .await
            .unwrap();
        assert_eq!(done, FinishOutcome::Done);
    }
    let mut stats = command_stats(port);
    stats.sort();
    let row = |name: &str, calls: u64| (name.to_owned(), calls, 0);
    assert_eq!(
        stats,
        [
            row("evalsha", 4),
            row("hmget", 4),
            row("hset", 3),
            row("lpop", 1),
            row("lrange", 1),
            row("rpush", 2),
            row("spublish", 3),
            row("xack", 1),
            row("xadd", 4),
            row("xdel", 1),
            row("xreadgroup", 1),
        ]
    );
    let total: u64 = stats.iter().map(|(_, calls, _)| calls).sum();
    assert_eq!(total, 21 + 4);
    assert_eq!(
        replayed_seqs(&backend, &id).await,
        (1..=10).collect::<Vec<_>>(),
        "gap-free across answers"
    );
}

/// On a Redis Cluster workers read the partitions their `ready` notices name; an
/// entry whose notice was missed (added here with no notice at all) is found by the
/// sweep of every partition `INBOX_SWEEP_MS` after the last one, and not before.
#[tokio::test]
async fn on_a_cluster_an_entry_without_a_notice_waits_for_the_sweep() {
    let cluster = RedisCluster::shared();
    for (sweep_ms, found) in [(600_000, false), (300, true)] {
        let prefix = unique_prefix("sweep");
        let mut settings = StoreSettings::new(Some(&cluster.url()), &prefix);
        settings.inbox_sweep_ms = sweep_ms;
        let backend = Backend::connect(&settings).await.unwrap();
        // The first read sweeps every partition (nothing is there yet).
        let none = backend.read_inbox("w1", 10, Duration::from_millis(100));
        assert!(none.await.unwrap().is_empty());
        let id = SessionId::new_random();
        let keys = Keys::new(&prefix, 16);
        let inbox = keys.inbox(keys.partition_of(&id));
        cli(
            cluster.master_of(&inbox),
            &["XADD", &inbox, "*", "session", id.as_str()],
        );
        let read = backend
            .read_inbox("w1", 10, Duration::from_millis(1_500))
            .await
            .unwrap();
        let sessions: Vec<_> = read.iter().map(|d| &d.session_id).collect();
        if found {
            assert_eq!(sessions, [&id], "the sweep found it");
        } else {
            assert!(sessions.is_empty(), "no notice, no sweep due: {sessions:?}");
        }
    }
}

/// On one Redis, idle workers wait in one blocked read of every partition and Redis
/// serves a new entry to one of them: the accept publishes no notice, the reader gets
/// the entry with its wake-up, and the other idle reader is not woken and reads
/// nothing more (the herd of figure 14: with notices, every idle worker woke and each
/// sent an `XREADGROUP`).
#[tokio::test]
async fn one_new_entry_wakes_one_of_the_blocked_readers() {
    let server = RedisServer::start();
    let prefix = unique_prefix("herd");
    let gateway = connect(&server.url(), &prefix).await;
    let new = new_session();
    assert!(gateway.create_session(&new).await.unwrap());
    let block = Duration::from_secs(3);
    let mut readers = Vec::new();
    for consumer in ["w1", "w2"] {
        let worker = connect(&server.url(), &prefix).await;
        readers.push(tokio::spawn(async move {
            let read = worker.read_inbox(consumer, 10, block).await.unwrap();
            (read, Instant::now())
        }));
    }
    // Both readers blocked; only what follows is counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cli(server.port(), &["CONFIG", "RESETSTAT"]);
    let accepted = Instant::now();
    accept(&gateway, &new.id, "one of you").await;
    let mut reads = Vec::new();
    for reader in readers {
        reads.push(reader.await.unwrap());
    }
    reads.sort_by_key(|(read, _)| std::cmp::Reverse(read.len()));
    let (served, served_at) = &reads[0];
    let (idle, idle_at) = &reads[1];
    let sessions: Vec<_> = served.iter().map(|d| &d.session_id).collect();
    assert_eq!(sessions, [&new.id], "one reader has it");
    assert!(idle.is_empty(), "and only one: {idle:?}");
    assert!(
        served_at.duration_since(accepted) < block / 2,
        "served when accepted, not at the end of the block"
    );
    assert!(
        idle_at.duration_since(accepted) >= block / 2,
        "the other reader stayed blocked until its block ended"
    );
    let calls = |name: &str| {
        command_stats(server.port())
            .into_iter()
            .find(|(command, _, _)| command == name)
            .map_or(0, |(_, calls, _)| calls)
    };
    assert_eq!(calls("xreadgroup"), 0, "no read after the blocked ones");
    assert_eq!(calls("spublish"), 0, "no notice");
}

/// A worker that stops drops its blocked read, and the read is unblocked in Redis too:
/// an entry accepted after it goes to a live reader, not to the stopped one's
/// connection (first in Redis's line of blocked readers), where it would wait out the
/// lease.
#[tokio::test]
async fn a_dropped_blocked_read_leaves_new_entries_to_live_readers() {
    let server = RedisServer::start();
    let prefix = unique_prefix("dropped");
    let gateway = connect(&server.url(), &prefix).await;
    let new = new_session();
    assert!(gateway.create_session(&new).await.unwrap());
    let stopping = connect(&server.url(), &prefix).await;
    let long = Duration::from_secs(20);
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        stopping.read_inbox("w1", 10, long),
    );
    assert!(abandoned.await.is_err(), "the read was still blocked");
    let live = connect(&server.url(), &prefix).await;
    let reader = tokio::spawn(async move { live.read_inbox("w2", 10, DEADLINE).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    accept(&gateway, &new.id, "for the live one").await;
    let read = reader.await.unwrap();
    let sessions: Vec<_> = read.iter().map(|d| &d.session_id).collect();
    assert_eq!(sessions, [&new.id], "the live reader has it");
    drop(stopping);
}

/// A burst over many partitions comes back whole when `max` allows, never more than
/// `max` at once, and nothing is left behind or delivered twice. On a cluster a read
/// takes the due partitions together, `max` shared out between them, and reads again
/// a partition that held more than its share. On one Redis a read that finds entries
/// at once takes some of every partition, past `max` when there are fewer free slots
/// than partitions with entries: those go back to the inbox, still their session's
/// current entry (begin takes them).
async fn a_burst_over_partitions_is_read_whole_and_never_past_max(url: &str) {
    let prefix = unique_prefix("burst");
    let mut settings = StoreSettings::new(Some(url), &prefix);
    settings.inbox_sweep_ms = 600_000;
    let backend = Backend::connect(&settings).await.unwrap();
    let idle = backend.read_inbox("w1", 10, Duration::from_millis(100));
    assert!(idle.await.unwrap().is_empty(), "an empty inbox");
    // Three sessions in each of eight partitions.
    let keys = Keys::new(&prefix, 16);
    let mut per_partition = std::collections::BTreeMap::<u16, Vec<SessionId>>::new();
    while per_partition.len() < 8 || per_partition.values().any(|ids| ids.len() < 3) {
        let new = new_session();
        let partition = keys.partition_of(&new.id).0;
        let room = match per_partition.get(&partition) {
            Some(ids) => ids.len() < 3,
            None => per_partition.len() < 8,
        };
        if room {
            assert!(backend.create_session(&new).await.unwrap());
            accept(&backend, &new.id, "burst").await;
            per_partition.entry(partition).or_default().push(new.id);
        }
    }
    let mut expected: Vec<SessionId> = per_partition.into_values().flatten().collect();
    expected.sort();
    let mut read = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while read.len() < expected.len() && Instant::now() < deadline {
        let got = backend
            .read_inbox("w1", 5, Duration::from_millis(500))
            .await
            .unwrap();
        assert!(got.len() <= 5, "never past max: {}", got.len());
        for delivery in got {
            let begin = backend.begin(&delivery, 0).await.unwrap();
            assert!(matches!(begin, Begin::Work(_)), "{begin:?}");
            read.push(delivery.session_id);
        }
    }
    read.sort();
    assert_eq!(read, expected, "every session once");
    let more = backend.read_inbox("w1", 5, Duration::from_millis(200));
    assert!(more.await.unwrap().is_empty(), "nothing twice");
    // With room for all of them, the whole burst.
    let mut burst = Vec::new();
    for _ in 0..4 {
        let new = new_session();
        assert!(backend.create_session(&new).await.unwrap());
        accept(&backend, &new.id, "burst").await;
        burst.push(new.id);
    }
    let mut got: Vec<SessionId> = deliveries(&backend, 4)
        .await
        .into_iter()
        .map(|d| d.session_id)
        .collect();
    got.sort();
    burst.sort();
    assert_eq!(got, burst);
}

#[tokio::test]
async fn on_one_redis_a_burst_over_partitions_is_read_whole_and_never_past_max() {
    let server = RedisServer::start();
    a_burst_over_partitions_is_read_whole_and_never_past_max(&server.url()).await;
}

#[tokio::test]
async fn on_a_cluster_a_burst_over_partitions_is_read_whole_and_never_past_max() {
    let cluster = RedisCluster::shared();
    a_burst_over_partitions_is_read_whole_and_never_past_max(&cluster.url()).await;
}

/// The hot path's cost, counted the way figure 11 counts it (every command a script
/// runs): a chunk batch of a worker that knows the log's position is four commands,
/// EVALSHA + HMGET (fence) + XADD (log) + SPUBLISH; a batch after someone else's costs
/// the refused XADD and one XREVRANGE more; other errors are not taken for one.
#[tokio::test]
async fn a_known_position_publishes_in_four_commands() {
    let server = RedisServer::start();
    let port = server.port();
    let prefix = unique_prefix("cost");
    let backend = connect(&server.url(), &prefix).await;
    let new = new_session();
    let id = new.id.clone();
    assert!(backend.create_session(&new).await.unwrap());
    accept(&backend, &id, "count my commands").await;
    let delivery = deliveries(&backend, 1).await.pop().expect("a delivery");
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(
        work.log.get(),
        Some(1),
        "begin published typing, so the worker knows the log's position"
    );
    let first = backend
        .publish(&id, &[chunk("first")], Some(work.fence()))
        .await
        .unwrap();
    assert_eq!(first, PublishOutcome::Published { last_seq: 2 });

    let sorted = |mut stats: Vec<(String, u64, u64)>| {
        stats.sort();
        stats
    };
    let row = |name: &str, calls: u64, failed: u64| (name.to_owned(), calls, failed);
    cli(port, &["CONFIG", "RESETSTAT"]);
    for i in 0..10 {
        let events = vec![chunk(&format!("c{i}")); 1 + i % 3];
        let outcome = backend
            .publish(&id, &events, Some(work.fence()))
            .await
            .unwrap();
        assert!(matches!(outcome, PublishOutcome::Published { .. }));
    }
    assert_eq!(
        sorted(command_stats(port)),
        [
            row("evalsha", 10, 0),
            row("hmget", 10, 0),
            row("spublish", 10, 0),
            row("xadd", 10, 0),
        ],
        "four per batch, whatever its size"
    );
    assert_eq!(work.log.get(), Some(2 + 19));

    // Someone else publishes: the next batch is refused once, reads the log, goes on.
    backend.publish(&id, &[chunk("other")], None).await.unwrap();
    cli(port, &["CONFIG", "RESETSTAT"]);
    let outcome = backend
        .publish(&id, &[chunk("after")], Some(work.fence()))
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::Published { last_seq: 23 });
    assert_eq!(
        sorted(command_stats(port)),
        [
            row("evalsha", 1, 0),
            row("hmget", 1, 0),
            row("spublish", 1, 0),
            row("xadd", 2, 1),
            row("xrevrange", 1, 0),
        ]
    );
    assert_eq!(
        replayed_seqs(&backend, &id).await,
        (1..=23).collect::<Vec<_>>()
    );

    // A log that cannot be written is an error, not a reason to number again.
    let events = Keys::new(&prefix, 16).events(&id);
    cli(port, &["DEL", &events]);
    cli(port, &["SET", &events, "not a stream"]);
    for fence in [Some(work.fence()), None] {
        let failed = backend.publish(&id, &[chunk("x")], fence).await;
        assert!(
            matches!(&failed, Err(StoreError::Redis(e)) if e.details().contains("WRONGTYPE")),
            "{failed:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Failover

async fn retry<T, F: std::future::Future<Output = Result<T, StoreError>>>(
    what: &str,
    mut call: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline => {
                eprintln!("{what}: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{what}: {error}"),
        }
    }
}

/// Chunks of the session that arrive on the bus within `limit`, noting resyncs.
async fn bus_chunks(rx: &mut mpsc::Receiver<BusSignal>, limit: Duration) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut resynced = false;
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(signal)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match signal {
            BusSignal::Message(message) => lines.extend(
                message
                    .payload
                    .split('\n')
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            BusSignal::Resync => resynced = true,
            BusSignal::Probe => {}
        }
    }
    (lines, resynced)
}

/// A 3-master cluster with a replica each; the master holding the session's slot is
/// killed while its answer streams. Redis replicates asynchronously, so the test waits
/// for the replica to acknowledge (`WAIT`) before the kill: it checks what the system
/// does with what Redis kept, not what an unreplicated write would lose.
#[tokio::test]
async fn a_master_failover_mid_stream_keeps_the_session_and_one_outcome() {
    let mut cluster = RedisCluster::start(3, 1);
    let prefix = unique_prefix("failover");
    let backend = connect(&cluster.url(), &prefix).await;
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);

    let new = new_session();
    let id = new.id.clone();
    assert!(backend.create_session(&new).await.unwrap());
    subscriber.subscribe(&id).await.unwrap();
    let message = accept(&backend, &id, "stream through a failover").await;
    let delivery = deliveries(&backend, 1).await.pop().expect("a delivery");
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    let published = backend
        .publish(&id, &[chunk("before")], Some(work.fence()))
        .await
        .unwrap();
    // Seq 1 is the `typing` begin published.
    assert_eq!(published, PublishOutcome::Published { last_seq: 2 });
    let (lines, _) = bus_chunks(&mut rx, Duration::from_millis(500)).await;
    assert_eq!(lines.len(), 2, "typing and the chunk: {lines:?}");

    let keys = Keys::new(&prefix, 16);
    let master = cluster.master_of(&keys.meta(&id));
    assert_eq!(
        cli(master, &["WAIT", "1", "5000"]),
        "1",
        "the replica has it all"
    );
    cluster.kill(master);
    cluster.wait_for_failover(&keys.meta(&id));
    assert_ne!(cluster.master_of(&keys.meta(&id)), master);

    // The session survived, the worker's attempt still owns the message, and the
    // gateway's subscription followed the slot to its new master.
    let record = retry("session", || backend.session(&id))
        .await
        .expect("kept");
    assert_eq!(record.last_seq, 2);
    let after_events = [chunk("after")];
    let after = retry("publish", || {
        backend.publish(&id, &after_events, Some(work.fence()))
    })
    .await;
    assert_eq!(after, PublishOutcome::Published { last_seq: 3 });
    let (lines, resynced) = bus_chunks(&mut rx, Duration::from_secs(3)).await;
    let live = lines.iter().any(|l| l.contains("\"after\""));
    assert!(
        live || resynced,
        "the subscriber delivers or resyncs: {lines:?}"
    );
    let late = backend
        .publish(&id, &[chunk("later")], Some(work.fence()))
        .await
        .unwrap();
    assert_eq!(late, PublishOutcome::Published { last_seq: 4 });
    let (lines, _) = bus_chunks(&mut rx, Duration::from_secs(2)).await;
    assert!(
        lines.iter().any(|l| l.contains("\"later\"")),
        "resubscribed to the moved shard channel: {lines:?}"
    );

    // Exactly one outcome: the answer is stored once, and finishing again (a worker
    // retrying a finish whose reply it lost in the failover) adds nothing.
    let answer = StoredMessage::assistant("before after later", message.id, false);
    let last = [complete("before after later")];
    let done = retry("finish", || {
        backend.finish(&delivery, &work, Some(&answer), &last)
    })
    .await;
    assert_eq!(done, FinishOutcome::Done);
    backend
        .finish(&delivery, &work, Some(&answer), &[complete("x")])
        .await
        .unwrap();
    let history = history(&backend, &id).await;
    assert_eq!(history, vec![message, answer]);
    let replay = backend.replay(&id, 0).await.unwrap();
    let completes = replay
        .events
        .iter()
        .filter(|l| l.contains("\"type\":\"complete\""))
        .count();
    assert_eq!(completes, 1, "{:?}", replay.events);
    assert!(
        deliveries(&backend, 1).await.is_empty(),
        "nothing left queued"
    );
}

// ---------------------------------------------------------------------------
// TLS (`rediss://`, `rediss-cluster://`) with a private CA

/// Settings trusting `tls`'s CA, with its client certificate when `client_cert`.
fn tls_settings(url: &str, tls: &TlsFiles, client_cert: bool) -> StoreSettings {
    let mut settings = StoreSettings::new(Some(url), &unique_prefix("tls"));
    settings.redis_tls_ca_file = Some(tls.ca());
    if client_cert {
        settings.redis_tls_cert_file = Some(tls.client_cert());
        settings.redis_tls_key_file = Some(tls.client_key());
    }
    settings.load_tls().expect("the TLS files load");
    settings
}

/// A message accepted, taken by a worker, answered, with the live chunk arriving on
/// the subscriber (sharded pub/sub on a cluster) and the answer in the history.
async fn round_trip(backend: &Backend) {
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);
    let new = new_session();
    let id = new.id.clone();
    assert!(backend.create_session(&new).await.unwrap());
    subscriber.subscribe(&id).await.unwrap();
    let message = accept(backend, &id, "over tls").await;
    let delivery = deliveries(backend, 1).await.pop().expect("a delivery");
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(work.message, message);
    let published = backend
        .publish(&id, &[chunk("encrypted")], Some(work.fence()))
        .await
        .unwrap();
    // Seq 1 is the `typing` begin published.
    assert_eq!(published, PublishOutcome::Published { last_seq: 2 });
    let (lines, _) = bus_chunks(&mut rx, Duration::from_secs(1)).await;
    assert!(
        lines.iter().any(|l| l.contains("encrypted")),
        "the live chunk arrives: {lines:?}"
    );
    let answer = StoredMessage::assistant("encrypted", message.id, false);
    let finished = backend
        .finish(&delivery, &work, Some(&answer), &[complete("encrypted")])
        .await
        .unwrap();
    assert_eq!(finished, FinishOutcome::Done);
    let stored = history(backend, &id).await;
    assert_eq!(stored.last().map(|m| m.content.as_str()), Some("encrypted"));
}

/// Connecting must fail (within the connection timeout, not hang); the error text.
async fn refused(settings: &StoreSettings) -> String {
    match tokio::time::timeout(Duration::from_secs(15), Backend::connect(settings)).await {
        Ok(Ok(_)) => panic!("the connection was accepted"),
        Ok(Err(error)) => error.to_string(),
        Err(_) => panic!("connecting neither succeeded nor failed"),
    }
}

#[tokio::test]
async fn one_redis_over_tls_with_a_private_ca_round_trips() {
    let tls = TlsFiles::generate();
    let server = RedisServer::start_tls(&tls, false);
    assert!(server.url().starts_with("rediss://"));
    let backend = Backend::connect(&tls_settings(&server.url(), &tls, false))
        .await
        .expect("backend connects over TLS");
    round_trip(&backend).await;
}

#[tokio::test]
async fn a_tls_cluster_round_trips_over_sharded_pubsub() {
    let tls = TlsFiles::generate();
    let cluster = RedisCluster::start_tls(3, 0, &tls);
    assert!(cluster.url().starts_with("rediss-cluster://"));
    let backend = Backend::connect(&tls_settings(&cluster.url(), &tls, false))
        .await
        .expect("backend connects to the TLS cluster");
    // Sessions on several slots, so on several masters' TLS connections.
    for _ in 0..4 {
        round_trip(&backend).await;
    }
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let tls = TlsFiles::generate();
    let server = RedisServer::start_tls(&tls, true);
    let backend = Backend::connect(&tls_settings(&server.url(), &tls, true))
        .await
        .expect("the client certificate is accepted");
    backend.ping().await.unwrap();
    drop(backend);
    let error = refused(&tls_settings(&server.url(), &tls, false)).await;
    assert!(error.contains("CertificateRequired"), "{error}");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let tls = TlsFiles::generate();
    let other = TlsFiles::generate();
    let server = RedisServer::start_tls(&tls, false);
    let error = refused(&tls_settings(&server.url(), &other, false)).await;
    assert!(
        error.contains("InvalidCertificate(UnknownIssuer)"),
        "{error}"
    );
}

#[tokio::test]
async fn tls_settings_on_a_plain_redis_url_are_refused() {
    let tls = TlsFiles::generate();
    let mut settings = StoreSettings::new(Some("redis://127.0.0.1:1"), "tls");
    settings.redis_tls_ca_file = Some(tls.ca());
    let error = settings.load_tls().unwrap_err().to_string();
    assert!(error.contains("REDIS_URL is not rediss://"), "{error}");
    let error = match Backend::connect(&settings).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("connected with TLS settings on a plain URL"),
    };
    assert!(error.contains("REDIS_URL is not rediss://"), "{error}");
}
