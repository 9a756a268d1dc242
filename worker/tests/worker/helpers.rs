//! A mock LLM per test, the worker's model client pointed at it over HTTP, and a
//! whole consumer on a private `redis-server`.

use clap::Parser;
use futures_util::StreamExt;
use loadtest::mock_llm::{MockServer, MockSettings};
use serde_json::{Value, json};
use worker::llm::{ChatMessage, Ending, Llm, LlmError, LlmEvent, Tool};
use worker::settings::{ConsumerSettings, LlmSettings};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    llm: LlmSettings,
    #[command(flatten)]
    consumer: ConsumerSettings,
}

/// Worker settings for a model at `base_url`, with `flags` (`--worker-concurrency`,
/// ...) on top of the defaults.
pub fn settings(base_url: &str, flags: &[&str]) -> (LlmSettings, ConsumerSettings) {
    let args = [
        "worker",
        "--openai-base-url",
        base_url,
        "--openai-api-key",
        "test",
    ];
    let cli = Cli::try_parse_from(args.iter().chain(flags)).expect("settings parse");
    (cli.llm, cli.consumer)
}

/// LLM settings for `base_url`, everything else default.
pub fn llm_settings(base_url: &str) -> LlmSettings {
    settings(base_url, &[]).0
}

/// A mock on a free port and the worker's client for it.
pub struct TestLlm {
    pub mock: MockServer,
    pub llm: Llm,
}

pub async fn start() -> TestLlm {
    start_with(MockSettings::default()).await
}

/// A mock with `settings` (its port is chosen here).
pub async fn start_with(settings: MockSettings) -> TestLlm {
    worker::llm::install_crypto_provider();
    let mock = MockServer::start(MockSettings {
        port: 0,
        ..settings
    })
    .await
    .expect("mock-llm starts");
    let llm = Llm::from_settings(&llm_settings(&mock.api_base()));
    TestLlm { mock, llm }
}

/// What one answer delivered.
#[derive(Debug)]
pub struct Answer {
    pub text: String,
    /// Number of `Text` events.
    pub pieces: usize,
    pub ending: Option<Ending>,
    pub error: Option<LlmError>,
}

/// The conversation the tests send: a system prompt and one user message.
pub fn conversation(text: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::System {
            content: "be brief".into(),
        },
        ChatMessage::User {
            content: text.into(),
        },
    ]
}

/// What the mock answers to [`conversation`]`(text)`.
pub fn expected(text: &str) -> String {
    let messages = [
        json!({"role": "system", "content": "be brief"}),
        json!({"role": "user", "content": text}),
    ];
    loadtest::mock_llm::reply_text(&messages, MockSettings::default().tokens)
}

/// A function tool taking a `query` string.
pub fn tool(name: &str) -> Tool {
    Tool::function(
        name,
        None,
        json!({"type": "object", "properties": {"query": {"type": "string"}}}),
    )
}

impl TestLlm {
    /// Asks `text` (with `tools`) and reads the answer to its end or first error.
    pub async fn ask(&self, text: &str, tools: Vec<Tool>) -> Answer {
        let mut answer = Answer {
            text: String::new(),
            pieces: 0,
            ending: None,
            error: None,
        };
        let mut events = match self.llm.stream_chat(conversation(text), tools, None).await {
            Ok(events) => events,
            Err(error) => {
                answer.error = Some(error);
                return answer;
            }
        };
        while let Some(event) = events.next().await {
            match event {
                Ok(LlmEvent::Text(piece)) => {
                    assert!(!piece.is_empty(), "text events are never empty");
                    assert!(answer.ending.is_none(), "no text after the end");
                    answer.text.push_str(&piece);
                    answer.pieces += 1;
                }
                Ok(LlmEvent::End(ending)) => {
                    assert!(answer.ending.is_none(), "one end");
                    answer.ending = Some(ending);
                }
                Err(error) => {
                    answer.error = Some(error);
                    break;
                }
            }
        }
        answer
    }

    /// The last request the mock received.
    pub async fn last_request(&self) -> Value {
        let log: Vec<Value> = reqwest::get(format!("{}/mock/requests", self.mock.url()))
            .await
            .expect("mock answers")
            .json()
            .await
            .expect("JSON log");
        log.last().cloned().expect("a request was made")
    }
}
