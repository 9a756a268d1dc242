//! The seeds' own clients, unchanged: the Node.js `PipecatChatClient` (seed 004) and
//! the vanilla-JS client (seed 000), run with `node` against a live gateway.

use crate::helpers::{Mode, TestEnv, TestGateway};

async fn streaming_client(mode: Mode) {
    let env = TestEnv::builder(mode)
        .mock(|m| m.token_delay_ms = 2)
        .start()
        .await;
    let base = env.gw().url("");
    let result = TestGateway::run_node(
        "seeds",
        "run-streaming.js",
        &[
            &base,
            "What are your blood test hours?",
            "What about Saturday?",
        ],
    )
    .await;
    let first = env.expected_reply(&[("user", "What are your blood test hours?")]);
    let second = env.expected_reply(&[
        ("user", "What are your blood test hours?"),
        ("assistant", &first),
        ("user", "What about Saturday?"),
    ]);
    assert_eq!(result["responses"], serde_json::json!([first, second]));

    let events: Vec<&str> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // typing, chunks, message, ready — twice; no errors.
    assert!(!events.contains(&"error"), "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "typing").count(), 2);
    assert_eq!(events.iter().filter(|e| **e == "message").count(), 2);
    assert_eq!(events.iter().filter(|e| **e == "ready").count(), 2);
    let chunk_text: String = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "chunk")
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(chunk_text, format!("{first}{second}"));

    let info = &result["info"];
    assert_eq!(info["message_count"], 4);
    assert_eq!(info["user_id"], "user_12345");
    assert_eq!(info["status"], "active");
    assert_eq!(
        result["info_status_after_delete"], 404,
        "disconnect() deleted the session"
    );
}

async fn simple_client(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let url = env.gw().ws_url("/ws/user123");
    let result = TestGateway::run_node(
        "seeds",
        "run-simple.js",
        &[&url, "Hello there", "And again"],
    )
    .await;
    let first = env.expected_reply(&[("user", "Hello there")]);
    let second = env.expected_reply(&[
        ("user", "Hello there"),
        ("assistant", &first),
        ("user", "And again"),
    ]);
    assert_eq!(result["displayed"], serde_json::json!([first, second]));
    assert_eq!(result["typing_count"], 2);
    let types: Vec<&str> = result["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["typing", "assistant", "typing", "assistant"]);
}

crate::both_backends!(streaming_client, simple_client);
