//! Watchers (`--watchers K`, stream mode): K more sockets on each session, opened
//! after the session's own, that only read — one conversation shown on many screens.
//! Each counts the chunk events it receives (`Live::watched`) and checks that the
//! session's `seq`s reach it without a gap or a repeat, as the sender's socket does.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::client::{ConnectError, Ws};
use super::events::{Event, Kind};
use super::live::Live;
use super::session::Ctx;
use super::stats::Stats;

/// How long a watcher keeps reading after its session's sender finished, for the
/// events still on their way.
const DRAIN: Duration = Duration::from_millis(500);

/// Opens `count` stream-protocol sockets on `session_id`, each past its `connected`.
pub async fn open(
    ctx: &Ctx,
    base: &str,
    session_id: &str,
    token: Option<&str>,
    count: usize,
) -> Result<Vec<(Ws, u64)>, ConnectError> {
    let mut query = vec![("protocol", "stream")];
    if let Some(token) = token {
        query.push(("token", token));
    }
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut ws = ctx.connector.open_socket(base, session_id, &query).await?;
        let last_seq = super::client::wait_connected(&mut ws).await?;
        sockets.push((ws, last_seq));
    }
    Ok(sockets)
}

/// Reads every watcher until `done` turns true (plus [`DRAIN`]); their errors are
/// returned as stats to merge into the session's.
pub fn spawn(
    live: std::sync::Arc<Ctx>,
    sockets: Vec<(Ws, u64)>,
    done: watch::Receiver<bool>,
) -> Vec<JoinHandle<Stats>> {
    sockets
        .into_iter()
        .map(|(ws, last_seq)| tokio::spawn(read(live.clone(), ws, last_seq, done.clone())))
        .collect()
}

async fn read(
    ctx: std::sync::Arc<Ctx>,
    mut ws: Ws,
    mut last_seq: u64,
    mut done: watch::Receiver<bool>,
) -> Stats {
    let mut stats = Stats::default();
    let mut until: Option<tokio::time::Instant> = None;
    loop {
        let frame = tokio::select! {
            _ = done.wait_for(|d| *d), if until.is_none() => {
                until = Some(tokio::time::Instant::now() + DRAIN);
                continue;
            }
            () = sleep_until(until) => break,
            frame = ws.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                if until.is_none() {
                    ctx.error(&mut stats, "watcher_closed");
                }
                break;
            }
            Some(Ok(_)) => continue,
        };
        for line in text.as_str().lines() {
            let Ok(event) = Event::parse(line) else {
                ctx.error(&mut stats, "watcher_bad_event");
                continue;
            };
            if let Some(seq) = event.seq {
                if seq <= last_seq {
                    ctx.error(&mut stats, "watcher_repeated");
                } else if seq > last_seq + 1 {
                    ctx.error(&mut stats, "watcher_lost");
                }
                last_seq = last_seq.max(seq);
            }
            if matches!(event.kind(), Kind::Chunk(_)) {
                Live::add(&ctx.live.watched, 1);
            }
        }
    }
    super::session::close(ws).await;
    stats
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
