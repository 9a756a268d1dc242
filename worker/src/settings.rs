//! The worker's settings: which LLM, how to prompt it, how much to do at once.
//! Read once at start-up (clap with `env`); a bad value stops the process with a
//! one-line error naming the variable.

use clap::Args;
use shared::agent::{Agent, AgentError, AgentSettings};
use shared::config::Secret;
use std::sync::Arc;
use std::time::Duration;

/// Which model answers and how.
#[derive(Debug, Clone, Args)]
pub struct LlmSettings {
    /// API key of the OpenAI-compatible provider. With neither a key nor a base URL,
    /// the built-in demo model answers.
    #[arg(long, env = "OPENAI_API_KEY")]
    pub openai_api_key: Option<Secret>,

    /// Base URL of any OpenAI-compatible API (OpenAI, NVIDIA NIM, vLLM, Ollama, llama.cpp).
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    /// Model name sent to the provider.
    #[arg(long, env = "LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,

    /// The agent's name, shown by `/health`.
    #[arg(long, env = "AGENT_NAME", default_value = "Assistant")]
    pub agent_name: String,

    /// The system prompt put before every conversation.
    #[arg(
        long,
        env = "SYSTEM_PROMPT",
        default_value = "You are a helpful assistant. Answer concisely."
    )]
    pub system_prompt: String,

    /// Upper bound on the answer's length in tokens (provider default when unset).
    #[arg(long, env = "LLM_MAX_TOKENS")]
    pub llm_max_tokens: Option<u32>,

    /// Sampling temperature (provider default when unset).
    #[arg(long, env = "LLM_TEMPERATURE")]
    pub llm_temperature: Option<f32>,

    /// Most recent history messages put in the prompt.
    #[arg(long, env = "LLM_CONTEXT_MESSAGES", default_value_t = 40,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub llm_context_messages: u32,

    /// Deadline for the first token of an answer, in seconds.
    #[arg(long, env = "LLM_FIRST_TOKEN_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub llm_first_token_timeout_secs: u64,

    /// Times an answer is started over after its stream broke or its first token timed
    /// out (the client sees `status: restarted`); then the message fails with an error.
    /// Failed requests before streaming (429, 5xx, refused connections) are retried
    /// inside the client first, with backoff, honouring `Retry-After`.
    #[arg(long, env = "LLM_STREAM_RETRIES", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub llm_stream_retries: u32,

    /// Deadline for a whole answer, in seconds.
    #[arg(long, env = "LLM_TOTAL_TIMEOUT_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub llm_total_timeout_secs: u64,

    #[command(flatten)]
    pub agent_source: AgentSettings,

    /// The agent file's content once loaded ([`LlmSettings::load_agent`]); its name,
    /// prompt and model are already applied to the fields above.
    #[arg(skip)]
    pub agent: Option<Arc<Agent>>,

    #[command(flatten)]
    pub tools: crate::tools::ToolSettings,
}

impl LlmSettings {
    /// Reads `AGENT_FILE` (when set) and applies it.
    pub fn load_agent(&mut self) -> Result<(), AgentError> {
        if let Some(agent) = self.agent_source.load()? {
            self.with_agent(agent);
        }
        Ok(())
    }

    /// Uses `agent`: its name, system prompt and model settings replace `AGENT_NAME`,
    /// `SYSTEM_PROMPT` and the `LLM_*` ones it sets.
    pub fn with_agent(&mut self, agent: Agent) {
        self.agent_name = agent.name.clone();
        if let Some(prompt) = &agent.system_prompt {
            self.system_prompt = prompt.clone();
        }
        if let Some(name) = &agent.model.name {
            self.llm_model = name.clone();
        }
        if let Some(t) = agent.model.temperature {
            self.llm_temperature = Some(t);
        }
        if let Some(m) = agent.model.max_tokens {
            self.llm_max_tokens = Some(m);
        }
        self.agent = Some(Arc::new(agent));
    }

    /// Model turns with tool calls allowed per answer.
    pub fn max_tool_rounds(&self) -> u32 {
        self.agent
            .as_ref()
            .map_or(shared::agent::DEFAULT_MAX_TOOL_ROUNDS, |a| {
                a.max_tool_rounds
            })
    }

    /// True when no provider is configured and the demo model answers.
    pub fn is_demo(&self) -> bool {
        self.openai_api_key.is_none() && self.openai_base_url.is_none()
    }

    /// The provider's base URL as used (never a key).
    pub fn base_url(&self) -> &str {
        match &self.openai_base_url {
            Some(url) => url,
            None if self.is_demo() => "builtin:demo",
            None => "https://api.openai.com/v1",
        }
    }

    /// The base URL as it may be shown (`/status`, start-up logs): without the user
    /// name and password of its userinfo, with any query replaced by `redacted` and no
    /// fragment, since a provider's key is sometimes put there. A value that does not
    /// parse as a URL is not shown at all.
    pub fn base_url_for_display(&self) -> String {
        display_url(self.base_url())
    }

    pub fn first_token_timeout(&self) -> Duration {
        Duration::from_secs(self.llm_first_token_timeout_secs)
    }

    pub fn total_timeout(&self) -> Duration {
        Duration::from_secs(self.llm_total_timeout_secs)
    }
}

/// How the consumer loop runs.
#[derive(Debug, Clone, Args)]
pub struct ConsumerSettings {
    /// Messages answered at once by one worker process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub worker_concurrency: u32,

    /// At most one chunk batch per this many milliseconds: tokens arriving sooner
    /// after the last batch wait for the window's end and go out as one chunk event
    /// (fewer Redis round trips); a token after a quiet window goes out at once
    /// (0 sends every token on its own).
    #[arg(long, env = "CHUNK_COALESCE_MS", default_value_t = 15)]
    pub chunk_coalesce_ms: u64,

    /// Seconds a stopping worker waits for in-flight answers before leaving them
    /// to be reclaimed.
    #[arg(long, env = "WORKER_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub worker_shutdown_grace_secs: u64,

    /// A message whose worker stopped refreshing its claim for this long (it died) is
    /// taken over by another worker and started over. Live workers refresh every third
    /// of it, so a short lease only speeds up recovery.
    #[arg(long, env = "WORKER_CLAIM_LEASE_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub worker_claim_lease_ms: u64,

    /// Starts of one message before it is given up on (dead-lettered, client gets an
    /// `error`): a message that keeps killing workers must not kill them all.
    #[arg(long, env = "WORKER_MAX_TRIES", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub worker_max_tries: u64,
}

impl ConsumerSettings {
    pub fn coalesce(&self) -> Duration {
        Duration::from_millis(self.chunk_coalesce_ms)
    }

    pub fn claim_lease(&self) -> Duration {
        Duration::from_millis(self.worker_claim_lease_ms)
    }
}

/// `raw` without credentials (userinfo, query, fragment); see
/// [`LlmSettings::base_url_for_display`].
pub fn display_url(raw: &str) -> String {
    if raw == "builtin:demo" {
        return raw.to_owned();
    }
    let Ok(mut url) = url::Url::parse(raw) else {
        return "[OPENAI_BASE_URL is not a valid URL]".to_owned();
    };
    if url.cannot_be_a_base() {
        return "[OPENAI_BASE_URL is not a valid URL]".to_owned();
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.query().is_some() {
        url.set_query(Some("redacted"));
    }
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::display_url;

    #[test]
    fn credentials_in_the_base_url_are_never_shown() {
        assert_eq!(
            display_url("https://user:sk-secret@llm.example.com:8443/v1?api-key=sk-q#frag"),
            "https://llm.example.com:8443/v1?redacted"
        );
        assert_eq!(
            display_url("http://127.0.0.1:8090/v1"),
            "http://127.0.0.1:8090/v1"
        );
        assert_eq!(display_url("builtin:demo"), "builtin:demo");
        for bad in ["not a url sk-secret", "mailto:sk-secret@x"] {
            assert!(!display_url(bad).contains("sk-secret"), "{bad}");
        }
    }
}
