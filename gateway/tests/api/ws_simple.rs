//! The `simple` protocol and the protocol rule.

use crate::both_backends;
use crate::helpers::{Mode, TestEnv};
use serde_json::json;
use std::time::Duration;

both_backends!(
    auto_created_id_speaks_simple,
    protocol_query_wins,
    created_with_simple_body_speaks_simple,
    auto_creation_off_refuses_unknown_ids,
);

async fn auto_created_id_speaks_simple(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let mut socket = gw.connect("/ws/user123").await;
    socket
        .send_json(&json!({"message": "hello", "user_id": "web_user", "session_id": "web_session"}))
        .await;
    assert_eq!(socket.recv().await, json!({"type": "typing"}));
    let answer = socket.recv().await;
    assert_eq!(
        answer,
        json!({"type": "assistant", "message": env.expected_reply(&[("user", "hello")])})
    );
    socket.assert_silent(Duration::from_millis(300)).await;

    // The session exists under the client's id, and holds the exchange.
    let (status, info) = gw.get("/api/session/user123/info").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["message_count"], 2);
    // `session_id` in the frame was not used for routing.
    let (status, _) = gw.get("/api/session/web_session/info").await;
    assert_eq!(status, 404);
}

async fn protocol_query_wins(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let mut socket = gw.connect("/ws/react_user?protocol=stream").await;
    let connected = socket.recv().await;
    assert_eq!(connected["status"], "connected");
    socket.send_message("hi").await;
    let events = socket.until_ready().await;
    assert!(events.iter().any(|e| e["type"] == "chunk"));
    // The auto-created session keeps the protocol it was opened with.
    let (status, info) = gw.get("/api/session/react_user/info").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["protocol"], "stream", "{info}");

    let id = gw.create_session().await;
    let mut socket = gw.connect(&format!("/ws/{id}?protocol=simple")).await;
    socket.send_message("hi").await;
    assert_eq!(socket.recv().await["type"], "typing");
    assert_eq!(socket.recv().await["type"], "assistant");
}

async fn created_with_simple_body_speaks_simple(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let (status, body) = gw
        .post_json("/api/create-session", &json!({"protocol": "simple"}))
        .await;
    assert_eq!(status, 201);
    let id = body["session_id"].as_str().unwrap();
    let mut socket = gw.connect(&format!("/ws/{id}")).await;
    socket.send_message("hi").await;
    assert_eq!(socket.recv().await, json!({"type": "typing"}));
    assert_eq!(socket.recv().await["type"], "assistant");
}

async fn auto_creation_off_refuses_unknown_ids(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| s.limits.auto_create_sessions = Some(false))
        .start()
        .await;
    let gw = env.gw();
    let mut socket = gw.connect("/ws/nobody-here").await;
    let error = socket.recv().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "session_not_found");
    assert!(error["error"].is_string());
    assert_eq!(socket.closed().await, Some(4404));
    let (status, _) = gw.get("/api/session/nobody-here/info").await;
    assert_eq!(status, 404, "nothing was created");

    // A created session still connects.
    let id = gw.create_session().await;
    let mut socket = gw.connect(&format!("/ws/{id}")).await;
    assert_eq!(socket.recv().await["status"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_llm_configured_the_demo_model_answers() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| {
            s.llm.openai_base_url = None;
            s.llm.openai_api_key = None;
        })
        .start()
        .await;
    let gw = env.gw();
    let (_, status) = gw.get("/status").await;
    assert_eq!(status["mode"], "embedded");
    assert_eq!(status["model"]["demo"], true);
    assert_eq!(status["model"]["provider"], "demo");
    let mut socket = gw.connect("/ws/newcomer").await;
    socket.send_message("hello").await;
    assert_eq!(socket.recv().await, json!({"type": "typing"}));
    let answer = socket.recv().await;
    let text = answer["message"].as_str().expect("assistant message");
    assert!(
        text.starts_with("[Demo model] You said: \"hello\""),
        "{text}"
    );
    assert!(
        text.contains("OPENAI_API_KEY"),
        "it says how to configure a real LLM"
    );
    assert!(env.llm_requests().await.is_empty(), "no LLM was called");
}
