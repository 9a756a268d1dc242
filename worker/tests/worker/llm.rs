//! The model client against `mock-llm` over HTTP, through async-openai:
//! one test per way "OpenAI-compatible" servers differ from the specification
//! (`[mock:deviate=..]`), each of which must still give the exact answer, and the
//! provider's errors, which must arrive as [`LlmError::Provider`] with the
//! provider's message, never as a parse failure.

use crate::helpers::{self, expected, start, tool};
use worker::llm::{LlmError, ToolCall};

/// Asks with one deviation and checks the answer is whole and ends normally.
async fn answers_despite(deviation: &str) -> helpers::Answer {
    let llm = start().await;
    let text = format!("hello [mock:deviate={deviation}]");
    let answer = llm.ask(&text, Vec::new()).await;
    assert!(answer.error.is_none(), "{deviation}: {:?}", answer.error);
    assert_eq!(answer.text, expected(&text), "{deviation}");
    let ending = answer.ending.as_ref().expect("the stream ended normally");
    assert_eq!(ending.finish_reason.as_deref(), Some("stop"), "{deviation}");
    answer
}

#[tokio::test]
async fn a_plain_answer_streams_piece_by_piece() {
    let llm = start().await;
    let answer = llm.ask("hello", Vec::new()).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.text, expected("hello"));
    assert!(answer.pieces > 10, "streamed, not in one piece");
    let request = llm.last_request().await;
    assert_eq!(request["stream"], true);
    assert!(
        request.get("tools").is_none(),
        "no tools offered: {request}"
    );
}

#[tokio::test]
async fn chunks_without_created_object_or_id() {
    answers_despite("bare").await;
}

#[tokio::test]
async fn an_empty_finish_reason_is_no_finish_reason() {
    answers_despite("empty_finish").await;
}

#[tokio::test]
async fn empty_usage_objects() {
    // `usage: {}` on every chunk counts nothing: what is read is the final usage
    // chunk the worker asks for (`stream_options.include_usage`).
    let answer = answers_despite("empty_usage").await;
    let usage = answer.ending.unwrap().usage.expect("the final usage");
    assert_eq!(usage.completion_tokens, Some(answer.pieces as u64));
}

#[tokio::test]
async fn a_final_usage_only_chunk() {
    let answer = answers_despite("usage_chunk").await;
    let usage = answer.ending.unwrap().usage.expect("usage read");
    assert_eq!(usage.completion_tokens, Some(answer.pieces as u64));
}

#[tokio::test]
async fn reasoning_content_is_not_answer_text() {
    answers_despite("reasoning").await;
}

#[tokio::test]
async fn sse_comments_and_keep_alives() {
    answers_despite("comments").await;
}

#[tokio::test]
async fn crlf_line_endings() {
    answers_despite("crlf").await;
}

#[tokio::test]
async fn a_stream_without_done() {
    answers_despite("no_done").await;
}

#[tokio::test]
async fn all_deviations_at_once() {
    let llm = start().await;
    let text = "hello [mock:deviate=bare deviate=empty_finish deviate=empty_usage \
                deviate=usage_chunk deviate=reasoning deviate=comments deviate=crlf deviate=no_done]";
    let answer = llm.ask(text, Vec::new()).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.text, expected(text));
}

#[tokio::test]
async fn tool_calls_with_index_are_assembled() {
    let llm = start().await;
    let answer = llm
        .ask(
            "find [mock:tool=search][mock:tool=weather]",
            vec![tool("search"), tool("weather")],
        )
        .await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.text, "");
    let ending = answer.ending.unwrap();
    assert_eq!(ending.finish_reason.as_deref(), Some("tool_calls"));
    let names: Vec<&str> = ending
        .tool_calls
        .iter()
        .map(|c| c.function.name.as_str())
        .collect();
    assert_eq!(names, ["search", "weather"]);
    let request = llm.last_request().await;
    assert_eq!(request["tools"][0]["function"]["name"], "search");
}

#[tokio::test]
async fn tool_calls_without_index() {
    let llm = start().await;
    let answer = llm
        .ask(
            "find [mock:tool=search][mock:tool=weather][mock:deviate=no_index]",
            vec![tool("search"), tool("weather")],
        )
        .await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    let calls = answer.ending.unwrap().tool_calls;
    let arguments = r#"{"query": "find"}"#;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[0],
        ToolCall::new(calls[0].id.clone(), "search", arguments)
    );
    assert_eq!(
        calls[1],
        ToolCall::new(calls[1].id.clone(), "weather", arguments)
    );
    assert_ne!(calls[0].id, calls[1].id);
}

fn provider_message(error: Option<LlmError>) -> (Option<u16>, String) {
    match error {
        Some(LlmError::Provider { status, message }) => (status, message),
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_event_in_the_stream() {
    let llm = start().await;
    let answer = llm
        .ask("hello [mock:deviate=error_event]", Vec::new())
        .await;
    assert_eq!(answer.text, "Reply 1", "what came before the error");
    let (status, message) = provider_message(answer.error);
    assert_eq!(status, None);
    assert!(message.contains("the model is overloaded"), "{message}");
}

#[tokio::test]
async fn an_error_answer_not_in_a_stream() {
    let llm = start().await;
    let answer = llm.ask("hello [mock:status=400]", Vec::new()).await;
    let (status, message) = provider_message(answer.error);
    assert_eq!(status, Some(400));
    assert!(message.contains("mock-llm: request rejected"), "{message}");
}

#[tokio::test]
async fn a_flat_error_body_not_in_a_stream() {
    let llm = start().await;
    let answer = llm
        .ask("hello [mock:status=404 deviate=flat_error]", Vec::new())
        .await;
    let (_, message) = provider_message(answer.error);
    assert_eq!(message, "mock-llm: model not found (injected)");
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    worker::llm::install_crypto_provider();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let llm = worker::llm::Llm::from_settings(&helpers::llm_settings(&format!(
        "http://127.0.0.1:{port}/v1"
    )));
    let error = llm
        .stream_chat(helpers::conversation("x"), Vec::new(), None)
        .await
        .err()
        .expect("no server");
    assert!(matches!(error, LlmError::Transport(_)), "{error:?}");
    assert!(
        error.to_string().to_lowercase().contains("connect"),
        "{error}"
    );
}
