//! Opening a session the way the streaming client does (`POST /api/create-session`,
//! then `/ws/{id}`), or the way the simple client does (a socket on a fresh id).
//!
//! Client sockets get small buffers (`--ws-buffer-bytes`) and no Nagle delay: with
//! thousands of sockets in one process tungstenite's 128 KiB default read buffer
//! would make the load generator, not the server, the thing that runs out of memory.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::events::{Event, Kind};

/// A client socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a handshake step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a session could not be opened; `code` is what the error counts show.
#[derive(Debug)]
pub struct ConnectError {
    pub code: &'static str,
    pub detail: String,
}

impl ConnectError {
    fn new(code: &'static str, detail: impl std::fmt::Display) -> Self {
        Self {
            code,
            detail: detail.to_string(),
        }
    }
}

/// Opens sessions and sockets; cheap to share.
pub struct Connector {
    http: reqwest::Client,
    ws_config: WebSocketConfig,
}

/// A session with its socket open.
pub struct Opened {
    pub ws: Ws,
    pub session_id: String,
    /// `connected.last_seq` (stream protocol), where `seq` checking starts.
    pub last_seq: u64,
    pub rest_create: Option<Duration>,
    pub ws_connect: Duration,
}

impl Connector {
    pub fn new(ws_buffer_bytes: usize) -> Self {
        // reqwest is built with rustls but no crypto provider in this workspace; plain
        // HTTP never uses it, but the client refuses to build without one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(STEP_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .expect("a plain HTTP client builds");
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(ws_buffer_bytes)
            // Each frame goes out when sent: the client measures, it must not batch.
            .write_buffer_size(0)
            .max_message_size(Some(16 << 20));
        Self { http, ws_config }
    }

    /// The HTTP client, for direct LLM calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `POST /api/create-session`; returns the session id.
    pub async fn create_session(
        &self,
        base: &str,
        user: &str,
        token: Option<&str>,
    ) -> Result<String, ConnectError> {
        let mut request = self
            .http
            .post(format!("{base}/api/create-session"))
            .json(&json!({ "user_id": user }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ConnectError::new("rest_connect", e))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| ConnectError::new("rest_body", e))?;
        if status.as_u16() != 201 {
            let code = match status.as_u16() {
                401 => "rest_401",
                429 => "rest_429",
                503 => "rest_503",
                _ => "rest_status",
            };
            return Err(ConnectError::new(code, format!("{status}: {body}")));
        }
        body["session_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ConnectError::new("rest_body", "no session_id"))
    }

    /// Opens `/ws/{id}` on `base` with the given query.
    pub async fn open_socket(
        &self,
        base: &str,
        id: &str,
        query: &[(&str, &str)],
    ) -> Result<Ws, ConnectError> {
        let url = socket_url(base, id, query);
        let connect =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(self.ws_config), true);
        match tokio::time::timeout(STEP_TIMEOUT, connect).await {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(ConnectError::new("ws_connect", e)),
            Err(_) => Err(ConnectError::new("ws_connect", "handshake timed out")),
        }
    }

    /// REST create, then the stream-protocol socket, then its `connected` event.
    pub async fn open_stream(
        &self,
        base: &str,
        user: &str,
        token: Option<&str>,
    ) -> Result<Opened, ConnectError> {
        let started = Instant::now();
        let session_id = self.create_session(base, user, token).await?;
        let rest_create = started.elapsed();
        let started = Instant::now();
        let mut query = vec![("protocol", "stream")];
        if let Some(token) = token {
            query.push(("token", token));
        }
        let mut ws = self.open_socket(base, &session_id, &query).await?;
        let last_seq = wait_connected(&mut ws).await?;
        Ok(Opened {
            ws,
            session_id,
            last_seq,
            rest_create: Some(rest_create),
            ws_connect: started.elapsed(),
        })
    }

    /// A socket on a fresh id with no REST call (simple client, echo server).
    pub async fn open_plain(
        &self,
        base: &str,
        query: &[(&str, &str)],
    ) -> Result<Opened, ConnectError> {
        let session_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let ws = self.open_socket(base, &session_id, query).await?;
        Ok(Opened {
            ws,
            session_id,
            last_seq: 0,
            rest_create: None,
            ws_connect: started.elapsed(),
        })
    }
}

/// `ws://host/ws/{id}?k=v` from an `http://host` base.
pub fn socket_url(base: &str, id: &str, query: &[(&str, &str)]) -> String {
    let base = base.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    let mut url = format!("{base}/ws/{id}");
    for (i, (key, value)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(key);
        url.push('=');
        url.push_str(value);
    }
    url
}

/// Reads up to the `connected` greeting; returns its `last_seq`.
pub(super) async fn wait_connected(ws: &mut Ws) -> Result<u64, ConnectError> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| ConnectError::new("no_connected", "no connected event in time"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let event = Event::parse(&text)
                    .map_err(|e| ConnectError::new("bad_event", format!("{e}: {text}")))?;
                match event.kind() {
                    Kind::Connected { last_seq } => return Ok(last_seq),
                    Kind::Error { code, .. } => {
                        return Err(ConnectError::new("refused", format!("{code}: {text}")));
                    }
                    _ => {
                        return Err(ConnectError::new(
                            "bad_event",
                            format!("expected connected, got {text}"),
                        ));
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(ConnectError::new("closed", format!("{frame:?}")));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ConnectError::new("ws_read", e)),
            None => return Err(ConnectError::new("closed", "socket closed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls_follow_the_base() {
        assert_eq!(
            socket_url("http://127.0.0.1:8002/", "abc", &[("protocol", "stream")]),
            "ws://127.0.0.1:8002/ws/abc?protocol=stream"
        );
        assert_eq!(
            socket_url("https://x", "s", &[("a", "1"), ("b", "2")]),
            "wss://x/ws/s?a=1&b=2"
        );
        assert_eq!(socket_url("http://h", "s", &[]), "ws://h/ws/s");
    }
}
