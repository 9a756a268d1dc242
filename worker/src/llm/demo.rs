//! The built-in demo model: a deterministic answer, streamed word by word, that says
//! it is a demo and how to configure a real model.

use super::events::{Ending, EventStream, LlmEvent};
use super::wire::ChatMessage;
use futures_util::stream::{self, StreamExt};
use std::time::Duration;

/// Delay between the demo model's words: slow enough to see streaming.
const DEMO_WORD_DELAY: Duration = Duration::from_millis(30);

/// The demo model's full answer to a conversation (deterministic).
pub fn demo_answer(messages: &[ChatMessage]) -> String {
    let question = messages
        .iter()
        .rev()
        .find_map(|m| match m {
            ChatMessage::User { content } => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or_default();
    let turn = messages
        .iter()
        .filter(|m| matches!(m, ChatMessage::User { .. }))
        .count();
    format!(
        "[Demo model] You said: \"{question}\" (message {turn} of this chat). \
         This answer comes from the built-in demo model because no LLM is configured. \
         To use a real model, set OPENAI_API_KEY (and OPENAI_BASE_URL for NVIDIA NIM, \
         vLLM, Ollama or any OpenAI-compatible server, and LLM_MODEL) and restart."
    )
}

/// The demo answer as text events, then its ending.
pub(super) fn stream(messages: &[ChatMessage]) -> EventStream {
    let answer = demo_answer(messages);
    let words: Vec<String> = answer.split_inclusive(' ').map(str::to_owned).collect();
    let ending = Ending {
        finish_reason: Some("stop".into()),
        ..Ending::default()
    };
    stream::iter(words)
        .then(|word| async move {
            tokio::time::sleep(DEMO_WORD_DELAY).await;
            Ok(LlmEvent::Text(word))
        })
        .chain(stream::once(async move { Ok(LlmEvent::End(ending)) }))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn demo_streams_a_labelled_answer_word_by_word() {
        let messages = vec![
            ChatMessage::System {
                content: "s".into(),
            },
            ChatMessage::User {
                content: "hello there".into(),
            },
        ];
        let events: Vec<LlmEvent> = stream(&messages).map(|r| r.unwrap()).collect().await;
        assert!(events.len() > 10);
        assert!(matches!(events.last(), Some(LlmEvent::End(_))));
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                LlmEvent::Text(t) => Some(t.as_str()),
                LlmEvent::End(_) => None,
            })
            .collect();
        assert_eq!(text, demo_answer(&messages));
        assert!(text.starts_with("[Demo model] You said: \"hello there\""));
        assert!(text.contains("OPENAI_API_KEY"));
    }
}
