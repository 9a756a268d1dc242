//! Security matrix, part 2: whose session it is. With authentication on, a session
//! belongs to its creator and does not exist for anyone else (404 / 4404 on every
//! route and on the socket, with the same body as a missing one), and nothing another
//! user does changes it.

use crate::both_backends;
use crate::helpers::{Mode, TestEnv};
use crate::security_support::*;
use serde_json::{Value, json};

both_backends!(
    another_users_session_is_404_on_every_rest_route,
    another_users_session_is_4404_on_the_socket,
    user_limits_hold_across_sessions,
    idle_sessions_expire_and_leave_the_count,
);

/// Alice's session with one exchange in it.
async fn alices_session(env: &TestEnv) -> String {
    let gw = env.gw();
    let id = create_as(gw, &token("alice")).await;
    let mut socket = open_as(gw, &id, &token("alice")).await;
    socket.send_message("my secret question").await;
    socket.until_ready().await;
    id
}

async fn another_users_session_is_404_on_every_rest_route(mode: Mode) {
    let env = auth_env_on(mode, |_| {}).await;
    let gw = env.gw();
    let id = alices_session(&env).await;
    let mallory = token("mallory");
    let missing = get(gw, "/api/session/no-such-session/info", Some(&mallory)).await;
    missing.assert_error(404, "session_not_found");
    let routes = [
        (reqwest::Method::GET, format!("/api/session/{id}/info")),
        (reqwest::Method::GET, format!("/api/session/{id}/messages")),
        (reqwest::Method::POST, format!("/api/session/{id}/cancel")),
        (reqwest::Method::DELETE, format!("/api/session/{id}")),
    ];
    for (method, path) in &routes {
        let answer = call(gw, method.clone(), path, Some(&mallory)).await;
        answer.assert_error(404, "session_not_found");
        assert_eq!(
            answer.body, missing.body,
            "indistinguishable from a missing one"
        );
    }
    // Alice's session is untouched.
    let alice = token("alice");
    let info = get(gw, &format!("/api/session/{id}/info"), Some(&alice)).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["user_id"], "alice");
    assert_eq!(info.body["message_count"], 2);
    let history = get(gw, &format!("/api/session/{id}/messages"), Some(&alice)).await;
    assert_eq!(history.body["messages"][0]["content"], "my secret question");
    assert_eq!(live_sessions(gw).await, 1);
}

async fn another_users_session_is_4404_on_the_socket(mode: Mode) {
    let env = auth_env_on(mode, |s| s.limits.auto_create_sessions = Some(true)).await;
    let gw = env.gw();
    let id = alices_session(&env).await;
    let mut socket = gw
        .connect(&format!("/ws/{id}?token={}", token("mallory")))
        .await;
    let event = socket.recv().await;
    assert_eq!(event["code"], "session_not_found", "{event}");
    assert_eq!(socket.closed().await, Some(4404));
    // Resuming with last_seq does not leak the log either.
    assert_socket_refused(
        gw,
        &format!("/ws/{id}?last_seq=0&token={}", token("mallory")),
        "session_not_found",
        4404,
    )
    .await;
    assert_eq!(
        count_as(gw, &id, &token("alice")).await,
        2,
        "nothing was sent into it"
    );
    assert_eq!(live_sessions(gw).await, 1, "nothing auto-created over it");
}

#[tokio::test]
async fn guessed_session_ids_are_404_like_any_missing_one() {
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    let id = alices_session(&env).await;
    let mallory = token("mallory");
    let mut bodies = Vec::new();
    let mut guesses: Vec<String> = (0..20).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    guesses.extend(
        [
            "1",
            "admin",
            "session",
            "00000000-0000-0000-0000-000000000000",
        ]
        .map(String::from),
    );
    guesses.push(id.clone());
    for guess in &guesses {
        let answer = get(gw, &format!("/api/session/{guess}/info"), Some(&mallory)).await;
        answer.assert_error(404, "session_not_found");
        bodies.push(answer.body);
        assert_socket_refused(
            gw,
            &format!("/ws/{guess}?token={mallory}"),
            "session_not_found",
            4404,
        )
        .await;
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all"
    );
    assert_eq!(live_sessions(gw).await, 1);
}

/// With authentication on, the token decides the owner; the body cannot.
#[tokio::test]
async fn the_body_user_id_cannot_choose_the_owner() {
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    let answer = send(
        gw.http
            .post(gw.url("/api/create-session"))
            .bearer_auth(token("mallory"))
            .json(&json!({"user_id": "alice", "metadata": {"plan": "pro"}})),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let id = answer.body["session_id"].as_str().unwrap();
    let alice = get(
        gw,
        &format!("/api/session/{id}/info"),
        Some(&token("alice")),
    )
    .await;
    alice.assert_error(404, "session_not_found");
    let mallory = get(
        gw,
        &format!("/api/session/{id}/info"),
        Some(&token("mallory")),
    )
    .await;
    assert_eq!(mallory.body["user_id"], "mallory");
}

/// Sockets may create sessions (when allowed): they belong to the token's user.
#[tokio::test]
async fn auto_created_sessions_belong_to_the_token_user() {
    let env = auth_env(|s| s.limits.auto_create_sessions = Some(true)).await;
    let gw = env.gw();
    let mut socket = open_as(gw, "alices-room?protocol=stream", &token("alice")).await;
    socket.send_message("hello").await;
    let typing = socket.recv().await;
    assert_eq!(typing["status"], "typing", "{typing}");
    let info = get(gw, "/api/session/alices-room/info", Some(&token("alice"))).await;
    assert_eq!(info.body["user_id"], "alice");
    assert_socket_refused(
        gw,
        &format!("/ws/alices-room?token={}", token("mallory")),
        "session_not_found",
        4404,
    )
    .await;
}

/// Auto-creation is off by default once authentication is on (contract).
#[tokio::test]
async fn with_auth_on_unknown_ids_are_not_auto_created() {
    let env = auth_env(|_| {}).await;
    assert_socket_refused(
        env.gw(),
        &format!("/ws/user123?token={}", token("alice")),
        "session_not_found",
        4404,
    )
    .await;
    assert_eq!(live_sessions(env.gw()).await, 0);
}

/// A deleted session stays gone: every route 404, the socket 4404, a second delete 404.
#[tokio::test]
async fn a_deleted_session_cannot_be_reused() {
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    let alice = token("alice");
    let id = alices_session(&env).await;
    let mut live = open_as(gw, &id, &alice).await;
    let deleted = call(
        gw,
        reqwest::Method::DELETE,
        &format!("/api/session/{id}"),
        Some(&alice),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(live.closed().await, Some(4404), "its socket was closed");
    for (method, path) in [
        (reqwest::Method::GET, format!("/api/session/{id}/info")),
        (reqwest::Method::GET, format!("/api/session/{id}/messages")),
        (reqwest::Method::POST, format!("/api/session/{id}/cancel")),
        (reqwest::Method::DELETE, format!("/api/session/{id}")),
    ] {
        call(gw, method, &path, Some(&alice))
            .await
            .assert_error(404, "session_not_found");
    }
    assert_socket_refused(
        gw,
        &format!("/ws/{id}?token={alice}"),
        "session_not_found",
        4404,
    )
    .await;
    assert_eq!(live_sessions(gw).await, 0);
}

/// Without authentication a deleted id that a socket reopens is a new, empty session.
#[tokio::test]
async fn with_auth_off_a_reopened_deleted_id_starts_empty() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    let mut socket = gw.connect("/ws/reused-id").await;
    socket.send_message("first life").await;
    while socket.recv().await["type"] != "assistant" {}
    assert_eq!(gw.message_count("reused-id").await, 2);
    let (status, _) = gw.delete("/api/session/reused-id").await;
    assert_eq!(status, 200);
    assert_eq!(socket.closed().await, Some(4404));
    let (status, _) = gw.delete("/api/session/reused-id").await;
    assert_eq!(status, 404);
    let mut again = gw.connect("/ws/reused-id").await;
    again.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(again.recv().await, json!({"type": "pong"}));
    assert_eq!(
        gw.message_count("reused-id").await,
        0,
        "no history carried over"
    );
    let (_, history) = gw.get("/api/session/reused-id/messages").await;
    assert_eq!(history["messages"], Value::Array(vec![]));
}

/// `MAX_SESSIONS_PER_USER` holds across pods (Redis) and is freed by deleting.
async fn user_limits_hold_across_sessions(mode: Mode) {
    let mut env = auth_env_on(mode, |s| {
        s.protection.max_sessions_per_user = 2;
        s.limits.auto_create_sessions = Some(true);
    })
    .await;
    if mode == Mode::Redis {
        env.add_gateway().await;
    }
    let gateways = env.gateways.len();
    let alice = token("alice");
    let first = create_as(&env.gateways[0], &alice).await;
    create_as(&env.gateways[gateways - 1], &alice).await;
    for gw in &env.gateways {
        let refused = send(
            gw.http
                .post(gw.url("/api/create-session"))
                .bearer_auth(&alice)
                .body(""),
        )
        .await;
        refused.assert_error(429, "rate_limited");
        assert!(refused.headers.contains_key("retry-after"));
        // A socket may not auto-create a third one either.
        assert_socket_refused(
            gw,
            &format!("/ws/third-one?token={alice}"),
            "rate_limited",
            4429,
        )
        .await;
    }
    // Others are not affected.
    create_as(&env.gateways[0], &token("bob")).await;
    // Deleting one frees its slot, on any pod.
    let gw = &env.gateways[gateways - 1];
    let deleted = call(
        gw,
        reqwest::Method::DELETE,
        &format!("/api/session/{first}"),
        Some(&alice),
    )
    .await;
    assert_eq!(deleted.status, 200);
    create_as(&env.gateways[0], &alice).await;
    assert_eq!(live_sessions(&env.gateways[0]).await, 3);
}

/// `SESSION_IDLE_TTL_SECS` holds in both backends: an idle session expires, leaves
/// `/health`'s count, and is gone on every route and on the socket.
async fn idle_sessions_expire_and_leave_the_count(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| {
            s.store.session_idle_ttl_secs = 1;
            s.limits.auto_create_sessions = Some(false);
        })
        .start()
        .await;
    let gw = env.gw();
    let id = gw.create_session().await;
    gw.create_session().await;
    assert_eq!(live_sessions(gw).await, 2);
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    assert_eq!(
        live_sessions(gw).await,
        0,
        "expired sessions are not counted"
    );
    let (status, _) = gw.get(&format!("/api/session/{id}/info")).await;
    assert_eq!(status, 404);
    assert_socket_refused(gw, &format!("/ws/{id}"), "session_not_found", 4404).await;
}
