//! Our own Chat Completions wire types, sent and read through async-openai's
//! bring-your-own-types calls (`create_stream_byot`).
//!
//! async-openai's own types follow OpenAI's specification to the letter: a chunk
//! without `created`, a `finish_reason` of `""` or a `usage` of `{}` fails the whole
//! answer. "OpenAI-compatible" servers and proxies deviate in exactly such ways, so
//! the chunk type here reads only what the worker uses (content, tool-call fragments,
//! finish reason, usage, a provider error) and reads each of those leniently: every
//! field may be missing or `null`, unknown fields (`reasoning_content`, `logprobs`,
//! vendor extras) are ignored, and a value of the wrong type counts as absent rather
//! than failing the chunk.
//!
//! Reading every field leniently costs a `serde_json::Value` per field, and the
//! chunks of a stream nearly always have the plain shape, so [`Chunk::read`] first
//! reads that shape in one typed pass and only falls back to the lenient reading
//! when the typed pass fails; both give the same chunk wherever the typed pass
//! succeeds.
//!
//! The request type is the subset of the API the worker sends, including `tools`,
//! `tool_choice` and the messages of a tool exchange (an assistant message carrying
//! `tool_calls`, then `tool` messages with the results).

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A streamed `POST /chat/completions` body.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// Always `true`: `create_stream_byot` sends the body as it is.
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Functions the model may call; left out of the body when empty (some servers
    /// reject `"tools": []`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name":..}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// `{"include_usage": true}`: the stream ends with the turn's token `usage` (OpenAI's
    /// way; servers that do not know it ignore it), which budgets are charged from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

/// Options of a streamed request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: String,
    },
    User {
        content: String,
    },
    /// The model's earlier turn: text, tool calls, or both.
    Assistant {
        /// `null` on the wire when the turn was only tool calls.
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of the tool call `tool_call_id`.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl ChatMessage {
    /// An assistant turn that is text only.
    pub fn assistant(text: impl Into<String>) -> Self {
        ChatMessage::Assistant {
            content: Some(text.into()),
            tool_calls: Vec::new(),
        }
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    /// Always `"function"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionDefinition,
}

impl Tool {
    pub fn function(
        name: impl Into<String>,
        description: Option<String>,
        parameters: Value,
    ) -> Self {
        Tool {
            kind: "function",
            function: FunctionDefinition {
                name: name.into(),
                description,
                parameters,
            },
        }
    }
}

/// A function's name, purpose and JSON-Schema parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Value,
}

/// A complete tool call: as assembled from a stream, and as sent back in the
/// assistant message that precedes its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

impl ToolCall {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            kind: "function",
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

/// The function a tool call names and its arguments (a JSON text, as the model wrote it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

/// One streamed chunk (`chat.completion.chunk`), or an error event in its place.
///
/// `id`, `object`, `created` and `model` are not read: servers leave them out.
#[derive(Debug, Default, Deserialize)]
pub struct Chunk {
    #[serde(default, deserialize_with = "lenient")]
    pub choices: Vec<ChunkChoice>,
    /// `{}`, `null`, partial or complete; on any chunk, or on a last chunk of its own.
    #[serde(default, deserialize_with = "lenient")]
    pub usage: Option<Usage>,
    /// `{"error": {...}}` sent as an event: the provider failed mid-answer.
    #[serde(default)]
    pub error: Option<Value>,
}

/// A streamed event's JSON as sent: what async-openai hands over, read by
/// [`Chunk::read`].
pub type RawChunk = Box<serde_json::value::RawValue>;

impl Chunk {
    /// Reads one event's JSON: the plain shape in one typed pass, anything else
    /// (a field of another type, `null` lists, numeric ids) leniently.
    pub fn read(json: &str) -> Result<Chunk, serde_json::Error> {
        match serde_json::from_str::<plain::Chunk>(json) {
            Ok(chunk) => Ok(chunk.into()),
            Err(_) => serde_json::from_str(json),
        }
    }
}

/// The plain shape of a chunk, typed: every field optional, no lenient reading. A
/// value the typed pass accepts is one the lenient reading takes the same way.
mod plain {
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Deserialize)]
    pub struct Chunk {
        #[serde(default)]
        choices: Option<Vec<Choice>>,
        #[serde(default)]
        usage: Option<Usage>,
        #[serde(default)]
        error: Option<Value>,
    }

    #[derive(Deserialize)]
    struct Choice {
        #[serde(default)]
        index: Option<u32>,
        #[serde(default, alias = "message")]
        delta: Option<Delta>,
        #[serde(default)]
        finish_reason: Option<String>,
    }

    #[derive(Deserialize)]
    struct Delta {
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        tool_calls: Option<Vec<ToolCallDelta>>,
    }

    #[derive(Deserialize)]
    struct ToolCallDelta {
        #[serde(default)]
        index: Option<u32>,
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        function: Option<FunctionDelta>,
    }

    #[derive(Deserialize)]
    struct FunctionDelta {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        arguments: Option<String>,
    }

    #[derive(Deserialize)]
    struct Usage {
        #[serde(default)]
        prompt_tokens: Option<u64>,
        #[serde(default)]
        completion_tokens: Option<u64>,
        #[serde(default)]
        total_tokens: Option<u64>,
    }

    impl From<Chunk> for super::Chunk {
        fn from(c: Chunk) -> Self {
            super::Chunk {
                choices: c
                    .choices
                    .unwrap_or_default()
                    .into_iter()
                    .map(|choice| super::ChunkChoice {
                        index: choice.index,
                        delta: choice.delta.map(Into::into).unwrap_or_default(),
                        finish_reason: choice.finish_reason.filter(|r| !r.is_empty()),
                    })
                    .collect(),
                usage: c.usage.map(|u| super::Usage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                    total_tokens: u.total_tokens,
                }),
                error: c.error,
            }
        }
    }

    impl From<Delta> for super::Delta {
        fn from(d: Delta) -> Self {
            super::Delta {
                content: d.content,
                tool_calls: d
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| super::ToolCallDelta {
                        index: t.index,
                        id: t.id,
                        function: t
                            .function
                            .map(|f| super::FunctionDelta {
                                name: f.name,
                                arguments: f.arguments,
                            })
                            .unwrap_or_default(),
                    })
                    .collect(),
            }
        }
    }
}

/// One choice of a chunk. Only the first choice is answered (the worker asks for one).
#[derive(Debug, Default, Deserialize)]
pub struct ChunkChoice {
    #[serde(default, deserialize_with = "lenient")]
    pub index: Option<u32>,
    /// Some servers name it `message` in streamed chunks too.
    #[serde(default, alias = "message", deserialize_with = "lenient")]
    pub delta: Delta,
    /// `""` (sent by some servers on every chunk) means none.
    #[serde(default, deserialize_with = "lenient_reason")]
    pub finish_reason: Option<String>,
}

/// What a chunk adds to the answer. `reasoning_content`, `role`, `refusal` and other
/// fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Delta {
    #[serde(default, deserialize_with = "lenient")]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub tool_calls: Vec<ToolCallDelta>,
}

/// A fragment of a tool call. The first fragment of a call usually has its `id` and
/// name, later ones pieces of `arguments`; `index` says which call it belongs to,
/// but not every server sends it (see `events::ToolCallAssembler`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default, deserialize_with = "lenient")]
    pub index: Option<u32>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub function: FunctionDelta,
}

/// Name and argument pieces of a tool-call fragment.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct FunctionDelta {
    #[serde(default, deserialize_with = "lenient_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub arguments: Option<String>,
}

/// Token counts, each present only when the server sent it as a number.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default, deserialize_with = "lenient")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub total_tokens: Option<u64>,
}

impl Usage {
    /// True for `{}`: nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// The message of a provider's error body, whatever its shape:
/// `{"error":{"message":..}}`, `{"error":"text"}`, `{"message":..}`, `{"detail":..}`;
/// the JSON itself when none of these fields is there.
pub fn error_message(body: &Value) -> String {
    let error = body.get("error").unwrap_or(body);
    let text = match error {
        Value::String(text) => Some(text.clone()),
        Value::Object(fields) => ["message", "detail", "error"]
            .iter()
            .find_map(|key| fields.get(*key))
            .map(|v| match v {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }),
        _ => None,
    };
    text.unwrap_or_else(|| error.to_string())
}

/// Reads a field as `T`, or as its default when it is `null` or of another shape.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

/// A finish reason; `""` and non-strings are none.
fn lenient_reason<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let reason: Option<String> = lenient(deserializer)?;
    Ok(reason.filter(|r| !r.is_empty()))
}

/// A text field; a number (some servers send numeric ids) is taken as its text.
fn lenient_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => Some(text),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(value: Value) -> Chunk {
        serde_json::from_value(value).expect("every object reads as a chunk")
    }

    #[test]
    fn the_typed_pass_reads_as_the_lenient_one() {
        for json in [
            r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"hi"},"finish_reason":""}],"usage":{}}"#,
            r#"{"choices":[{"message":{"content":"x"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{"}}]}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
            r#"{"error":{"message":"boom"}}"#,
            r#"{"choices":null,"usage":null}"#,
            // Shapes only the lenient reading takes.
            r#"{"choices":[{"delta":{"tool_calls":[{"id":7,"function":{"name":"f"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":"a"}}],"usage":"n/a"}"#,
            r#"{"choices":[{"index":"0","delta":null,"finish_reason":5}]}"#,
            r#"{"choices":[{"delta":{"content":"a","tool_calls":null}}]}"#,
        ] {
            let lenient: Chunk = serde_json::from_str(json).expect("lenient");
            let read = Chunk::read(json).expect("read");
            assert_eq!(format!("{read:?}"), format!("{lenient:?}"), "{json}");
        }
        assert!(Chunk::read("42").is_err());
        assert!(Chunk::read("not json").is_err());
    }

    #[test]
    fn reads_a_chunk_without_envelope_fields() {
        let c = chunk(json!({"choices":[{"delta":{"content":"hi"}}]}));
        assert_eq!(c.choices[0].delta.content.as_deref(), Some("hi"));
        assert_eq!(c.choices[0].index, None);
    }

    #[test]
    fn empty_finish_reason_is_none() {
        let c = chunk(json!({"choices":[{"delta":{"content":"a"},"finish_reason":""}]}));
        assert_eq!(c.choices[0].finish_reason, None);
        let c = chunk(json!({"choices":[{"delta":{},"finish_reason":"stop"}]}));
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn odd_usage_and_nulls_do_not_fail() {
        let c = chunk(json!({"choices":null,"usage":{}}));
        assert!(c.choices.is_empty());
        assert!(c.usage.is_some_and(|u| u.is_empty()));
        let c =
            chunk(json!({"usage":{"prompt_tokens":3,"completion_tokens":"x","total_tokens":null}}));
        assert_eq!(c.usage.map(|u| u.prompt_tokens), Some(Some(3)));
        assert_eq!(c.usage.map(|u| u.completion_tokens), Some(None));
        let c = chunk(json!({"choices":[{"delta":null,"finish_reason":7}]}));
        assert_eq!(c.choices[0].delta.content, None);
        assert_eq!(c.choices[0].finish_reason, None);
    }

    #[test]
    fn reasoning_content_is_ignored() {
        let c = chunk(json!({"choices":[{"delta":{"content":null,"reasoning_content":"hmm"}}]}));
        assert_eq!(c.choices[0].delta.content, None);
    }

    #[test]
    fn tool_call_fragments_without_index() {
        let c = chunk(json!({"choices":[{"delta":{"tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"search","arguments":""}},
            {"function":{"arguments":"{\"q\":1}"}}
        ]}}]}));
        let calls = &c.choices[0].delta.tool_calls;
        assert_eq!(calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(calls[0].index, None);
        assert_eq!(calls[1].function.arguments.as_deref(), Some("{\"q\":1}"));
    }

    #[test]
    fn error_messages_of_every_shape() {
        assert_eq!(
            error_message(&json!({"error":{"message":"boom","type":"x"}})),
            "boom"
        );
        assert_eq!(error_message(&json!({"error":"flat"})), "flat");
        assert_eq!(error_message(&json!({"detail":"fastapi"})), "fastapi");
        assert_eq!(error_message(&json!({"error":{"code":5}})), "{\"code\":5}");
        let c = chunk(json!({"error":{"message":"overloaded"}}));
        assert_eq!(
            c.error.as_ref().map(error_message).as_deref(),
            Some("overloaded")
        );
    }

    #[test]
    fn requests_carry_tools_and_tool_messages() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![
                ChatMessage::System {
                    content: "s".into(),
                },
                ChatMessage::User {
                    content: "u".into(),
                },
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCall::new("c1", "search", "{}")],
                },
                ChatMessage::Tool {
                    tool_call_id: "c1".into(),
                    content: "found".into(),
                },
                ChatMessage::assistant("done"),
            ],
            stream: true,
            max_completion_tokens: None,
            temperature: None,
            tools: vec![Tool::function("search", None, json!({"type":"object"}))],
            tool_choice: Some(json!("auto")),
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "model":"m","stream":true,
                "messages":[
                    {"role":"system","content":"s"},
                    {"role":"user","content":"u"},
                    {"role":"assistant","content":null,"tool_calls":[
                        {"id":"c1","type":"function","function":{"name":"search","arguments":"{}"}}]},
                    {"role":"tool","tool_call_id":"c1","content":"found"},
                    {"role":"assistant","content":"done"}
                ],
                "tools":[{"type":"function","function":{"name":"search","parameters":{"type":"object"}}}],
                "tool_choice":"auto",
                "stream_options":{"include_usage":true}
            })
        );
    }
}
