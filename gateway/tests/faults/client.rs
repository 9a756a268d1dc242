//! A chat client that behaves as a careful real one: it resumes with `last_seq` on any
//! gateway when its socket drops, resends an unconfirmed message with the same
//! `client_message_id`, and retries when the gateway says `unavailable`. It records
//! everything the fault suite's verdict needs: outcomes per message, seq gaps and
//! repeats, and whether each `complete` equals the chunks that preceded it.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use std::time::Instant as StdInstant;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a message ended, as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete(String),
    Error(String),
    /// Nothing within the deadline.
    Unanswered,
}

/// What went wrong across a client's run (all zero when the guarantees hold).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub messages: u64,
    pub completes: u64,
    pub errors: u64,
    pub unanswered: u64,
    pub duplicate_outcomes: u64,
    pub seq_gaps: u64,
    pub complete_mismatches: u64,
    pub reconnects: u64,
    pub restarts_seen: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.messages += other.messages;
        self.completes += other.completes;
        self.errors += other.errors;
        self.unanswered += other.unanswered;
        self.duplicate_outcomes += other.duplicate_outcomes;
        self.seq_gaps += other.seq_gaps;
        self.complete_mismatches += other.complete_mismatches;
        self.reconnects += other.reconnects;
        self.restarts_seen += other.restarts_seen;
    }
}

/// One message as the client saw it, for the audit and the timing checks.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub text: String,
    pub outcome: Outcome,
    /// When it was first sent.
    pub sent_at: StdInstant,
    /// Its first `typing` status: a worker started on it.
    pub started_at: Option<StdInstant>,
    /// Its `complete` or `error`.
    pub done_at: Option<StdInstant>,
    /// A `restarted` status came: another worker took it over.
    pub restarted: bool,
}

impl Exchange {
    /// From the first `typing` to the outcome: how long answering took once begun.
    pub fn answer_time(&self) -> Option<Duration> {
        Some(self.done_at?.saturating_duration_since(self.started_at?))
    }
}

pub struct ChatClient {
    gateways: Vec<String>,
    current: usize,
    pub session_id: String,
    socket: Option<Socket>,
    last_seq: u64,
    known: HashSet<String>,
    outcomes: HashMap<String, u64>,
    streamed: HashMap<String, String>,
    pub tally: Tally,
    /// Every message sent, in order.
    pub exchanges: Vec<Exchange>,
}

impl ChatClient {
    /// Creates a session on the first gateway that answers.
    pub async fn new(gateways: Vec<String>, start: usize) -> Self {
        worker::llm::install_crypto_provider();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut current = start % gateways.len();
        let session_id = loop {
            let url = format!("http://{}/api/create-session", gateways[current]);
            match http.post(url).send().await {
                Ok(response) if response.status().as_u16() == 201 => {
                    let body: Value = response.json().await.expect("json");
                    break body["session_id"].as_str().expect("id").to_owned();
                }
                _ => {
                    assert!(Instant::now() < deadline, "no gateway creates sessions");
                    current = (current + 1) % gateways.len();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Self {
            gateways,
            current,
            session_id,
            socket: None,
            last_seq: 0,
            known: HashSet::new(),
            outcomes: HashMap::new(),
            streamed: HashMap::new(),
            tally: Tally::default(),
            exchanges: Vec::new(),
        }
    }

    async fn connect(&mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            let url = format!(
                "ws://{}/ws/{}?protocol=stream&last_seq={}",
                self.gateways[self.current], self.session_id, self.last_seq
            );
            if let Ok(Ok((mut socket, _))) = tokio::time::timeout(
                Duration::from_secs(3),
                tokio_tungstenite::connect_async(&url),
            )
            .await
            {
                // `connected` first; anything else means the attach failed.
                if let Ok(Some(Ok(Message::Text(text)))) =
                    tokio::time::timeout(Duration::from_secs(5), socket.next()).await
                {
                    let event: Value = serde_json::from_str(&text).unwrap_or_default();
                    if event["status"] == "connected" {
                        self.socket = Some(socket);
                        return true;
                    }
                }
            }
            self.current = (self.current + 1) % self.gateways.len();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn drop_socket(&mut self) {
        self.socket = None;
        self.tally.reconnects += 1;
        self.current = (self.current + 1) % self.gateways.len();
    }

    /// Sends `text` and waits for its one outcome, resuming and resending as needed.
    pub async fn exchange(&mut self, text: &str, within: Duration) -> Outcome {
        self.exchanges.push(Exchange {
            text: text.to_owned(),
            outcome: Outcome::Unanswered,
            sent_at: StdInstant::now(),
            started_at: None,
            done_at: None,
            restarted: false,
        });
        let outcome = self.exchange_inner(text, within).await;
        let record = self.exchanges.last_mut().expect("just pushed");
        record.outcome = outcome.clone();
        outcome
    }

    async fn exchange_inner(&mut self, text: &str, within: Duration) -> Outcome {
        self.tally.messages += 1;
        let deadline = Instant::now() + within;
        let client_message_id = uuid::Uuid::new_v4().to_string();
        let frame = json!({"message": text, "client_message_id": client_message_id}).to_string();
        let mut mine: Option<String> = None;
        let mut need_send = true;
        loop {
            if Instant::now() >= deadline {
                self.tally.unanswered += 1;
                return Outcome::Unanswered;
            }
            if self.socket.is_none() && !self.connect(deadline).await {
                continue;
            }
            if need_send && mine.is_none() {
                let socket = self.socket.as_mut().expect("connected");
                if socket
                    .send(Message::Text(frame.clone().into()))
                    .await
                    .is_err()
                {
                    self.drop_socket();
                    continue;
                }
                need_send = false;
            }
            let socket = self.socket.as_mut().expect("connected");
            let next = tokio::time::timeout(Duration::from_secs(2), socket.next()).await;
            let event: Value = match next {
                Err(_) => {
                    // Quiet for a while before our message showed up: it may never have
                    // been accepted; a resend is idempotent.
                    if mine.is_none() {
                        need_send = true;
                    }
                    continue;
                }
                Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str(&text).expect("JSON"),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(_) => {
                    self.drop_socket();
                    if mine.is_none() {
                        need_send = true;
                    }
                    continue;
                }
            };
            let Some(seq) = event["seq"].as_u64() else {
                // A per-socket reply: only `unavailable` is expected under faults.
                if event["type"] == "error" && event["code"] == "unavailable" {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    need_send = mine.is_none();
                    continue;
                }
                panic!("unexpected per-socket event under faults: {event}");
            };
            if seq <= self.last_seq {
                continue; // replayed and already seen
            }
            if seq != self.last_seq + 1 {
                self.tally.seq_gaps += 1;
            }
            self.last_seq = seq;
            let Some(message_id) = event["message_id"].as_str().map(str::to_owned) else {
                continue;
            };
            if mine.is_none() && self.known.insert(message_id.clone()) {
                mine = Some(message_id.clone());
            }
            let is_mine = mine.as_deref() == Some(message_id.as_str());
            let record = self.exchanges.last_mut().expect("recorded");
            match (event["type"].as_str(), event["status"].as_str()) {
                (Some("status"), Some("typing")) if is_mine => {
                    record.started_at.get_or_insert_with(StdInstant::now);
                }
                (Some("status"), Some("restarted")) => {
                    self.tally.restarts_seen += 1;
                    self.streamed.remove(&message_id);
                    if is_mine {
                        record.restarted = true;
                    }
                }
                (Some("chunk"), _) => {
                    let text = event["content"].as_str().unwrap_or_default();
                    self.streamed
                        .entry(message_id.clone())
                        .or_default()
                        .push_str(text);
                }
                (Some("complete" | "error"), _) => {
                    let count = self.outcomes.entry(message_id.clone()).or_default();
                    *count += 1;
                    if *count > 1 {
                        self.tally.duplicate_outcomes += 1;
                        continue;
                    }
                    if !is_mine {
                        continue;
                    }
                    record.done_at = Some(StdInstant::now());
                    if event["type"] == "complete" {
                        let full = event["full_response"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        let streamed = self.streamed.remove(&message_id).unwrap_or_default();
                        if streamed != full {
                            self.tally.complete_mismatches += 1;
                        }
                        self.tally.completes += 1;
                        return Outcome::Complete(full);
                    }
                    self.tally.errors += 1;
                    return Outcome::Error(event["code"].as_str().unwrap_or_default().to_owned());
                }
                _ => {}
            }
        }
    }

    /// Reads for `quiet` more, counting any late duplicate outcome.
    pub async fn drain(&mut self, quiet: Duration) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(quiet, socket.next()).await
        {
            let event: Value = serde_json::from_str(&text).unwrap_or_default();
            let (Some(seq), Some(id)) = (event["seq"].as_u64(), event["message_id"].as_str())
            else {
                continue;
            };
            if seq <= self.last_seq {
                continue;
            }
            self.last_seq = seq;
            if matches!(event["type"].as_str(), Some("complete" | "error")) {
                let count = self.outcomes.entry(id.to_owned()).or_default();
                *count += 1;
                if *count > 1 {
                    self.tally.duplicate_outcomes += 1;
                }
            }
        }
    }
}
