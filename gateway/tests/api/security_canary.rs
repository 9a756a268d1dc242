//! Issue 10, item 1: the bus canary cannot be hijacked. The canary once rode on the
//! pseudo-session `canary.<instance>` (the instance name is public in `/status`), so
//! opening and closing that socket unsubscribed it and `/health` answered 503 for good.
//! Now canaries travel on a probe channel no session id names: the attack sockets get
//! ordinary sessions, and the gateway stays healthy with its canaries arriving.

use crate::helpers::{Mode, TestEnv, TestGateway, TestSocket};
use crate::security_support::*;
use gateway::ws::hub::CANARY_INTERVAL;

/// Every id an attacker could derive from the public instance name.
fn lookalikes(instance: &str) -> Vec<String> {
    let sanitized: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    vec![
        format!("canary.{sanitized}"),
        format!("probe:{sanitized}"),
        format!("probe.{sanitized}"),
        sanitized,
    ]
}

async fn instance_of(gw: &TestGateway, token: Option<&str>) -> String {
    let status = get(gw, "/status", token).await;
    assert_eq!(status.status, 200, "{}", status.body);
    status.body["instance"]
        .as_str()
        .expect("instance")
        .to_owned()
}

/// Opens each look-alike socket on `via` (and reads `connected`), then closes them all.
async fn attack(via: &TestGateway, instance: &str, token: Option<&str>) {
    let mut sockets: Vec<TestSocket> = Vec::new();
    for id in lookalikes(instance) {
        // The stream protocol, so the attach is confirmed by `connected`.
        let path = match token {
            Some(token) => format!("/ws/{id}?protocol=stream&token={token}"),
            None => format!("/ws/{id}?protocol=stream"),
        };
        let mut socket = via.connect(&path).await;
        let connected = socket.recv().await;
        assert_eq!(connected["status"], "connected", "{id}: {connected}");
        sockets.push(socket);
    }
    for socket in sockets {
        socket.close().await;
    }
}

/// Waits past the time a dead subscription is noticed (three missed canaries), then
/// asserts `/health` is green with a fresh canary.
async fn still_healthy_with_canaries(gw: &TestGateway) {
    tokio::time::sleep(CANARY_INTERVAL * 4).await;
    for _ in 0..3 {
        let (status, health) = gw.get("/health").await;
        assert_eq!(status, 200, "{health}");
        let age = health["checks"]["bus"]["canary_age_ms"]
            .as_u64()
            .expect("canary_age_ms");
        assert!(
            age <= 2 * CANARY_INTERVAL.as_millis() as u64,
            "the canary keeps arriving: {health}"
        );
        tokio::time::sleep(CANARY_INTERVAL).await;
    }
}

/// Nothing else changed: a normal session still gets its answer.
async fn still_answers(gw: &TestGateway, token: Option<&str>) {
    let id = match token {
        Some(token) => create_as(gw, token).await,
        None => gw.create_session().await,
    };
    let path = match token {
        Some(token) => format!("/ws/{id}?token={token}"),
        None => format!("/ws/{id}"),
    };
    let mut socket = gw.connect(&path).await;
    assert_eq!(socket.recv().await["status"], "connected");
    socket.send_message("after the attack").await;
    let events = socket.until_ready().await;
    assert!(events.iter().any(|e| e["type"] == "complete"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_cannot_be_unsubscribed_with_auth_off() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    let instance = instance_of(gw, None).await;
    attack(gw, &instance, None).await;
    still_healthy_with_canaries(gw).await;
    still_answers(gw, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_cannot_be_unsubscribed_with_a_token_and_auto_creation() {
    let env = TestEnv::builder(Mode::Redis)
        .gateways(2)
        .settings(|s| {
            hs256_auth(s);
            s.limits.auto_create_sessions = Some(true);
        })
        .start()
        .await;
    let mallory = token("mallory");
    let (target, other) = (&env.gateways[0], &env.gateways[1]);
    let instance = instance_of(target, Some(&mallory)).await;
    // Directly, and by making the look-alike sessions through another gateway first.
    attack(other, &instance, Some(&mallory)).await;
    attack(target, &instance, Some(&mallory)).await;
    still_healthy_with_canaries(target).await;
    still_healthy_with_canaries(other).await;
    still_answers(target, Some(&token("alice"))).await;
}
