//! A bare stream-protocol socket for the observability tests.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct Socket(WebSocketStream<MaybeTlsStream<TcpStream>>);

/// How long any one expected event may take (waiting, not speed).
const EVENT_WITHIN: Duration = Duration::from_secs(30);

impl Socket {
    /// Opens `/ws/{session}` on `gateway` (host:port) and reads `connected`.
    pub async fn open(gateway: &str, session: &str) -> Self {
        let url = format!("ws://{gateway}/ws/{session}?protocol=stream");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("socket opens");
        let mut socket = Self(ws);
        let connected = socket.next().await;
        assert_eq!(connected["status"], "connected", "{connected}");
        socket
    }

    pub async fn send_text(&mut self, text: &str) {
        self.0
            .send(Message::Text(text.into()))
            .await
            .expect("send frame");
    }

    /// The next JSON event.
    pub async fn next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(EVENT_WITHIN, self.0.next())
                .await
                .expect("an event within the deadline")
                .expect("socket open")
                .expect("frame reads");
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).expect("events are JSON");
            }
        }
    }

    /// Reads events until one matches; returns it.
    pub async fn until(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let event = self.next().await;
            if matches(&event) {
                return event;
            }
        }
    }

    /// Reads until `ready` and returns the `complete` (or `error`) before it.
    pub async fn answer(&mut self) -> Value {
        let mut outcome = Value::Null;
        loop {
            let event = self.next().await;
            match event["type"].as_str() {
                Some("complete" | "error") => outcome = event,
                Some("status") if event["status"] == "ready" => return outcome,
                _ => {}
            }
        }
    }
}
