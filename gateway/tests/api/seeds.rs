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

/// Seed 004's client, unchanged, with an agent that calls a tool: it hears
/// `function_called` (name and time) before the chunks of the answer that uses it.
async fn streaming_client_hears_function_called_before_its_chunks(mode: Mode) {
    let dir = crate::tools::temp_dir("seed-kb");
    std::fs::create_dir_all(dir.join("kb")).unwrap();
    std::fs::write(
        dir.join("kb/hours.md"),
        "Blood tests: weekdays from 7:30 to 10:00.",
    )
    .unwrap();
    let yaml =
        "name: Seed Agent\ntools:\n  - {name: clinic_kb, type: knowledge_base, documents: kb}\n";
    let agent = shared::agent::Agent::parse(yaml, false, &dir).unwrap();
    let env = TestEnv::builder(mode)
        .settings(move |s| s.llm.with_agent(agent.clone()))
        .start()
        .await;
    let base = env.gw().url("");
    let result = TestGateway::run_node(
        "seeds",
        "run-streaming.js",
        &[&base, "When are blood tests? [mock:tool=clinic_kb]"],
    )
    .await;
    let events = result["events"].as_array().unwrap();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let called = names.iter().position(|e| *e == "function_called");
    let first_chunk = names.iter().position(|e| *e == "chunk");
    assert!(
        matches!((called, first_chunk), (Some(c), Some(f)) if c < f),
        "{names:?}"
    );
    let data = &events[called.unwrap()]["data"];
    assert_eq!(data["function_name"], "clinic_kb");
    assert!(data["timestamp"].as_str().unwrap().ends_with('Z'));
    let response = result["responses"][0].as_str().unwrap();
    assert!(
        response.starts_with("Tool clinic_kb said: {\"passages\":[{\"file\":\"hours.md\""),
        "{response}"
    );
    assert!(response.contains("7:30"), "{response}");
    std::fs::remove_dir_all(dir).unwrap();
}

crate::both_backends!(
    streaming_client,
    simple_client,
    streaming_client_hears_function_called_before_its_chunks
);
