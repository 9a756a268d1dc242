//! Webhook and knowledge-base tools against real servers on loopback: a tool server
//! that verifies signatures with its own HMAC, timeouts, failures, the address guard.

use loadtest::tool_server::{ToolServer, new_secret};
use serde_json::{Value, json};
use shared::agent::Agent;
use shared::ids::{MessageId, SessionId};
use std::collections::HashMap;
use std::path::Path;
use worker::tools::{CallContext, Outcome, ToolCall, ToolSettings, Toolbox, webhook_id};

fn agent(tools_yaml: &str) -> Agent {
    Agent::parse(
        &format!("name: T\ntools:\n{tools_yaml}"),
        false,
        Path::new("."),
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!("  - {{name: {name}, type: webhook, url: '{url}', timeout_secs: 1{extra}}}\n")
}

fn context() -> CallContext {
    CallContext {
        session_id: SessionId::parse("s-1").unwrap(),
        user_id: None,
        metadata: json!({"plan": "gold"}),
        message_id: MessageId::new_random(),
    }
}

fn call(name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        call_id: format!("call_{name}"),
        name: name.into(),
        arguments: arguments.into(),
    }
}

fn toolbox(agent: &Agent, allow: &str, env: HashMap<String, String>) -> Toolbox {
    worker::llm::install_crypto_provider();
    Toolbox::build_with_env(
        Some(agent),
        &ToolSettings::defaults().allow(allow),
        &move |v| env.get(v).cloned(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_signed_call_reaches_the_server_in_vapis_shape() {
    let secret = new_secret();
    let server = ToolServer::start(Some(&secret)).await;
    let tools = agent(&webhook(
        "book",
        &server.url("echo"),
        ", secret_env: SECRET, headers: {X-Api-Key: {env: KEY}}",
    ));
    let env = HashMap::from([
        ("SECRET".to_owned(), secret.clone()),
        ("KEY".to_owned(), "k-123".to_owned()),
    ]);
    let toolbox = toolbox(&tools, "127.0.0.1", env);
    let ctx = context();
    let result = toolbox
        .run(&call("book", r#"{"exam": "blood"}"#), &ctx)
        .await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.result, json!(r#"echo:{"exam":"blood"}"#));

    let calls = server.calls();
    assert_eq!(calls.len(), 1);
    let received = &calls[0];
    assert!(received.signature_valid, "{received:?}");
    assert_eq!(received.headers["x-api-key"], "k-123");
    assert_eq!(received.headers["content-type"], "application/json");
    assert_eq!(
        received.webhook_id.as_deref(),
        Some(webhook_id(ctx.message_id, "call_book").as_str())
    );
    let message = &received.body["message"];
    assert_eq!(message["type"], "tool-calls");
    assert_eq!(message["toolCallList"][0]["id"], "call_book");
    assert_eq!(message["toolCallList"][0]["name"], "book");
    assert_eq!(
        message["toolCallList"][0]["arguments"],
        json!({"exam": "blood"})
    );
    assert_eq!(message["session"]["id"], "s-1");
    assert_eq!(message["session"]["user_id"], Value::Null);
    assert_eq!(message["session"]["metadata"], json!({"plan": "gold"}));
    assert_eq!(message["message_id"], json!(ctx.message_id));

    // A retry of the same call carries the same id; the server can deduplicate.
    toolbox
        .run(&call("book", r#"{"exam": "blood"}"#), &ctx)
        .await;
    let counts = server.calls_per_webhook_id();
    assert_eq!(counts[&webhook_id(ctx.message_id, "call_book")], 2);
}

#[tokio::test]
async fn a_wrong_secret_fails_the_servers_check() {
    let server = ToolServer::start(Some(&new_secret())).await;
    let tools = agent(&webhook("t", &server.url("echo"), ", secret_env: S"));
    let toolbox = toolbox(
        &tools,
        "127.0.0.1",
        HashMap::from([("S".into(), new_secret())]),
    );
    toolbox.run(&call("t", "{}"), &context()).await;
    assert!(!server.calls()[0].signature_valid);
}

#[tokio::test]
async fn failures_become_error_results() {
    let server = ToolServer::start(None).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = [
        webhook("fails", &server.url("status/500"), ""),
        webhook("slow", &server.url("slow/3000"), ""),
        webhook("hangs", &server.url("hang"), ""),
        webhook("closed", &format!("http://127.0.0.1:{closed}/x"), ""),
        webhook("redirects", &server.url("redirect"), ""),
        webhook("big", &server.url("big"), ""),
        webhook("plain", &server.url("plain"), ""),
    ]
    .concat();
    let toolbox = toolbox(&agent(&yaml), "127.0.0.0/8", HashMap::new());
    let ctx = context();
    let cases = [
        ("fails", Outcome::Error, "HTTP 500"),
        ("slow", Outcome::Timeout, "within 1 s"),
        ("hangs", Outcome::Timeout, "within 1 s"),
        ("closed", Outcome::Error, "could not be reached"),
        ("redirects", Outcome::Error, "another host"),
        ("big", Outcome::Error, "larger than"),
    ];
    for (name, outcome, needle) in cases {
        let result = toolbox.run(&call(name, "{}"), &ctx).await;
        assert_eq!(result.outcome, outcome, "{name}: {result:?}");
        let error = result.result["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{name}: {error}");
    }
    // Any other 2xx JSON is the result as it is.
    let plain = toolbox.run(&call("plain", r#"{"a":1}"#), &ctx).await;
    assert_eq!(plain.result, json!({"answer": "plain {\"a\":1}"}));
    // The redirect target was never called.
    assert!(server.calls().iter().all(|c| c.path != "echo"));
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let server = ToolServer::start(None).await;
    let by_name = server.url("echo").replace("127.0.0.1", "localhost");
    let yaml = [
        webhook("literal", &server.url("echo"), ""),
        webhook("named", &by_name, ""),
        webhook("metadata", "http://169.254.169.254/latest/meta-data", ""),
    ]
    .concat();
    let tools = agent(&yaml);
    let strict = toolbox(&tools, "", HashMap::new());
    for name in ["literal", "named", "metadata"] {
        let result = strict.run(&call(name, "{}"), &context()).await;
        assert_eq!(result.outcome, Outcome::Refused, "{name}: {result:?}");
        assert!(
            result.result["error"]
                .as_str()
                .unwrap()
                .contains("TOOL_URL_ALLOWLIST")
        );
    }
    assert!(server.calls().is_empty(), "nothing reached the server");

    let by_host = toolbox(&tools, "localhost", HashMap::new());
    let named = by_host.run(&call("named", "{}"), &context()).await;
    assert_eq!(named.outcome, Outcome::Ok, "{named:?}");
    let literal = by_host.run(&call("literal", "{}"), &context()).await;
    assert_eq!(literal.outcome, Outcome::Refused);
    assert_eq!(server.calls().len(), 1);
}

#[tokio::test]
async fn invalid_arguments_never_reach_the_server() {
    let server = ToolServer::start(None).await;
    let yaml = webhook(
        "book",
        &server.url("echo"),
        ", parameters: {type: object, properties: {exam: {type: string}}, required: [exam]}",
    );
    let toolbox = toolbox(&agent(&yaml), "127.0.0.1", HashMap::new());
    let not_json = toolbox.run(&call("book", r#"{"exam": "#), &context()).await;
    assert_eq!(not_json.outcome, Outcome::InvalidArguments);
    assert!(
        not_json.result["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let wrong = toolbox
        .run(&call("book", r#"{"exam": 3}"#), &context())
        .await;
    assert_eq!(wrong.outcome, Outcome::InvalidArguments);
    assert!(
        wrong.result["error"].as_str().unwrap().contains("schema"),
        "{wrong:?}"
    );
    let missing = toolbox.run(&call("book", r#"{}"#), &context()).await;
    assert_eq!(missing.outcome, Outcome::InvalidArguments);
    let unknown = toolbox.run(&call("nope", "{}"), &context()).await;
    assert_eq!(unknown.outcome, Outcome::UnknownTool);
    assert!(server.calls().is_empty());
}

#[test]
fn missing_secrets_and_folders_stop_the_start() {
    let tools = agent(&webhook(
        "t",
        "http://example.com/x",
        ", secret_env: NOT_SET_ANYWHERE",
    ));
    let error = Toolbox::build_with_env(Some(&tools), &ToolSettings::defaults(), &|_| None)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("NOT_SET_ANYWHERE is not set"), "{error}");
    let bad = Toolbox::build_with_env(Some(&tools), &ToolSettings::defaults(), &|_| {
        Some("plain".into())
    })
    .err()
    .unwrap()
    .to_string();
    assert!(bad.contains("whsec_"), "{bad}");
    let kb = agent("  - {name: kb, type: knowledge_base, documents: /no/such/folder}\n");
    let error = Toolbox::build_with_env(Some(&kb), &ToolSettings::defaults(), &|_| None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("kb") && error.contains("cannot be read"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_side_by_side() {
    let server = ToolServer::start(None).await;
    let yaml = [
        webhook("a", &server.url("wait/2"), ""),
        webhook("b", &server.url("wait/2"), ""),
    ]
    .concat();
    let toolbox = toolbox(&agent(&yaml), "127.0.0.1", HashMap::new());
    let ctx = context();
    let (ca, cb) = (call("a", "{}"), call("b", "{}"));
    let (a, b) = tokio::join!(toolbox.run(&ca, &ctx), toolbox.run(&cb, &ctx));
    assert_eq!((a.outcome, b.outcome), (Outcome::Ok, Outcome::Ok));
    assert_eq!(server.max_in_flight(), 2);
}

/// The worker binary checks its agent file before anything else and its tools' secrets
/// and folders before it takes work: each mistake stops it with a line naming it.
#[test]
fn the_worker_binary_stops_on_a_bad_agent_file_or_a_missing_secret() {
    let dir = std::env::temp_dir().join(format!("worker-agent-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |yaml: &str, redis: Option<&str>| {
        let file = dir.join("agent.yaml");
        std::fs::write(&file, yaml).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_worker"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AGENT_FILE", &file)
            .env("WORKER_HTTP_HOST", "127.0.0.1")
            .env("WORKER_HTTP_PORT", "0");
        if let Some(url) = redis {
            command.env("REDIS_URL", url);
        }
        let output = command.output().expect("worker runs");
        assert!(!output.status.success(), "{yaml}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let stderr = run(
        "name: A\ntools:\n  - {name: t, type: webhook, url: 'http://h', timeout_secs: 0}\n",
        None,
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("tools[0].timeout_secs"), "{stderr}");

    let redis = shared::testkit::RedisServer::start();
    let stderr = run(
        "name: A\ntools:\n  - {name: book, type: webhook, url: 'https://example.com/t', secret_env: NOT_SET_HERE}\n",
        Some(&redis.url()),
    );
    assert!(
        stderr.contains("book") && stderr.contains("NOT_SET_HERE is not set"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
