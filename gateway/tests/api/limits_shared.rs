//! Limits that hold across pods (issue: "exactly the configured rate across N
//! gateways"): one client spread over three gateways on one Redis gets the configured
//! rate in total, not per pod; the same on the embedded backend over several sockets.
//! The per-pod buckets are set to the same rate, so a pass here proves the store's
//! check, not theirs (each pod alone would let every request through).

use crate::helpers::{Mode, TestEnv, TestSocket};
use serde_json::Value;
use std::time::Duration;

/// The rate under test: `LIMIT` at once, then one per 10 s (the test takes a second).
const LIMIT: u32 = 6;

/// How long an accepted message stays silent (no worker answers it) before the next.
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_requests_hold_to_the_rate_in_total_over_three_gateways() {
    let env = TestEnv::redis()
        .gateways(3)
        .workers(0)
        .settings(|s| {
            s.protection.rate_limit_per_minute = LIMIT;
            s.protection.rate_limit_burst = LIMIT;
        })
        .start()
        .await;
    let mut statuses = Vec::new();
    for i in 0..(LIMIT as usize * 2) {
        let (status, body) = env.gateways[i % 3].get("/status").await;
        if status == 429 {
            assert_eq!(body["error"], "rate_limited", "{body}");
        }
        statuses.push(status);
    }
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(passed, LIMIT as usize, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        LIMIT as usize
    );
    // The probes stay open: they are not rate limited.
    assert_eq!(env.gateways[1].get("/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_creation_holds_to_the_rate_in_total_over_three_gateways() {
    let env = TestEnv::redis()
        .gateways(3)
        .workers(0)
        .settings(|s| {
            s.protection.create_session_per_minute = 3;
            s.protection.create_session_burst = 3;
        })
        .start()
        .await;
    let mut created = 0;
    for i in 0..9 {
        let (status, body) = env.gateways[i % 3]
            .post_json("/api/create-session", &serde_json::json!({}))
            .await;
        match status {
            201 => created += 1,
            429 => assert_eq!(body["error"], "rate_limited"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 3);
}

/// Sends `total` messages round robin over `sockets`; returns how many were refused
/// with `rate_limited` (with a `retry_after_ms`). No worker runs, so an accepted
/// message is answered by silence.
async fn spread_messages(sockets: &mut [TestSocket], total: usize) -> usize {
    let mut refused = 0;
    for i in 0..total {
        let n = sockets.len();
        let socket = &mut sockets[i % n];
        socket.send_message(&format!("message {i}")).await;
        if let Ok(event) = tokio::time::timeout(QUIET, socket.recv()).await {
            assert_eq!(event["type"], "error", "{event}");
            assert_eq!(event["code"], "rate_limited", "{event}");
            assert!(event["retry_after_ms"].as_u64().unwrap_or(0) > 0, "{event}");
            refused += 1;
        }
    }
    refused
}

async fn user_messages(env: &TestEnv, id: &str) -> usize {
    let (_, page) = env.gw().get(&format!("/api/session/{id}/messages")).await;
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .count()
}

/// 4 per address across pods; each socket's own bucket is as large, so alone it would
/// let 4 through on every socket.
fn message_rate(s: &mut gateway::Settings) {
    s.limits.ws_messages_per_minute = 4;
    s.limits.ws_message_burst = 4;
    s.protection.messages_per_minute_per_address = 4;
    s.protection.message_burst_per_address = 4;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_hold_to_the_rate_in_total_over_three_gateways() {
    let env = TestEnv::redis()
        .gateways(3)
        .workers(0)
        .settings(message_rate)
        .start()
        .await;
    let id = env.gw().create_session().await;
    let mut sockets = Vec::new();
    for gateway in &env.gateways {
        let mut socket = gateway.connect(&format!("/ws/{id}")).await;
        let connected: Value = socket.recv().await;
        assert_eq!(connected["status"], "connected");
        sockets.push(socket);
    }
    // Three per socket: each socket's own bucket (4) lets all of them through.
    assert_eq!(spread_messages(&mut sockets, 9).await, 5);
    assert_eq!(user_messages(&env, &id).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_hold_to_the_rate_over_sockets_when_embedded() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| {
            message_rate(s);
            // Answers would race the silence this test reads as "accepted".
            s.run_worker = Some(false);
        })
        .start()
        .await;
    let id = env.gw().create_session().await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut socket = env.gw().connect(&format!("/ws/{id}")).await;
        socket.recv().await;
        sockets.push(socket);
    }
    assert_eq!(spread_messages(&mut sockets, 9).await, 5);
    assert_eq!(user_messages(&env, &id).await, 4);
}
