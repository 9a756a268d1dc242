//! Deviations: the ways real "OpenAI-compatible" servers and proxies differ from the
//! specification, each of which has broken strict clients. `[mock:deviate=NAME]`
//! makes one answer deviate; several can be combined.
//!
//! They only change the shape of the answer, never its text, so a client that reads
//! leniently relays exactly [`super::reply_text`].

use serde_json::{Value, json};

/// One way of not quite following the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Deviation {
    /// `bare`: chunks without `id`, `object`, `created` and `model`.
    Bare,
    /// `empty_finish`: `"finish_reason": ""` instead of `null` on every chunk
    /// before the last.
    EmptyFinish,
    /// `empty_usage`: `"usage": {}` on every chunk.
    EmptyUsage,
    /// `usage_chunk`: a final chunk with only `usage` (no `choices` at all), even
    /// when the request did not ask for usage.
    UsageChunk,
    /// `reasoning`: `reasoning_content` deltas (with `content: null`) before the
    /// answer, as reasoning models behind vLLM, DeepSeek and others send.
    Reasoning,
    /// `comments`: SSE comments (`: keep-alive`, `: OPENROUTER PROCESSING`) and a
    /// `ping` event between the chunks.
    Comments,
    /// `crlf`: `\r\n` line endings.
    Crlf,
    /// `no_done`: the stream ends without `data: [DONE]`.
    NoDone,
    /// `no_index`: tool-call deltas without `index`.
    NoIndex,
    /// `error_event`: after two content deltas, an `{"error": {...}}` event, then
    /// the stream ends.
    ErrorEvent,
    /// `flat_error`: an error answer (`[mock:status=..]`) with the body
    /// `{"error": "<message>"}` instead of an error object.
    FlatError,
}

impl Deviation {
    /// Every deviation, for documentation and tests.
    pub const ALL: [Deviation; 11] = [
        Deviation::Bare,
        Deviation::EmptyFinish,
        Deviation::EmptyUsage,
        Deviation::UsageChunk,
        Deviation::Reasoning,
        Deviation::Comments,
        Deviation::Crlf,
        Deviation::NoDone,
        Deviation::NoIndex,
        Deviation::ErrorEvent,
        Deviation::FlatError,
    ];

    /// The name used in `[mock:deviate=NAME]`.
    pub fn name(self) -> &'static str {
        match self {
            Deviation::Bare => "bare",
            Deviation::EmptyFinish => "empty_finish",
            Deviation::EmptyUsage => "empty_usage",
            Deviation::UsageChunk => "usage_chunk",
            Deviation::Reasoning => "reasoning",
            Deviation::Comments => "comments",
            Deviation::Crlf => "crlf",
            Deviation::NoDone => "no_done",
            Deviation::NoIndex => "no_index",
            Deviation::ErrorEvent => "error_event",
            Deviation::FlatError => "flat_error",
        }
    }

    /// The deviation named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// The deviations one answer makes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Deviations(Vec<Deviation>);

impl Deviations {
    pub(crate) fn add(&mut self, deviation: Deviation) {
        if !self.has(deviation) {
            self.0.push(deviation);
        }
    }

    pub(crate) fn has(&self, deviation: Deviation) -> bool {
        self.0.contains(&deviation)
    }

    /// A chunk as this answer sends it: `finish_reason` is the chunk's own (`None`
    /// before the last choice chunk).
    pub(crate) fn chunk(&self, mut chunk: Value) -> Value {
        if self.has(Deviation::Bare)
            && let Some(fields) = chunk.as_object_mut()
        {
            for key in ["id", "object", "created", "model"] {
                fields.remove(key);
            }
        }
        if self.has(Deviation::EmptyFinish)
            && let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut)
        {
            for choice in choices {
                if choice.get("finish_reason").is_none_or(Value::is_null) {
                    choice["finish_reason"] = json!("");
                }
            }
        }
        if self.has(Deviation::EmptyUsage) && chunk.get("usage").is_none() {
            chunk["usage"] = json!({});
        }
        if self.has(Deviation::NoIndex)
            && let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut)
        {
            for choice in choices {
                let calls = choice
                    .get_mut("delta")
                    .and_then(|d| d.get_mut("tool_calls"))
                    .and_then(Value::as_array_mut);
                for call in calls.into_iter().flatten() {
                    if let Some(call) = call.as_object_mut() {
                        call.remove("index");
                    }
                }
            }
        }
        chunk
    }

    /// One server-sent event carrying `data`, with this answer's line endings.
    pub(crate) fn event(&self, data: &Value) -> String {
        self.lines(&format!("data: {data}\n\n"))
    }

    /// What goes between two events: nothing, or comments and a ping.
    pub(crate) fn filler(&self) -> String {
        if !self.has(Deviation::Comments) {
            return String::new();
        }
        self.lines(
            ": keep-alive\n\n: OPENROUTER PROCESSING\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n",
        )
    }

    /// Applies the line endings to raw event text.
    pub(crate) fn lines(&self, text: &str) -> String {
        if self.has(Deviation::Crlf) {
            text.replace('\n', "\r\n")
        } else {
            text.to_owned()
        }
    }
}

/// The `reasoning_content` deltas sent before the answer with [`Deviation::Reasoning`].
pub(crate) fn reasoning_deltas() -> Vec<Value> {
    ["Let me think.", " The user wants", " an answer."]
        .into_iter()
        .map(|piece| json!({"content": null, "reasoning_content": piece}))
        .collect()
}

/// The error event sent mid-stream with [`Deviation::ErrorEvent`].
pub(crate) fn error_event() -> Value {
    json!({"error": {
        "message": "mock-llm: the model is overloaded (injected mid-stream)",
        "type": "server_error",
        "code": "overloaded",
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for deviation in Deviation::ALL {
            assert_eq!(Deviation::from_name(deviation.name()), Some(deviation));
        }
        assert_eq!(Deviation::from_name("nope"), None);
    }

    #[test]
    fn chunks_deviate_as_asked() {
        let mut d = Deviations::default();
        for deviation in [
            Deviation::Bare,
            Deviation::EmptyFinish,
            Deviation::EmptyUsage,
            Deviation::NoIndex,
        ] {
            d.add(deviation);
        }
        let chunk = json!({"id":"x","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c"}]},"finish_reason":null}]});
        assert_eq!(
            d.chunk(chunk),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"c"}]},"finish_reason":""}],"usage":{}})
        );
    }

    #[test]
    fn crlf_and_comments() {
        let mut d = Deviations::default();
        assert_eq!(d.event(&json!(1)), "data: 1\n\n");
        assert_eq!(d.filler(), "");
        d.add(Deviation::Crlf);
        d.add(Deviation::Comments);
        assert_eq!(d.event(&json!(1)), "data: 1\r\n\r\n");
        assert!(d.filler().starts_with(": keep-alive\r\n\r\n"));
    }
}
