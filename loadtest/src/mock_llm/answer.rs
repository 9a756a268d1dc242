//! What one request gets back, decided once and then rendered either as one
//! `chat.completion` or as a stream of `chat.completion.chunk` deltas.
//!
//! Keeping the decision (text or tool calls) apart from the rendering means the
//! streaming and non-streaming paths can never disagree about the answer.

use serde_json::{Value, json};

/// The answer to one chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Plain text, as the streamed tokens (see [`super::reply_tokens`]).
    Text(Vec<String>),
    /// Parallel tool calls, in order (`index` 0, 1, ...).
    ToolCalls(Vec<ToolCall>),
}

/// One function call the mock asks the client to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    /// `call_<n>`, unique within one server.
    pub id: String,
    /// The function's name, from `[mock:tool=NAME]`.
    pub name: String,
    /// The JSON arguments, `{"<key>": "<last user message>"}` (key `query` unless
    /// `[mock:arg=KEY]`).
    pub arguments: String,
}

impl ToolCall {
    /// A call of `name` with the user's query as its only argument, named `key`.
    pub(crate) fn new(id: String, name: String, key: &str, query: &str) -> Self {
        let key = Value::String(key.to_owned());
        let query = Value::String(query.to_owned());
        Self {
            id,
            name,
            arguments: format!("{{{key}: {query}}}"),
        }
    }
}

impl Answer {
    /// The `finish_reason` of the last choice chunk.
    pub(crate) fn finish_reason(&self) -> &'static str {
        match self {
            Self::Text(_) => "stop",
            Self::ToolCalls(_) => "tool_calls",
        }
    }

    /// The first delta of a stream: the role, with an empty text (a tool-calling turn
    /// has `null` content, as OpenAI sends it).
    pub(crate) fn role_delta(&self) -> Value {
        match self {
            Self::Text(_) => json!({"role": "assistant", "content": ""}),
            Self::ToolCalls(_) => json!({"role": "assistant", "content": null}),
        }
    }

    /// The deltas after the role one: a `content` per token, or per call a header
    /// (id, type, name, empty arguments) followed by argument fragments.
    pub(crate) fn deltas(&self) -> Vec<Value> {
        match self {
            Self::Text(tokens) => tokens.iter().map(|t| json!({"content": t})).collect(),
            Self::ToolCalls(calls) => calls
                .iter()
                .enumerate()
                .flat_map(|(index, call)| {
                    let header = json!({"tool_calls": [{
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }]});
                    let fragments = fragments(&call.arguments, 3).into_iter().map(move |f| {
                        json!({"tool_calls": [{"index": index, "function": {"arguments": f}}]})
                    });
                    std::iter::once(header).chain(fragments)
                })
                .collect(),
        }
    }

    /// The whole assistant message of a non-streamed completion.
    pub(crate) fn message(&self) -> Value {
        match self {
            Self::Text(tokens) => json!({"role": "assistant", "content": tokens.concat()}),
            Self::ToolCalls(calls) => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": calls.iter().map(|call| json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })).collect::<Vec<_>>(),
            }),
        }
    }

    /// The `completion_tokens` reported in `usage`: one per streamed content delta.
    pub(crate) fn completion_tokens(&self) -> usize {
        match self {
            Self::Text(tokens) => tokens.len(),
            Self::ToolCalls(_) => self.deltas().len(),
        }
    }
}

/// `text` cut into at most `pieces` non-empty fragments of similar length, on
/// character boundaries.
fn fragments(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(pieces.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_arguments_are_json_with_the_query() {
        let call = ToolCall::new("call_1".into(), "search".into(), "query", "say \"hi\"");
        let parsed: Value = serde_json::from_str(&call.arguments).expect("valid JSON");
        assert_eq!(parsed, json!({"query": "say \"hi\""}));
        let named = ToolCall::new("call_2".into(), "book".into(), "exam", "blood");
        assert_eq!(
            serde_json::from_str::<Value>(&named.arguments).unwrap(),
            json!({"exam": "blood"})
        );
    }

    #[test]
    fn fragments_rejoin_to_the_text() {
        for text in ["", "a", "ab", "abcd", "{\"query\": \"héllo wörld\"}"] {
            let parts = fragments(text, 3);
            assert!(parts.len() <= 3);
            assert!(parts.iter().all(|p| !p.is_empty()));
            assert_eq!(parts.concat(), text);
        }
        assert_eq!(fragments("{\"query\": \"x\"}", 3).len(), 3);
    }

    #[test]
    fn tool_deltas_announce_each_call_then_stream_its_arguments() {
        let answer = Answer::ToolCalls(vec![
            ToolCall::new("call_1".into(), "a".into(), "query", "q"),
            ToolCall::new("call_2".into(), "b".into(), "query", "q"),
        ]);
        let deltas = answer.deltas();
        assert_eq!(deltas.len(), 8);
        assert_eq!(deltas[0]["tool_calls"][0]["id"], "call_1");
        assert_eq!(deltas[0]["tool_calls"][0]["function"]["name"], "a");
        assert_eq!(deltas[4]["tool_calls"][0]["index"], 1);
        let args: String = deltas[5..]
            .iter()
            .map(|d| {
                d["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(args, "{\"query\": \"q\"}");
        assert_eq!(answer.finish_reason(), "tool_calls");
    }
}
