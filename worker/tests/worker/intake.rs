//! The consumer's intake on a real `redis-server`: a dead worker's started message
//! is answered before messages accepted after it, and `/readyz` is green only while
//! the intake reads and Redis answers.

use crate::helpers::{self, TestLlm};
use loadtest::mock_llm::MockSettings;
use shared::backend::Backend;
use shared::config::StoreSettings;
use shared::ids::SessionId;
use shared::model::{AcceptOutcome, Begin, NewSession, Role, StoredMessage};
use shared::testkit::{RedisServer, unique_prefix};
use shared::wire::Protocol;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

async fn connect(redis: &RedisServer) -> Backend {
    let settings = StoreSettings::new(Some(&redis.url()), &unique_prefix("intake"));
    Backend::connect(&settings).await.expect("Redis connects")
}

/// A session holding one accepted user message.
async fn session_with_message(backend: &Backend, text: &str) -> SessionId {
    let id = SessionId::parse(&format!("s-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let new = NewSession {
        id: id.clone(),
        user_id: None,
        metadata: serde_json::json!({}),
        protocol: Protocol::Stream,
        created_at_ms: 0,
    };
    assert!(backend.create_session(&new).await.unwrap());
    let accepted = backend
        .accept_message(
            &id,
            &StoredMessage::user(text),
            &Default::default(),
            None,
            10,
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(accepted, AcceptOutcome::Accepted(_)),
        "{accepted:?}"
    );
    id
}

async fn answered(backend: &Backend, id: &SessionId) -> bool {
    let page = backend.history(id, 10, None).await.unwrap().unwrap();
    page.messages.iter().any(|m| m.role == Role::Assistant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_message_goes_before_newer_ones() {
    let redis = RedisServer::start();
    let backend = connect(&redis).await;
    // Answers take a while (20 tokens, 25 ms apart), so new messages keep the only
    // slot busy: the dead worker's message gets it only if it has priority.
    let TestLlm { mock, llm: _ } = helpers::start_with(MockSettings {
        token_delay_ms: 25,
        ..MockSettings::default()
    })
    .await;

    // A worker reads and starts the first message, then dies (never refreshes, never
    // finishes).
    let orphan = session_with_message(&backend, "started by a worker that died").await;
    let read = backend
        .read_inbox("dead", 1, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert!(matches!(
        backend.begin(&read[0], 10).await.unwrap(),
        Begin::Work(_)
    ));
    // Newer messages, accepted after it.
    let mut newer = Vec::new();
    for n in 0..4 {
        newer.push(session_with_message(&backend, &format!("newer {n}")).await);
    }

    let (llm, consumer) = helpers::settings(
        &mock.api_base(),
        &[
            "--worker-concurrency",
            "1",
            "--worker-claim-lease-ms",
            "300",
        ],
    );
    let shutdown = CancellationToken::new();
    let running = worker::spawn(
        backend.clone(),
        llm,
        consumer,
        "live".into(),
        shutdown.clone(),
    )
    .expect("worker starts");

    // Order in which the sessions got their answers.
    let mut order: Vec<SessionId> = Vec::new();
    let all: Vec<SessionId> = std::iter::once(orphan.clone()).chain(newer).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while order.len() < all.len() {
        assert!(Instant::now() < deadline, "answered so far: {order:?}");
        for id in &all {
            if !order.contains(id) && answered(&backend, id).await {
                order.push(id.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let position = order.iter().position(|id| *id == orphan).unwrap();
    // At most the one new message already running when its lease ran out goes first.
    assert!(
        position <= 1,
        "the orphan was answered as number {}: {order:?}",
        position + 1
    );
    shutdown.cancel();
    running.task.await.unwrap();
}

async fn readyz(http: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    match http.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or_default())
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

async fn wait_for(http: &reqwest::Client, url: &str, status: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (got, body) = readyz(http, url).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got} ({body}), expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_green_only_while_the_intake_reads_and_redis_answers() {
    let mut redis = RedisServer::start();
    let backend = connect(&redis).await;
    let TestLlm { mock, llm: _ } = helpers::start().await;
    let (llm, consumer) = helpers::settings(&mock.api_base(), &[]);
    let shutdown = CancellationToken::new();
    let running = worker::spawn(
        backend.clone(),
        llm,
        consumer,
        "probed".into(),
        shutdown.clone(),
    )
    .expect("worker starts");

    // The probe port outlives the consumer here, to see it after the intake stopped.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    let app = worker::probes::router(backend.clone(), running.reading.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    let body = wait_for(&http, &url, 200).await;
    assert_eq!(body["status"], "ready");

    redis.kill();
    let body = wait_for(&http, &url, 503).await;
    assert!(body["checks"]["store"].is_string(), "{body}");
    assert!(
        running.reading.is_running(),
        "the intake retries, it does not die"
    );

    redis.restart(&[]);
    wait_for(&http, &url, 200).await;

    shutdown.cancel();
    let body = wait_for(&http, &url, 503).await;
    assert_eq!(body["checks"]["intake"], "not reading the inbox", "{body}");
    running.task.await.unwrap();
    assert!(!running.reading.is_running());
}
