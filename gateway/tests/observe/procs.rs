//! A gateway process of its own (embedded unless told otherwise), killed on drop.

use crate::cluster::{binary, wait_http};
use shared::testkit::free_port;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct GatewayProc {
    child: Child,
    pub port: u16,
}

impl GatewayProc {
    /// Starts `gateway` on a free port with `env` on top of a clean environment, and
    /// waits until it serves.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("observe-gateway-{port}.log"));
        let mut command = Command::new(binary("gateway", "gateway"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHAT_SERVICE_HOST", "127.0.0.1")
            .env("CHAT_SERVICE_PORT", port.to_string())
            .env("RUST_LOG", "warn");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("gateway starts");
        wait_http(
            &format!("http://127.0.0.1:{port}/livez"),
            Duration::from_secs(15),
        );
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
