//! Accept throughput: how fast a gateway takes user messages in (frame read,
//! validated, stored and queued), with nothing answering them.
//!
//! Each socket writes its M messages back to back, then `{"type":"ping"}`. A socket's
//! frames are handled in order and each message is stored and queued before the next
//! frame is read, so the `pong` proves every message before it was accepted or
//! refused (a refusal is an `error` with no `seq`, sent before the `pong`).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::client::Ws;
use super::events::{Event, Kind};
use super::live::Live;
use super::session::Ctx;
use super::stats::{MessageTimes, Outcome, Stats};

/// Sends the batch and waits for the proof of acceptance.
pub async fn drive(ctx: &Ctx, ws: &mut Ws, stats: &mut Stats) {
    let total = ctx.settings.messages;
    let frame = json!({ "message": ctx.settings.text }).to_string();
    let started = Instant::now();
    for _ in 0..total {
        if ws.feed(Message::Text(frame.clone().into())).await.is_err() {
            ctx.error(stats, "disconnected");
            return;
        }
    }
    let ping = json!({"type": "ping"}).to_string();
    if ws.send(Message::Text(ping.into())).await.is_err() {
        ctx.error(stats, "disconnected");
        return;
    }
    stats.sent += total;
    Live::add(&ctx.live.messages_sent, total);
    let mut refused: Vec<String> = Vec::new();
    let deadline = started + ctx.message_timeout() + Duration::from_secs(total / 100);
    loop {
        let frame =
            tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), ws.next()).await;
        match frame {
            Err(_) => {
                for _ in refused.len() as u64..total {
                    stats.message(&MessageTimes::default(), &Outcome::TimedOut);
                }
                Live::add(&ctx.live.errors, 1);
                break;
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                Live::add(&ctx.live.events, 1);
                let Ok(event) = Event::parse(&text) else {
                    ctx.error(stats, "bad_event");
                    continue;
                };
                match event.kind() {
                    Kind::Pong => {
                        let times = MessageTimes {
                            complete: Some(started.elapsed()),
                            ..MessageTimes::default()
                        };
                        let accepted = total - refused.len() as u64;
                        for _ in 0..accepted {
                            stats.message(&times, &Outcome::Completed);
                        }
                        for code in &refused {
                            stats.message(
                                &MessageTimes::default(),
                                &Outcome::Rejected(code.clone()),
                            );
                        }
                        Live::add(&ctx.live.messages_done, total);
                        Live::add(&ctx.live.errors, refused.len() as u64);
                        break;
                    }
                    Kind::Error {
                        code,
                        session_event: false,
                    } => refused.push(code.to_owned()),
                    // A worker is answering after all: not what this mode measures.
                    Kind::Typing | Kind::Chunk(_) => stats.unexpected_events += 1,
                    _ => {}
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => {
                ctx.error(stats, "disconnected");
                break;
            }
        }
    }
}
