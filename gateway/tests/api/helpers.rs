//! Test harness: real Redis (a private `redis-server`), real `mock-llm` over HTTP,
//! gateways and workers on real loopback sockets, each test with its own key prefix.

use futures_util::{SinkExt, StreamExt};
use gateway::{Application, Settings};
use loadtest::mock_llm::{MockServer, MockSettings};
use serde_json::Value;
use shared::backend::Backend;
use shared::config::StoreSettings;
use shared::testkit::{RedisCluster, RedisServer, unique_prefix};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take before a test fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Redis, gateways without in-process workers, separate workers.
    Redis,
    /// The same on the process-wide 3-master Redis Cluster (`redis-cluster://`).
    Cluster,
    /// No Redis: one gateway with its in-process worker.
    Embedded,
}

/// What to start.
pub struct EnvBuilder {
    mode: Mode,
    gateways: usize,
    workers: usize,
    mock: MockSettings,
    tweak: Box<dyn Fn(&mut Settings)>,
}

impl EnvBuilder {
    pub fn gateways(mut self, n: usize) -> Self {
        self.gateways = n;
        self
    }

    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    pub fn mock(mut self, f: impl FnOnce(&mut MockSettings)) -> Self {
        f(&mut self.mock);
        self
    }

    pub fn settings(mut self, f: impl Fn(&mut Settings) + 'static) -> Self {
        self.tweak = Box::new(f);
        self
    }

    pub async fn start(self) -> TestEnv {
        shared::telemetry::init_logging("error");
        worker::llm::install_crypto_provider();
        let mock = MockServer::start(MockSettings {
            port: 0,
            ..self.mock.clone()
        })
        .await
        .expect("mock-llm starts");
        let redis = (self.mode == Mode::Redis).then(RedisServer::start);
        let prefix = unique_prefix("gw");
        let mut env = TestEnv {
            redis,
            mock,
            prefix,
            mode: self.mode,
            gateways: Vec::new(),
            workers: Vec::new(),
            tweak: self.tweak,
        };
        for _ in 0..self.gateways {
            env.add_gateway().await;
        }
        if self.mode != Mode::Embedded {
            for _ in 0..self.workers {
                env.add_worker().await;
            }
        }
        env
    }
}

/// A running system under test.
pub struct TestEnv {
    pub redis: Option<RedisServer>,
    pub mock: MockServer,
    pub prefix: String,
    pub mode: Mode,
    pub gateways: Vec<TestGateway>,
    workers: Vec<(CancellationToken, JoinHandle<()>)>,
    tweak: Box<dyn Fn(&mut Settings)>,
}

impl TestEnv {
    /// Redis, one gateway, one worker, an instant mock LLM.
    pub fn redis() -> EnvBuilder {
        Self::builder(Mode::Redis).gateways(1).workers(1)
    }

    pub fn builder(mode: Mode) -> EnvBuilder {
        EnvBuilder {
            mode,
            gateways: 1,
            workers: 1,
            mock: MockSettings::default(),
            tweak: Box::new(|_| {}),
        }
    }

    pub fn store_settings(&self) -> StoreSettings {
        let url = match self.mode {
            Mode::Cluster => Some(RedisCluster::shared().url()),
            _ => self.redis.as_ref().map(RedisServer::url),
        };
        StoreSettings::new(url.as_deref(), &self.prefix)
    }

    /// Gateway settings pointing at this env's Redis and mock LLM.
    pub fn gateway_settings(&self) -> Settings {
        let mut settings = Settings::defaults();
        settings.host = "127.0.0.1".into();
        settings.port = 0;
        settings.store = self.store_settings();
        settings.llm.openai_base_url = Some(self.mock.api_base());
        settings.llm.openai_api_key = None;
        settings.llm.llm_model = "mock-model".into();
        settings.run_worker = Some(self.mode == Mode::Embedded);
        settings.shutdown_grace_secs = 5;
        (self.tweak)(&mut settings);
        settings
    }

    pub async fn add_gateway(&mut self) -> &TestGateway {
        let settings = self.gateway_settings();
        let shutdown = CancellationToken::new();
        let app = Application::build(settings, shutdown.clone())
            .await
            .expect("gateway starts");
        let port = app.port();
        tokio::spawn(async move {
            app.run_until_stopped().await.expect("gateway runs");
        });
        self.gateways.push(TestGateway {
            port,
            shutdown,
            http: reqwest::Client::new(),
        });
        self.gateways.last().expect("just pushed")
    }

    /// A worker with its own Redis connections, as a separate pod would have.
    pub async fn add_worker(&mut self) {
        let settings = self.gateway_settings();
        let backend = Backend::connect(&settings.store)
            .await
            .expect("worker connects");
        let shutdown = CancellationToken::new();
        let name = format!("test-worker-{}", self.workers.len());
        let task = worker::spawn(
            backend,
            settings.llm,
            settings.consumer,
            name,
            shutdown.clone(),
        )
        .expect("worker tools set up")
        .task;
        self.workers.push((shutdown, task));
    }

    /// The first gateway.
    pub fn gw(&self) -> &TestGateway {
        &self.gateways[0]
    }

    /// What the mock LLM (default length) answers to these user/assistant turns.
    pub fn expected_reply(&self, conversation: &[(&str, &str)]) -> String {
        self.expected_reply_with_tokens(conversation, MockSettings::default().tokens)
    }

    /// What a mock LLM padding answers to `tokens` answers to these turns.
    pub fn expected_reply_with_tokens(
        &self,
        conversation: &[(&str, &str)],
        tokens: usize,
    ) -> String {
        let messages: Vec<Value> = conversation
            .iter()
            .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
            .collect();
        loadtest::mock_llm::reply_text(&messages, tokens)
    }

    /// The requests the mock LLM received, oldest first.
    pub async fn llm_requests(&self) -> Vec<Value> {
        reqwest::get(format!("{}/mock/requests", self.mock.url()))
            .await
            .expect("mock answers")
            .json()
            .await
            .expect("json")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for gateway in &self.gateways {
            gateway.shutdown.cancel();
        }
        for (shutdown, _) in &self.workers {
            shutdown.cancel();
        }
    }
}

/// One gateway instance.
pub struct TestGateway {
    pub port: u16,
    pub shutdown: CancellationToken,
    pub http: reqwest::Client,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        into_parts(self.http.get(self.url(path)).send().await).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        into_parts(self.http.delete(self.url(path)).send().await).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        into_parts(
            self.http
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await,
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    /// Creates a session (stream protocol) and returns its id.
    pub async fn create_session(&self) -> String {
        let (status, body) = self.post_raw("/api/create-session", "").await;
        assert_eq!(status, 201, "{body}");
        body["session_id"].as_str().expect("session_id").to_owned()
    }

    pub async fn connect(&self, path: &str) -> TestSocket {
        TestSocket::connect(&self.ws_url(path)).await
    }

    /// Creates a session and opens its socket, past the `connected` event.
    pub async fn open_session(&self) -> (String, TestSocket) {
        let id = self.create_session().await;
        let mut socket = self.connect(&format!("/ws/{id}")).await;
        let connected = socket.recv().await;
        assert_eq!(connected["status"], "connected", "{connected}");
        (id, socket)
    }

    /// The session's `message_count`.
    pub async fn message_count(&self, id: &str) -> u64 {
        let (status, info) = self.get(&format!("/api/session/{id}/info")).await;
        assert_eq!(status, 200, "{info}");
        info["message_count"].as_u64().expect("message_count")
    }

    /// Runs `node <script> <args>` in `tests/<dir>` and returns its `RESULT` JSON.
    pub async fn run_node(dir: &str, script: &str, args: &[&str]) -> Value {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests")
            .join(dir);
        assert!(
            dir.join("node_modules").exists(),
            "run `npm ci` in {} first (scripts/test.sh does)",
            dir.display()
        );
        let output = tokio::process::Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(&dir)
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{script} failed:\n{stdout}\n{stderr}"
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap_or_else(|| panic!("no RESULT line from {script}:\n{stdout}\n{stderr}"));
        serde_json::from_str(line).expect("RESULT is JSON")
    }
}

async fn into_parts(response: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let response = response.expect("gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A client socket with helpers that fail the test instead of hanging.
pub struct TestSocket {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestSocket {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Self { ws }
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_message(&mut self, text: &str) {
        self.send_json(&serde_json::json!({ "message": text }))
            .await;
    }

    /// The next JSON text frame (pings and pongs skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.ws.next())
                .await
                .expect("an event in time")
                .expect("socket open")
                .expect("frame");
            match frame {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON event"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Events up to and including the next `status: ready` (stream protocol).
    pub async fn until_ready(&mut self) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.recv().await;
            let done = event["type"] == "status" && event["status"] == "ready";
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// Waits for the server to close the socket and returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.ws.next())
                .await
                .expect("close in time");
            match frame {
                None => return None,
                Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn assert_silent(&mut self, quiet: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(quiet, self.ws.next()).await
        {
            panic!("expected no event, got {text}");
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// `complete.full_response` of a list of events.
pub fn full_response(events: &[Value]) -> String {
    events
        .iter()
        .find(|e| e["type"] == "complete")
        .and_then(|e| e["full_response"].as_str())
        .unwrap_or_else(|| panic!("no complete in {events:?}"))
        .to_owned()
}

/// Concatenated `chunk` contents.
pub fn chunks(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "chunk")
        .map(|e| e["content"].as_str().expect("content"))
        .collect()
}

/// Runs one async test body against both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Mode::Redis).await;
                }
            )*
        }
        mod memory_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Mode::Embedded).await;
                }
            )*
        }
    };
}
