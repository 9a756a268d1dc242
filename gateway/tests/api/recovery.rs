//! Cancel, resume and LLM faults, in-process (the fault suite in `tests/faults` kills
//! real processes).

use crate::both_backends;
use crate::helpers::{Mode, TestEnv, TestSocket, chunks, full_response};
use serde_json::{Value, json};

both_backends!(
    cancel_on_the_socket_keeps_the_partial_answer,
    a_disconnect_is_not_a_cancel_and_resume_works_twice,
    llm_failures_end_in_exactly_one_error,
    a_cut_stream_is_restarted_then_reported,
    shutdown_closes_sockets_with_1012,
);

/// Waits for the first chunk of the answer in progress and returns the events so far.
async fn until_first_chunk(socket: &mut TestSocket) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = socket.recv().await;
        let chunk = event["type"] == "chunk";
        events.push(event);
        if chunk {
            return events;
        }
    }
}

async fn cancel_on_the_socket_keeps_the_partial_answer(mode: Mode) {
    let env = TestEnv::builder(mode)
        .mock(|m| {
            m.tokens = 200;
            m.token_delay_ms = 20;
        })
        .start()
        .await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    socket.send_message("tell me everything").await;
    let mut events = until_first_chunk(&mut socket).await;
    socket.send_json(&json!({"type": "cancel"})).await;
    events.extend(socket.until_ready().await);

    let complete = events
        .iter()
        .find(|e| e["type"] == "complete")
        .expect("complete");
    assert_eq!(complete["cancelled"], true, "{complete}");
    let partial = full_response(&events);
    let expected = env.expected_reply_with_tokens(&[("user", "tell me everything")], 200);
    assert!(expected.starts_with(&partial), "{partial:?} is a prefix");
    assert!(
        partial.len() < expected.len(),
        "the generation stopped early"
    );
    assert_eq!(
        chunks(&events),
        partial,
        "complete carries what was streamed"
    );
    assert!(!events.iter().any(|e| e["type"] == "error"));

    let (_, history) = gw.get(&format!("/api/session/{id}/messages")).await;
    let stored = &history["messages"][1];
    assert_eq!(stored["content"], partial.as_str());
    assert_eq!(stored["cancelled"], true);

    // Nothing in progress now: a cancel is a no-op, and the next message is answered.
    socket.send_json(&json!({"type": "cancel"})).await;
    socket.send_message("next").await;
    let events = socket.until_ready().await;
    let complete = events
        .iter()
        .find(|e| e["type"] == "complete")
        .expect("complete");
    assert!(complete.get("cancelled").is_none(), "{complete}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_over_rest_from_another_instance() {
    let env = TestEnv::redis()
        .gateways(2)
        .mock(|m| {
            m.tokens = 200;
            m.token_delay_ms = 20;
        })
        .start()
        .await;
    let (a, b) = (&env.gateways[0], &env.gateways[1]);
    let id = a.create_session().await;
    let (status, body) = b.post_raw(&format!("/api/session/{id}/cancel"), "").await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "idle", "session_id": id}))
    );

    let mut socket = a.connect(&format!("/ws/{id}")).await;
    socket.recv().await;
    socket.send_message("long story").await;
    let mut events = until_first_chunk(&mut socket).await;
    let (status, body) = b.post_raw(&format!("/api/session/{id}/cancel"), "").await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "cancelled", "session_id": id}))
    );
    events.extend(socket.until_ready().await);
    let complete = events.iter().find(|e| e["type"] == "complete").unwrap();
    assert_eq!(complete["cancelled"], true);

    let (status, body) = b
        .post_raw(&format!("/api/session/{}/cancel", uuid::Uuid::new_v4()), "")
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "session_not_found");
}

async fn a_disconnect_is_not_a_cancel_and_resume_works_twice(mode: Mode) {
    let env = TestEnv::builder(mode)
        .mock(|m| {
            m.tokens = 60;
            m.token_delay_ms = 15;
        })
        .start()
        .await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    socket.send_message("keep going").await;
    let mut seen = until_first_chunk(&mut socket).await;
    drop(socket);

    // Two disconnects in a row, each resuming from what it saw: no event twice, none lost.
    for _ in 0..2 {
        let last = seen.last().unwrap()["seq"].as_u64().unwrap();
        let mut socket = gw.connect(&format!("/ws/{id}?last_seq={last}")).await;
        let connected = socket.recv().await;
        assert_eq!(connected["recovered"], true, "{connected}");
        let event = socket.recv().await;
        seen.push(event);
        drop(socket);
    }
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    let mut socket = gw.connect(&format!("/ws/{id}?last_seq={last}")).await;
    socket.recv().await;
    if seen.last().unwrap()["status"] != "ready" {
        seen.extend(socket.until_ready().await);
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let expected_seqs: Vec<u64> = (1..=*seqs.last().unwrap()).collect();
    assert_eq!(seqs, expected_seqs, "gap-free and no duplicates");
    let expected = env.expected_reply_with_tokens(&[("user", "keep going")], 60);
    assert_eq!(full_response(&seen), expected, "the answer went on");
    assert_eq!(chunks(&seen), expected);
}

async fn llm_failures_end_in_exactly_one_error(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| {
            s.llm.llm_first_token_timeout_secs = 1;
            s.llm.llm_stream_retries = 1;
        })
        .start()
        .await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    for (directive, code) in [
        ("[mock:status=500]", "llm_error"),
        ("[mock:status=429 quota]", "llm_error"),
        ("[mock:status=400]", "llm_error"),
        ("[mock:deviate=error_event]", "llm_error"),
        ("[mock:status=400 deviate=flat_error]", "llm_error"),
        ("[mock:hang]", "llm_timeout"),
    ] {
        socket
            .send_message(&format!("fail please {directive}"))
            .await;
        let events = socket.until_ready().await;
        let errors: Vec<&Value> = events.iter().filter(|e| e["type"] == "error").collect();
        assert_eq!(errors.len(), 1, "{directive}: {events:?}");
        assert_eq!(errors[0]["code"], code, "{directive}");
        assert!(errors[0]["seq"].is_u64() && errors[0]["message_id"].is_string());
        assert!(
            !events.iter().any(|e| e["type"] == "complete"),
            "{directive}"
        );
        assert_eq!(events[0]["status"], "typing");
    }
    // The failed messages are in the history without answers; the chat goes on.
    socket.send_message("now answer").await;
    let events = socket.until_ready().await;
    assert!(events.iter().any(|e| e["type"] == "complete"));
    assert_eq!(gw.message_count(&id).await, 8);
}

async fn a_cut_stream_is_restarted_then_reported(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| s.llm.llm_stream_retries = 1)
        .start()
        .await;
    let gw = env.gw();
    let (_, mut socket) = gw.open_session().await;
    socket.send_message("break [mock:cut=3]").await;
    let events = socket.until_ready().await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["status"].as_str().unwrap_or("")
            )
        })
        .collect();
    let restarted = kinds
        .iter()
        .position(|k| k == "status:restarted")
        .expect("restarted");
    let first_chunk = kinds.iter().position(|k| k == "chunk:").expect("chunks");
    assert!(first_chunk < restarted, "{kinds:?}");
    assert!(
        kinds[restarted..].iter().any(|k| k == "chunk:"),
        "started over: {kinds:?}"
    );
    assert_eq!(kinds[kinds.len() - 2], "error:", "{kinds:?}");
    assert_eq!(events[events.len() - 2]["code"], "llm_error");
    assert!(!kinds.iter().any(|k| k.starts_with("complete")));
}

async fn shutdown_closes_sockets_with_1012(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let (_, mut socket) = gw.open_session().await;
    socket.send_message("hi").await;
    socket.until_ready().await;
    gw.shutdown.cancel();
    assert_eq!(socket.closed().await, Some(1012));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_without_hurting_others() {
    // Its kernel buffers may absorb megabytes, so what finds it out is the server's
    // ping going unanswered (queue overflow is covered by the hub's unit tests).
    let env = TestEnv::redis()
        .mock(|m| m.tokens = 3_000)
        .settings(|s| {
            s.limits.ws_ping_interval_secs = 1;
            s.limits.ws_send_timeout_secs = 1;
            s.consumer.chunk_coalesce_ms = 0;
        })
        .start()
        .await;
    let gw = env.gw();
    let id = gw.create_session().await;

    // The stalled client: a tiny receive buffer, and it never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", gw.port).parse().unwrap())
        .await
        .unwrap();
    let (_stalled, _) = tokio_tungstenite::client_async(gw.ws_url(&format!("/ws/{id}")), stream)
        .await
        .unwrap();

    let mut reader = gw.connect(&format!("/ws/{id}")).await;
    reader.recv().await;
    let (_, status) = gw.get("/status").await;
    assert_eq!(status["connections"], 2);
    for text in ["one", "two", "three"] {
        reader.send_message(text).await;
        let events = reader.until_ready().await;
        let expected = env.expected_reply_with_tokens(&[("user", text)], 3_000);
        assert!(full_response(&events).ends_with(&expected[expected.len() - 20..]));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, status) = gw.get("/status").await;
        if status["connections"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled socket was not dropped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The reader is still served.
    reader.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(reader.recv().await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_workers_keep_dying_is_dead_lettered() {
    let mut env = TestEnv::redis()
        .workers(0)
        .settings(|s| {
            s.consumer.worker_max_tries = 1;
            s.consumer.worker_claim_lease_ms = 400;
        })
        .start()
        .await;
    let id = env.gw().create_session().await;
    let mut socket = env.gw().connect(&format!("/ws/{id}")).await;
    socket.recv().await;
    socket.send_message("poison").await;

    // A worker takes the message and dies before finishing it.
    let backend = shared::backend::Backend::connect(&env.store_settings())
        .await
        .unwrap();
    let deliveries = backend
        .read_inbox("doomed", 1, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    assert!(matches!(
        backend.begin(&deliveries[0], 10).await.unwrap(),
        shared::model::Begin::Work(_)
    ));

    env.add_worker().await;
    let events = socket.until_ready().await;
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error outcome");
    assert_eq!(error["code"], "internal", "{error}");
    assert!(!events.iter().any(|e| e["type"] == "complete"));
    let (_, status) = env.gw().get("/status").await;
    assert_eq!(status["queue"]["dead_letters"], 1, "{status}");
    assert_eq!(status["queue"]["backlog"], 0);

    // The session goes on.
    socket.send_message("fine now").await;
    let events = socket.until_ready().await;
    assert!(events.iter().any(|e| e["type"] == "complete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_while_the_bus_stops_delivering_and_recovers() {
    let env = TestEnv::redis().start().await;
    let gw = env.gw();
    let (status, _) = gw.get("/health").await;
    assert_eq!(status, 200);
    // Redis keeps answering reads, but no PUBLISH gets through: a quiet bus.
    let redis = env.redis.as_ref().unwrap();
    let paused = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "CLIENT",
            "PAUSE",
            "9000",
            "WRITE",
        ])
        .output()
        .unwrap();
    assert!(paused.status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(9);
    let body = loop {
        let (status, body) = gw.get("/health").await;
        if status == 503 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health stayed green: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["bus"]["status"], "no canary", "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _) = gw.get("/health").await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_llm_requests_are_retried() {
    // Every second request to the LLM is refused with 429 (Retry-After: 1).
    let env = TestEnv::redis()
        .mock(|m| {
            m.fault_status = Some(429);
            m.fault_every = 2;
        })
        .start()
        .await;
    let gw = env.gw();
    let (_, mut socket) = gw.open_session().await;
    socket.send_message("one").await;
    assert!(
        socket
            .until_ready()
            .await
            .iter()
            .any(|e| e["type"] == "complete")
    );
    socket.send_message("two").await;
    let events = socket.until_ready().await;
    assert!(events.iter().any(|e| e["type"] == "complete"), "{events:?}");
    assert!(!events.iter().any(|e| e["type"] == "error"));
    assert_eq!(
        env.llm_requests().await.len(),
        3,
        "the refused request was retried"
    );
}
