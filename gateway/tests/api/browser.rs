//! The `/demo` page in headless Chromium against an embedded gateway: type, watch the
//! answer stream in, drop the socket mid-answer and see it resume, reload and see the
//! history. Screenshots are kept in `artifacts/browser/`.

use crate::helpers::{Mode, TestEnv, TestGateway};
use serde_json::Value;
use std::path::PathBuf;

/// `artifacts/browser/` (created), where the page tests leave their screenshots.
fn screenshots() -> PathBuf {
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts/browser");
    std::fs::create_dir_all(&shots).expect("artifacts dir");
    shots
}

/// An embedded gateway whose model streams `tokens` tokens 60 ms apart, slow enough for
/// a page to be seen (and reloaded, or cut off) mid-answer.
async fn slow_stream(tokens: usize) -> TestEnv {
    TestEnv::builder(Mode::Embedded)
        .mock(|m| {
            m.token_delay_ms = 60;
            m.tokens = tokens;
        })
        .start()
        .await
}

/// Runs `tests/browser/<script>` in Chromium on `env`'s gateway (its URL first, then
/// `args`) and returns its RESULT, which must be ok.
async fn run_page(script: &str, env: &TestEnv, args: &[&str]) -> Value {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        PathBuf::from(&chromium).exists(),
        "Chromium is needed at {chromium} (apt-get install chromium; the README's test command does it)"
    );
    let url = env.gw().url("");
    let result = TestGateway::run_node("browser", script, &[&[url.as_str()], args].concat()).await;
    assert_eq!(result["ok"], true, "{result}");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_streams_resumes_and_reloads_in_chromium() {
    // Slow enough for the page to be seen streaming, and for the drop to land mid-answer.
    let env = slow_stream(30).await;
    let shots = screenshots();
    let result = run_page("demo-test.mjs", &env, &[&shots.to_string_lossy()]).await;
    assert!(
        result["first_answer"]["intermediate_texts"].as_u64() >= Some(2),
        "{result}"
    );
    assert!(
        result["sockets_opened"].as_u64() >= Some(2),
        "the page reconnected: {result}"
    );
    assert_eq!(result["history_messages"], 4, "{result}");
    for shot in ["demo-chat.png", "demo-resumed.png"] {
        let size = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 1_000, "{shot} was written");
    }

    // The session the page used holds both exchanges.
    let id = result["session_id"].as_str().expect("session id");
    let (_, history) = env.gw().get(&format!("/api/session/{id}/messages")).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(4));
}

/// Issue 10, item 6: with authentication on, the page takes its token from the URL
/// fragment (or a prompt), drops it from the address and never puts it in a URL it
/// requests; it runs under its Content-Security-Policy without a violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_takes_its_token_from_the_fragment_or_a_prompt() {
    let env = crate::security_support::auth_env(|_| {}).await;
    let token = crate::security_support::token("browser-user");
    let result = run_page("demo-token-test.mjs", &env, &[&token]).await;
    for case in ["fragment", "query", "prompt"] {
        let address = result[case]["address"].as_str().expect("address");
        assert!(!address.contains("token"), "{case}: {address}");
    }
    assert_eq!(result["fragment"]["prompts"], 0, "{result}");
    assert!(result["prompt"]["prompts"].as_u64() >= Some(1), "{result}");
    for socket in result["fragment"]["sockets"].as_array().unwrap() {
        assert!(!socket.as_str().unwrap().contains(&token), "{result}");
    }
}

/// Issue 11: the page shows a function call the moment `function_called` arrives, marks
/// it done when the answer completes, and shows it again from history after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_shows_function_calls_live_and_from_history() {
    let dir = crate::tools::temp_dir("demo-kb");
    std::fs::write(dir.join("hours.md"), "The clinic opens at 8 on weekdays.").unwrap();
    let yaml = format!(
        "name: Demo Agent\ntools:\n  - {{name: clinic_kb, type: knowledge_base, description: Clinic facts., documents: '{}'}}\n",
        dir.display()
    );
    let agent = shared::agent::Agent::parse(&yaml, false, &dir).unwrap();
    let env = TestEnv::builder(Mode::Embedded)
        .mock(|m| m.token_delay_ms = 20)
        .settings(move |s| s.llm.with_agent(agent.clone()))
        .start()
        .await;
    // The first-token delay holds each model turn back, so the tool line is on screen
    // well before the answer's first chunk.
    let result = run_page(
        "demo-tools-test.mjs",
        &env,
        &[
            &screenshots().to_string_lossy(),
            "When do you open? [mock:tool=clinic_kb][mock:first=300]",
            "clinic_kb",
        ],
    )
    .await;
    let id = result["session_id"].as_str().expect("session id");
    let (_, history) = env.gw().get(&format!("/api/session/{id}/messages")).await;
    assert_eq!(
        history["messages"][1]["function_calls"][0]["call_id"],
        result["call_id"]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 14: the page rebuilds an answer in progress after a reload (from its first
/// word), keeps a stopped answer stopped, renders Markdown without letting HTML in,
/// names the model, asks before "New chat" and offers the previous chats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_rebuilds_after_a_reload_and_keeps_previous_chats() {
    let env = slow_stream(40).await;
    let result = run_page(
        "demo-reload-test.mjs",
        &env,
        &[&screenshots().to_string_lossy()],
    )
    .await;
    assert_eq!(
        result["streamed_after_reload"], true,
        "the reload landed mid-answer: {result}"
    );
}
