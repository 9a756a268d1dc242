//! Injected faults: status codes, bad requests, cut streams, hangs, periodic faults.

use std::time::Duration;

use async_openai::error::OpenAIError;
use futures_util::StreamExt;
use loadtest::mock_llm::{MockSettings, reply_tokens};
use serde_json::{Value, json};

use crate::helpers::{collect, request, settings, spawn_mock, stream_chat, stream_request, user};

fn chat(text: &str) -> Value {
    json!({"model": "m", "stream": true, "messages": [user(text)]})
}

#[tokio::test]
async fn status_directive_answers_an_openai_error() {
    let mock = spawn_mock(settings()).await;
    let response = mock.post_chat(&chat("[mock:status=500] boom")).await;
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"]["type"], "server_error");
    assert!(body["error"]["message"].is_string());
    assert_eq!(body["error"]["param"], Value::Null);
    assert_eq!(mock.stats().await, (1, 1));
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let mock = spawn_mock(settings()).await;
    let response = mock.post_chat(&chat("[mock:status=429] slow down")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    let response = mock
        .post_chat(&chat("[mock:status=429 retry_after=3] x"))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");

    let response = mock.post_chat(&chat("[mock:status=429 quota] x")).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "insufficient_quota");
}

#[tokio::test]
async fn async_openai_sees_api_errors() {
    let mock = spawn_mock(settings()).await;
    let client = mock.openai();
    // Quota errors are permanent for async-openai: one request, no retry.
    let error = client
        .chat()
        .create_stream(stream_request(chat("[mock:status=429 quota] x")))
        .await
        .err()
        .expect("an error");
    match error {
        OpenAIError::ApiError(e) => {
            assert_eq!(e.status_code.as_u16(), 429);
            assert_eq!(e.api_error.code.as_deref(), Some("insufficient_quota"));
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert_eq!(mock.stats().await, (1, 1));

    let error = client
        .chat()
        .create(request(
            json!({"model": "m", "messages": [user("[mock:status=401]")]}),
        ))
        .await
        .expect_err("an error");
    assert!(
        matches!(&error, OpenAIError::ApiError(e) if e.status_code.as_u16() == 401
            && e.api_error.r#type.as_deref() == Some("authentication_error")),
        "{error:?}"
    );
}

#[tokio::test]
async fn bad_requests_get_400_with_an_openai_body() {
    let mock = spawn_mock(settings()).await;
    let url = format!("{}/chat/completions", mock.server.api_base());
    for body in ["{not json", r#"{"model":"m"}"#, r#"{"messages":[]}"#] {
        let response = mock
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.expect("JSON error");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(error["error"]["param"], Value::Null);
        assert_eq!(error["error"]["code"], Value::Null);
    }
}

// Multi-threaded, like the real binary: the tokens before the cut must still arrive
// when the producer runs on another thread than the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_breaks_the_stream_after_n_tokens() {
    let mock = spawn_mock(settings()).await;
    let messages = vec![user("[mock:cut=3] tell me")];
    let got = stream_chat(&mock.openai(), json!({"model": "m", "messages": messages})).await;
    assert_eq!(got.content, reply_tokens(&messages, 20)[..3].concat());
    assert_eq!(got.content_chunks, 3);
    assert!(got.finish.is_none(), "no finish chunk after a cut");
    assert!(got.error.is_some(), "the broken connection is an error");
    assert_eq!(mock.stats().await, (1, 1));
}

#[tokio::test]
async fn cut_never_sends_done() {
    let mock = spawn_mock(settings()).await;
    let response = mock.post_chat(&chat("[mock:cut=2] x")).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut broke = false;
    while let Some(part) = body.next().await {
        match part {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the body must end with an error: {text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(
        text.matches("\"content\":").count(),
        3,
        "role chunk and 2 tokens: {text}"
    );

    // A whole (non-streamed) answer is dropped too.
    let response = mock
        .post_chat(&json!({"model": "m", "messages": [user("[mock:cut=2] x")]}))
        .await;
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn hang_holds_the_request_until_shutdown() {
    let mock = spawn_mock(settings()).await;
    let http = mock.http.clone();
    let url = format!("{}/chat/completions", mock.server.api_base());
    let pending = tokio::spawn(async move {
        http.post(url)
            .json(&chat("[mock:hang] anyone?"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !pending.is_finished(),
        "a hung request must not be answered"
    );
    assert_eq!(mock.stats().await, (1, 1));

    tokio::time::timeout(Duration::from_secs(5), mock.server.stop())
        .await
        .expect("shutdown is not blocked by the hung request")
        .expect("server stops cleanly");
    let status = pending.await.expect("task").expect("an answer at shutdown");
    assert_eq!(status, 503);
}

#[tokio::test]
async fn shutdown_breaks_running_streams() {
    let mock = spawn_mock(MockSettings {
        token_delay_ms: 10_000,
        ..settings()
    })
    .await;
    let stream = mock
        .openai()
        .chat()
        .create_stream(stream_request(chat("long one")))
        .await
        .expect("stream opens");
    let reader = tokio::spawn(collect(stream));
    tokio::time::sleep(Duration::from_millis(20)).await;
    tokio::time::timeout(Duration::from_secs(5), mock.server.stop())
        .await
        .expect("shutdown is not blocked by the stream")
        .expect("server stops cleanly");
    let got = reader.await.expect("task");
    assert_eq!(got.content_chunks, 1, "only the first token was due");
    assert!(got.finish.is_none());
}

#[tokio::test]
async fn every_nth_request_fails() {
    let mock = spawn_mock(MockSettings {
        fault_every: 3,
        fault_status: Some(503),
        ..settings()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = mock
            .post_chat(&json!({"model": "m", "messages": [user("hi")]}))
            .await;
        statuses.push(response.status().as_u16());
        if response.status() == 503 {
            let body: Value = response.json().await.expect("JSON error");
            assert_eq!(body["error"]["type"], "server_error");
        }
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
    assert_eq!(mock.stats().await, (6, 2));
}
