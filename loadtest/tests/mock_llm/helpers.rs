//! Spawning a mock per test and talking to it.

use std::collections::BTreeMap;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionResponseStream, CompletionUsage, CreateChatCompletionRequest, FinishReason, Role,
};
use futures_util::StreamExt;
use loadtest::mock_llm::{MockServer, MockSettings};
use serde_json::{Value, json};

/// Settings for a test: any free port, everything else default.
pub fn settings() -> MockSettings {
    MockSettings {
        port: 0,
        ..MockSettings::default()
    }
}

/// Installs rustls' ring provider: async-openai enables reqwest's rustls without a
/// provider, and reqwest panics building any client (even for plain http) without one.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A running mock plus clients for it.
pub struct TestMock {
    pub server: MockServer,
    pub http: reqwest::Client,
}

/// Starts a mock with `settings` (use [`settings`] as the base).
pub async fn spawn_mock(settings: MockSettings) -> TestMock {
    install_crypto();
    let server = MockServer::start(settings).await.expect("mock starts");
    TestMock {
        server,
        http: reqwest::Client::new(),
    }
}

impl TestMock {
    /// An async-openai client pointed at the mock.
    pub fn openai(&self) -> Client<OpenAIConfig> {
        let config = OpenAIConfig::new()
            .with_api_base(self.server.api_base())
            .with_api_key("x");
        Client::with_config(config)
    }

    /// `POST /v1/chat/completions` with a raw JSON body.
    pub async fn post_chat(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/chat/completions", self.server.api_base()))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET` a path of the mock as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.server.url()))
            .send()
            .await
            .expect("request sent");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON body")
    }

    /// The `/mock/stats` counters.
    pub async fn stats(&self) -> (u64, u64) {
        let stats = self.get_json("/mock/stats").await;
        (
            stats["requests"].as_u64().expect("requests"),
            stats["faults"].as_u64().expect("faults"),
        )
    }
}

/// A user message.
pub fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// An assistant message.
pub fn assistant(text: &str) -> Value {
    json!({"role": "assistant", "content": text})
}

/// A function tool definition.
pub fn tool(name: &str) -> Value {
    json!({"type": "function", "function": {
        "name": name,
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    }})
}

/// An async-openai request from JSON, which keeps test bodies short.
pub fn request(body: Value) -> CreateChatCompletionRequest {
    serde_json::from_value(body).expect("valid async-openai request")
}

/// A tool call assembled from streamed fragments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamedCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Everything an async-openai stream delivered.
#[derive(Debug, Default)]
pub struct Collected {
    pub role: Option<Role>,
    pub content: String,
    /// Chunks with non-empty `content`.
    pub content_chunks: usize,
    pub finish: Option<FinishReason>,
    pub tool_calls: BTreeMap<u32, StreamedCall>,
    pub usage: Option<CompletionUsage>,
    /// The first error; the stream is not read past it.
    pub error: Option<OpenAIError>,
}

/// A streamed async-openai request from JSON. With async-openai's `byot` feature on
/// (the worker uses it, and features are shared in the workspace) `create_stream`
/// sends the request as it is, so the body says `"stream": true` itself.
pub fn stream_request(mut body: Value) -> CreateChatCompletionRequest {
    body["stream"] = json!(true);
    request(body)
}

/// Opens a streaming chat completion from a JSON body and reads it to its end.
pub async fn stream_chat(client: &Client<OpenAIConfig>, body: Value) -> Collected {
    let stream = client
        .chat()
        .create_stream(stream_request(body))
        .await
        .expect("stream opens");
    collect(stream).await
}

/// Reads a stream to its end (or first error).
pub async fn collect(mut stream: ChatCompletionResponseStream) -> Collected {
    let mut out = Collected::default();
    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(error) => {
                out.error = Some(error);
                break;
            }
        };
        if chunk.usage.is_some() {
            out.usage = chunk.usage;
        }
        for choice in chunk.choices {
            let delta = choice.delta;
            if delta.role.is_some() {
                out.role = delta.role;
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.content.push_str(&text);
                out.content_chunks += 1;
            }
            for call in delta.tool_calls.unwrap_or_default() {
                let entry = out.tool_calls.entry(call.index).or_default();
                if let Some(id) = call.id {
                    entry.id = id;
                }
                if let Some(function) = call.function {
                    if let Some(name) = function.name {
                        entry.name.push_str(&name);
                    }
                    if let Some(arguments) = function.arguments {
                        entry.arguments.push_str(&arguments);
                    }
                }
            }
            if choice.finish_reason.is_some() {
                out.finish = choice.finish_reason;
            }
        }
    }
    out
}

/// The `data:` payloads of a raw SSE body.
pub fn sse_data(body: &str) -> Vec<&str> {
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .expect("every event is a data line")
        })
        .collect()
}
