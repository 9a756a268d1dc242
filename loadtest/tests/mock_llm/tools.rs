//! `[mock:tool=NAME]`: tool calls, streamed and whole, and the answer to their results.

use async_openai::types::chat::{ChatCompletionMessageToolCalls, FinishReason};
use loadtest::mock_llm::reply_text;
use serde_json::{Value, json};

use crate::helpers::{StreamedCall, request, settings, spawn_mock, stream_chat, tool, user};

fn arguments(raw: &str) -> Value {
    serde_json::from_str(raw).expect("arguments are JSON")
}

#[tokio::test]
async fn streamed_tool_call_is_parsed_by_async_openai() {
    let mock = spawn_mock(settings()).await;
    let got = stream_chat(
        &mock.openai(),
        json!({
            "model": "m",
            "messages": [user("[mock:tool=search] cats and dogs")],
            "tools": [tool("search")],
        }),
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.finish, Some(FinishReason::ToolCalls));
    assert_eq!(got.content, "");
    assert_eq!(got.tool_calls.len(), 1);
    let call = &got.tool_calls[&0];
    assert!(call.id.starts_with("call_"), "{call:?}");
    assert_eq!(call.name, "search");
    assert_eq!(
        arguments(&call.arguments),
        json!({"query": "cats and dogs"})
    );
}

#[tokio::test]
async fn parallel_tool_calls_get_their_own_index_and_id() {
    let mock = spawn_mock(settings()).await;
    let got = stream_chat(
        &mock.openai(),
        json!({
            "model": "m",
            "messages": [user("[mock:tool=a][mock:tool=b] q")],
            "tools": [tool("a"), tool("b")],
        }),
    )
    .await;
    let calls: Vec<&StreamedCall> = got.tool_calls.values().collect();
    assert_eq!(got.tool_calls.keys().copied().collect::<Vec<_>>(), [0, 1]);
    assert_eq!((calls[0].name.as_str(), calls[1].name.as_str()), ("a", "b"));
    assert_ne!(calls[0].id, calls[1].id);
    for call in calls {
        assert_eq!(arguments(&call.arguments), json!({"query": "q"}));
    }
}

#[tokio::test]
async fn whole_tool_call_is_parsed_by_async_openai() {
    let mock = spawn_mock(settings()).await;
    let response = mock
        .openai()
        .chat()
        .create(request(json!({
            "model": "m",
            "messages": [user("[mock:tool=get_weather] Paris")],
            "tools": [tool("get_weather")],
        })))
        .await
        .expect("completion");
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let calls = choice.message.tool_calls.as_ref().expect("tool calls");
    assert_eq!(calls.len(), 1);
    let ChatCompletionMessageToolCalls::Function(call) = &calls[0] else {
        panic!("expected a function call: {calls:?}");
    };
    assert!(call.id.starts_with("call_"));
    assert_eq!(call.function.name, "get_weather");
    assert_eq!(
        arguments(&call.function.arguments),
        json!({"query": "Paris"})
    );
}

#[tokio::test]
async fn without_tools_in_the_request_the_answer_is_text() {
    let mock = spawn_mock(settings()).await;
    let messages = vec![user("[mock:tool=search] cats")];
    let got = stream_chat(&mock.openai(), json!({"model": "m", "messages": messages})).await;
    assert!(got.tool_calls.is_empty());
    assert_eq!(got.content, reply_text(&messages, 20));
    assert_eq!(got.finish, Some(FinishReason::Stop));
}

#[tokio::test]
async fn tool_results_are_answered_with_text() {
    let mock = spawn_mock(settings()).await;
    let client = mock.openai();
    let first = stream_chat(
        &client,
        json!({
            "model": "m",
            "messages": [user("[mock:tool=lookup] the answer")],
            "tools": [tool("lookup")],
        }),
    )
    .await;
    let call = first.tool_calls[&0].clone();

    let messages = vec![
        user("[mock:tool=lookup] the answer"),
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }]}),
        json!({"role": "tool", "tool_call_id": call.id, "content": "42"}),
    ];
    let second = stream_chat(
        &client,
        json!({
            "model": "m",
            "messages": messages,
            "tools": [tool("lookup")],
        }),
    )
    .await;
    assert!(
        second.tool_calls.is_empty(),
        "no second call after a result"
    );
    assert_eq!(second.finish, Some(FinishReason::Stop));
    assert_eq!(second.content, reply_text(&messages, 20));
    assert!(
        second.content.starts_with("Tool lookup said: 42."),
        "{}",
        second.content
    );
}
