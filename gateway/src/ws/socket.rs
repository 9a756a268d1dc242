//! One socket's life: attach to the hub, say `connected`, replay what the client
//! missed, then forward live events and accept the client's frames until either side
//! goes away.
//!
//! Resume is gap-free because the order is fixed: subscribe first (in `attach`), then
//! read the log past the client's `last_seq`, then forward live events, dropping any
//! `seq` already sent. The same rule re-reads the log whenever the hub says events
//! may have been missed.

use super::budget::{FrameBudget, Verdict};
use super::hub::{Attachment, Outbound};
use super::{SocketStart, close};
use crate::limits::budget::{self, Budget};
use crate::limits::rest::RateKey;
use crate::limits::shared_rate::{self, Limit};
use crate::limits::sockets::SocketGuard;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use shared::backend::{Rate, split_batch};
use shared::clock;
use shared::ids::SessionId;
use shared::model::{AcceptOutcome, StoredMessage};
use shared::telemetry::{self, TraceContext};
use shared::wire::{
    ClientFrame, ErrorCode, Protocol, Status, StatusEvent, StreamEvent, parse_client_frame,
};
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// The close reason of a socket whose client did not keep up (1013).
const TOO_SLOW: &str = "client too slow";
/// Longest a closing socket waits to send its close frame, then for the client's.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

fn log_unavailable(error: shared::backend::StoreError) -> Closed {
    tracing::warn!(%error, "could not read the event log");
    Closed(Some((close::RESTARTING, "unavailable")))
}

/// The socket ended; carry the close code to send, if any.
struct Closed(Option<(u16, &'static str)>);

type Step = Result<(), Closed>;

/// Renders an event for a protocol; `None` when the protocol has no such event.
pub fn render(event: &StreamEvent, protocol: Protocol) -> Option<String> {
    match protocol {
        Protocol::Stream => Some(event.to_json()),
        Protocol::Simple => event.to_simple().map(|e| e.to_json()),
    }
}

struct Connection {
    state: AppState,
    socket: WebSocket,
    session_id: SessionId,
    protocol: Protocol,
    /// Highest `seq` sent (or skipped as already known) on this socket.
    last_sent: u64,
    limiter: RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>,
    /// Every frame counts against this, before it is even parsed (`budget.rs`).
    frames: FrameBudget,
    last_heard: Instant,
    /// The socket's token: closed with 4401 when it expires unrefreshed (`token.rs`).
    auth: super::token::SocketAuth,
    /// Whom its messages count against across pods.
    payer: RateKey,
    /// `payer`'s token budget; checked before each message is queued.
    budget: Budget,
    /// `payer`'s message rate across pods (`MESSAGES_PER_MINUTE_PER_USER` or
    /// `..._PER_ADDRESS`); `None`: unlimited.
    shared_rate: Option<Rate>,
    /// `chat_events_forwarded_total` for this protocol, looked up once.
    forwarded: metrics::Counter,
}

/// A socket attached to its session, ready for the rest of its life.
pub struct Live {
    conn: Connection,
    resume_from: Option<u64>,
    _open: shared::metrics::SocketGauge,
}

/// Sets the socket up and attaches it to the hub; `None` when that failed (the
/// socket was closed with 1012).
pub async fn open(
    state: AppState,
    socket: WebSocket,
    start: SocketStart,
) -> Option<(Live, Attachment)> {
    let limits = &state.settings.limits;
    let open = shared::metrics::socket_opened(start.protocol);
    let quota = Quota::per_minute(nonzero(limits.ws_messages_per_minute))
        .allow_burst(nonzero(limits.ws_message_burst));
    let mut conn = Connection {
        forwarded: shared::metrics::events_forwarded_counter(start.protocol),
        session_id: start.session_id,
        protocol: start.protocol,
        last_sent: 0,
        limiter: RateLimiter::direct(quota),
        frames: FrameBudget::new(
            limits.ws_frames_per_minute,
            limits.ws_frame_burst,
            limits.ws_frame_overruns,
        ),
        last_heard: Instant::now(),
        shared_rate: state.security.settings.message_rate(&start.payer),
        auth: start.auth,
        payer: start.payer,
        budget: start.budget,
        socket,
        state: state.clone(),
    };
    match Box::pin(state.hub.attach(&conn.session_id)).await {
        Ok(attachment) => {
            let live = Live {
                conn,
                resume_from: start.resume_from,
                _open: open,
            };
            Some((live, attachment))
        }
        Err(error) => {
            tracing::warn!(%error, "could not subscribe a socket");
            conn.close(close::RESTARTING, "unavailable").await;
            None
        }
    }
}

impl Live {
    /// Runs the socket to its end in a task of its own, holding `guard` until then.
    /// That task holds the socket's state and its loop and little else: an idle
    /// socket's memory is mostly this task, and the upgrade's task (axum's wrapper,
    /// the set-up's captures and futures, 4.3 KiB) ends here instead of living as
    /// long. (The state is used in place: an `async fn` taking it by value would
    /// hold it twice, as its argument and as its local.)
    pub fn spawn(mut self, attachment: Attachment, guard: SocketGuard) {
        tokio::spawn(async move {
            self.run(attachment).await;
            drop(guard);
        });
    }

    async fn run(&mut self, attachment: Attachment) {
        let outcome = self.conn.serve(attachment, self.resume_from).await;
        if let Err(Closed(Some((code, reason)))) = outcome {
            if reason == TOO_SLOW {
                shared::metrics::slow_client_closed();
            }
            self.conn.close(code, reason).await;
        }
    }
}

/// A frame over the size limit is answered with 1009, a text frame that is not UTF-8
/// with 1007 (the protocol leaves no way to keep such a socket); other read errors mean
/// the peer is gone.
fn read_failure(error: axum::Error) -> Closed {
    match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(error) => match *error {
            tungstenite::Error::Capacity(_) => Closed(Some((close::TOO_BIG, "message too big"))),
            tungstenite::Error::Utf8(_) => Closed(Some((close::INVALID_DATA, "text is not UTF-8"))),
            _ => Closed(None),
        },
        Err(_) => Closed(None),
    }
}

/// A write that takes longer than `limit` means the peer stopped reading.
async fn within(
    limit: Duration,
    write: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Step {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Closed(None)),
        Err(_) => Err(Closed(Some((close::OVERLOADED, TOO_SLOW)))),
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Connection {
    async fn serve(&mut self, mut attachment: Attachment, resume_from: Option<u64>) -> Step {
        let _ = Box::pin(self.state.backend.touch_session(&self.session_id)).await;
        Box::pin(self.greet(resume_from)).await?;
        let interval = self.state.settings.ping_interval();
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        // One shutdown waiter and one expiry timer for the socket's life (the timer
        // reset when a refreshed token moves the deadline): made anew in every turn of
        // the loop they were a waiter registration and a timer insert and removal for
        // every event forwarded.
        let shutdown = self.state.shutdown.clone();
        let stopping = shutdown.cancelled();
        tokio::pin!(stopping);
        let mut armed = self.auth.deadline();
        let expiry = tokio::time::sleep_until(armed.unwrap_or_else(Instant::now));
        tokio::pin!(expiry);
        loop {
            let deadline = self.auth.deadline();
            if deadline != armed {
                if let Some(at) = deadline {
                    expiry.as_mut().reset(at);
                }
                armed = deadline;
            }
            // Every arm's work is boxed: a task is as big as its largest await
            // state, and an idle socket waits in the select (the boxed work is
            // allocated only while it runs; inline it made every socket 600 bytes
            // bigger).
            tokio::select! {
                _ = &mut stopping => {
                    // Send what already arrived for this socket, then ask the client
                    // to reconnect elsewhere.
                    Box::pin(self.deliver(None, &mut attachment)).await?;
                    return Err(Closed(Some((close::RESTARTING, "instance restarting"))));
                }
                outbound = attachment.rx.recv() => match outbound {
                    Some(outbound) => Box::pin(self.deliver(Some(outbound), &mut attachment)).await?,
                    None => {
                        let reason = if attachment.overflowed() { TOO_SLOW } else { "overloaded" };
                        return Err(Closed(Some((close::OVERLOADED, reason))));
                    }
                },
                frame = self.socket.recv() => match frame {
                    None | Some(Ok(Message::Close(_))) => return Err(Closed(None)),
                    Some(Err(error)) => return Err(read_failure(error)),
                    Some(Ok(frame)) => Box::pin(self.on_frame(frame)).await?,
                },
                _ = &mut expiry, if armed.is_some() => {
                    Box::pin(self.reply_error(ErrorCode::Unauthorized, "The token expired; reconnect with a fresh one (or refresh it in time with {\"type\":\"auth\"}).", None)).await?;
                    return Err(Closed(Some((close::UNAUTHORIZED, "token expired"))));
                }
                _ = ping.tick() => {
                    if self.last_heard.elapsed() > interval * 2 {
                        return Err(Closed(Some((close::NORMAL, "no answer to pings"))));
                    }
                    Box::pin(self.send(Message::Ping(Default::default()))).await?;
                }
            }
        }
    }

    /// Sends `first` and whatever else is queued for the socket in one write.
    async fn deliver(&mut self, first: Option<Outbound>, attachment: &mut Attachment) -> Step {
        if let Some(outbound) = first {
            self.on_outbound(outbound).await?;
        }
        while let Ok(more) = attachment.rx.try_recv() {
            self.on_outbound(more).await?;
        }
        self.flush().await
    }

    /// A frame from the client: counted against the budget, then handled.
    async fn on_frame(&mut self, frame: Message) -> Step {
        self.last_heard = Instant::now();
        if !self.within_budget().await? {
            return Ok(());
        }
        match frame {
            Message::Text(text) => Box::pin(self.on_text(&text)).await,
            Message::Binary(_) => {
                self.reply_error(
                    ErrorCode::UnsupportedFrame,
                    "Binary frames are not supported; send JSON text frames.",
                    None,
                )
                .await
            }
            // Answered by the WebSocket layer itself; counted above.
            Message::Ping(_) | Message::Pong(_) => Ok(()),
            // `serve` ends on a Close before calling this; kept for completeness.
            Message::Close(_) => Err(Closed(None)),
        }
    }

    /// Counts a frame against the socket's budget: `false` when it must not be
    /// handled (it was answered `rate_limited`), an error when the socket must close.
    async fn within_budget(&mut self) -> Result<bool, Closed> {
        match self.frames.frame() {
            Verdict::Take => Ok(true),
            Verdict::Refuse { retry_after_ms } => {
                self.reply_error(
                    ErrorCode::RateLimited,
                    "Too many frames; slow down or this socket will be closed.",
                    Some(retry_after_ms),
                )
                .await?;
                Ok(false)
            }
            Verdict::Close => Err(Closed(Some((
                close::TOO_MANY_CONNECTIONS,
                "too many frames",
            )))),
        }
    }

    /// `connected`, then the replay past `resume_from`; with no `resume_from`, the
    /// events of the answer in progress, if there is one (`rejoin`).
    async fn greet(&mut self, resume_from: Option<u64>) -> Step {
        let backend = self.state.backend.clone();
        let id = self.session_id.clone();
        let (replay, replay_from) = match resume_from {
            Some(from) => (Box::pin(backend.replay(&id, from)).await, from),
            None => match Box::pin(super::rejoin::replay(&backend, &id)).await {
                Ok((replay, from)) => (Ok(replay), from),
                Err(error) => (Err(error), 0),
            },
        };
        let replay = replay.map_err(log_unavailable)?;
        self.last_sent = replay_from.min(replay.last_seq);
        let connected = StreamEvent::Status(StatusEvent {
            seq: None,
            status: Status::Connected,
            session_id: Some(self.session_id.clone()),
            message_id: None,
            timestamp: clock::now_rfc3339(),
            last_seq: Some(replay.last_seq),
            recovered: resume_from.map(|_| replay.recovered),
        });
        self.send_event(&connected).await?;
        for line in &replay.events {
            self.forward_line(line).await?;
        }
        self.flush().await
    }

    async fn on_outbound(&mut self, outbound: Outbound) -> Step {
        match outbound {
            Outbound::Events(batch) => {
                for (_, line) in split_batch(&batch) {
                    self.forward_line(line).await?;
                }
                Ok(())
            }
            Outbound::Resync => {
                let replay = Box::pin(self.state.backend.replay(&self.session_id, self.last_sent))
                    .await
                    .map_err(|_| Closed(Some((close::RESTARTING, "unavailable"))))?;
                for line in &replay.events {
                    self.forward_line(line).await?;
                }
                Ok(())
            }
            Outbound::SessionDeleted => {
                Err(Closed(Some((close::SESSION_NOT_FOUND, "session deleted"))))
            }
        }
    }

    /// Sends one logged event unless this socket already has it.
    async fn forward_line(&mut self, line: &str) -> Step {
        let Some(seq) = shared::backend::seq_of(line) else {
            return Ok(());
        };
        if seq <= self.last_sent {
            return Ok(());
        }
        self.last_sent = seq;
        self.forwarded.increment(1);
        match self.protocol {
            Protocol::Stream => self.feed(Message::Text(Utf8Bytes::from(line))).await,
            Protocol::Simple => {
                let Ok(event) = serde_json::from_str::<StreamEvent>(line) else {
                    tracing::warn!("unreadable event in the log");
                    return Ok(());
                };
                match event.to_simple() {
                    Some(simple) => self.feed(Message::Text(simple.to_json().into())).await,
                    None => Ok(()),
                }
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Step {
        match parse_client_frame(text) {
            Err(error) => {
                let message = match error.code() {
                    ErrorCode::InvalidJson => "The frame is not valid JSON.",
                    _ => {
                        "Send {\"message\": \"...\"} or a frame with a known \"type\" (cancel, ping, auth)."
                    }
                };
                self.reply_error(error.code(), message, None).await
            }
            Ok(ClientFrame::Ping) => self.send_event(&StreamEvent::Pong {}).await,
            Ok(ClientFrame::Message {
                text,
                client_message_id,
            }) => self.on_message(text, client_message_id).await,
            Ok(ClientFrame::Cancel) => self.on_cancel().await,
            Ok(ClientFrame::Auth { token }) => match self.auth.refresh(&self.state, &token) {
                Ok(()) => {
                    let event = super::token::authenticated(&self.session_id);
                    self.send_event(&event).await
                }
                Err((code, message)) => self.reply_error(code, &message, None).await,
            },
        }
    }

    /// Stops the generation in progress, wherever it runs; its `complete` (marked
    /// `cancelled`) and `ready` follow as usual. Nothing is sent when idle.
    async fn on_cancel(&mut self) -> Step {
        match self.state.backend.cancel(&self.session_id).await {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "could not cancel");
                self.reply_error(
                    ErrorCode::Unavailable,
                    "The generation could not be cancelled right now; please retry.",
                    None,
                )
                .await
            }
        }
    }

    /// A user message: one trace of its own, whose root is this span (not the
    /// socket's): the worker's spans for the message continue it, through the trace
    /// context the message is queued with.
    async fn on_message(&mut self, text: String, client_message_id: Option<String>) -> Step {
        let span = tracing::info_span!(
            parent: None,
            "chat.message",
            session_id = %self.session_id,
            message_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        telemetry::record_trace_id(&span);
        self.accept(text, client_message_id, &span)
            .instrument(span.clone())
            .await
    }

    async fn accept(
        &mut self,
        text: String,
        client_message_id: Option<String>,
        span: &tracing::Span,
    ) -> Step {
        let limits = &self.state.settings.limits;
        let rejected = |code: ErrorCode| span.record("outcome", code.as_str());
        if text.trim().is_empty() {
            rejected(ErrorCode::EmptyMessage);
            return self
                .reply_error(ErrorCode::EmptyMessage, "The message is empty.", None)
                .await;
        }
        let max_chars = limits.max_message_chars as usize;
        if text.chars().count() > max_chars {
            rejected(ErrorCode::MessageTooLong);
            let message = format!("The message is longer than {max_chars} characters.");
            return self
                .reply_error(ErrorCode::MessageTooLong, &message, None)
                .await;
        }
        // The socket's own bucket first (no round trip), then the caller's across pods.
        let over = match self.limiter.check() {
            Err(not_until) => Some(not_until.wait_time_from(DefaultClock::default().now())),
            Ok(()) => match self.shared_rate {
                Some(rate) => {
                    shared_rate::check(&self.state.backend, Limit::Messages, rate, &self.payer)
                        .await
                }
                None => None,
            },
        };
        if let Some(wait) = over {
            rejected(ErrorCode::RateLimited);
            return self
                .reply_error(
                    ErrorCode::RateLimited,
                    "Too many messages; wait before sending more.",
                    Some(wait.as_millis().max(1) as u64),
                )
                .await;
        }
        // Who pays for the answer goes in with the message (none without a budget).
        let mut charge = None;
        if !self.budget.is_unlimited() {
            // Before the message is queued, so a refused one never reaches the model.
            match budget::check(&self.state.backend, &self.payer, self.budget).await {
                Ok(Some(exceeded)) => {
                    rejected(ErrorCode::BudgetExceeded);
                    return self
                        .reply_error(
                            ErrorCode::BudgetExceeded,
                            &exceeded.message(),
                            Some(exceeded.retry_after_ms()),
                        )
                        .await;
                }
                Ok(None) => charge = Some(self.budget.charge(&self.payer)),
                Err(error) => {
                    // Budgets guard the bill: without the store, refuse rather than guess.
                    tracing::error!(%error, "could not check a token budget");
                    rejected(ErrorCode::Unavailable);
                    return self
                        .reply_error(
                            ErrorCode::Unavailable,
                            "The message could not be accepted right now; please resend it.",
                            None,
                        )
                        .await;
                }
            }
        }
        let max_pending = limits.max_pending_messages;
        let message = StoredMessage::user(text);
        span.record("message_id", tracing::field::display(message.id));
        let outcome = self
            .state
            .backend
            .accept_message(
                &self.session_id,
                &message,
                &TraceContext::of(span),
                client_message_id.as_deref(),
                max_pending,
                charge.as_ref(),
            )
            .await;
        match &outcome {
            Ok(AcceptOutcome::Accepted(_)) => span.record("outcome", "accepted"),
            Ok(AcceptOutcome::Duplicate(_)) => span.record("outcome", "duplicate"),
            Ok(AcceptOutcome::TooManyPending) => rejected(ErrorCode::TooManyPending),
            Ok(AcceptOutcome::SessionNotFound) => rejected(ErrorCode::SessionNotFound),
            Err(_) => rejected(ErrorCode::Unavailable),
        };
        match outcome {
            Ok(AcceptOutcome::Accepted(_)) => {
                shared::metrics::message_accepted();
                tracing::debug!("message queued");
                Ok(())
            }
            Ok(AcceptOutcome::Duplicate(_)) => Ok(()),
            Ok(AcceptOutcome::TooManyPending) => {
                let message = format!(
                    "{max_pending} messages are already waiting for an answer; wait for one before sending more."
                );
                self.reply_error(ErrorCode::TooManyPending, &message, None)
                    .await
            }
            Ok(AcceptOutcome::SessionNotFound) => {
                self.reply_error(
                    ErrorCode::SessionNotFound,
                    "The session no longer exists.",
                    None,
                )
                .await?;
                Err(Closed(Some((
                    close::SESSION_NOT_FOUND,
                    "session not found",
                ))))
            }
            Err(error) => {
                tracing::error!(%error, "could not accept a message");
                self.reply_error(
                    ErrorCode::Unavailable,
                    "The message could not be accepted right now; please resend it.",
                    None,
                )
                .await
            }
        }
    }

    /// A per-socket error reply (no `seq`: it is not part of the session's log).
    async fn reply_error(
        &mut self,
        code: ErrorCode,
        message: &str,
        retry_after_ms: Option<u64>,
    ) -> Step {
        shared::metrics::message_rejected(code);
        let mut event = StreamEvent::error(code, message, None);
        if let StreamEvent::Error(e) = &mut event {
            e.retry_after_ms = retry_after_ms;
        }
        self.send_event(&event).await
    }

    async fn send_event(&mut self, event: &StreamEvent) -> Step {
        match render(event, self.protocol) {
            Some(text) => self.send(Message::Text(text.into())).await,
            None => Ok(()),
        }
    }

    /// Sends one frame now.
    async fn send(&mut self, message: Message) -> Step {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a frame in the socket's write buffer (written out when it fills, or at
    /// the next `flush`), so a burst of events costs one write, not one per event.
    async fn feed(&mut self, message: Message) -> Step {
        let limit = self.send_timeout();
        within(limit, self.socket.feed(message)).await
    }

    async fn flush(&mut self) -> Step {
        let limit = self.send_timeout();
        within(limit, self.socket.flush()).await
    }

    fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.state.settings.limits.ws_send_timeout_secs)
    }
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        if tokio::time::timeout(CLOSE_WAIT, self.socket.send(frame))
            .await
            .is_err()
        {
            return;
        }
        // The closing handshake (RFC 6455 §7.1.1): read, and drop, what the client still
        // sends until its Close. Dropping the connection with its frames unread makes the
        // kernel answer with a reset, which can destroy our close frame (4429 to a
        // flooding client) before the client reads it.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(frame)) = self.socket.recv().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}
