//! The agent file and its tools seen from outside: `/health` and `/status`, a bad
//! file stopping the binary, and (with the worker's tool loop) tool calls end to end.

use crate::helpers::{Mode, TestEnv};
use shared::agent::Agent;
use std::path::PathBuf;

/// A fresh folder for a test's agent file and documents.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn health_and_status_show_the_agent_and_its_tools_without_secrets() {
    let dir = temp_dir("agent-status");
    std::fs::create_dir_all(dir.join("kb")).unwrap();
    std::fs::write(dir.join("kb/hours.md"), "Open 8 to 18.").unwrap();
    let yaml = "name: Info Agent\nmax_tool_rounds: 3\ntools:\n\
        - {name: kb, type: knowledge_base, description: Hours., documents: kb}\n\
        - {name: book, type: webhook, description: Books., url: 'http://127.0.0.1:9/hook?token=s3cret', timeout_secs: 7}\n";
    let agent = Agent::parse(yaml, false, &dir).unwrap();
    let env = TestEnv::builder(Mode::Embedded)
        .settings(move |s| s.llm.with_agent(agent.clone()))
        .start()
        .await;
    let (status, health) = env.gw().get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["agent"], "Info Agent");
    let (_, status) = env.gw().get("/status").await;
    let agent = &status["agent"];
    assert_eq!(agent["name"], "Info Agent");
    assert_eq!(agent["max_tool_rounds"], 3);
    assert_eq!(agent["tools"][0]["name"], "kb");
    assert_eq!(agent["tools"][0]["type"], "knowledge_base");
    assert_eq!(agent["tools"][1]["type"], "webhook");
    assert_eq!(agent["tools"][1]["host"], "127.0.0.1");
    assert_eq!(agent["tools"][1]["timeout_secs"], 7);
    assert!(!status.to_string().contains("s3cret"), "{status}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_agent_file_stops_the_gateway_with_one_line_naming_the_field() {
    let dir = temp_dir("agent-bad");
    let file = dir.join("agent.yaml");
    std::fs::write(
        &file,
        "name: A\ntools:\n  - {name: t, type: webhook, url: 'http://h', timeout_secs: 0}\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("AGENT_FILE", &file)
        .env("CHAT_SERVICE_HOST", "127.0.0.1")
        .env("CHAT_SERVICE_PORT", "0")
        .env_remove("REDIS_URL")
        .output()
        .expect("gateway runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("tools[0].timeout_secs"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------------
// Tool calls end to end: gateway, worker, mock-llm, a tool server, all over loopback.

use crate::both_backends;
use crate::helpers::{TestGateway, full_response};
use loadtest::tool_server::ToolServer;
use serde_json::{Value, json};
use worker::tools::ToolSettings;

both_backends!(
    two_parallel_calls_then_an_answer_from_both_results,
    failed_calls_become_errors_the_model_answers_from,
    invalid_arguments_go_back_to_the_model,
    the_round_limit_forces_a_final_answer_without_tools,
    private_tool_urls_are_refused,
    the_knowledge_base_answers_from_a_folder_and_sees_its_changes,
);

/// An env whose agent has `tools` (YAML list items), tools allowed on loopback.
async fn env_with_tools(mode: Mode, tools: &str, extra: &str) -> TestEnv {
    env_with(mode, tools, extra, "127.0.0.1").await
}

async fn env_with(mode: Mode, tools: &str, extra: &str, allow: &'static str) -> TestEnv {
    let yaml = format!("name: Tools Agent\n{extra}tools:\n{tools}");
    let agent = Agent::parse(&yaml, false, std::path::Path::new("/"))
        .unwrap_or_else(|e| panic!("{e:?}: {yaml}"));
    TestEnv::builder(mode)
        .settings(move |s| {
            s.llm.with_agent(agent.clone());
            s.llm.tools = ToolSettings::defaults().allow(allow);
        })
        .start()
        .await
}

fn webhook(name: &str, url: &str) -> String {
    format!(
        "  - {{name: {name}, type: webhook, description: 'The {name} tool.', url: '{url}', timeout_secs: 2}}\n"
    )
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// One message on a fresh stream session: its events, up to `ready`.
async fn ask(gw: &TestGateway, text: &str) -> (String, Vec<Value>) {
    let id = gw.create_session().await;
    let mut socket = gw.connect(&format!("/ws/{id}")).await;
    socket.recv().await; // connected
    socket.send_message(text).await;
    let events = socket.until_ready().await;
    (id, events)
}

async fn two_parallel_calls_then_an_answer_from_both_results(mode: Mode) {
    let server = ToolServer::start(None).await;
    let tools = [
        webhook("hours", &server.url("wait/2")),
        webhook("book", &server.url("wait/2")),
    ]
    .concat();
    let env = env_with_tools(mode, &tools, "").await;
    let (id, events) = ask(env.gw(), "Blood test [mock:tool=hours][mock:tool=book]").await;

    // function_called for both, before any chunk, with their call ids.
    let called = of_type(&events, "function_called");
    assert_eq!(called.len(), 2, "{events:?}");
    assert_eq!(called[0]["function_name"], "hours");
    assert_eq!(called[1]["function_name"], "book");
    let call_ids: Vec<&str> = called
        .iter()
        .map(|e| e["call_id"].as_str().unwrap())
        .collect();
    assert!(
        call_ids.iter().all(|c| c.starts_with("call_")),
        "{call_ids:?}"
    );
    let first_chunk = events.iter().position(|e| e["type"] == "chunk").unwrap();
    let last_called = events
        .iter()
        .rposition(|e| e["type"] == "function_called")
        .unwrap();
    assert!(last_called < first_chunk, "{events:?}");
    assert!(
        called
            .iter()
            .all(|e| e["seq"].is_u64() && e["message_id"].is_string())
    );

    // Both ran at the same time (each answers only once both are in flight).
    assert_eq!(server.max_in_flight(), 2);
    let echo = r#"echo:{"query":"Blood test"}"#;
    let full = full_response(&events);
    assert!(
        full.starts_with(&format!("Tool hours said: {echo}. Tool book said: {echo}.")),
        "{full}"
    );
    let requests = env.llm_requests().await;
    let expected = loadtest::mock_llm::reply_text(
        requests[1]["messages"].as_array().unwrap(),
        loadtest::mock_llm::MockSettings::default().tokens,
    );
    assert_eq!(
        full, expected,
        "complete is what the model said from both results"
    );

    // The model got the calls and one tool message per call, in order.
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["tools"].as_array().unwrap().len(), 2);
    assert_eq!(requests[0]["tools"][0]["function"]["name"], "hours");
    let messages = requests[1]["messages"].as_array().unwrap();
    let tail: Vec<&str> = messages[messages.len() - 3..]
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(tail, ["assistant", "tool", "tool"]);
    let assistant = &messages[messages.len() - 3];
    assert_eq!(assistant["tool_calls"][0]["id"], call_ids[0]);
    assert_eq!(assistant["tool_calls"][1]["id"], call_ids[1]);
    assert_eq!(messages[messages.len() - 2]["tool_call_id"], call_ids[0]);
    assert_eq!(messages[messages.len() - 1]["tool_call_id"], call_ids[1]);

    // History keeps the calls on the answer, in run order.
    let (_, page) = env.gw().get(&format!("/api/session/{id}/messages")).await;
    let answer = &page["messages"][1];
    assert_eq!(answer["role"], "assistant");
    let calls = answer["function_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["name"], "hours");
    assert_eq!(calls[0]["call_id"], call_ids[0]);
    assert_eq!(calls[0]["arguments"], r#"{"query": "Blood test"}"#);
    assert_eq!(calls[0]["result"], echo);
    assert_eq!(calls[1]["name"], "book");

    // The next turn's prompt carries the exchange as the provider requires.
    let mut socket = env.gw().connect(&format!("/ws/{id}")).await;
    socket.recv().await;
    socket.send_message("Thanks").await;
    socket.until_ready().await;
    let requests = env.llm_requests().await;
    let roles: Vec<&str> = requests[2]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "user"
        ]
    );
    // Webhook ids differ per call.
    assert_eq!(server.calls_per_webhook_id().len(), 2);
}

async fn failed_calls_become_errors_the_model_answers_from(mode: Mode) {
    let server = ToolServer::start(None).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tools = [
        webhook("fails", &server.url("status/500")),
        webhook("slow", &server.url("slow/5000")),
        webhook("hangs", &server.url("hang")),
        webhook("closed", &format!("http://127.0.0.1:{closed}/")),
    ]
    .concat();
    let env = env_with_tools(mode, &tools, "").await;
    let (_, events) = ask(
        env.gw(),
        "Q [mock:tool=fails][mock:tool=slow][mock:tool=hangs][mock:tool=closed]",
    )
    .await;
    assert!(of_type(&events, "error").is_empty(), "{events:?}");
    let full = full_response(&events);
    assert!(
        full.contains(r#"Tool fails said: {"error":"the tool's server answered HTTP 500"}"#),
        "{full}"
    );
    assert!(
        full.contains(r#"Tool slow said: {"error":"the tool's server did not answer within 2 s"}"#),
        "{full}"
    );
    assert!(
        full.contains(
            r#"Tool hangs said: {"error":"the tool's server did not answer within 2 s"}"#
        ),
        "{full}"
    );
    assert!(
        full.contains("Tool closed said: {\"error\":\"the tool's server could not be reached"),
        "{full}"
    );
    let requests = env.llm_requests().await;
    let tool_messages = requests[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .count();
    assert_eq!(tool_messages, 4, "every call answered");
}

async fn invalid_arguments_go_back_to_the_model(mode: Mode) {
    let server = ToolServer::start(None).await;
    let tools = format!(
        "  - {{name: book, type: webhook, url: '{}', parameters: {{type: object, properties: {{exam: {{type: string}}}}, required: [exam]}}}}\n",
        server.url("echo")
    );
    let env = env_with_tools(mode, &tools, "").await;
    let (_, events) = ask(env.gw(), "Book [mock:tool=book]").await;
    let full = full_response(&events);
    assert!(full.contains("do not match the tool's schema"), "{full}");
    assert!(full.contains("exam"), "{full}");
    let (_, events) = ask(env.gw(), "Book [mock:tool=book bad_args]").await;
    let full = full_response(&events);
    assert!(full.contains("not valid JSON"), "{full}");
    assert!(
        server.calls().is_empty(),
        "the customer's server never saw them"
    );
}

async fn the_round_limit_forces_a_final_answer_without_tools(mode: Mode) {
    let server = ToolServer::start(None).await;
    let tools = webhook("look", &server.url("echo"));
    let env = env_with_tools(mode, &tools, "max_tool_rounds: 2\n").await;
    let (id, events) = ask(env.gw(), "Again [mock:tool=look tool_rounds=9]").await;
    assert_eq!(of_type(&events, "function_called").len(), 2);
    assert_eq!(of_type(&events, "complete").len(), 1);
    let requests = env.llm_requests().await;
    assert_eq!(requests.len(), 3, "two tool turns, then the answer");
    assert!(requests[0]["tools"].is_array() && requests[1]["tools"].is_array());
    assert!(requests[2].get("tools").is_none(), "{}", requests[2]);
    let full = full_response(&events);
    assert!(full.starts_with("Tool look said: echo:"), "{full}");
    let (_, page) = env.gw().get(&format!("/api/session/{id}/messages")).await;
    let calls = page["messages"][1]["function_calls"].as_array().unwrap();
    let rounds: Vec<u64> = calls.iter().map(|c| c["round"].as_u64().unwrap()).collect();
    assert_eq!(rounds, [0, 1]);
}

async fn private_tool_urls_are_refused(mode: Mode) {
    let server = ToolServer::start(None).await;
    let tools = webhook("inside", &server.url("echo"));
    let env = env_with(mode, &tools, "", "").await;
    let (_, events) = ask(env.gw(), "Q [mock:tool=inside]").await;
    let full = full_response(&events);
    assert!(full.contains("refused: 127.0.0.1"), "{full}");
    assert!(full.contains("TOOL_URL_ALLOWLIST"), "{full}");
    assert!(server.calls().is_empty());
}

async fn the_knowledge_base_answers_from_a_folder_and_sees_its_changes(mode: Mode) {
    let dir = temp_dir("kb-e2e");
    std::fs::write(
        dir.join("hours.md"),
        "# Hours\n\nThe lab opens at 7:30 on weekdays.",
    )
    .unwrap();
    std::fs::write(dir.join("prices.txt"), "A blood test costs 25 euros.").unwrap();
    let tools = format!(
        "  - {{name: kb, type: knowledge_base, description: Clinic facts., documents: '{}'}}\n",
        dir.display()
    );
    let agent = Agent::parse(&format!("name: KB Agent\ntools:\n{tools}"), false, &dir).unwrap();
    let env = TestEnv::builder(mode)
        .settings(move |s| {
            s.llm.with_agent(agent.clone());
            // Every query checks the folder (the default is every 2 s).
            s.llm.tools.knowledge_base_reload_secs = 0;
        })
        .start()
        .await;
    let (_, events) = ask(env.gw(), "How much is a blood test? [mock:tool=kb]").await;
    let full = full_response(&events);
    assert!(
        full.starts_with("Tool kb said: {\"passages\":[{\"file\":\"prices.txt\""),
        "{full}"
    );
    assert!(full.contains("25 euros"), "{full}");
    let requests = env.llm_requests().await;
    assert_eq!(
        requests[0]["tools"][0]["function"]["parameters"]["required"],
        json!(["query"])
    );

    // Edited, added and removed files are seen without a restart.
    std::fs::write(dir.join("prices.txt"), "A blood test now costs 30 euros.").unwrap();
    std::fs::write(dir.join("parking.md"), "Parking is free behind the lab.").unwrap();
    std::fs::remove_file(dir.join("hours.md")).unwrap();
    let (_, events) = ask(env.gw(), "How much is a blood test? [mock:tool=kb]").await;
    let full = full_response(&events);
    assert!(
        full.contains("30 euros") && !full.contains("25 euros"),
        "{full}"
    );
    let (_, events) = ask(env.gw(), "Where is the parking? [mock:tool=kb]").await;
    let full = full_response(&events);
    assert!(
        full.starts_with("Tool kb said: {\"passages\":[{\"file\":\"parking.md\""),
        "{full}"
    );
    let (_, events) = ask(
        env.gw(),
        "When does the lab open on weekdays? [mock:tool=kb]",
    )
    .await;
    let full = full_response(&events);
    assert!(!full.contains("hours.md"), "a removed file is gone: {full}");
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------------
// The README's "Agents and tools" example, run as its text says: the files in
// examples/agent/ (which the README shows verbatim), the Python tool server, the
// gateway binary with AGENT_FILE, mock-llm as the model.

/// A child process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for(url: &str, child: &mut Child, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        // Any HTTP answer (the tool server answers GET with 501) means it is up.
        if reqwest::get(url).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{what} exited at start-up: {status}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what} never answered at {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_agent_example_runs_as_written() {
    use shared::testkit::free_port;
    worker::llm::install_crypto_provider();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let example = root.join("examples/agent");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("\n## Agents and tools\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has an `## Agents and tools` section");
    for file in ["agent.yaml", "kb/clinic.md", "tool_server.py"] {
        let text = std::fs::read_to_string(example.join(file)).unwrap();
        assert!(
            section.contains(&text),
            "README's Agents and tools section does not show examples/agent/{file} as it is"
        );
    }

    // The example as a user runs it, on free ports instead of 8787 / 8090 / 8002.
    let dir = temp_dir("readme-agent");
    std::fs::create_dir_all(dir.join("kb")).unwrap();
    let tool_port = free_port();
    let agent = std::fs::read_to_string(example.join("agent.yaml"))
        .unwrap()
        .replace("127.0.0.1:8787", &format!("127.0.0.1:{tool_port}"));
    std::fs::write(dir.join("agent.yaml"), agent).unwrap();
    std::fs::copy(example.join("kb/clinic.md"), dir.join("kb/clinic.md")).unwrap();
    let secret = loadtest::tool_server::new_secret();
    let mut tool_server = Child(
        std::process::Command::new("python3")
            .arg(example.join("tool_server.py"))
            .arg(tool_port.to_string())
            .env("BOOKING_WEBHOOK_SECRET", &secret)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/test.sh installs it)"),
    );
    let tool_url = format!("http://127.0.0.1:{tool_port}/tools");
    wait_for(&tool_url, &mut tool_server, "tool_server.py").await;

    let mock = loadtest::mock_llm::MockServer::start(loadtest::mock_llm::MockSettings {
        port: 0,
        ..Default::default()
    })
    .await
    .expect("mock-llm starts");
    let port = free_port();
    let mut gateway = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AGENT_FILE", dir.join("agent.yaml"))
            .env("TOOL_URL_ALLOWLIST", "127.0.0.1")
            .env("BOOKING_WEBHOOK_SECRET", &secret)
            .env("OPENAI_BASE_URL", mock.api_base())
            .env("CHAT_SERVICE_HOST", "127.0.0.1")
            .env("CHAT_SERVICE_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("gateway starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/livez"), &mut gateway, "gateway").await;
    let status: Value = reqwest::get(format!("{base}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = status["agent"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["clinic_kb", "book_appointment"], "{status}");
    assert!(!status.to_string().contains(&secret));

    // The two questions the README asks, in one session.
    let mut socket = crate::helpers::TestSocket::connect(&format!(
        "ws://127.0.0.1:{port}/ws/readme-example?protocol=stream"
    ))
    .await;
    assert_eq!(socket.recv().await["status"], "connected");
    socket
        .send_message("When are you open on Saturday? [mock:tool=clinic_kb]")
        .await;
    let events = socket.until_ready().await;
    assert_eq!(of_type(&events, "function_called").len(), 1, "{events:?}");
    let full = full_response(&events);
    assert!(full.contains("clinic.md"), "{full}");
    assert!(full.contains("Saturday"), "{full}");
    socket
        .send_message("Book a blood test [mock:tool=book_appointment arg=exam]")
        .await;
    let events = socket.until_ready().await;
    let called = of_type(&events, "function_called");
    assert_eq!(called[0]["function_name"], "book_appointment", "{events:?}");
    let full = full_response(&events);
    assert!(
        full.starts_with("Tool book_appointment said: Booked: Book a blood test, reference B-1."),
        "the Python server checked the signature and booked: {full}"
    );

    // The server refuses what the worker did not sign.
    let forged = reqwest::Client::new()
        .post(&tool_url)
        .header("webhook-id", "msg_forged")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
        .body(r#"{"message":{"toolCallList":[{"id":"c","arguments":{"exam":"x"}}]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    drop(gateway);
    drop(tool_server);
    std::fs::remove_dir_all(dir).unwrap();
}
