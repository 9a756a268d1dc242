//! Issue 10, item 4: credentials in `OPENAI_BASE_URL` (its userinfo or query) are never
//! shown: not in `/status` (which every token holder, or everyone with auth off, may
//! read), not in the gateway's or the worker's logs, even at `debug` and even when the
//! LLM cannot be reached and its errors are logged. Real processes, their whole output
//! read back.

use crate::helpers::TestSocket;
use shared::testkit::{RedisServer, free_port};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SECRETS: [&str; 3] = ["hunter2-userinfo", "sk-query-secret", "sk-env-key-secret"];

/// A base URL with a password and a key in its query, at a port nothing listens on.
fn leaky_base_url() -> String {
    format!(
        "http://llm-user:{}@127.0.0.1:{}/v1?api_key={}",
        SECRETS[0],
        free_port(),
        SECRETS[1]
    )
}

fn command(binary: &str, log: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    let log = std::fs::File::create(log).expect("log file");
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "debug")
        .env("OPENAI_BASE_URL", leaky_base_url())
        .env("OPENAI_API_KEY", SECRETS[2])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true);
    command
}

async fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered");
}

/// The workspace's `worker` binary, built now so it is never a stale one.
fn worker_binary() -> String {
    let path = std::path::PathBuf::from(env!("CARGO_BIN_EXE_gateway")).with_file_name("worker");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "worker", "--bin", "worker"])
        .status()
        .expect("cargo build runs");
    assert!(status.success(), "building worker");
    path.to_string_lossy().into_owned()
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_llm_base_url_are_never_printed() {
    worker::llm::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("disclosure-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();

    // An embedded gateway: its in-process worker calls (and fails to reach) the LLM.
    let port = free_port();
    let gateway_log = dir.join("gateway.log");
    let mut gateway = command(env!("CARGO_BIN_EXE_gateway"), &gateway_log)
        .env("CHAT_SERVICE_HOST", "127.0.0.1")
        .env("CHAT_SERVICE_PORT", port.to_string())
        .spawn()
        .expect("gateway starts");
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{base}/livez")).await;

    let status: serde_json::Value = reqwest::get(format!("{base}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = status["model"]["base_url"].as_str().expect("base_url");
    assert_clean("/status", &status.to_string());
    assert!(shown.starts_with("http://127.0.0.1:"), "{shown}");
    assert!(shown.ends_with("/v1?redacted"), "{shown}");

    // A message makes the worker try the LLM and log why it failed.
    let mut socket =
        TestSocket::connect(&format!("ws://127.0.0.1:{port}/ws/leak?protocol=stream")).await;
    assert_eq!(socket.recv().await["status"], "connected");
    socket.send_message("hello").await;
    let events = socket.until_ready().await;
    assert!(events.iter().any(|e| e["type"] == "error"), "{events:?}");
    assert_clean("the socket", &serde_json::to_string(&events).unwrap());

    // A worker process on Redis logs its start-up line with the URL too.
    let redis = RedisServer::start();
    let worker_log = dir.join("worker.log");
    let worker_port = free_port();
    let mut worker = command(&worker_binary(), &worker_log)
        .env("REDIS_URL", redis.url())
        .env("WORKER_HTTP_HOST", "127.0.0.1")
        .env("WORKER_HTTP_PORT", worker_port.to_string())
        .spawn()
        .expect("worker starts");
    wait_http(&format!("http://127.0.0.1:{worker_port}/livez")).await;

    for child in [&mut gateway, &mut worker] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    for (what, log) in [("gateway log", &gateway_log), ("worker log", &worker_log)] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.contains("127.0.0.1"),
            "{what} names the LLM host:\n{text}"
        );
        assert_clean(what, &text);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
