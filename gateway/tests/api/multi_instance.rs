//! Several gateways and workers on one Redis, and on a 3-master Redis Cluster: any
//! instance serves any session.

use crate::helpers::{Mode, TestEnv, chunks, full_response};
use futures_util::future::join_all;
use serde_json::Value;

async fn session_created_on_a_answers_on_b(mode: Mode) {
    let env = TestEnv::builder(mode).gateways(2).workers(2).start().await;
    let (a, b) = (&env.gateways[0], &env.gateways[1]);
    let id = a.create_session().await;
    let mut socket = b.connect(&format!("/ws/{id}")).await;
    assert_eq!(socket.recv().await["status"], "connected");
    socket.send_message("hello across pods").await;
    let events = socket.until_ready().await;
    assert_eq!(
        full_response(&events),
        env.expected_reply(&[("user", "hello across pods")])
    );
    // Both instances see the same session and history.
    let (_, info_a) = a.get(&format!("/api/session/{id}/info")).await;
    let (_, info_b) = b.get(&format!("/api/session/{id}/info")).await;
    assert_eq!(info_a["message_count"], 2);
    assert_eq!(info_a, info_b);
    let (_, health) = b.get("/health").await;
    assert_eq!(health["active_sessions"], 1);
}

async fn many_sessions_over_two_gateways_get_only_their_own_answers(mode: Mode) {
    let env = TestEnv::builder(mode)
        .gateways(2)
        .workers(2)
        .mock(|m| m.token_delay_ms = 2)
        // One address creates them all, and the creation limit holds across pods.
        .settings(|s| s.protection.create_session_per_minute = 0)
        .start()
        .await;
    const SESSIONS: usize = 24;
    let runs = (0..SESSIONS).map(|i| {
        let creator = &env.gateways[i % 2];
        let holder = &env.gateways[(i / 2) % 2];
        let env = &env;
        async move {
            let id = creator.create_session().await;
            let mut socket = holder.connect(&format!("/ws/{id}")).await;
            socket.recv().await;
            let mut answers = Vec::new();
            let mut conversation: Vec<(&str, String)> = Vec::new();
            for turn in 0..2 {
                let text = format!("session {i} turn {turn}");
                socket.send_message(&text).await;
                let events = socket.until_ready().await;
                for event in &events {
                    assert_ne!(event["type"], "error", "{event}");
                }
                conversation.push(("user", text));
                let expected = env.expected_reply(
                    &conversation
                        .iter()
                        .map(|(r, c)| (*r, c.as_str()))
                        .collect::<Vec<_>>(),
                );
                let answer = full_response(&events);
                assert_eq!(answer, expected, "session {i} turn {turn}");
                // Chunks of any other session would show up here.
                assert_eq!(chunks(&events), expected, "session {i} turn {turn} chunks");
                conversation.push(("assistant", answer.clone()));
                answers.push(answer);
            }
            (id, answers)
        }
    });
    let results: Vec<(String, Vec<String>)> = join_all(runs).await;
    assert_eq!(results.len(), SESSIONS);
    // Every session's stored history is its own.
    for (i, (id, answers)) in results.iter().enumerate() {
        let (_, history) = env.gateways[i % 2]
            .get(&format!("/api/session/{id}/messages"))
            .await;
        let contents: Vec<&str> = history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "assistant")
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(
            contents,
            answers.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
    let (_, status) = env.gateways[0].get("/status").await;
    assert_eq!(status["queue"]["backlog"], Value::from(0));
}

/// Each case on one Redis and on the cluster.
macro_rules! on_redis_and_cluster {
    ($($name:ident),* $(,)?) => {
        mod one_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Mode::Redis).await;
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Mode::Cluster).await;
                }
            )*
        }
    };
}

on_redis_and_cluster!(
    session_created_on_a_answers_on_b,
    many_sessions_over_two_gateways_get_only_their_own_answers,
);
