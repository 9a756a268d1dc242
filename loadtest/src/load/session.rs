//! One session's life: wait for its ramp slot, open (REST create + socket, or a bare
//! socket), wait at the start line with every other session, run its mode, close.
//!
//! All sessions start their messages at the same instant (after the last one
//! connected), so connection set-up never overlaps the measured phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

use super::auth::{Auth, user_of};
use super::client::{ConnectError, Connector, Opened, Ws};
use super::live::Live;
use super::settings::{Mode, RunSettings};
use super::stats::{Stats, record};
use super::{accept, echo, llm, stream};

/// What every session shares.
pub struct Ctx {
    pub settings: RunSettings,
    pub live: Live,
    pub connector: Connector,
    pub auth: Auth,
    /// Handshakes in flight at once.
    pub connect_slots: Semaphore,
    /// Sessions that finished connecting (or failed to).
    arrived: AtomicUsize,
    all_arrived: Notify,
    /// Set when the message phase starts.
    pub start: watch::Receiver<Option<Instant>>,
    /// True once no new message may be sent (duration over, or interrupted).
    pub stop: watch::Receiver<bool>,
    /// Keep each chunk's arrival time (for the tap comparison).
    pub keep_arrivals: bool,
    /// Ids of the sessions opened so far (kept for the tap, which subscribes to them).
    pub session_ids: std::sync::Mutex<Vec<String>>,
}

/// What a session hands back.
#[derive(Debug, Default)]
pub struct SessionResult {
    pub session_id: Option<String>,
    pub stats: Stats,
    /// `(seq, arrival)` of every chunk, when `keep_arrivals`.
    pub chunk_arrivals: Vec<(u64, Instant)>,
}

impl Ctx {
    pub fn new(
        settings: RunSettings,
        start: watch::Receiver<Option<Instant>>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            connector: Connector::new(settings.ws_buffer_bytes),
            auth: Auth::from_settings(&settings),
            connect_slots: Semaphore::new(settings.connect_concurrency.max(1)),
            keep_arrivals: settings.tap_redis.is_some(),
            session_ids: std::sync::Mutex::new(Vec::new()),
            live: Live::default(),
            arrived: AtomicUsize::new(0),
            all_arrived: Notify::new(),
            start,
            stop,
            settings,
        }
    }

    fn arrive(&self) {
        let arrived = self.arrived.fetch_add(1, Ordering::AcqRel) + 1;
        if arrived >= self.settings.sessions {
            self.all_arrived.notify_one();
        }
    }

    /// Waits until every session connected or gave up.
    pub async fn wait_all_arrived(&self) {
        while self.arrived.load(Ordering::Acquire) < self.settings.sessions {
            let notified = self.all_arrived.notified();
            if self.arrived.load(Ordering::Acquire) >= self.settings.sessions {
                break;
            }
            // A timeout guards against a missed wake-up; arrival is re-checked.
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// True once sending must stop.
    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Whether the `sent`-th message may still go out.
    pub fn may_send(&self, sent: u64) -> bool {
        (self.settings.messages == 0 || sent < self.settings.messages) && !self.stopped()
    }

    /// The per-message timeout.
    pub fn message_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.settings.message_timeout)
    }

    /// Counts an error in the live counters and the session's stats.
    pub fn error(&self, stats: &mut Stats, code: &str) {
        Live::add(&self.live.errors, 1);
        stats.error(code);
    }
}

/// Runs session `index` to its end.
pub async fn run(ctx: Arc<Ctx>, index: usize, t0: Instant) -> SessionResult {
    let mut result = SessionResult::default();
    if ctx.settings.ramp > 0.0 {
        let at = t0 + Duration::from_secs_f64(index as f64 / ctx.settings.ramp);
        tokio::time::sleep_until(at.into()).await;
    }
    let mut watchers = Vec::new();
    let opened = if ctx.settings.mode == Mode::Llm {
        None
    } else {
        match open(&ctx, index, &mut watchers).await {
            Ok(opened) => Some(opened),
            Err(error) => {
                tracing::debug!(index, code = error.code, detail = %error.detail, "connect failed");
                Live::add(&ctx.live.connect_failed, 1);
                ctx.error(&mut result.stats, error.code);
                ctx.arrive();
                return result;
            }
        }
    };
    Live::add(&ctx.live.connected, 1);
    if let Some(opened) = &opened {
        result.session_id = Some(opened.session_id.clone());
        if ctx.keep_arrivals {
            ctx.session_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(opened.session_id.clone());
        }
        if let Some(d) = opened.rest_create {
            record(&mut result.stats.rest_create, d);
        }
        record(&mut result.stats.ws_connect, opened.ws_connect);
    }
    ctx.arrive();
    let mut start = ctx.start.clone();
    let Ok(started) = start
        .wait_for(Option::is_some)
        .await
        .map(|s| s.unwrap_or_else(Instant::now))
    else {
        return result;
    };

    // A session counts as done when its messages are; closing is not measured work.
    let done = || Live::add(&ctx.live.sessions_done, 1);
    match (ctx.settings.mode, opened) {
        (Mode::Llm, _) => {
            llm::drive(&ctx, index, started, &mut result).await;
            done();
        }
        (_, None) => done(),
        (Mode::Idle | Mode::EchoIdle, Some(opened)) => {
            let mut ws = opened.ws;
            hold(&ctx, &mut ws, &mut result.stats).await;
            done();
            close(ws).await;
        }
        (Mode::Stream | Mode::Simple, Some(opened)) => {
            let (sender_done, watching) = watch::channel(false);
            let watchers = super::watchers::spawn(ctx.clone(), watchers, watching);
            let mut ws = opened.ws;
            stream::drive(&ctx, index, &mut ws, opened.last_seq, &mut result).await;
            let _ = sender_done.send(true);
            for watcher in watchers {
                match watcher.await {
                    Ok(stats) => result.stats.merge(&stats),
                    Err(_) => result.stats.error("task_panic"),
                }
            }
            done();
            close(ws).await;
        }
        (Mode::Accept, Some(opened)) => {
            let mut ws = opened.ws;
            accept::drive(&ctx, &mut ws, &mut result.stats).await;
            done();
            close(ws).await;
        }
        (Mode::Echo, Some(opened)) => {
            let mut ws = opened.ws;
            echo::drive(&ctx, &mut ws, &mut result.stats).await;
            done();
            close(ws).await;
        }
    }
    result
}

/// Opens the session's socket and, with `--watchers`, its read-only ones.
async fn open(
    ctx: &Ctx,
    index: usize,
    watchers: &mut Vec<(Ws, u64)>,
) -> Result<Opened, ConnectError> {
    let _slot = ctx
        .connect_slots
        .acquire()
        .await
        .map_err(|_| ConnectError {
            code: "connect",
            detail: "closed".into(),
        })?;
    let url = ctx.settings.url_for(index);
    let user = user_of(index);
    let token = ctx.auth.token_for(&user).map_err(|e| ConnectError {
        code: "token",
        detail: e.to_string(),
    })?;
    let token = token.as_deref();
    match ctx.settings.mode {
        Mode::Stream if ctx.settings.watchers > 0 => {
            let opened = ctx.connector.open_stream(url, &user, token).await?;
            *watchers =
                super::watchers::open(ctx, url, &opened.session_id, token, ctx.settings.watchers)
                    .await?;
            Ok(opened)
        }
        Mode::Stream | Mode::Idle | Mode::Accept => {
            ctx.connector.open_stream(url, &user, token).await
        }
        Mode::Simple => {
            let query: Vec<(&str, &str)> = token.map(|t| ("token", t)).into_iter().collect();
            ctx.connector.open_plain(url, &query).await
        }
        Mode::Echo | Mode::EchoIdle | Mode::Llm => ctx.connector.open_plain(url, &[]).await,
    }
}

/// Holds an idle socket open (answering pings) until the run stops.
async fn hold(ctx: &Ctx, ws: &mut Ws, stats: &mut Stats) {
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    ctx.error(stats, "closed_early");
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Closes the socket politely, without waiting long for the server's reply.
pub async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Sends one text frame now.
pub async fn send_text(ws: &mut Ws, text: String) -> bool {
    ws.send(Message::Text(text.into())).await.is_ok()
}
