//! The stream and simple protocols: send messages (open or closed loop), match every
//! event to the message it answers, time `typing`, the first `chunk` and `complete`,
//! and check the contract on the way.
//!
//! Matching: a session answers its messages in the order they were accepted, so the
//! first event with a new `message_id` belongs to the oldest message still waiting.
//! A per-socket `error` (no `seq`) refuses a frame on arrival; as refusals come from
//! "too many, too fast", it is charged to the newest message still waiting. The
//! simple protocol has no ids: `typing` starts the oldest waiting message.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant as TokioInstant;
use tokio_tungstenite::tungstenite::Message;

use super::client::Ws;
use super::events::{Event, Kind};
use super::live::Live;
use super::seq::SeqChecker;
use super::session::{Ctx, SessionResult, send_text};
use super::settings::Mode;
use super::stats::{MessageTimes, Outcome, Stats};

/// A message sent and not yet matched to its answer.
struct Waiting {
    sent_at: Instant,
}

/// The message being answered.
struct Current {
    id: String,
    sent_at: Instant,
    times: MessageTimes,
    /// Chunks so far (since the last restart), to compare with `complete`.
    text: String,
    outcome: Option<Outcome>,
}

impl Current {
    fn new(id: String, waiting: Waiting) -> Self {
        Self {
            id,
            sent_at: waiting.sent_at,
            times: MessageTimes::default(),
            text: String::new(),
            outcome: None,
        }
    }
}

struct Driver<'a> {
    ctx: &'a Ctx,
    mode: Mode,
    waiting: VecDeque<Waiting>,
    current: Option<Current>,
    seq: SeqChecker,
    /// When the next message goes out (`None`: closed loop, waiting for an answer).
    next_send: Option<Instant>,
    sent: u64,
    result: &'a mut SessionResult,
}

/// Runs the session's messages to their end.
pub async fn drive(
    ctx: &Ctx,
    index: usize,
    ws: &mut Ws,
    last_seq: u64,
    result: &mut SessionResult,
) {
    let started = Instant::now();
    let mut driver = Driver {
        ctx,
        mode: ctx.settings.mode,
        waiting: VecDeque::new(),
        current: None,
        seq: SeqChecker::starting_after(last_seq),
        next_send: Some(started + ctx.settings.first_send_phase(index)),
        sent: 0,
        result,
    };
    let session_id = driver.result.session_id.clone().unwrap_or_default();
    let frame = if driver.mode == Mode::Simple {
        json!({"message": ctx.settings.text, "user_id": format!("loadtest-{index}"), "session_id": session_id}).to_string()
    } else {
        json!({ "message": ctx.settings.text }).to_string()
    };
    let mut stop = ctx.stop.clone();
    let timeout = ctx.message_timeout();
    loop {
        let can_send = ctx.may_send(driver.sent);
        if !can_send && driver.waiting.is_empty() && driver.current.is_none() {
            break;
        }
        let send_at = driver.next_send.filter(|_| can_send);
        let oldest = driver
            .current
            .as_ref()
            .map(|c| c.sent_at)
            .or_else(|| driver.waiting.front().map(|w| w.sent_at));
        tokio::select! {
            biased;
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => driver.on_text(&text),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    driver.abandon("disconnected");
                    return driver.finish();
                }
                Some(Ok(_)) => {}
            },
            _ = sleep_until(send_at) => {
                let now = Instant::now();
                if !send_text(ws, frame.clone()).await {
                    driver.abandon("disconnected");
                    return driver.finish();
                }
                driver.sent += 1;
                driver.result.stats.sent += 1;
                Live::add(&ctx.live.messages_sent, 1);
                driver.waiting.push_back(Waiting { sent_at: now });
                driver.next_send = ctx.settings.rate.map(|rate| {
                    send_at.unwrap_or(now) + Duration::from_secs_f64(1.0 / rate)
                });
            }
            _ = sleep_until(oldest.map(|t| t + timeout)) => driver.time_out_oldest(),
            _ = stop.changed() => {}
        }
    }
    driver.finish();
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(TokioInstant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

impl Driver<'_> {
    fn stats(&mut self) -> &mut Stats {
        &mut self.result.stats
    }

    fn finish(&mut self) {
        let report = self.seq.finish();
        self.result.stats.seq.merge(&report);
    }

    /// A message reached its outcome (or gave up): record it and, in closed loop,
    /// schedule the next one.
    fn done(&mut self, times: &MessageTimes, outcome: Outcome) {
        let failed = outcome != Outcome::Completed;
        self.result.stats.message(times, &outcome);
        Live::add(&self.ctx.live.messages_done, 1);
        if failed {
            Live::add(&self.ctx.live.errors, 1);
        }
        if self.ctx.settings.rate.is_none() {
            self.next_send =
                Some(Instant::now() + Duration::from_millis(self.ctx.settings.think_ms));
        }
    }

    /// Every message still open ends with `code` (the socket went away).
    fn abandon(&mut self, code: &str) {
        if let Some(current) = self.current.take() {
            self.done(&current.times, Outcome::Failed(code.into()));
        }
        while self.waiting.pop_front().is_some() {
            self.done(&MessageTimes::default(), Outcome::Failed(code.into()));
        }
    }

    fn time_out_oldest(&mut self) {
        if let Some(current) = self.current.take() {
            self.done(&current.times, Outcome::TimedOut);
        } else if self.waiting.pop_front().is_some() {
            self.done(&MessageTimes::default(), Outcome::TimedOut);
        }
    }

    fn on_text(&mut self, text: &str) {
        let now = Instant::now();
        let live = &self.ctx.live;
        Live::add(&live.events, 1);
        Live::add(&live.bytes, text.len() as u64);
        let event = match Event::parse(text) {
            Ok(event) => event,
            Err(_) => {
                self.ctx.error(&mut self.result.stats, "bad_event");
                return;
            }
        };
        if let Some(seq) = event.seq {
            self.seq.observe(seq);
        }
        match self.mode {
            Mode::Simple => self.on_simple(&event, now),
            _ => self.on_stream(&event, now),
        }
    }

    /// A frame refused on arrival: charged to the newest waiting message.
    fn on_refused(&mut self, code: &str) {
        if self.waiting.pop_back().is_some() {
            self.done(&MessageTimes::default(), Outcome::Rejected(code.to_owned()));
        } else {
            self.ctx.error(&mut self.result.stats, code);
        }
    }

    fn on_stream(&mut self, event: &Event<'_>, now: Instant) {
        let kind = event.kind();
        match kind {
            Kind::Error {
                code,
                session_event: false,
            } => return self.on_refused(code),
            Kind::Connected { .. } | Kind::Pong | Kind::Other | Kind::Assistant => return,
            _ => {}
        }
        let Some(id) = event.message_id.as_deref() else {
            self.stats().unexpected_events += 1;
            return;
        };
        if self.current.as_ref().is_none_or(|c| c.id != id) {
            if let Some(previous) = self.current.take() {
                // A new message's events before the previous one's `ready`.
                self.stats().order_violations += 1;
                let outcome = previous
                    .outcome
                    .clone()
                    .unwrap_or_else(|| Outcome::Failed("incomplete".into()));
                self.done(&previous.times, outcome);
            }
            match self.waiting.pop_front() {
                Some(waiting) => self.current = Some(Current::new(id.to_owned(), waiting)),
                None => {
                    self.stats().unexpected_events += 1;
                    return;
                }
            }
        }
        let keep_arrivals = self.ctx.keep_arrivals;
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let since = now - current.sent_at;
        let mut violation = false;
        match kind {
            Kind::Typing => {
                violation = current.times.chunks > 0 || current.outcome.is_some();
                current.times.typing.get_or_insert(since);
            }
            Kind::Restarted => {
                self.result.stats.restarts += 1;
                current.text.clear();
            }
            Kind::Chunk(content) => {
                violation = current.outcome.is_some();
                current.times.first_chunk.get_or_insert(since);
                current.times.chunks += 1;
                current.times.bytes += content.len() as u64;
                current.text.push_str(content);
                Live::add(&self.ctx.live.chunks, 1);
                if keep_arrivals && let Some(seq) = event.seq {
                    self.result.chunk_arrivals.push((seq, now));
                }
            }
            Kind::Complete(full) => {
                if current.outcome.is_some() {
                    violation = true;
                } else {
                    current.times.complete = Some(since);
                    current.outcome = Some(Outcome::Completed);
                    if full != current.text {
                        self.result.stats.content_mismatches += 1;
                    }
                }
            }
            Kind::Error { code, .. } => {
                if current.outcome.is_some() {
                    violation = true;
                } else {
                    current.outcome = Some(Outcome::Failed(code.to_owned()));
                }
            }
            Kind::Ready => {
                let Some(current) = self.current.take() else {
                    return;
                };
                let outcome = current.outcome.unwrap_or_else(|| {
                    self.result.stats.order_violations += 1;
                    Outcome::Failed("no_outcome".into())
                });
                self.done(&current.times, outcome);
                return;
            }
            _ => {}
        }
        if violation {
            self.result.stats.order_violations += 1;
        }
        self.result.stats.chunks += u64::from(matches!(kind, Kind::Chunk(_)));
        if let Kind::Chunk(content) = kind {
            self.result.stats.chunk_bytes += content.len() as u64;
        }
    }

    fn on_simple(&mut self, event: &Event<'_>, now: Instant) {
        match event.kind() {
            Kind::Typing => {
                if let Some(previous) = self.current.take() {
                    self.result.stats.order_violations += 1;
                    self.done(&previous.times, Outcome::Failed("incomplete".into()));
                }
                match self.waiting.pop_front() {
                    Some(waiting) => {
                        let mut current = Current::new(String::new(), waiting);
                        current.times.typing = Some(now - current.sent_at);
                        self.current = Some(current);
                    }
                    None => self.result.stats.unexpected_events += 1,
                }
            }
            Kind::Assistant => {
                let current = match self.current.take() {
                    Some(current) => current,
                    None => match self.waiting.pop_front() {
                        // An answer without `typing` first breaks the protocol's order.
                        Some(waiting) => {
                            self.result.stats.order_violations += 1;
                            Current::new(String::new(), waiting)
                        }
                        None => {
                            self.result.stats.unexpected_events += 1;
                            return;
                        }
                    },
                };
                let mut times = current.times;
                times.complete = Some(now - current.sent_at);
                times.chunks = 1;
                let bytes = event.message.as_deref().map_or(0, str::len) as u64;
                times.bytes = bytes;
                self.result.stats.chunks += 1;
                self.result.stats.chunk_bytes += bytes;
                Live::add(&self.ctx.live.chunks, 1);
                self.done(&times, Outcome::Completed);
            }
            Kind::Error { code, .. } => match self.current.take() {
                Some(current) => self.done(&current.times, Outcome::Failed(code.to_owned())),
                None => self.on_refused(code),
            },
            _ => {}
        }
    }
}
