//! `[mock:deviate=..]`: each deviation shows on the wire as documented, and the text
//! it carries is still exactly `reply_text`.

use loadtest::mock_llm::reply_text;
use serde_json::{Value, json};

use crate::helpers::{TestMock, settings, spawn_mock, tool, user};

/// The raw body of a streamed answer to `text` (with `extra` fields in the request).
async fn raw_stream(mock: &TestMock, text: &str, extra: Value) -> String {
    let mut body = json!({"model": "m", "stream": true, "messages": [user(text)]});
    for (key, value) in extra.as_object().into_iter().flatten() {
        body[key] = value.clone();
    }
    let response = mock.post_chat(&body).await;
    assert!(response.status().is_success(), "{}", response.status());
    response.text().await.expect("body")
}

/// The JSON of every `data:` line that is not `[DONE]` (any line ending).
fn chunks(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|line| line.trim_end_matches('\r').strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).expect("JSON data"))
        .collect()
}

fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

async fn deviating(name: &str) -> (String, Vec<Value>, String) {
    let mock = spawn_mock(settings()).await;
    let text = format!("hi [mock:deviate={name}]");
    let body = raw_stream(&mock, &text, json!({})).await;
    let chunks = chunks(&body);
    let expected = reply_text(&[user(&text)], settings().tokens);
    assert_eq!(text_of(&chunks), expected, "{name} keeps the text");
    (body, chunks, expected)
}

#[tokio::test]
async fn bare_chunks_have_no_envelope() {
    let (_, chunks, _) = deviating("bare").await;
    for chunk in &chunks {
        for key in ["id", "object", "created", "model"] {
            assert!(chunk.get(key).is_none(), "{chunk}");
        }
    }
}

#[tokio::test]
async fn empty_finish_reasons_before_the_last() {
    let (_, chunks, _) = deviating("empty_finish").await;
    let reasons: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .collect();
    assert!(
        reasons[..reasons.len() - 1].iter().all(|r| *r == ""),
        "{reasons:?}"
    );
    assert_eq!(*reasons.last().unwrap(), "stop");
}

#[tokio::test]
async fn empty_usage_on_every_chunk() {
    let (_, chunks, _) = deviating("empty_usage").await;
    assert!(chunks.iter().all(|c| c["usage"] == json!({})));
}

#[tokio::test]
async fn a_usage_only_last_chunk() {
    let (_, chunks, _) = deviating("usage_chunk").await;
    let last = chunks.last().unwrap();
    assert!(last.get("choices").is_none(), "{last}");
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn reasoning_content_before_the_answer() {
    let (_, chunks, _) = deviating("reasoning").await;
    assert!(chunks[1]["choices"][0]["delta"]["reasoning_content"].is_string());
    assert!(chunks[1]["choices"][0]["delta"]["content"].is_null());
}

#[tokio::test]
async fn comments_and_pings_between_chunks() {
    let (body, chunks, _) = deviating("comments").await;
    assert!(body.starts_with(": keep-alive\n\n"), "{body}");
    assert!(body.contains("event: ping\n"));
    assert!(chunks.iter().any(|c| c["type"] == "ping"));
}

#[tokio::test]
async fn crlf_line_endings() {
    let (body, _, _) = deviating("crlf").await;
    assert!(body.contains("\r\n\r\n"));
    assert!(
        !body.replace("\r\n", "").contains('\n'),
        "every line ends in CRLF"
    );
    assert!(body.ends_with("data: [DONE]\r\n\r\n"));
}

#[tokio::test]
async fn no_done_at_the_end() {
    let (body, chunks, _) = deviating("no_done").await;
    assert!(!body.contains("[DONE]"));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn tool_calls_without_index() {
    let mock = spawn_mock(settings()).await;
    let body = raw_stream(
        &mock,
        "x [mock:tool=a][mock:tool=b][mock:deviate=no_index]",
        json!({"tools": [tool("a"), tool("b")]}),
    )
    .await;
    let chunks = chunks(&body);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert!(calls.len() > 2);
    assert!(calls.iter().all(|c| c.get("index").is_none()), "{calls:?}");
    assert_eq!(calls.iter().filter(|c| c.get("id").is_some()).count(), 2);
}

#[tokio::test]
async fn an_error_event_mid_stream() {
    let mock = spawn_mock(settings()).await;
    let body = raw_stream(&mock, "x [mock:deviate=error_event]", json!({})).await;
    let chunks = chunks(&body);
    assert_eq!(text_of(&chunks), "Reply 1");
    let last = chunks.last().unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded")
    );
    assert!(!body.contains("[DONE]"));
}

#[tokio::test]
async fn a_flat_error_body() {
    let mock = spawn_mock(settings()).await;
    let response = mock
        .post_chat(&json!({"messages": [user("[mock:status=400 deviate=flat_error]")]}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("request rejected"),
        "{body}"
    );
}
