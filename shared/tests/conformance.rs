//! The storage/queue/bus conformance suite: every case is one `async fn(Backend, &Ctx)`
//! and [`conformance!`](helpers::conformance) runs it as `redis::<case>` (a private
//! `redis-server` per case), `cluster::<case>` (a shared 3-master Redis Cluster) and
//! `memory::<case>` (tokio's clock paused). Adding a case to the list at the bottom
//! adds it to all three, so the backends cannot drift apart.
//!
//! # Layout
//!
//! - sessions: create / get / touch / delete, the live count, idle expiry.
//! - history and accept: paging, trimming, idempotency, the pending limit.
//! - queue: one inbox entry per busy session, begin / finish, order, blocking reads.
//! - fencing and deletion during an answer.
//! - events and bus: seqs, replay, trimming, pub/sub fan-out, the delete control.

#[path = "conformance/helpers.rs"]
mod helpers;
#[path = "conformance/limits.rs"]
mod limits;
#[path = "conformance/slots.rs"]
mod slots;

use helpers::*;
use shared::backend::{Backend, BusSignal, PublishOutcome};
use shared::config::StoreSettings;
use shared::ids::{MessageId, SessionId};
use shared::model::{
    AcceptOutcome, Begin, Control, FinishOutcome, FunctionCall, NewSession, Role, SaveOutcome,
    StoredMessage, Work,
};
use shared::telemetry::TraceContext;
use shared::wire::Protocol;
use std::time::Duration;

// ---------------------------------------------------------------------------
// Sessions

async fn session_lifecycle(backend: Backend, _ctx: &Ctx) {
    backend.ping().await.unwrap();
    let new = NewSession {
        protocol: Protocol::Simple,
        metadata: serde_json::json!({"plan": "pro", "tags": ["a", "b"], "nested": {"x": 1}}),
        ..new_session()
    };
    let id = new.id.clone();
    assert!(backend.create_session(&new).await.unwrap(), "created");
    let again = NewSession {
        user_id: None,
        ..new.clone()
    };
    assert!(!backend.create_session(&again).await.unwrap(), "id taken");

    let record = backend.session(&id).await.unwrap().expect("stored");
    assert_eq!(record.id, id);
    assert_eq!(record.user_id, new.user_id, "the first create won");
    assert_eq!(record.protocol, Protocol::Simple);
    assert_eq!(record.metadata, new.metadata);
    assert_eq!(record.created_at_ms, new.created_at_ms);
    assert_eq!(record.last_activity_ms, new.created_at_ms);
    assert_eq!(record.message_count, 0);
    assert_eq!(record.last_seq, 0);

    // A session with no user keeps `None`, not an empty user id.
    let anonymous = NewSession {
        user_id: None,
        ..new_session()
    };
    assert!(backend.create_session(&anonymous).await.unwrap());
    let record = backend.session(&anonymous.id).await.unwrap().unwrap();
    assert_eq!(record.user_id, None);
    assert_eq!(record.protocol, Protocol::Stream);

    // Wall-clock milliseconds, so let at least one pass before touching.
    std::thread::sleep(Duration::from_millis(5));
    assert!(backend.touch_session(&id).await.unwrap());
    let touched = backend.session(&id).await.unwrap().unwrap();
    assert!(
        touched.last_activity_ms > new.created_at_ms,
        "{touched:?} after {}",
        new.created_at_ms
    );
    assert_eq!(touched.created_at_ms, new.created_at_ms);

    assert!(backend.delete_session(&id).await.unwrap(), "deleted");
    assert!(!backend.delete_session(&id).await.unwrap(), "already gone");
    assert_eq!(backend.session(&id).await.unwrap(), None);
    assert!(!backend.touch_session(&id).await.unwrap());
    assert!(
        !backend
            .touch_session(&SessionId::new_random())
            .await
            .unwrap()
    );
    assert_eq!(
        backend.session(&SessionId::new_random()).await.unwrap(),
        None
    );

    // The id is free again, and the new session starts empty.
    assert!(backend.create_session(&new).await.unwrap());
    assert_eq!(
        backend.session(&id).await.unwrap().unwrap().message_count,
        0
    );
}

async fn active_sessions_counts_live_ones(backend: Backend, _ctx: &Ctx) {
    assert_eq!(backend.active_sessions().await.unwrap(), 0);
    let a = session(&backend).await;
    let _b = session(&backend).await;
    let c = session(&backend).await;
    assert_eq!(backend.active_sessions().await.unwrap(), 3);
    accept(&backend, &a, "activity").await;
    assert_eq!(
        backend.active_sessions().await.unwrap(),
        3,
        "no double count"
    );
    assert!(backend.delete_session(&c).await.unwrap());
    assert_eq!(backend.active_sessions().await.unwrap(), 2);
    assert!(backend.delete_session(&a).await.unwrap());
    assert_eq!(backend.active_sessions().await.unwrap(), 1);
}

/// Real seconds on Redis, virtual ones on memory. TTL 2 s; `touched` is touched at
/// 1.0 s, so at 2.4 s the others have expired and it has not (it goes at 3.0 s).
/// Messages and answers are activity: a session whose messages keep coming outlives
/// its first TTL, and every key of it with it (on Redis the TTLs are refreshed at most
/// every TTL/20, here every 100 ms, so both sends are past a refresh).
async fn messages_and_answers_keep_a_session_alive(_backend: Backend, ctx: &Ctx) {
    let backend = ctx.connect(|s| s.session_idle_ttl_secs = 2).await;
    let id = session(&backend).await;
    let mut sent = Vec::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        let message = accept(&backend, &id, &format!("message {round}")).await;
        let delivery = one_delivery(&backend).await;
        let work = work_of(backend.begin(&delivery, 10).await.unwrap());
        let answer = StoredMessage::assistant(format!("answer {round}"), message.id, false);
        let outcome = backend
            .finish(&delivery, &work, Some(&answer), &chunks("a", 1))
            .await
            .unwrap();
        assert_eq!(outcome, FinishOutcome::Done);
        sent.extend([message, answer]);
    }
    // 2.7 s after creation, 0.9 s after the last answer, with a TTL of 2 s.
    let page = backend
        .history(&id, 100, None)
        .await
        .unwrap()
        .expect("alive");
    assert_eq!(page.messages, sent);
    let replay = backend.replay(&id, 0).await.unwrap();
    assert!(replay.recovered);
    assert_eq!(replay.events.len(), 6, "typing and a chunk per answer");
    assert_eq!(backend.active_sessions().await.unwrap(), 1);
}

async fn idle_sessions_expire_unless_touched(_backend: Backend, ctx: &Ctx) {
    let backend = ctx.connect(|s| s.session_idle_ttl_secs = 2).await;
    let idle = session(&backend).await;
    let touched = session(&backend).await;
    let reused = session(&backend).await;
    accept(&backend, &reused, "before expiry").await;
    assert_eq!(backend.active_sessions().await.unwrap(), 3);

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(backend.touch_session(&touched).await.unwrap());
    // Publishing is not activity; the session still expires at 2 s.
    publish(&backend, &reused, &chunks("late", 2)).await;

    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert_eq!(backend.session(&idle).await.unwrap(), None, "expired");
    assert!(!backend.touch_session(&idle).await.unwrap(), "no revival");
    let outcome = backend
        .accept_message(
            &idle,
            &StoredMessage::user("too late"),
            &Default::default(),
            None,
            ROOMY,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::SessionNotFound);
    assert!(
        backend.session(&touched).await.unwrap().is_some(),
        "touched"
    );
    assert_eq!(backend.session(&reused).await.unwrap(), None, "expired");
    assert_eq!(backend.active_sessions().await.unwrap(), 1);

    // An expired id can be taken again and starts empty: no history, seq from 1.
    let again = NewSession {
        id: reused.clone(),
        ..new_session()
    };
    assert!(backend.create_session(&again).await.unwrap());
    let record = backend.session(&reused).await.unwrap().unwrap();
    assert_eq!((record.message_count, record.last_seq), (0, 0));
    assert!(
        backend
            .history(&reused, 10, None)
            .await
            .unwrap()
            .unwrap()
            .messages
            .is_empty()
    );
    let replay = backend.replay(&reused, 0).await.unwrap();
    assert!(replay.events.is_empty() && replay.recovered && replay.last_seq == 0);
    assert_eq!(publish(&backend, &reused, &chunks("new", 1)).await, 1);
    let replay = backend.replay(&reused, 0).await.unwrap();
    assert_eq!(
        contents(replay.events.iter().map(String::as_str)),
        ["new-0"]
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        backend.session(&touched).await.unwrap(),
        None,
        "expired too"
    );
    // `reused` was re-created at 2.4 s and is the only one left.
    assert_eq!(backend.active_sessions().await.unwrap(), 1);
}

// ---------------------------------------------------------------------------
// History and accept

async fn history_pages_oldest_first(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let mut all = Vec::new();
    for i in 0..5 {
        all.push(accept(&backend, &id, &format!("m{i}")).await);
    }

    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(page.messages, all, "stored as accepted, oldest first");
    assert!(!page.has_more);

    let page = backend.history(&id, 2, None).await.unwrap().unwrap();
    assert_eq!(page.messages, all[3..5]);
    assert!(page.has_more);
    let page = backend
        .history(&id, 2, Some(all[3].id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.messages, all[1..3]);
    assert!(page.has_more);
    let page = backend
        .history(&id, 2, Some(all[1].id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.messages, all[0..1]);
    assert!(!page.has_more);
    let page = backend
        .history(&id, 2, Some(all[0].id))
        .await
        .unwrap()
        .unwrap();
    assert!(page.messages.is_empty() && !page.has_more);

    let unknown = MessageId::new_random();
    assert_eq!(backend.history(&id, 2, Some(unknown)).await.unwrap(), None);
    let page = backend
        .history(&SessionId::new_random(), 10, None)
        .await
        .unwrap();
    assert!(page.is_none_or(|p| p.messages.is_empty()));
}

async fn history_keeps_the_newest_messages(_backend: Backend, ctx: &Ctx) {
    let backend = ctx.connect(|s| s.history_max_messages = 3).await;
    let id = session(&backend).await;
    let mut all = Vec::new();
    for i in 0..5 {
        all.push(accept(&backend, &id, &format!("m{i}")).await);
    }
    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(page.messages, all[2..5]);
    assert!(!page.has_more);
    assert_eq!(
        backend.history(&id, 10, Some(all[0].id)).await.unwrap(),
        None,
        "trimmed messages are unknown"
    );
    let record = backend.session(&id).await.unwrap().unwrap();
    assert_eq!(record.message_count, 5, "counts every message ever stored");

    // Answers are trimmed the same way.
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(
        work.message, all[0],
        "still pending although trimmed from history"
    );
    let answer = StoredMessage::assistant("a0", all[0].id, false);
    let outcome = backend.finish(&delivery, &work, Some(&answer), &[]).await;
    assert_eq!(outcome.unwrap(), FinishOutcome::Done);
    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(page.messages, [all[3].clone(), all[4].clone(), answer]);
}

async fn accept_outcomes(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let before = backend.session(&id).await.unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(5));

    let first = StoredMessage::user("hello");
    let outcome = backend
        .accept_message(&id, &first, &Default::default(), Some("c-1"), 2, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Accepted(first.id));
    let record = backend.session(&id).await.unwrap().unwrap();
    assert_eq!(record.message_count, 1);
    assert!(
        record.last_activity_ms > before.last_activity_ms,
        "is activity"
    );
    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(page.messages, std::slice::from_ref(&first));
    assert_eq!(page.messages[0].role, Role::User);

    // A resend under the same client id is the first message, stored once.
    let resend = StoredMessage::user("hello");
    let outcome = backend
        .accept_message(&id, &resend, &Default::default(), Some("c-1"), 2, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Duplicate(first.id));
    assert_eq!(
        backend.session(&id).await.unwrap().unwrap().message_count,
        1
    );
    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(page.messages, std::slice::from_ref(&first));

    let second = StoredMessage::user("second");
    let outcome = backend
        .accept_message(&id, &second, &Default::default(), Some("c-2"), 2, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Accepted(second.id));

    // Two unanswered: the limit is reached, and nothing is stored.
    let third = StoredMessage::user("third");
    let outcome = backend
        .accept_message(&id, &third, &Default::default(), Some("c-3"), 2, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::TooManyPending);
    let outcome = backend
        .accept_message(&id, &third, &Default::default(), None, 2, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::TooManyPending);
    assert_eq!(
        backend.session(&id).await.unwrap().unwrap().message_count,
        2
    );
    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(page.messages, [first.clone(), second.clone()]);
    // A resend is still recognised when full, and "c-3" was not remembered.
    let outcome = backend
        .accept_message(
            &id,
            &StoredMessage::user("x"),
            &Default::default(),
            Some("c-1"),
            2,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Duplicate(first.id));

    // One inbox entry for the session, whose first message is the one answered first.
    let delivery = one_delivery(&backend).await;
    assert_eq!(delivery.session_id, id);
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(work.message, first);
    let outcome = backend.finish(&delivery, &work, None, &[]).await.unwrap();
    assert_eq!(outcome, FinishOutcome::Done);
    // Room again; "c-3" is new.
    let outcome = backend
        .accept_message(&id, &third, &Default::default(), Some("c-3"), 2, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Accepted(third.id));
    // Client ids outlive the answer.
    let outcome = backend
        .accept_message(
            &id,
            &StoredMessage::user("x"),
            &Default::default(),
            Some("c-1"),
            2,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Duplicate(first.id));

    let outcome = backend
        .accept_message(
            &SessionId::new_random(),
            &StoredMessage::user("x"),
            &Default::default(),
            None,
            2,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::SessionNotFound);
}

// ---------------------------------------------------------------------------
// Queue

fn work_of(begin: Begin) -> Work {
    match begin {
        Begin::Work(work) => *work,
        other => panic!("expected work, got {other:?}"),
    }
}

async fn one_inbox_entry_per_busy_session(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);
    subscriber.subscribe(&id).await.unwrap();

    let messages = [
        accept(&backend, &id, "one").await,
        accept(&backend, &id, "two").await,
        accept(&backend, &id, "three").await,
    ];
    assert_eq!(backend.queue_stats().await.unwrap().backlog, 1);

    let mut last_attempt = 0;
    let mut last_entry = String::new();
    for (n, message) in messages.iter().enumerate() {
        let delivery = one_delivery(&backend).await;
        assert_eq!(delivery.session_id, id);
        assert_ne!(
            delivery.entry_id, last_entry,
            "a new entry for each message"
        );
        last_entry = delivery.entry_id.clone();

        let work = work_of(backend.begin(&delivery, 100).await.unwrap());
        assert_eq!(&work.message, message, "answered in order");
        assert!(work.attempt > last_attempt);
        // A first try says `typing` as it begins: one event, then the answer's two.
        assert!(work.announced);
        assert_eq!(announced(&mut rx, message.id).await, 3 * n as u64 + 1);
        if n == 0 {
            assert_eq!(work.attempt, 1);
            assert_eq!(work.history, messages);
        }
        last_attempt = work.attempt;
        // The session's entry is out; more messages do not add another.
        no_delivery(&backend).await;
        assert_eq!(backend.queue_stats().await.unwrap().backlog, 1);

        let answer = StoredMessage::assistant(format!("answer {n}"), message.id, false);
        let events = chunks(&format!("a{n}"), 2);
        let outcome = backend
            .finish(&delivery, &work, Some(&answer), &events)
            .await
            .unwrap();
        assert_eq!(outcome, FinishOutcome::Done);

        let published = next_message(&mut rx).await;
        assert_eq!(published.session_id, id);
        let lines: Vec<&str> = published.payload.split('\n').collect();
        let first_seq = 3 * n as u64 + 2;
        assert_eq!(seqs(lines.iter().copied()), [first_seq, first_seq + 1]);
        assert_eq!(contents(lines), [format!("a{n}-0"), format!("a{n}-1")]);

        let page = backend.history(&id, 100, None).await.unwrap().unwrap();
        assert_eq!(page.messages.last(), Some(&answer));
        let record = backend.session(&id).await.unwrap().unwrap();
        assert_eq!(record.message_count, 4 + n as u64);
        assert_eq!(record.last_seq, first_seq + 1);
    }

    no_delivery(&backend).await;
    let stats = backend.queue_stats().await.unwrap();
    assert_eq!((stats.backlog, stats.oldest_age_ms), (0, 0));
    let page = backend.history(&id, 100, None).await.unwrap().unwrap();
    let roles: Vec<Role> = page.messages.iter().map(|m| m.role).collect();
    use Role::{Assistant as A, User as U};
    assert_eq!(roles, [U, U, U, A, A, A]);
    let replies: Vec<_> = page.messages[3..].iter().map(|m| m.reply_to).collect();
    assert_eq!(
        replies,
        messages.iter().map(|m| Some(m.id)).collect::<Vec<_>>()
    );

    // The next message makes the session busy again.
    let four = accept(&backend, &id, "four").await;
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 100).await.unwrap());
    assert_eq!(work.message, four);
}

async fn two_sessions_two_deliveries(backend: Backend, _ctx: &Ctx) {
    let a = session(&backend).await;
    let b = session(&backend).await;
    accept(&backend, &a, "a1").await;
    accept(&backend, &b, "b1").await;
    accept(&backend, &a, "a2").await;
    // Ages are wall-clock milliseconds.
    std::thread::sleep(Duration::from_millis(30));
    let stats = backend.queue_stats().await.unwrap();
    assert_eq!(stats.backlog, 2);
    assert!(stats.oldest_age_ms >= 30, "{stats:?}");

    let first = backend.read_inbox("w1", 1, DEADLINE).await.unwrap();
    let second = backend.read_inbox("w2", 10, DEADLINE).await.unwrap();
    assert_eq!((first.len(), second.len()), (1, 1), "{first:?} {second:?}");
    // Order holds per session (one entry per busy session); across sessions the Redis
    // inbox is partitioned and read in turn, so either session may come first.
    let mut got = [first[0].session_id.clone(), second[0].session_id.clone()];
    got.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    let mut want = [a, b];
    want.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    assert_eq!(got, want, "one delivery per busy session");
    no_delivery(&backend).await;
    assert_eq!(backend.queue_stats().await.unwrap().backlog, 2);
}

async fn read_inbox_waits_for_an_accept(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let reader = backend.clone();
    let read = tokio::spawn(async move {
        reader
            .read_inbox("w1", 10, Duration::from_secs(3))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!read.is_finished(), "blocks while the inbox is empty");
    accept(&backend, &id, "wake up").await;
    let deliveries = tokio::time::timeout(DEADLINE, read)
        .await
        .expect("read returns after the accept")
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].session_id, id);
}

/// A blocking read is not a slow command: it may wait longer than the command timeout.
async fn read_inbox_may_block_past_the_command_timeout(_backend: Backend, ctx: &Ctx) {
    let backend = ctx.connect(|s| s.redis_command_timeout_ms = 200).await;
    let deliveries = backend
        .read_inbox("w1", 10, Duration::from_millis(700))
        .await
        .expect("an empty read, not a timeout");
    assert!(deliveries.is_empty());
    let id = session(&backend).await;
    accept(&backend, &id, "after the empty read").await;
    assert_eq!(one_delivery(&backend).await.session_id, id);
}

async fn begin_returns_recent_history(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let messages = [
        accept(&backend, &id, "one").await,
        accept(&backend, &id, "two").await,
        accept(&backend, &id, "three").await,
    ];
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 2).await.unwrap());
    assert_eq!(work.message, messages[0]);
    assert_eq!(work.history, messages[1..]);
    let work = work_of(backend.begin(&delivery, 0).await.unwrap());
    assert_eq!(work.history, [], "no context asked, none given");
    let work = work_of(backend.begin(&delivery, 1000).await.unwrap());
    assert_eq!(work.history, messages);

    // Answer all three; each finish queues the session again for the next one.
    let first = delivery.clone();
    let mut delivery = delivery;
    for (n, message) in messages.iter().enumerate() {
        let work = work_of(backend.begin(&delivery, 10).await.unwrap());
        assert_eq!(&work.message, message);
        let outcome = backend.finish(&delivery, &work, None, &[]).await.unwrap();
        assert_eq!(outcome, FinishOutcome::Done);
        if n < 2 {
            delivery = one_delivery(&backend).await;
        }
    }
    // A stale entry (its message already answered) is idle and acknowledged.
    assert_eq!(backend.begin(&first, 10).await.unwrap(), Begin::Idle);
    assert_eq!(backend.queue_stats().await.unwrap().backlog, 0);
}

// ---------------------------------------------------------------------------
// Fencing and deletion during an answer

async fn a_reclaim_fences_the_old_attempt(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);
    subscriber.subscribe(&id).await.unwrap();
    let message = accept(&backend, &id, "question").await;
    let delivery = one_delivery(&backend).await;

    let old = work_of(backend.begin(&delivery, 10).await.unwrap());
    let new = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!((old.attempt, new.attempt), (1, 2));
    assert_eq!(new.message, message, "the same message, restarted");
    // The first try said `typing` as it began; a restart leaves that to the worker
    // (it announces `restarted` first).
    assert_eq!((old.announced, new.announced), (true, false));
    assert_eq!(announced(&mut rx, message.id).await, 1);

    let outcome = backend
        .publish(&id, &chunks("old", 1), Some(old.fence()))
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::Fenced);
    let answer = StoredMessage::assistant("old answer", message.id, false);
    let outcome = backend
        .finish(&delivery, &old, Some(&answer), &chunks("old-final", 1))
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Fenced);
    let record = backend.session(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.message_count, record.last_seq),
        (1, 1),
        "nothing written but the first try's typing"
    );
    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(page.messages, std::slice::from_ref(&message));
    assert_eq!(backend.queue_stats().await.unwrap().backlog, 1, "not acked");

    let outcome = backend
        .publish(&id, &chunks("new", 1), Some(new.fence()))
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::Published { last_seq: 2 });
    let published = next_message(&mut rx).await;
    assert_eq!(
        contents(published.payload.split('\n')),
        ["new-0"],
        "no fenced event"
    );

    let answer = StoredMessage::assistant("new answer", message.id, false);
    let outcome = backend
        .finish(&delivery, &new, Some(&answer), &chunks("new-final", 1))
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Done);
    let published = next_message(&mut rx).await;
    assert_eq!(contents(published.payload.split('\n')), ["new-final-0"]);
    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(page.messages, [message, answer]);
    assert_eq!(backend.queue_stats().await.unwrap().backlog, 0);
    // The old holder still cannot write, now that the message is done.
    let outcome = backend
        .publish(&id, &chunks("old", 1), Some(old.fence()))
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::Fenced);
}

async fn a_failed_answer_publishes_only_the_error(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);
    subscriber.subscribe(&id).await.unwrap();
    let first = accept(&backend, &id, "fails").await;
    let second = accept(&backend, &id, "next").await;

    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    let typing = next_message(&mut rx).await;
    assert_eq!(seqs([&*typing.payload]), [1], "the typing begin published");
    let outcome = backend
        .finish(&delivery, &work, None, &[error_event(first.id)])
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Done);

    let published = next_message(&mut rx).await;
    assert_eq!(published.payload.split('\n').count(), 1);
    assert_eq!(type_of(&published.payload), "error");
    assert_eq!(seqs([&*published.payload]), [2]);
    let replay = backend.replay(&id, 0).await.unwrap();
    assert_eq!(
        replay.events,
        [typing.payload.to_string(), published.payload.to_string()]
    );

    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(
        page.messages,
        [first, second.clone()],
        "no assistant message"
    );
    let record = backend.session(&id).await.unwrap().unwrap();
    assert_eq!((record.message_count, record.last_seq), (2, 2));

    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(work.message, second, "the failed message was popped");
}

async fn deleting_a_session_mid_answer(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let message = accept(&backend, &id, "question").await;
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());

    assert!(backend.delete_session(&id).await.unwrap());
    let outcome = backend
        .publish(&id, &chunks("x", 1), Some(work.fence()))
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::SessionGone);
    let outcome = backend.publish(&id, &chunks("x", 1), None).await.unwrap();
    assert_eq!(outcome, PublishOutcome::SessionGone);
    let answer = StoredMessage::assistant("late", message.id, false);
    let outcome = backend
        .finish(&delivery, &work, Some(&answer), &chunks("x", 1))
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::SessionGone);
    assert_eq!(backend.queue_stats().await.unwrap().backlog, 0, "acked");
    assert_eq!(backend.session(&id).await.unwrap(), None, "not revived");
    let replay = backend.replay(&id, 0).await.unwrap();
    assert!(replay.events.is_empty() && replay.last_seq == 0);

    // Deleted while queued: begin acknowledges the entry and reports it.
    let other = session(&backend).await;
    accept(&backend, &other, "question").await;
    let delivery = one_delivery(&backend).await;
    assert!(backend.delete_session(&other).await.unwrap());
    assert_eq!(
        backend.begin(&delivery, 10).await.unwrap(),
        Begin::SessionGone
    );
    assert_eq!(backend.queue_stats().await.unwrap().backlog, 0);
    no_delivery(&backend).await;
    let outcome = backend
        .accept_message(
            &other,
            &StoredMessage::user("x"),
            &Default::default(),
            None,
            ROOMY,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::SessionNotFound);
}

async fn a_leftover_entry_of_a_recreated_session_is_stale(backend: Backend, _ctx: &Ctx) {
    // Deleted while its entry was queued, then re-created under the same id (the
    // simple client reuses ids like `user123`): the old entry must not start a
    // second answer next to the new entry's.
    let new = new_session();
    let id = new.id.clone();
    assert!(backend.create_session(&new).await.unwrap());
    accept(&backend, &id, "before delete").await;
    assert!(backend.delete_session(&id).await.unwrap());
    assert!(backend.create_session(&new).await.unwrap());
    let message = accept(&backend, &id, "after re-create").await;

    // One Redis reads a partition's entries a share of `max` at a time: read until both.
    let mut deliveries = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while deliveries.len() < 2 && tokio::time::Instant::now() < deadline {
        deliveries.extend(backend.read_inbox("w1", 10, DEADLINE).await.unwrap());
    }
    assert_eq!(deliveries.len(), 2, "old and new entry: {deliveries:?}");
    let mut work = Vec::new();
    for delivery in &deliveries {
        match backend.begin(delivery, 10).await.unwrap() {
            Begin::Work(w) => work.push((delivery.clone(), *w)),
            Begin::Idle => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(work.len(), 1, "exactly one entry carries work");
    let (delivery, w) = &work[0];
    assert_eq!(w.message.id, message.id);
    assert_eq!(w.attempt, 1, "the stale entry did not bump the fence");
    let answer = StoredMessage::assistant("answer", message.id, false);
    let outcome = backend
        .finish(delivery, w, Some(&answer), &chunks("a", 1))
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Done);
    assert_eq!(
        backend.queue_stats().await.unwrap().backlog,
        0,
        "both acked"
    );
}

async fn an_idle_claim_is_reclaimed_and_restarted(backend: Backend, _ctx: &Ctx) {
    let lease = Duration::from_millis(400);
    let id = session(&backend).await;
    let message = accept(&backend, &id, "question").await;
    let delivery = one_delivery(&backend).await;
    let first = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!((first.attempt, first.tries), (1, 1));

    // A live worker keeps its claim fresh: nothing to reclaim.
    tokio::time::sleep(lease / 2).await;
    backend
        .refresh_claims("w1", std::slice::from_ref(&delivery.entry_id))
        .await
        .unwrap();
    tokio::time::sleep(lease * 3 / 4).await;
    assert!(backend.reclaim("w2", lease, 10).await.unwrap().is_empty());

    // It stops refreshing (it died): after the lease another worker takes it over.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let reclaimed = backend.reclaim("w2", lease, 10).await.unwrap();
    assert_eq!(reclaimed, vec![delivery.clone()]);
    let second = work_of(backend.begin(&reclaimed[0], 10).await.unwrap());
    assert_eq!(second.message.id, message.id);
    assert_eq!((second.attempt, second.tries), (2, 2), "restarted");

    let answer = StoredMessage::assistant("late", message.id, false);
    let outcome = backend
        .finish(&delivery, &first, Some(&answer), &[])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        FinishOutcome::Fenced,
        "the dead worker cannot finish"
    );
    let answer = StoredMessage::assistant("answer", message.id, false);
    let outcome = backend
        .finish(&reclaimed[0], &second, Some(&answer), &chunks("a", 1))
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Done);
    assert_eq!(backend.queue_stats().await.unwrap().backlog, 0);
    assert!(
        backend
            .reclaim("w3", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The next message starts counting its tries afresh.
    accept(&backend, &id, "next").await;
    let delivery = one_delivery(&backend).await;
    let next = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!((next.attempt, next.tries), (3, 1));
}

async fn the_trace_context_travels_with_the_queued_message(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let traced = StoredMessage::user("traced");
    let trace = TraceContext {
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        tracestate: Some("vendor=value".into()),
    };
    let outcome = backend
        .accept_message(&id, &traced, &trace, None, ROOMY, None)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Accepted(traced.id));
    let untraced = accept(&backend, &id, "untraced").await;

    let delivery = one_delivery(&backend).await;
    let first = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(first.message, traced);
    assert_eq!(first.trace, trace);
    // The history holds the message alone, as the API returns it.
    assert_eq!(first.history, vec![traced.clone(), untraced.clone()]);

    // A worker that takes the message over (the first one died) gets the same trace.
    let reclaimed = backend.reclaim("w2", Duration::ZERO, 10).await.unwrap();
    assert_eq!(reclaimed, vec![delivery.clone()]);
    let second = work_of(backend.begin(&reclaimed[0], 10).await.unwrap());
    assert_eq!((second.message.id, second.tries), (traced.id, 2));
    assert_eq!(second.trace, trace);

    let answer = StoredMessage::assistant("answer", traced.id, false);
    let outcome = backend
        .finish(&reclaimed[0], &second, Some(&answer), &[])
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Done);
    let delivery = one_delivery(&backend).await;
    let next = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(next.message, untraced);
    assert!(next.trace.is_empty(), "{:?}", next.trace);
}

async fn cancel_stops_the_message_in_progress(backend: Backend, _ctx: &Ctx) {
    let mut requests = backend.cancel_requests().await.unwrap();
    let unknown = SessionId::new_random();
    assert_eq!(
        backend.cancel(&unknown).await.unwrap(),
        shared::model::CancelOutcome::SessionNotFound
    );
    let id = session(&backend).await;
    assert_eq!(
        backend.cancel(&id).await.unwrap(),
        shared::model::CancelOutcome::Idle
    );
    let first = accept(&backend, &id, "first").await;
    let second = accept(&backend, &id, "second").await;
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert!(!work.cancelled);
    assert!(matches!(
        backend
            .publish(&id, &chunks("a", 1), Some(work.fence()))
            .await
            .unwrap(),
        PublishOutcome::Published { .. }
    ));

    assert_eq!(
        backend.cancel(&id).await.unwrap(),
        shared::model::CancelOutcome::Cancelled
    );
    let request = tokio::time::timeout(DEADLINE, requests.recv())
        .await
        .expect("cancel request in time")
        .expect("open");
    assert_eq!(request.session_id, id);
    assert_eq!(request.message_id, first.id);
    assert_eq!(
        backend
            .publish(&id, &chunks("b", 1), Some(work.fence()))
            .await
            .unwrap(),
        PublishOutcome::Cancelled,
        "the worker's next publish sees the cancel"
    );
    assert!(matches!(
        backend.publish(&id, &chunks("c", 1), None).await.unwrap(),
        PublishOutcome::Published { .. }
    ));
    // A retry of the cancelled message learns it at begin.
    let retry = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert!(retry.cancelled);
    let partial = StoredMessage::assistant("a", first.id, true);
    let outcome = backend
        .finish(&delivery, &retry, Some(&partial), &chunks("done", 1))
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Done);
    let history = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert!(history.messages.last().unwrap().cancelled);

    // Only the message in progress was stopped: the next one runs normally.
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(work.message.id, second.id);
    assert!(!work.cancelled);
    assert!(matches!(
        backend
            .publish(&id, &chunks("d", 1), Some(work.fence()))
            .await
            .unwrap(),
        PublishOutcome::Published { .. }
    ));
}

async fn dead_letters_are_kept(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    accept(&backend, &id, "poison").await;
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(backend.queue_stats().await.unwrap().dead_letters, 0);
    backend
        .dead_letter(&delivery, &work, "too many tries")
        .await
        .unwrap();
    assert_eq!(backend.queue_stats().await.unwrap().dead_letters, 1);
}

async fn a_canary_reaches_its_own_subscriber(backend: Backend, _ctx: &Ctx) {
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(64);
    subscriber.watch_probe("instance-1").await.unwrap();
    // A session whose id spells the probe's name is another channel: subscribing and
    // unsubscribing it (a client opening and closing its socket) leaves the probe alone.
    for raw in ["probe:instance-1", "canary.instance-1"] {
        let lookalike = SessionId::parse(raw).unwrap();
        subscriber.subscribe(&lookalike).await.unwrap();
        subscriber.unsubscribe(&lookalike).await.unwrap();
    }
    backend.send_canary("instance-2").await.unwrap();
    backend.send_canary("instance-1").await.unwrap();
    let signal = tokio::time::timeout(DEADLINE, rx.recv()).await.unwrap();
    assert_eq!(signal, Some(BusSignal::Probe));
    for raw in ["probe:instance-1", "canary.instance-1"] {
        assert!(
            backend
                .session(&SessionId::parse(raw).unwrap())
                .await
                .unwrap()
                .is_none(),
            "no session is made"
        );
    }
    // Only its own probe's canaries arrive (instance-2's was not one of them).
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------
// Tool calls

fn tool_call(round: u32, index: u32, result: Option<serde_json::Value>) -> FunctionCall {
    FunctionCall {
        name: format!("tool{index}"),
        call_id: format!("call_{round}_{index}"),
        arguments: format!("{{\"n\": {index}}}"),
        result,
        round,
        index,
    }
}

async fn tool_calls_survive_a_restart_and_end_with_the_answer(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);
    subscriber.subscribe(&id).await.unwrap();
    let message = accept(&backend, &id, "book it").await;
    let delivery = one_delivery(&backend).await;
    let first = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert!(first.tool_calls.is_empty());
    announced(&mut rx, message.id).await;
    assert_eq!(
        first.user_id,
        new_session().user_id,
        "the owner comes along"
    );
    assert_eq!(first.metadata, new_session().metadata);

    // Two calls of one turn, stored with their announcement in one step.
    let calls = [tool_call(0, 0, None), tool_call(0, 1, None)];
    let outcome = backend
        .save_tool_calls(&id, first.fence(), &calls, &chunks("called", 2))
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Saved);
    let published = next_message(&mut rx).await;
    assert_eq!(
        contents(published.payload.split('\n')),
        ["called-0", "called-1"]
    );
    // The second call finished, then the worker died.
    let done = tool_call(0, 1, Some(serde_json::json!({"booked": true})));
    let outcome = backend
        .save_tool_calls(&id, first.fence(), std::slice::from_ref(&done), &[])
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Saved);

    let second = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(
        second.tool_calls,
        [calls[0].clone(), done.clone()],
        "in run order"
    );
    let outcome = backend
        .save_tool_calls(
            &id,
            first.fence(),
            &[tool_call(0, 0, Some("late".into()))],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        SaveOutcome::Fenced,
        "the old attempt writes nothing"
    );
    let finished = tool_call(0, 0, Some("found".into()));
    let later = tool_call(1, 0, Some("again".into()));
    backend
        .save_tool_calls(&id, second.fence(), &[finished.clone(), later.clone()], &[])
        .await
        .unwrap();
    let third = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert_eq!(
        third.tool_calls,
        [finished.clone(), done.clone(), later.clone()]
    );

    let mut answer = StoredMessage::assistant("booked", message.id, false);
    answer.function_calls = third.tool_calls.clone();
    let outcome = backend
        .finish(&delivery, &third, Some(&answer), &chunks("done", 1))
        .await
        .unwrap();
    assert_eq!(outcome, FinishOutcome::Done);
    let page = backend.history(&id, 10, None).await.unwrap().unwrap();
    assert_eq!(
        page.messages.last().unwrap().function_calls,
        [finished, done, later]
    );

    // The next message starts with no calls of its own.
    accept(&backend, &id, "next").await;
    let delivery = one_delivery(&backend).await;
    let next = work_of(backend.begin(&delivery, 10).await.unwrap());
    assert!(next.tool_calls.is_empty(), "{:?}", next.tool_calls);
}

async fn tool_calls_of_a_cancelled_or_deleted_session_are_refused(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    accept(&backend, &id, "q").await;
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    backend.cancel(&id).await.unwrap();
    let outcome = backend
        .save_tool_calls(&id, work.fence(), &[tool_call(0, 0, None)], &chunks("x", 1))
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Cancelled);
    // Only the `typing` the first try's begin published.
    assert_eq!(backend.session(&id).await.unwrap().unwrap().last_seq, 1);
    assert!(backend.delete_session(&id).await.unwrap());
    let outcome = backend
        .save_tool_calls(&id, work.fence(), &[tool_call(0, 0, None)], &[])
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::SessionGone);
}

// ---------------------------------------------------------------------------
// Events and bus

async fn publish_assigns_consecutive_seqs(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);
    subscriber.subscribe(&id).await.unwrap();

    assert_eq!(publish(&backend, &id, &chunks("a", 3)).await, 3);
    assert_eq!(publish(&backend, &id, &chunks("b", 1)).await, 4);
    assert_eq!(publish(&backend, &id, &chunks("c", 2)).await, 6);
    assert_eq!(backend.session(&id).await.unwrap().unwrap().last_seq, 6);

    let mut live = Vec::new();
    for _ in 0..3 {
        let message = next_message(&mut rx).await;
        assert_eq!(message.session_id, id);
        live.extend(message.payload.split('\n').map(str::to_owned));
    }
    assert_eq!(seqs(live.iter().map(String::as_str)), [1, 2, 3, 4, 5, 6]);
    let names = ["a-0", "a-1", "a-2", "b-0", "c-0", "c-1"];
    assert_eq!(contents(live.iter().map(String::as_str)), names);

    let replay = backend.replay(&id, 0).await.unwrap();
    assert_eq!(replay.events, live, "the log holds what the bus carried");
    assert!(replay.recovered);
    assert_eq!(replay.last_seq, 6);

    // From the middle of a batch: only the events after.
    let replay = backend.replay(&id, 2).await.unwrap();
    assert_eq!(seqs(replay.events.iter().map(String::as_str)), [3, 4, 5, 6]);
    assert!(replay.recovered);
    let replay = backend.replay(&id, 4).await.unwrap();
    assert_eq!(replay.events, live[4..]);
    assert!(replay.recovered);

    let replay = backend.replay(&id, 6).await.unwrap();
    assert!(replay.events.is_empty() && replay.recovered && replay.last_seq == 6);
    let replay = backend.replay(&id, 9).await.unwrap();
    assert!(
        replay.events.is_empty() && !replay.recovered,
        "ahead of the log"
    );

    let outcome = backend
        .publish(&SessionId::new_random(), &chunks("x", 1), None)
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::SessionGone);
}

/// A worker's publishes start numbering after the position its previous one returned
/// (on Redis without reading the log first); publishers that interleave (another
/// copy of the work with its own position, an unfenced publish) make the others'
/// positions stale, and a stale position still gets the next seqs: gap-free, none
/// twice, the log what the bus carried. Batches of several events on both sides, so
/// a stale position can fall just before another's batch.
async fn interleaved_publishers_keep_seqs_gap_free(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);
    subscriber.subscribe(&id).await.unwrap();
    let message = accept(&backend, &id, "interleave").await;
    let delivery = one_delivery(&backend).await;
    let work = work_of(backend.begin(&delivery, 10).await.unwrap());
    let publish_as = async |work: &Work, n: usize| {
        let outcome = backend
            .publish(&id, &chunks("w", n), Some(work.fence()))
            .await
            .unwrap();
        let PublishOutcome::Published { last_seq } = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(work.log.get(), Some(last_seq), "the position follows");
        last_seq
    };

    // `begin` published `typing` (seq 1).
    assert_eq!(publish_as(&work, 1).await, 2);
    let other = work.clone();
    assert_eq!(publish_as(&work, 1).await, 3, "its own position");
    assert_eq!(publish_as(&work, 3).await, 6);
    // `other` is at 2: its publish lands after the 3-event batch.
    assert_eq!(publish_as(&other, 2).await, 8);
    // `work` is at 6, just before `other`'s batch.
    assert_eq!(publish_as(&work, 1).await, 9);
    assert_eq!(publish_as(&work, 2).await, 11);
    assert_eq!(publish(&backend, &id, &chunks("unfenced", 3)).await, 14);
    assert_eq!(publish_as(&other, 1).await, 15);
    // Tool calls and the finish publish from the position too; `work` is stale (11).
    let saved = backend
        .save_tool_calls(&id, work.fence(), &[tool_call(0, 0, None)], &chunks("f", 2))
        .await
        .unwrap();
    assert_eq!(saved, SaveOutcome::Saved);
    assert_eq!(work.log.get(), Some(17));
    assert_eq!(publish_as(&other, 1).await, 18);
    let answer = StoredMessage::assistant("done", message.id, false);
    let done = backend
        .finish(&delivery, &work, Some(&answer), &chunks("end", 2))
        .await
        .unwrap();
    assert_eq!(done, FinishOutcome::Done);

    let mut live = Vec::new();
    while live.len() < 20 {
        let message = next_message(&mut rx).await;
        live.extend(message.payload.split('\n').map(str::to_owned));
    }
    assert_eq!(
        seqs(live.iter().map(String::as_str)),
        (1..=20).collect::<Vec<_>>()
    );
    let replay = backend.replay(&id, 0).await.unwrap();
    assert!(replay.recovered);
    assert_eq!(replay.events, live, "the log holds what the bus carried");
    assert_eq!(replay.last_seq, 20);
    assert_eq!(backend.session(&id).await.unwrap().unwrap().last_seq, 20);
    // From inside every batch: exactly the events after.
    for after in 0..=20 {
        let replay = backend.replay(&id, after).await.unwrap();
        assert!(replay.recovered, "after {after}");
        assert_eq!(replay.events, live[after as usize..], "after {after}");
        assert_eq!(replay.last_seq, 20);
    }
}

/// Redis trims with `MAXLEN ~`, which drops whole stream nodes (100 entries), so
/// enough batches are published for trimming to happen there too.
async fn replay_past_the_trimmed_log(_backend: Backend, ctx: &Ctx) {
    let max = 10;
    let backend = ctx
        .connect(|s: &mut StoreSettings| s.event_log_max_entries = max)
        .await;
    let id = session(&backend).await;
    for i in 0..300 {
        publish(&backend, &id, &chunks(&format!("e{i}"), 1)).await;
    }
    let replay = backend.replay(&id, 0).await.unwrap();
    assert!(!replay.recovered, "the oldest events are gone");
    assert_eq!(replay.last_seq, 300);
    let kept = seqs(replay.events.iter().map(String::as_str));
    assert!(
        kept.len() >= max as usize && kept.len() < 300,
        "{}",
        kept.len()
    );
    let first = kept[0];
    assert_eq!(
        kept,
        (first..=300).collect::<Vec<_>>(),
        "the newest, in order"
    );
    let replay = backend.replay(&id, 1).await.unwrap();
    assert!(!replay.recovered);

    // Within what is kept: gap-free.
    let replay = backend.replay(&id, 300 - max).await.unwrap();
    assert!(replay.recovered);
    let tail = seqs(replay.events.iter().map(String::as_str));
    assert_eq!(tail, (300 - max + 1..=300).collect::<Vec<_>>());
    let replay = backend.replay(&id, 300).await.unwrap();
    assert!(replay.events.is_empty() && replay.recovered);
    assert_eq!(backend.session(&id).await.unwrap().unwrap().last_seq, 300);
}

async fn bus_carries_subscribed_sessions_only(backend: Backend, _ctx: &Ctx) {
    let subscribed = session(&backend).await;
    let other = session(&backend).await;
    let later = session(&backend).await;
    let subscriber = backend.subscriber().await.unwrap();
    let mut rx = subscriber.signals(1024);
    subscriber.subscribe(&subscribed).await.unwrap();
    // A second gateway instance watching the same session.
    let second = backend.subscriber().await.unwrap();
    let mut rx2 = second.signals(1024);
    second.subscribe(&subscribed).await.unwrap();

    // Messages on one connection arrive in publish order, so "the next message is
    // the marker" proves that what was published before it was not delivered.
    publish(&backend, &other, &chunks("unseen", 1)).await;
    publish(&backend, &subscribed, &chunks("seen", 2)).await;
    let message = next_message(&mut rx).await;
    assert_eq!(message.session_id, subscribed);
    let replay = backend.replay(&subscribed, 0).await.unwrap();
    assert_eq!(message.payload.as_ref(), replay.events.join("\n"));
    assert_eq!(next_message(&mut rx2).await, message);

    subscriber.unsubscribe(&subscribed).await.unwrap();
    subscriber.subscribe(&later).await.unwrap();
    publish(&backend, &subscribed, &chunks("after-unsubscribe", 1)).await;
    publish(&backend, &later, &chunks("marker", 1)).await;
    let message = next_message(&mut rx).await;
    assert_eq!(message.session_id, later);
    assert_eq!(contents(message.payload.split('\n')), ["marker-0"]);
    // The other subscriber is unaffected.
    let message = next_message(&mut rx2).await;
    assert_eq!(
        contents(message.payload.split('\n')),
        ["after-unsubscribe-0"]
    );

    // Deleting tells the sockets with a control line that is not an event.
    assert!(backend.delete_session(&later).await.unwrap());
    let message = next_message(&mut rx).await;
    assert_eq!(message.session_id, later);
    assert_eq!(message.payload.as_ref(), r#"{"type":"session_deleted"}"#);
    assert_eq!(
        Control::parse(&message.payload),
        Some(Control::SessionDeleted)
    );
    assert!(!backend.delete_session(&later).await.unwrap());

    publish(&backend, &other, &chunks("unseen", 1)).await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(quiet.is_err(), "nothing else arrives: {quiet:?}");
}

conformance!(
    session_lifecycle,
    active_sessions_counts_live_ones,
    idle_sessions_expire_unless_touched,
    messages_and_answers_keep_a_session_alive,
    history_pages_oldest_first,
    history_keeps_the_newest_messages,
    accept_outcomes,
    one_inbox_entry_per_busy_session,
    two_sessions_two_deliveries,
    read_inbox_waits_for_an_accept,
    read_inbox_may_block_past_the_command_timeout,
    begin_returns_recent_history,
    a_reclaim_fences_the_old_attempt,
    a_failed_answer_publishes_only_the_error,
    deleting_a_session_mid_answer,
    a_leftover_entry_of_a_recreated_session_is_stale,
    an_idle_claim_is_reclaimed_and_restarted,
    the_trace_context_travels_with_the_queued_message,
    cancel_stops_the_message_in_progress,
    dead_letters_are_kept,
    a_canary_reaches_its_own_subscriber,
    publish_assigns_consecutive_seqs,
    interleaved_publishers_keep_seqs_gap_free,
    replay_past_the_trimmed_log,
    bus_carries_subscribed_sessions_only,
    tool_calls_survive_a_restart_and_end_with_the_answer,
    tool_calls_of_a_cancelled_or_deleted_session_are_refused,
);
