//! The baseline's traffic: frames to `echo-baseline` and back, `--window` in flight
//! per socket. Each echoed frame counts as one delivered "chunk" and one message, its
//! round trip as the message's completion time.

use std::collections::VecDeque;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::client::Ws;
use super::live::Live;
use super::session::Ctx;
use super::stats::{MessageTimes, Outcome, Stats};

/// A frame about the size of a chunk event.
pub fn frame(bytes: usize) -> String {
    let head = "{\"seq\":1,\"type\":\"chunk\",\"content\":\"";
    let tail = "\"}";
    let pad = bytes.saturating_sub(head.len() + tail.len()).max(1);
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// Keeps the window full until the run stops, then collects the last echoes.
pub async fn drive(ctx: &Ctx, ws: &mut Ws, stats: &mut Stats) {
    let payload = frame(ctx.settings.frame_bytes);
    let window = ctx.settings.window;
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(window);
    let mut sent = 0u64;
    let mut stop = ctx.stop.clone();
    loop {
        let mut fed = false;
        while in_flight.len() < window && ctx.may_send(sent) {
            if ws
                .feed(Message::Text(payload.clone().into()))
                .await
                .is_err()
            {
                ctx.error(stats, "disconnected");
                return;
            }
            in_flight.push_back(Instant::now());
            sent += 1;
            stats.sent += 1;
            Live::add(&ctx.live.messages_sent, 1);
            fed = true;
        }
        if fed && ws.flush().await.is_err() {
            ctx.error(stats, "disconnected");
            return;
        }
        if in_flight.is_empty() {
            return;
        }
        let oldest = in_flight.front().copied().unwrap_or_else(Instant::now);
        let deadline = tokio::time::Instant::from_std(oldest + ctx.message_timeout());
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Some(sent_at) = in_flight.pop_front() else { continue };
                    let times = MessageTimes {
                        complete: Some(sent_at.elapsed()),
                        chunks: 1,
                        bytes: text.len() as u64,
                        ..MessageTimes::default()
                    };
                    stats.message(&times, &Outcome::Completed);
                    stats.chunks += 1;
                    stats.chunk_bytes += text.len() as u64;
                    Live::add(&ctx.live.chunks, 1);
                    Live::add(&ctx.live.events, 1);
                    Live::add(&ctx.live.messages_done, 1);
                }
                Some(Ok(_)) => {}
                _ => {
                    for _ in 0..in_flight.len() {
                        stats.message(&MessageTimes::default(), &Outcome::Failed("disconnected".into()));
                    }
                    Live::add(&ctx.live.errors, 1);
                    return;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                in_flight.pop_front();
                stats.message(&MessageTimes::default(), &Outcome::TimedOut);
                Live::add(&ctx.live.errors, 1);
            }
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames_have_the_asked_size_and_are_json() {
        let frame = super::frame(160);
        assert_eq!(frame.len(), 160);
        assert!(serde_json::from_str::<serde_json::Value>(&frame).is_ok());
    }
}
