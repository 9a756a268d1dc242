//! From the provider's chunks to what an answer needs: text pieces as they come, then
//! one [`LlmEvent::End`] with the finish reason, the assembled tool calls and usage.
//!
//! Everything that is not an answer is mapped here, once, to an [`LlmError`] that
//! carries the provider's own message: an error body as an HTTP answer or as an
//! event in the stream, a broken connection, an event that is not JSON. A stream
//! that just stops (no `[DONE]`) ends like one that said `[DONE]`; async-openai
//! skips SSE comments and `keepalive` events before the chunks reach this module.

use super::wire::{Chunk, ToolCall, ToolCallDelta, Usage, error_message};
use async_openai::error::OpenAIError;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use thiserror::Error;

/// Why the model gave no (complete) answer.
#[derive(Debug, Error)]
pub enum LlmError {
    /// The provider answered with an error (HTTP status, or an error event mid-stream).
    #[error("the provider answered with an error{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Provider {
        status: Option<u16>,
        message: String,
    },
    /// The request or the stream broke below the API (connection, TLS, SSE framing).
    #[error("the provider could not be reached or its stream broke: {0}")]
    Transport(String),
    /// The provider sent an event that is not a JSON object.
    #[error("the provider sent an unreadable event: {0}")]
    Unreadable(String),
}

impl From<OpenAIError> for LlmError {
    fn from(error: OpenAIError) -> Self {
        match error {
            OpenAIError::ApiError(response) => LlmError::Provider {
                status: Some(response.status_code.as_u16()),
                message: response.api_error.to_string(),
            },
            // async-openai reads an HTTP error body as `{"error":{"message":..}}`
            // and gives up on other shapes (`{"error":"text"}`, `{"detail":..}`,
            // plain text): the body is still the provider's message.
            OpenAIError::JSONDeserialize(_, content) => {
                match serde_json::from_str::<serde_json::Value>(&content) {
                    Ok(body) if body.is_object() => LlmError::Provider {
                        status: None,
                        message: error_message(&body),
                    },
                    _ => LlmError::Unreadable(shorten(&content)),
                }
            }
            // reqwest names the request's URL in its errors, the base URL's query (a
            // key, for some providers) included: errors are logged, so it goes.
            OpenAIError::Reqwest(error) => {
                LlmError::Transport(without_urls(&error_chain(&error.without_url())))
            }
            other => LlmError::Transport(without_urls(&other.to_string())),
        }
    }
}

/// `text` without reqwest's ` for url (...)` parts (errors wrapped into strings
/// before they reach us still carry them).
fn without_urls(text: &str) -> String {
    const MARK: &str = " for url (";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        // URLs hold no spaces; the part ends at the `)` before the next space or end.
        let end = after.find(' ').unwrap_or(after.len());
        let url_end = after[..end].rfind(')').map_or(end, |p| p + 1);
        rest = &after[url_end..];
    }
    out.push_str(rest);
    out
}

/// What the model sends, in order: any number of `Text`, then one `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmEvent {
    /// The next piece of the answer's text (never empty).
    Text(String),
    /// The stream ended.
    End(Ending),
}

/// How an answer ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ending {
    /// `stop`, `length`, `tool_calls`, ...; none when the server never said.
    pub finish_reason: Option<String>,
    /// Calls the model asked for, in the order they were started.
    pub tool_calls: Vec<ToolCall>,
    /// The last non-empty usage the server reported.
    pub usage: Option<Usage>,
}

/// The model's answer as events; an `Err` item ends it.
pub type EventStream = BoxStream<'static, Result<LlmEvent, LlmError>>;

/// Turns async-openai's chunk stream into [`LlmEvent`]s.
pub fn events<S>(chunks: S) -> EventStream
where
    S: Stream<Item = Result<Chunk, OpenAIError>> + Send + 'static,
{
    struct State<S> {
        chunks: S,
        ending: Ending,
        calls: ToolCallAssembler,
        done: bool,
    }
    let state = State {
        chunks: Box::pin(chunks),
        ending: Ending::default(),
        calls: ToolCallAssembler::default(),
        done: false,
    };
    stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            let chunk = match state.chunks.next().await {
                None => {
                    state.done = true;
                    let mut ending = std::mem::take(&mut state.ending);
                    ending.tool_calls = std::mem::take(&mut state.calls).finish();
                    return Some((Ok(LlmEvent::End(ending)), state));
                }
                Some(Ok(chunk)) => chunk,
                // An event with empty data (a bare `data:` keep-alive) is no chunk.
                Some(Err(OpenAIError::JSONDeserialize(_, content)))
                    if content.trim().is_empty() =>
                {
                    continue;
                }
                Some(Err(error)) => {
                    state.done = true;
                    return Some((Err(LlmError::from(error)), state));
                }
            };
            if let Some(error) = &chunk.error {
                state.done = true;
                let error = LlmError::Provider {
                    status: None,
                    message: error_message(error),
                };
                return Some((Err(error), state));
            }
            if let Some(usage) = chunk.usage.filter(|u| !u.is_empty()) {
                state.ending.usage = Some(usage);
            }
            let mut text = String::new();
            // One choice is asked for; a server that numbers it differently still
            // sends one, so every choice without another index counts.
            for choice in chunk
                .choices
                .into_iter()
                .filter(|c| c.index.unwrap_or(0) == 0)
            {
                if let Some(content) = choice.delta.content {
                    text.push_str(&content);
                }
                for fragment in choice.delta.tool_calls {
                    state.calls.add(fragment);
                }
                if choice.finish_reason.is_some() {
                    state.ending.finish_reason = choice.finish_reason;
                }
            }
            if !text.is_empty() {
                return Some((Ok(LlmEvent::Text(text)), state));
            }
        }
    })
    .boxed()
}

/// Puts streamed tool-call fragments back together.
///
/// A fragment belongs to the call at its `index`; without an index, to the call with
/// its `id`, or, when its `id` is new, to a new call; a fragment with neither
/// continues the latest call. Names and arguments are concatenated in arrival order.
#[derive(Debug, Default)]
pub struct ToolCallAssembler {
    calls: Vec<Assembling>,
}

#[derive(Debug, Default)]
struct Assembling {
    index: Option<u32>,
    id: String,
    name: String,
    arguments: String,
}

impl ToolCallAssembler {
    /// Adds one fragment.
    pub fn add(&mut self, fragment: ToolCallDelta) {
        let position = match (fragment.index, fragment.id.as_deref()) {
            (Some(index), _) => self.calls.iter().position(|c| c.index == Some(index)),
            (None, Some(id)) if !id.is_empty() => self.calls.iter().position(|c| c.id == id),
            (None, _) => self.calls.len().checked_sub(1),
        };
        let call = match position {
            Some(position) => &mut self.calls[position],
            None => {
                self.calls.push(Assembling {
                    index: fragment.index,
                    ..Assembling::default()
                });
                self.calls.last_mut().expect("just pushed")
            }
        };
        if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(name) = fragment.function.name {
            call.name.push_str(&name);
        }
        if let Some(arguments) = fragment.function.arguments {
            call.arguments.push_str(&arguments);
        }
    }

    /// The calls, in the order they were started. A call the server sent without an
    /// id gets one (`call_N`), since its result must name it.
    pub fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .enumerate()
            .map(|(n, call)| {
                let id = if call.id.is_empty() {
                    format!("call_{n}")
                } else {
                    call.id
                };
                ToolCall::new(id, call.name, call.arguments)
            })
            .collect()
    }
}

/// An error with its sources, `outer: inner: innermost` (reqwest's own `Display`
/// hides the cause, e.g. "connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A provider's body cut to a loggable length.
fn shorten(content: &str) -> String {
    const MAX: usize = 500;
    match content.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &content[..at]),
        None => content.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::wire::FunctionDelta;
    use serde_json::json;

    fn fragment(
        index: Option<u32>,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
    ) -> ToolCallDelta {
        ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            function: FunctionDelta {
                name: name.map(str::to_owned),
                arguments: Some(args.to_owned()),
            },
        }
    }

    #[test]
    fn tool_calls_by_index() {
        let mut calls = ToolCallAssembler::default();
        calls.add(fragment(Some(0), Some("a"), Some("one"), ""));
        calls.add(fragment(Some(1), Some("b"), Some("two"), "{\"x\""));
        calls.add(fragment(Some(0), None, None, "{}"));
        calls.add(fragment(Some(1), None, None, ":1}"));
        assert_eq!(
            calls.finish(),
            [
                ToolCall::new("a", "one", "{}"),
                ToolCall::new("b", "two", "{\"x\":1}")
            ]
        );
    }

    #[test]
    fn tool_calls_without_index_follow_ids_then_the_latest_call() {
        let mut calls = ToolCallAssembler::default();
        calls.add(fragment(None, Some("a"), Some("one"), "{\"q\":"));
        calls.add(fragment(None, None, None, "1}"));
        calls.add(fragment(None, Some("b"), Some("two"), "{"));
        calls.add(fragment(None, Some("a"), None, ""));
        calls.add(fragment(None, Some("b"), None, "}"));
        assert_eq!(
            calls.finish(),
            [
                ToolCall::new("a", "one", "{\"q\":1}"),
                ToolCall::new("b", "two", "{}")
            ]
        );
    }

    #[test]
    fn a_call_without_id_gets_one() {
        let mut calls = ToolCallAssembler::default();
        calls.add(fragment(None, None, Some("f"), "{}"));
        assert_eq!(calls.finish(), [ToolCall::new("call_0", "f", "{}")]);
    }

    #[test]
    fn urls_are_cut_out_of_transport_errors() {
        assert_eq!(
            without_urls(
                "error sending request for url (http://h/v1?api_key=sk-1/chat/completions): client error (Connect)"
            ),
            "error sending request: client error (Connect)"
        );
        assert_eq!(
            without_urls("stream failed: error decoding response body for url (http://h/v1?k=s)"),
            "stream failed: error decoding response body"
        );
        assert_eq!(without_urls("no url here"), "no url here");
    }

    async fn run(items: Vec<Result<Chunk, OpenAIError>>) -> Vec<Result<LlmEvent, String>> {
        events(stream::iter(items))
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    fn chunk(value: serde_json::Value) -> Result<Chunk, OpenAIError> {
        Ok(serde_json::from_value(value).unwrap())
    }

    #[tokio::test]
    async fn text_then_one_end_with_reason_and_usage() {
        let out = run(vec![
            chunk(json!({"choices":[{"delta":{"role":"assistant"}}]})),
            chunk(json!({"choices":[{"delta":{"content":"Hel"},"finish_reason":""}],"usage":{}})),
            chunk(json!({"choices":[{"delta":{"content":"lo"}}]})),
            chunk(json!({"choices":[{"delta":{},"finish_reason":"stop"}]})),
            chunk(json!({"choices":[],"usage":{"completion_tokens":2}})),
        ])
        .await;
        assert_eq!(
            out,
            [
                Ok(LlmEvent::Text("Hel".into())),
                Ok(LlmEvent::Text("lo".into())),
                Ok(LlmEvent::End(Ending {
                    finish_reason: Some("stop".into()),
                    tool_calls: vec![],
                    usage: Some(Usage {
                        completion_tokens: Some(2),
                        ..Usage::default()
                    }),
                })),
            ]
        );
    }

    #[tokio::test]
    async fn an_error_event_ends_the_stream_with_its_message() {
        let out = run(vec![
            chunk(json!({"choices":[{"delta":{"content":"a"}}]})),
            chunk(json!({"error":{"message":"model overloaded","type":"server_error"}})),
            chunk(json!({"choices":[{"delta":{"content":"never"}}]})),
        ])
        .await;
        assert_eq!(out.len(), 2);
        assert!(
            out[1].as_ref().unwrap_err().contains("model overloaded"),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn empty_events_are_skipped_and_garbage_is_an_error() {
        let bad_json = serde_json::from_str::<Chunk>("nope").unwrap_err();
        let empty = serde_json::from_str::<Chunk>("").unwrap_err();
        let out = run(vec![
            Err(OpenAIError::JSONDeserialize(empty, " ".into())),
            chunk(json!({"choices":[{"delta":{"content":"a"}}]})),
            Err(OpenAIError::JSONDeserialize(bad_json, "nope".into())),
        ])
        .await;
        assert_eq!(out[0], Ok(LlmEvent::Text("a".into())));
        assert!(
            out[1]
                .as_ref()
                .unwrap_err()
                .contains("unreadable event: nope"),
            "{out:?}"
        );
        assert_eq!(out.len(), 2);
    }
}
