//! The normal answer: streamed and whole, its format, pacing and the model list.

use std::time::{Duration, Instant};

use async_openai::types::chat::{FinishReason, Role};
use loadtest::mock_llm::{MockSettings, reply_text, reply_tokens};
use serde_json::{Value, json};

use crate::helpers::{assistant, request, settings, spawn_mock, sse_data, stream_chat, user};

#[tokio::test]
async fn stream_concatenates_to_reply_text() {
    let mock = spawn_mock(MockSettings {
        tokens: 25,
        ..settings()
    })
    .await;
    let messages = vec![
        json!({"role": "system", "content": "be nice"}),
        user("first"),
        assistant("answer one"),
        user("How are you?"),
    ];
    let got = stream_chat(
        &mock.openai(),
        json!({"model": "gpt-test", "messages": messages}),
    )
    .await;

    assert!(got.error.is_none(), "{:?}", got.error);
    let expected = reply_text(&messages, 25);
    assert_eq!(
        expected,
        "Reply 2 to \"How are you?\" after 1 earlier user and 1 assistant messages. \
         w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11"
    );
    assert_eq!(got.content, expected);
    assert_eq!(got.content_chunks, 25);
    assert_eq!(got.role, Some(Role::Assistant));
    assert_eq!(got.finish, Some(FinishReason::Stop));
    assert!(got.usage.is_none(), "usage only when asked for");
}

#[tokio::test]
async fn stream_reports_usage_when_asked() {
    let mock = spawn_mock(settings()).await;
    let messages = vec![user("one two three")];
    let got = stream_chat(
        &mock.openai(),
        json!({
            "model": "m",
            "messages": messages,
            "stream_options": {"include_usage": true},
        }),
    )
    .await;
    let usage = got.usage.expect("usage chunk");
    assert_eq!(usage.completion_tokens, 20);
    assert_eq!(usage.prompt_tokens, 3);
    assert_eq!(usage.total_tokens, 23);
    assert_eq!(got.finish, Some(FinishReason::Stop));
}

#[tokio::test]
async fn raw_stream_follows_the_openai_event_format() {
    let mock = spawn_mock(MockSettings {
        tokens: 3,
        ..settings()
    })
    .await;
    let messages = vec![user("hi")];
    let response = mock
        .post_chat(&json!({"model": "m", "stream": true, "messages": messages}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let body = response.text().await.expect("complete body");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    let data = sse_data(&body);
    let tokens = reply_tokens(&messages, 3);
    // role, one per token, finish, [DONE]
    assert_eq!(data.len(), tokens.len() + 3, "{body}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("JSON chunk"))
        .collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert_eq!(chunk["model"], "m");
        assert!(chunk["created"].is_u64());
        assert_eq!(chunk["choices"][0]["index"], 0);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    for (chunk, token) in chunks[1..].iter().zip(&tokens) {
        assert_eq!(chunk["choices"][0]["delta"], json!({"content": token}));
        assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
    }
    let last = &chunks[chunks.len() - 1]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "stop");
}

#[tokio::test]
async fn whole_completion_matches_the_stream() {
    let mock = spawn_mock(settings()).await;
    let messages =
        vec![json!({"role": "user", "content": [{"type": "text", "text": "parts [mock:slow=1]"}]})];
    let response = mock
        .openai()
        .chat()
        .create(request(json!({"model": "m", "messages": messages})))
        .await
        .expect("completion");
    assert_eq!(response.object, "chat.completion");
    let choice = &response.choices[0];
    assert_eq!(choice.message.role, Role::Assistant);
    assert_eq!(
        choice.message.content.as_deref(),
        Some(reply_text(&messages, 20).as_str())
    );
    assert!(reply_text(&messages, 20).starts_with("Reply 1 to \"parts\""));
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.expect("usage");
    assert_eq!(usage.completion_tokens, 20);
    assert_eq!(usage.prompt_tokens, 2);
}

#[tokio::test]
async fn model_defaults_to_the_configured_one() {
    let mock = spawn_mock(MockSettings {
        model: "my-mock".into(),
        ..settings()
    })
    .await;
    let body: Value = mock
        .post_chat(&json!({"messages": [user("x")]}))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["model"], "my-mock");
}

#[tokio::test]
async fn delays_pace_the_stream() {
    let mock = spawn_mock(MockSettings {
        tokens: 4,
        first_token_delay_ms: 30,
        token_delay_ms: 5,
        ..settings()
    })
    .await;
    let started = Instant::now();
    let got = stream_chat(
        &mock.openai(),
        json!({"model": "m", "messages": [user("a")]}),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(got.finish, Some(FinishReason::Stop));
    // 30 ms first token + (tokens - 1) * 5 ms; "a" gives 12 tokens.
    assert_eq!(got.content_chunks, 12);
    assert!(elapsed >= Duration::from_millis(30 + 11 * 5), "{elapsed:?}");
}

#[tokio::test]
async fn directives_override_the_delays() {
    let mock = spawn_mock(MockSettings {
        tokens: 0,
        ..settings()
    })
    .await;
    let started = Instant::now();
    let got = stream_chat(
        &mock.openai(),
        json!({"model": "m", "messages": [user("[mock:first=40][mock:slow=3] a")]}),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(got.content_chunks, 12);
    assert!(elapsed >= Duration::from_millis(40 + 11 * 3), "{elapsed:?}");
}

#[tokio::test]
async fn pieces_regroup_the_same_text_into_that_many_deltas() {
    let mock = spawn_mock(MockSettings {
        tokens: 40,
        ..settings()
    })
    .await;
    let messages = vec![user("[mock:pieces=4] split me")];
    let whole = reply_text(&messages, 40);
    for (pieces, deltas) in [(1, 1), (4, 4), (100, 40)] {
        let body =
            json!({"model": "m", "messages": [user(&format!("[mock:pieces={pieces}] split me"))]});
        let got = stream_chat(&mock.openai(), body).await;
        assert_eq!(got.content_chunks, deltas, "pieces={pieces}");
        assert_eq!(got.content, whole, "pieces={pieces}");
    }
}

#[tokio::test]
async fn models_lists_the_configured_model() {
    let mock = spawn_mock(MockSettings {
        model: "mock-x".into(),
        ..settings()
    })
    .await;
    let models = mock.get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "mock-x");
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"][0]["owned_by"], "mock-llm");
    assert!(models["data"][0]["created"].is_u64());
}

#[tokio::test]
async fn health_says_ok() {
    let mock = spawn_mock(settings()).await;
    let response = mock
        .http
        .get(format!("{}/health", mock.server.url()))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "ok");
}
