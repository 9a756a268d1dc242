//! The `stream` protocol, event by event.

use crate::both_backends;
use crate::helpers::{Mode, TestEnv, chunks, full_response};
use serde_json::Value;
use std::time::Duration;

both_backends!(
    one_message_event_by_event,
    three_rapid_messages_in_order_with_history,
    seq_continues_across_reconnects,
    delete_closes_live_sockets_with_4404,
    ping_pong,
);

fn seqs(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or_else(|| panic!("seq on {e}")))
        .collect()
}

fn assert_increasing(seqs: &[u64]) {
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq strictly increasing: {seqs:?}"
    );
}

async fn one_message_event_by_event(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let id = gw.create_session().await;
    let mut socket = gw.connect(&format!("/ws/{id}")).await;

    let connected = socket.recv().await;
    assert_eq!(connected["type"], "status");
    assert_eq!(connected["status"], "connected");
    assert_eq!(connected["session_id"], id.as_str());
    assert_eq!(connected["last_seq"], 0);
    assert!(connected.get("seq").is_none(), "connected has no seq");
    assert!(connected["timestamp"].as_str().unwrap().ends_with('Z'));

    socket.send_message("What are your blood test hours?").await;
    let events = socket.until_ready().await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e["type"].as_str().unwrap() {
            "status" => format!("status:{}", e["status"].as_str().unwrap()),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("status:typing"),
        "{kinds:?}"
    );
    assert_eq!(kinds[kinds.len() - 2], "complete", "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("status:ready"));
    assert!(
        kinds[1..kinds.len() - 2].iter().all(|k| k == "chunk"),
        "{kinds:?}"
    );
    assert!(kinds.len() >= 4, "at least one chunk: {kinds:?}");

    let expected = env.expected_reply(&[("user", "What are your blood test hours?")]);
    assert_eq!(full_response(&events), expected);
    assert_eq!(
        chunks(&events),
        expected,
        "chunks concatenate to full_response"
    );

    let sequence = seqs(&events);
    assert_increasing(&sequence);
    assert_eq!(sequence[0], 1);
    let message_id = events[0]["message_id"]
        .as_str()
        .expect("message_id on typing");
    for event in &events {
        assert_eq!(event["message_id"], message_id, "{event}");
        assert!(
            event["timestamp"].as_str().unwrap().ends_with('Z'),
            "{event}"
        );
    }
    assert_eq!(events[0]["session_id"], id.as_str());
    assert_eq!(events.last().unwrap()["session_id"], id.as_str());

    // History: user message stored when accepted, assistant when complete.
    let (_, history) = gw.get(&format!("/api/session/{id}/messages")).await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["id"], message_id);
    assert_eq!(messages[0]["content"], "What are your blood test hours?");
    assert_eq!(messages[1]["content"], expected.as_str());
    assert_eq!(gw.message_count(&id).await, 2);
}

async fn three_rapid_messages_in_order_with_history(mode: Mode) {
    let env = TestEnv::builder(mode)
        .mock(|m| m.token_delay_ms = 5)
        .start()
        .await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    for text in ["first", "second", "third"] {
        socket.send_message(text).await;
    }
    let mut answers = Vec::new();
    let mut all = Vec::new();
    for _ in 0..3 {
        let events = socket.until_ready().await;
        answers.push(full_response(&events));
        all.extend(events);
    }
    let first = env.expected_reply(&[("user", "first")]);
    let second =
        env.expected_reply(&[("user", "first"), ("assistant", &first), ("user", "second")]);
    let third = env.expected_reply(&[
        ("user", "first"),
        ("assistant", &first),
        ("user", "second"),
        ("assistant", &second),
        ("user", "third"),
    ]);
    assert_eq!(answers, vec![first.clone(), second.clone(), third.clone()]);
    assert!(
        third.contains("after 2 earlier user and 2 assistant messages"),
        "{third}"
    );
    assert_increasing(&seqs(&all));

    // The prompts the LLM saw: each one holds every earlier exchange, and nothing later.
    let requests = env.llm_requests().await;
    assert_eq!(requests.len(), 3);
    let contents: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            r["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}",
                        m["role"].as_str().unwrap(),
                        m["content"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(
        &contents[2][1..],
        [
            "user:first".to_owned(),
            format!("assistant:{first}"),
            "user:second".to_owned(),
            format!("assistant:{second}"),
            "user:third".to_owned(),
        ]
    );
    assert!(contents[0][0].starts_with("system:"));

    assert_eq!(gw.message_count(&id).await, 6);
}

async fn seq_continues_across_reconnects(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    socket.send_message("one").await;
    let first = socket.until_ready().await;
    socket.close().await;
    let last = *seqs(&first).last().unwrap();

    let mut socket = gw.connect(&format!("/ws/{id}")).await;
    let connected = socket.recv().await;
    assert_eq!(connected["last_seq"], last);
    assert!(connected.get("recovered").is_none());
    socket.send_message("two").await;
    let second = socket.until_ready().await;
    assert_eq!(seqs(&second)[0], last + 1);

    // Resume from the middle of the first answer: every event after it, in order.
    let mut resumed = gw.connect(&format!("/ws/{id}?last_seq=2")).await;
    let connected = resumed.recv().await;
    assert_eq!(connected["recovered"], true);
    let mut replayed = Vec::new();
    for _ in 0..(first.len() - 2 + second.len()) {
        replayed.push(resumed.recv().await);
    }
    let expected: Vec<u64> = (3..=*seqs(&second).last().unwrap()).collect();
    assert_eq!(seqs(&replayed), expected);
    resumed.assert_silent(Duration::from_millis(200)).await;
}

async fn delete_closes_live_sockets_with_4404(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let id = gw.create_session().await;
    let mut a = gw.connect(&format!("/ws/{id}")).await;
    let mut b = gw.connect(&format!("/ws/{id}?protocol=simple")).await;
    a.recv().await;
    // The simple protocol says nothing on attach; a pong proves b is attached.
    b.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(b.recv().await["type"], "pong");
    let (status, _) = gw.delete(&format!("/api/session/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(a.closed().await, Some(4404));
    assert_eq!(b.closed().await, Some(4404));
}

async fn ping_pong(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let (_, mut socket) = gw.open_session().await;
    socket.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(socket.recv().await, serde_json::json!({"type": "pong"}));
}
