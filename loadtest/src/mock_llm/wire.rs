//! The OpenAI wire shapes the mock reads and writes: the chat request, completion
//! and chunk objects, usage and the model list.
//!
//! Only the request fields the mock acts on are typed; `messages` and `tools` stay
//! JSON so any client's extras pass through to the request log untouched.

use serde::Deserialize;
use serde_json::{Value, json};

use super::answer::Answer;

/// The part of a `POST /v1/chat/completions` body the mock uses.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    /// The conversation, OpenAI format.
    pub messages: Vec<Value>,
    /// The model asked for; echoed back in the answer.
    #[serde(default)]
    pub model: Option<String>,
    /// Whether to answer with server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `include_usage` adds a final usage chunk to a stream.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Tools the model may call; `[mock:tool=..]` only calls when this is non-empty.
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
}

/// `stream_options` of a chat request.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamOptions {
    /// Send a last chunk with `usage` and no choices.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl ChatRequest {
    /// Parses and checks a request body; the error is the message of a 400.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, String> {
        let request: Self =
            serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))?;
        if request.messages.is_empty() {
            return Err("'messages' must contain at least one message".to_owned());
        }
        if let Some(i) = request
            .messages
            .iter()
            .position(|m| m.get("role").and_then(Value::as_str).is_none())
        {
            return Err(format!(
                "messages[{i}] must be an object with a string 'role'"
            ));
        }
        Ok(request)
    }

    /// Whether the client asked for a stream.
    pub(crate) fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a streamed answer ends with a usage chunk.
    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// Whether the request offers at least one tool.
    pub(crate) fn has_tools(&self) -> bool {
        self.tools.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// What `/mock/requests` keeps of this request.
    pub(crate) fn record(&self) -> Value {
        let mut record = json!({
            "messages": self.messages,
            "stream": self.is_stream(),
            "model": self.model,
        });
        if let Some(tools) = &self.tools {
            record["tools"] = json!(tools);
        }
        // So a test can tell the client asked for the usage it then charges.
        if self.include_usage() {
            record["stream_options"] = json!({"include_usage": true});
        }
        record
    }
}

/// Token counts reported in `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Rough word count of the prompt.
    pub prompt: usize,
    /// Tokens (deltas) of the answer.
    pub completion: usize,
}

impl Usage {
    /// The `usage` object.
    pub(crate) fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        })
    }
}

/// What every object of one answer shares: its id, creation time and model.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// `chatcmpl-mock-<request number>`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model named in the answer.
    pub model: String,
}

impl Envelope {
    /// One `chat.completion.chunk` with a single choice.
    pub(crate) fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
    }

    /// The last chunk of a stream with `include_usage`: usage and no choices.
    pub(crate) fn usage_chunk(&self, usage: Usage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.to_json(),
        })
    }

    /// A whole non-streamed `chat.completion`.
    pub(crate) fn completion(&self, answer: &Answer, usage: Usage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": answer.message(),
                "finish_reason": answer.finish_reason(),
            }],
            "usage": usage.to_json(),
        })
    }
}

/// The `GET /v1/models` body: the one configured model.
pub(crate) fn model_list(model: &str, created: u64) -> Value {
    json!({
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": "mock-llm"}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_what_openai_rejects() {
        assert!(ChatRequest::parse(b"not json").is_err());
        assert!(ChatRequest::parse(b"{}").is_err());
        assert!(ChatRequest::parse(br#"{"messages":[]}"#).is_err());
        assert!(ChatRequest::parse(br#"{"messages":[{"content":"x"}]}"#).is_err());
        let ok =
            ChatRequest::parse(br#"{"messages":[{"role":"user","content":"x"}],"stream":null}"#)
                .expect("valid request");
        assert!(!ok.is_stream());
        assert!(!ok.include_usage());
        assert!(!ok.has_tools());
    }

    #[test]
    fn record_keeps_messages_stream_model_and_tools() {
        let request = ChatRequest::parse(
            br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#,
        )
        .expect("valid request");
        assert_eq!(
            request.record(),
            json!({"messages":[{"role":"user","content":"x"}],"stream":true,"model":"m","tools":[{"type":"function"}]})
        );
    }
}
