//! The mock's settings: one clap struct, every flag also a `MOCK_LLM_*` variable.
//!
//! The defaults answer instantly and never fail, which is what unit and integration
//! tests want; benchmarks set the delays, chaos runs set `fault_every`.

use clap::Parser;

/// How the mock LLM listens, how fast it talks and how often it fails.
// Derives `Parser` (and so `clap::Args`): the binary parses it directly, and a bigger
// CLI can `#[command(flatten)]` it. `long_about` is the user's text for `--help`, not
// the doc comment above, which is for developers.
#[derive(Parser, Clone, Debug, PartialEq, Eq)]
#[command(
    name = "mock-llm",
    version,
    about = "OpenAI-compatible mock LLM: deterministic streamed answers, tool calls and injected faults",
    long_about = "OpenAI-compatible mock LLM for tests, benchmarks and running without an API key.\n\n\
        Serves POST /v1/chat/completions (streamed or whole), GET /v1/models and GET /health \
        on --host:--port. Answers are deterministic: they quote the last user message and \
        count the turns. Speed comes from the delays below; faults from --fault-every, or \
        per request from [mock:...] directives in the last user message, such as \
        [mock:status=429], [mock:cut=3], [mock:hang], [mock:tool=NAME] or \
        [mock:deviate=bare] (see the README). Point a client at http://HOST:PORT/v1."
)]
pub struct MockSettings {
    /// Address to bind.
    #[arg(long, env = "MOCK_LLM_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to bind; 0 picks any free port (the bound one is printed).
    #[arg(long, env = "MOCK_LLM_PORT", default_value_t = 8090)]
    pub port: u16,

    /// Minimum number of tokens per answer: shorter answers are padded with the words
    /// w1, w2, ... so benchmarks control the answer length.
    #[arg(long, env = "MOCK_LLM_TOKENS", default_value_t = 20)]
    pub tokens: usize,

    /// Delay before the first content token, in milliseconds (time to first token).
    #[arg(long, env = "MOCK_LLM_FIRST_TOKEN_DELAY_MS", default_value_t = 0)]
    pub first_token_delay_ms: u64,

    /// Delay between two content tokens, in milliseconds.
    #[arg(long, env = "MOCK_LLM_TOKEN_DELAY_MS", default_value_t = 0)]
    pub token_delay_ms: u64,

    /// Model id listed by GET /v1/models and used when a request names none.
    #[arg(long, env = "MOCK_LLM_MODEL", default_value = "mock-model")]
    pub model: String,

    /// HTTP status of the periodic fault (500 when unset).
    #[arg(
        long,
        env = "MOCK_LLM_FAULT_STATUS",
        value_parser = clap::value_parser!(u16).range(100..=599)
    )]
    pub fault_status: Option<u16>,

    /// Every Nth chat request (counting from 1) fails with --fault-status; 0 = never.
    #[arg(long, env = "MOCK_LLM_FAULT_EVERY", default_value_t = 0)]
    pub fault_every: u64,
}

impl MockSettings {
    /// Status answered by the periodic fault.
    pub fn periodic_fault_status(&self) -> u16 {
        self.fault_status.unwrap_or(500)
    }

    /// Whether request number `n` (counting from 1) gets the periodic fault.
    pub fn is_periodic_fault(&self, n: u64) -> bool {
        self.fault_every > 0 && n > 0 && n % self.fault_every == 0
    }
}

impl Default for MockSettings {
    /// The same values as the command line's defaults.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8090,
            tokens: 20,
            first_token_delay_ms: 0,
            token_delay_ms: 0,
            model: "mock-model".to_owned(),
            fault_status: None,
            fault_every: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_command_line_defaults() {
        let parsed = MockSettings::try_parse_from(["mock-llm"]).expect("defaults parse");
        assert_eq!(parsed, MockSettings::default());
    }

    #[test]
    fn flags_are_parsed() {
        let parsed = MockSettings::try_parse_from([
            "mock-llm",
            "--port",
            "0",
            "--tokens",
            "5",
            "--token-delay-ms",
            "7",
            "--fault-status",
            "503",
            "--fault-every",
            "3",
        ])
        .expect("flags parse");
        assert_eq!(parsed.port, 0);
        assert_eq!(parsed.tokens, 5);
        assert_eq!(parsed.token_delay_ms, 7);
        assert_eq!(parsed.periodic_fault_status(), 503);
        assert!(!parsed.is_periodic_fault(2));
        assert!(parsed.is_periodic_fault(3));
        assert!(parsed.is_periodic_fault(6));
    }

    #[test]
    fn help_is_written_for_users() {
        use clap::CommandFactory;
        let help = MockSettings::command().render_long_help().to_string();
        assert!(
            help.contains("Point a client at http://HOST:PORT/v1"),
            "{help}"
        );
        assert!(!help.contains("Derives"), "{help}");
        assert!(!help.contains('`'), "no Markdown in the help: {help}");
    }

    #[test]
    fn fault_status_must_be_an_http_status() {
        assert!(MockSettings::try_parse_from(["mock-llm", "--fault-status", "42"]).is_err());
        assert!(MockSettings::try_parse_from(["mock-llm", "--fault-status", "600"]).is_err());
    }

    #[test]
    fn periodic_fault_is_off_by_default() {
        let settings = MockSettings::default();
        assert!(!settings.is_periodic_fault(1));
        assert_eq!(settings.periodic_fault_status(), 500);
    }
}
