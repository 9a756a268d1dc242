//! The model behind the answers: any OpenAI-compatible API through `async-openai`,
//! or the built-in demo model when none is configured (so the zero-setup run works
//! with no key and says how to configure a real one).

use crate::prompt::PromptMessage;
use crate::settings::LlmSettings;
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest,
};
use futures_util::stream::{BoxStream, StreamExt};
use std::time::Duration;
use thiserror::Error;

/// Why the model gave no (complete) answer.
#[derive(Debug, Error)]
pub enum LlmError {
    #[error("the language model request failed: {0}")]
    Provider(#[from] async_openai::error::OpenAIError),
}

/// A stream of answer text pieces.
pub type TextStream = BoxStream<'static, Result<String, LlmError>>;

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

    /// Starts streaming an answer to `prompt`.
    pub async fn stream(&self, prompt: &[PromptMessage]) -> Result<TextStream, LlmError> {
        match self {
            Llm::Demo => Ok(demo_stream(prompt)),
            Llm::OpenAi(model) => {
                let request = CreateChatCompletionRequest {
                    model: model.model.clone(),
                    messages: prompt.iter().map(to_openai).collect(),
                    max_completion_tokens: model.max_tokens,
                    temperature: model.temperature,
                    ..Default::default()
                };
                let stream = model.client.chat().create_stream(request).await?;
                Ok(stream
                    .filter_map(|item| async move {
                        match item {
                            Ok(response) => {
                                let text: String = response
                                    .choices
                                    .into_iter()
                                    .filter_map(|c| c.delta.content)
                                    .collect();
                                (!text.is_empty()).then_some(Ok(text))
                            }
                            Err(e) => Some(Err(LlmError::from(e))),
                        }
                    })
                    .boxed())
            }
        }
    }
}

/// reqwest (under async-openai) needs a process-wide rustls provider; ring keeps the
/// build free of C toolchains. Installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn to_openai(message: &PromptMessage) -> ChatCompletionRequestMessage {
    match message {
        PromptMessage::System(text) => {
            ChatCompletionRequestSystemMessage::from(text.as_str()).into()
        }
        PromptMessage::User(text) => ChatCompletionRequestUserMessage::from(text.as_str()).into(),
        PromptMessage::Assistant(text) => {
            ChatCompletionRequestAssistantMessage::from(text.as_str()).into()
        }
    }
}

/// Delay between the demo model's words: slow enough to see streaming.
const DEMO_WORD_DELAY: Duration = Duration::from_millis(30);

/// The demo model's full answer to a prompt (deterministic).
pub fn demo_answer(prompt: &[PromptMessage]) -> String {
    let question = prompt
        .iter()
        .rev()
        .find_map(|m| match m {
            PromptMessage::User(text) => Some(text.as_str()),
            _ => None,
        })
        .unwrap_or_default();
    let turn = prompt
        .iter()
        .filter(|m| matches!(m, PromptMessage::User(_)))
        .count();
    format!(
        "[Demo model] You said: \"{question}\" (message {turn} of this chat). \
         This answer comes from the built-in demo model because no LLM is configured. \
         To use a real model, set OPENAI_API_KEY (and OPENAI_BASE_URL for NVIDIA NIM, \
         vLLM, Ollama or any OpenAI-compatible server, and LLM_MODEL) and restart."
    )
}

fn demo_stream(prompt: &[PromptMessage]) -> TextStream {
    let answer = demo_answer(prompt);
    let words: Vec<String> = answer
        .split_inclusive(' ')
        .map(str::to_owned)
        .collect::<Vec<_>>();
    futures_util::stream::iter(words)
        .then(|word| async move {
            tokio::time::sleep(DEMO_WORD_DELAY).await;
            Ok(word)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn demo_streams_a_labelled_answer_word_by_word() {
        let prompt = vec![
            PromptMessage::System("s".into()),
            PromptMessage::User("hello there".into()),
        ];
        let pieces: Vec<String> = demo_stream(&prompt).map(|r| r.unwrap()).collect().await;
        assert!(pieces.len() > 10);
        let text = pieces.concat();
        assert_eq!(text, demo_answer(&prompt));
        assert!(text.starts_with("[Demo model] You said: \"hello there\""));
        assert!(text.contains("OPENAI_API_KEY"));
    }
}
