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
