//! The `mock-llm` binary: announces its port on stdout and stops on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn binary_prints_its_address_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-llm"))
        .args(["--port", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mock-llm starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the address is printed in time")
        .expect("stdout readable")
        .expect("one line");
    let url = line
        .strip_prefix("mock-llm listening on ")
        .expect("the announced line");
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let port: u16 = url["http://127.0.0.1:".len()..].parse().expect("a port");
    assert_ne!(port, 0);

    crate::helpers::install_crypto();
    let health = reqwest::get(format!("{url}/health"))
        .await
        .expect("health answers")
        .text()
        .await
        .expect("body");
    assert_eq!(health, "ok");

    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait works");
    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(
        lines.next_line().await.expect("stdout"),
        None,
        "exactly one line"
    );
}
