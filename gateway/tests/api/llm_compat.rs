//! Servers that are "OpenAI-compatible" but not exact, end to end: a client's
//! message through gateway, inbox and worker to a deviating `mock-llm` and to a
//! third-party mock server from PyPI (`llmock`), and back.

use crate::both_backends;
use crate::helpers::{Mode, TestEnv, chunks, full_response};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

both_backends!(
    a_deviating_stream_is_answered_in_full,
    provider_errors_reach_the_client_as_llm_error,
);

/// Every deviation a text answer can have, at once.
const ALL_TEXT_DEVIATIONS: &str = "[mock:deviate=bare deviate=empty_finish deviate=empty_usage \
     deviate=usage_chunk deviate=reasoning deviate=comments deviate=crlf deviate=no_done]";

async fn a_deviating_stream_is_answered_in_full(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let (_, mut socket) = env.gw().open_session().await;
    let text = format!("hello {ALL_TEXT_DEVIATIONS}");
    socket.send_message(&text).await;
    let events = socket.until_ready().await;
    let expected = env.expected_reply(&[("user", &text)]);
    assert_eq!(full_response(&events), expected, "{events:?}");
    assert_eq!(chunks(&events), expected);
    assert!(!events.iter().any(|e| e["type"] == "error"));
}

async fn provider_errors_reach_the_client_as_llm_error(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| s.llm.llm_stream_retries = 1)
        .start()
        .await;
    let (_, mut socket) = env.gw().open_session().await;
    for directive in [
        "[mock:deviate=error_event]",
        "[mock:status=400 deviate=flat_error]",
        "[mock:status=404]",
    ] {
        socket.send_message(&format!("fail {directive}")).await;
        let events = socket.until_ready().await;
        let errors: Vec<&Value> = events.iter().filter(|e| e["type"] == "error").collect();
        assert_eq!(errors.len(), 1, "{directive}: {events:?}");
        assert_eq!(errors[0]["code"], "llm_error", "{directive}");
        assert!(
            !events.iter().any(|e| e["type"] == "complete"),
            "{directive}"
        );
    }
}

/// `llmock` (PyPI), started on a free port; killed when dropped.
struct Llmock {
    child: Child,
    port: u16,
}

impl Llmock {
    /// The `llmock` program: `LLMOCK_BIN`, else `llmock` on `PATH`. Missing, the test
    /// fails (it is never skipped): `scripts/test.sh` installs it.
    fn program() -> PathBuf {
        if let Some(path) = std::env::var_os("LLMOCK_BIN") {
            return PathBuf::from(path);
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("llmock"))
            .find(|path| path.is_file())
            .expect(
                "llmock not found (set LLMOCK_BIN or put it on PATH): `bash scripts/test.sh` \
                 installs it, or `pip install llmock==0.2.2`",
            )
    }

    async fn start(extra: &[&str]) -> Self {
        worker::llm::install_crypto_provider();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("address")
            .port();
        let child = Command::new(Self::program())
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--log-level", "warning", "--response-style", "echo"])
            .args(extra)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("llmock starts");
        let server = Self { child, port };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let health = format!("http://127.0.0.1:{}/health", self.port);
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            if let Ok(response) = http.get(&health).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("llmock did not answer {health} within 30 s");
    }

    fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for Llmock {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_server_answers_through_the_whole_path() {
    let llmock = Llmock::start(&[]).await;
    let base = llmock.api_base();
    let env = TestEnv::redis()
        .settings(move |s| {
            s.llm.openai_base_url = Some(base.clone());
            s.llm.system_prompt = "Be brief.".into();
        })
        .start()
        .await;
    let (id, mut socket) = env.gw().open_session().await;
    socket.send_message("ping pong").await;
    let events = socket.until_ready().await;
    let answer = full_response(&events);
    // llmock's echo style quotes the conversation it was sent.
    assert_eq!(answer, "Hello! You said: Be brief. ping pong", "{events:?}");
    assert_eq!(chunks(&events), answer);
    assert!(
        events.iter().filter(|e| e["type"] == "chunk").count() > 1,
        "streamed"
    );

    // A second turn: the history goes to the server too.
    socket.send_message("again").await;
    let answer = full_response(&socket.until_ready().await);
    assert!(
        answer.starts_with("Hello! You said: Be brief. ping pong"),
        "{answer}"
    );
    assert!(answer.ends_with("again"), "{answer}");
    assert_eq!(env.gw().message_count(&id).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_servers_error_is_an_llm_error() {
    let llmock = Llmock::start(&["--error-rate", "400=1.0"]).await;
    let base = llmock.api_base();
    let env = TestEnv::redis()
        .settings(move |s| s.llm.openai_base_url = Some(base.clone()))
        .start()
        .await;
    let (_, mut socket) = env.gw().open_session().await;
    socket.send_message("hello").await;
    let events = socket.until_ready().await;
    let errors: Vec<&Value> = events.iter().filter(|e| e["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0]["code"], "llm_error");
}
