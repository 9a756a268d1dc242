//! The model behind the answers: any OpenAI-compatible API through `async-openai`,
//! or the built-in demo model when none is configured (so the zero-setup run works
//! with no key and says how to configure a real one).
//!
//! async-openai sends the request and reads the event stream (with its retries of
//! 429 and 5xx answers), but into our own types ([`wire`]): servers that call
//! themselves OpenAI-compatible differ from the specification in small ways that
//! its strict types refuse. [`events`] turns the chunks into what an answer needs.
//!
//! # Layout
//!
//! - [`wire`]: the request we send and the tolerant chunk we read.
//! - [`events`]: chunks → text pieces and one ending (finish reason, tool calls,
//!   usage); every failure → [`LlmError`] with the provider's message.
//! - `demo`: the built-in model.

mod demo;
pub mod events;
pub mod wire;

pub use demo::demo_answer;
pub use events::{Ending, EventStream, LlmError, LlmEvent, ToolCallAssembler};
pub use wire::{ChatMessage, Tool, ToolCall};

use crate::prompt::PromptMessage;
use crate::settings::LlmSettings;
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use futures_util::StreamExt;
use wire::{ChatRequest, Chunk, RawChunk};

/// An OpenAI-compatible endpoint and how to ask it.
#[derive(Clone)]
pub struct OpenAiModel {
    client: Client<OpenAIConfig>,
    model: String,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
}

/// The configured model.
#[derive(Clone)]
pub enum Llm {
    OpenAi(Box<OpenAiModel>),
    Demo,
}

impl Llm {
    pub fn from_settings(settings: &LlmSettings) -> Self {
        if settings.is_demo() {
            return Llm::Demo;
        }
        install_crypto_provider();
        let mut config = OpenAIConfig::new().with_api_base(settings.base_url());
        if let Some(key) = &settings.openai_api_key {
            config = config.with_api_key(key.expose());
        }
        Llm::OpenAi(Box::new(OpenAiModel {
            client: Client::with_config(config),
            model: settings.llm_model.clone(),
            max_tokens: settings.llm_max_tokens,
            temperature: settings.llm_temperature,
        }))
    }

    /// `"demo"` or `"openai-compatible"`, for `/status`.
    pub fn kind(&self) -> &'static str {
        match self {
            Llm::OpenAi(_) => "openai-compatible",
            Llm::Demo => "demo",
        }
    }

    /// Starts streaming an answer to `prompt`, offering no tools.
    pub async fn stream(&self, prompt: &[PromptMessage]) -> Result<EventStream, LlmError> {
        self.stream_chat(crate::prompt::to_chat(prompt), Vec::new(), None)
            .await
    }

    /// Starts streaming an answer to `messages`, offering `tools` (none: a plain
    /// answer) with `tool_choice` (the provider's default when `None`). The demo
    /// model never calls tools.
    pub async fn stream_chat(
        &self,
        messages: Vec<ChatMessage>,
        tools: Vec<Tool>,
        tool_choice: Option<serde_json::Value>,
    ) -> Result<EventStream, LlmError> {
        match self {
            Llm::Demo => Ok(demo::stream(&messages)),
            Llm::OpenAi(model) => {
                let request = ChatRequest {
                    model: model.model.clone(),
                    messages,
                    stream: true,
                    max_completion_tokens: model.max_tokens,
                    temperature: model.temperature,
                    tools,
                    tool_choice,
                    stream_options: Some(wire::StreamOptions {
                        include_usage: true,
                    }),
                };
                let raw = model
                    .client
                    .chat()
                    .create_stream_byot::<_, RawChunk>(request)
                    .await?;
                // A well-formed event that is no chunk fails as async-openai's own
                // reading would have: a deserialisation error carrying the event.
                let chunks = raw.map(|event| {
                    event.and_then(|raw| {
                        Chunk::read(raw.get()).map_err(|error| {
                            async_openai::error::OpenAIError::JSONDeserialize(
                                error,
                                raw.get().to_owned(),
                            )
                        })
                    })
                });
                Ok(events::events(chunks))
            }
        }
    }
}

/// reqwest (under async-openai) needs a process-wide rustls provider; ring keeps the
/// build free of C toolchains. Installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
