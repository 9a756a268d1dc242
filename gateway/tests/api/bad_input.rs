//! Every bad-input case of the contract: one `error` event, and the socket stays open.

use crate::both_backends;
use crate::helpers::{Mode, TestEnv, TestSocket};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    bad_frames_get_errors_and_the_socket_stays,
    message_length_limit,
    rate_limit_per_socket,
    too_many_pending,
    oversize_frame_closes_1009,
    bad_ids_and_parameters_on_the_socket,
    resend_with_client_message_id_is_answered_once,
);

async fn still_open(socket: &mut TestSocket) {
    socket.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(socket.recv().await, json!({"type": "pong"}));
}

fn assert_error(event: &Value, code: &str) {
    assert_eq!(event["type"], "error", "{event}");
    assert_eq!(event["code"], code, "{event}");
    assert!(
        !event["error"].as_str().unwrap_or_default().is_empty(),
        "{event}"
    );
    assert!(
        event.get("seq").is_none(),
        "per-socket errors carry no seq: {event}"
    );
}

async fn bad_frames_get_errors_and_the_socket_stays(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    let cases = [
        ("not json at all", "invalid_json"),
        ("{\"message\": \"unterminated", "invalid_json"),
        ("{}", "invalid_message"),
        ("[1,2]", "invalid_message"),
        (r#"{"message": 42}"#, "invalid_message"),
        (r#"{"type": "dance"}"#, "invalid_message"),
        (r#"{"message": ""}"#, "empty_message"),
        (r#"{"message": "  \n\t "}"#, "empty_message"),
    ];
    for (frame, code) in cases {
        socket.send_text(frame).await;
        assert_error(&socket.recv().await, code);
        still_open(&mut socket).await;
    }
    socket
        .ws
        .send(Message::Binary(vec![0xff, 0x00, 0x01].into()))
        .await
        .unwrap();
    assert_error(&socket.recv().await, "unsupported_frame");
    still_open(&mut socket).await;

    // Nothing was stored by any of it, and a good message still works.
    assert_eq!(gw.message_count(&id).await, 0);
    socket.send_message("fine").await;
    let events = socket.until_ready().await;
    assert!(events.iter().any(|e| e["type"] == "complete"));

    // Simple-protocol clients get the simple error shape.
    let mut simple = gw.connect("/ws/simple-bad").await;
    simple.send_text("nope").await;
    let error = simple.recv().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "invalid_json");
    still_open(&mut simple).await;
}

async fn message_length_limit(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| s.limits.max_message_chars = 10)
        .start()
        .await;
    let gw = env.gw();
    let (_, mut socket) = gw.open_session().await;
    socket.send_message("12345678901").await;
    assert_error(&socket.recv().await, "message_too_long");
    still_open(&mut socket).await;
    // Characters, not bytes: ten multi-byte characters fit.
    socket.send_message("éééééééééé").await;
    let events = socket.until_ready().await;
    assert_eq!(events[0]["status"], "typing", "{events:?}");
}

async fn rate_limit_per_socket(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| {
            s.limits.ws_message_burst = 2;
            s.limits.ws_messages_per_minute = 1;
        })
        .start()
        .await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    socket.send_message("one").await;
    socket.until_ready().await;
    socket.send_message("two").await;
    socket.until_ready().await;
    socket.send_message("three").await;
    let error = socket.recv().await;
    assert_error(&error, "rate_limited");
    let retry = error["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(retry > 1_000 && retry <= 60_000, "{retry}");
    still_open(&mut socket).await;
    let (_, info) = gw.get(&format!("/api/session/{id}/info")).await;
    assert_eq!(
        info["message_count"], 4,
        "the refused message was not stored"
    );
    // Another socket has its own budget.
    let mut other = gw.connect(&format!("/ws/{id}")).await;
    other.recv().await;
    other.send_message("four").await;
    assert_eq!(other.recv().await["status"], "typing");
}

async fn too_many_pending(mode: Mode) {
    let env = TestEnv::builder(mode)
        .mock(|m| m.first_token_delay_ms = 1_500)
        .settings(|s| s.limits.max_pending_messages = 2)
        .start()
        .await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    socket.send_message("one").await;
    socket.send_message("two").await;
    socket.send_message("three").await;
    let mut saw_error = false;
    let mut completes = 0;
    while completes < 2 {
        let event = socket.recv().await;
        if event["type"] == "error" {
            assert_error(&event, "too_many_pending");
            saw_error = true;
        }
        if event["type"] == "complete" {
            completes += 1;
        }
    }
    assert!(saw_error);
    assert_eq!(gw.message_count(&id).await, 4);
}

async fn oversize_frame_closes_1009(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| s.limits.ws_max_message_bytes = 2048)
        .start()
        .await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    let huge = json!({"message": "x".repeat(4096)}).to_string();
    socket.send_text(&huge).await;
    assert_eq!(socket.closed().await, Some(1009));
    assert_eq!(gw.message_count(&id).await, 0);
}

async fn bad_ids_and_parameters_on_the_socket(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let long = "y".repeat(10_000);
    for path in [
        format!("/ws/{long}"),
        "/ws/bad%7Bid%7D".to_owned(),
        "/ws/ok-id?protocol=carrier".to_owned(),
        "/ws/ok-id?last_seq=minus-one".to_owned(),
    ] {
        let mut socket = gw.connect(&path).await;
        let error = socket.recv().await;
        assert_eq!(error["type"], "error", "{path}: {error}");
        assert_eq!(error["code"], "invalid_request", "{path}");
        assert_eq!(socket.closed().await, Some(4404), "{path}");
    }
    let (status, _) = gw.get("/api/session/ok-id/info").await;
    assert_eq!(status, 404, "refused sockets create nothing");
}

async fn resend_with_client_message_id_is_answered_once(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    let frame = json!({"message": "only once", "client_message_id": "c-42"});
    socket.send_json(&frame).await;
    socket.send_json(&frame).await;
    socket.until_ready().await;
    socket
        .assert_silent(std::time::Duration::from_millis(500))
        .await;
    assert_eq!(gw.message_count(&id).await, 2);
    assert_eq!(env.llm_requests().await.len(), 1);
}
