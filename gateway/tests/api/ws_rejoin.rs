//! Fresh clients (no `last_seq`): one that attaches mid-answer gets that answer whole,
//! and a bare `/ws` opens a new `stream` session per socket.

use crate::both_backends;
use crate::helpers::{Mode, TestEnv, chunks, full_response};
use serde_json::Value;
use std::time::Duration;

both_backends!(
    a_fresh_socket_mid_answer_gets_the_whole_answer,
    bare_ws_opens_a_new_stream_session_per_socket,
);

async fn a_fresh_socket_mid_answer_gets_the_whole_answer(mode: Mode) {
    let env = TestEnv::builder(mode)
        .mock(|m| {
            m.tokens = 40;
            m.token_delay_ms = 20;
        })
        .start()
        .await;
    let gw = env.gw();
    let (id, mut first) = gw.open_session().await;
    first.send_message("one").await;
    let one = full_response(&first.until_ready().await);
    first.send_message("two").await;
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|e: &&Value| e["type"] == "chunk")
        .count()
        < 3
    {
        seen.push(first.recv().await);
    }

    // A reload: no last_seq. The answer in progress arrives from its `typing`, once.
    let mut fresh = gw.connect(&format!("/ws/{id}")).await;
    let connected = fresh.recv().await;
    assert_eq!(connected["status"], "connected", "{connected}");
    assert!(connected.get("recovered").is_none(), "{connected}");
    let events = fresh.until_ready().await;
    assert_eq!(events[0]["status"], "typing", "{events:?}");
    assert_eq!(events[0]["message_id"], seen[0]["message_id"]);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs[0], seen[0]["seq"].as_u64().unwrap());
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let expected = env
        .expected_reply_with_tokens(&[("user", "one"), ("assistant", &one), ("user", "two")], 40);
    assert_eq!(full_response(&events), expected);
    assert_eq!(chunks(&events), expected, "every chunk once, in order");
    fresh.assert_silent(Duration::from_millis(200)).await;

    // Idle again: a fresh socket gets only `connected`.
    let mut idle = gw.connect(&format!("/ws/{id}")).await;
    let connected = idle.recv().await;
    assert_eq!(connected["last_seq"], seqs.last().copied().unwrap());
    idle.assert_silent(Duration::from_millis(200)).await;
}

async fn bare_ws_opens_a_new_stream_session_per_socket(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut socket = gw.connect("/ws").await;
        let connected = socket.recv().await;
        assert_eq!(connected["status"], "connected", "{connected}");
        assert_eq!(connected["last_seq"], 0);
        let id = connected["session_id"].as_str().unwrap().to_owned();
        socket.send_message("hello").await;
        let events = socket.until_ready().await;
        assert_eq!(chunks(&events), full_response(&events));
        let (status, info) = gw.get(&format!("/api/session/{id}/info")).await;
        assert_eq!(status, 200, "{info}");
        assert_eq!(info["protocol"], "stream");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "one session per socket");

    // Without a handshake it is the documented error body.
    let (status, body) = gw.get("/ws").await;
    assert!(status == 400 || status == 426, "{status} {body}");
    assert_eq!(body["error"], "invalid_request");
}
