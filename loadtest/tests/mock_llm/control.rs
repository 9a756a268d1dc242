//! `/mock/requests` and `/mock/stats`: what tests read back.

use serde_json::json;

use crate::helpers::{assistant, settings, spawn_mock, tool, user};

#[tokio::test]
async fn requests_are_recorded_oldest_first_and_can_be_cleared() {
    let mock = spawn_mock(settings()).await;
    let first = vec![user("one")];
    let second = vec![user("one"), assistant("a"), user("two")];
    mock.post_chat(&json!({"model": "m1", "stream": true, "messages": first}))
        .await
        .text()
        .await
        .expect("body");
    mock.post_chat(&json!({"model": "m2", "messages": second, "tools": [tool("t")]}))
        .await
        .text()
        .await
        .expect("body");
    mock.post_chat(&json!({"messages": "not an array"})).await;

    let recorded = mock.get_json("/mock/requests").await;
    assert_eq!(
        recorded,
        json!([
            {"messages": first, "stream": true, "model": "m1"},
            {"messages": second, "stream": false, "model": "m2", "tools": [tool("t")]},
        ])
    );
    assert_eq!(mock.stats().await, (3, 0));

    let response = mock
        .http
        .delete(format!("{}/mock/requests", mock.server.url()))
        .send()
        .await
        .expect("request sent");
    assert!(response.status().is_success());
    assert_eq!(mock.get_json("/mock/requests").await, json!([]));
    assert_eq!(
        mock.stats().await,
        (3, 0),
        "clearing the log keeps the counters"
    );
}
