//! [`MockServer`]: the mock running in the background of a test, on its own port.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::server::serve;
use super::settings::MockSettings;

/// A mock LLM served by a background task; dropping it stops the server.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use loadtest::mock_llm::{MockServer, MockSettings};
/// let mock = MockServer::start(MockSettings { port: 0, ..MockSettings::default() }).await?;
/// let base = mock.api_base(); // http://127.0.0.1:PORT/v1, for OPENAI_BASE_URL
/// # let _ = base;
/// mock.stop().await
/// # }
/// ```
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    /// Dropping it (with the server) resolves the shutdown future too.
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl MockServer {
    /// Binds `settings.host:settings.port` (port 0 = any free port) and serves.
    pub async fn start(settings: MockSettings) -> io::Result<Self> {
        let listener = TcpListener::bind((settings.host.as_str(), settings.port)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, settings, async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the root of `/health` and `/mock/*`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/v1`, the OpenAI base URL to give a client.
    pub fn api_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Stops the server and waits until its connections are closed.
    pub async fn stop(self) -> io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(io::Error::other)?
    }
}
