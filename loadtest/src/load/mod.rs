//! The load generator behind the `loadtest` binary.
//!
//! A run opens `--sessions` sessions at `--ramp` across one or several gateway URLs,
//! waits until all are open, then starts every session's messages at once (open loop
//! at `--rate`, or closed loop), checks every event against the contract, and ends
//! with a report: a table, a JSON file and a self-contained HTML page.
//!
//! # Layout
//!
//! - [`settings`]: [`RunSettings`] (clap) and the [`Mode`]s.
//! - `session`: one session's life; `stream` (stream and simple protocols), `accept`,
//!   `echo` and `llm` drive the modes; `client` opens sessions and sockets; `auth`
//!   makes tokens.
//! - [`seq`]: lost, duplicated and reordered events by `seq`.
//! - [`stats`]: per-message latencies (HDR histograms) and outcomes.
//! - `live`: counters for the progress bar, the timeline and the measured window.
//! - `progress`: the indicatif bar. [`report`]: table, JSON, HTML.
//! - `watchers`: extra read-only sockets per session (`--watchers`), for fan-out.
//! - [`procfs`]: RSS, CPU and wake-ups of other processes. [`tap`]: the plain Redis subscriber
//!   that added latency is measured against.
//! - [`bench`]: the benchmark driver (`loadtest bench`).

mod accept;
mod auth;
pub mod bench;
mod client;
mod echo;
mod events;
mod live;
mod llm;
pub mod procfs;
mod progress;
pub mod report;
pub mod seq;
mod session;
pub mod settings;
pub mod stats;
mod stream;
pub mod tap;
mod watchers;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use live::{Live, Snapshot, TimelinePoint};
use procfs::ProcSample;
use progress::Progress;
use report::{ProcReport, Report, SessionCounts, SettingsSummary, TapReport, Window};
use session::{Ctx, SessionResult};
pub use settings::{Mode, RunSettings};
use stats::{Quantiles, Stats};

/// How often the timeline is sampled.
const TIMELINE_EVERY: Duration = Duration::from_millis(500);

/// Callbacks at the edges of the measured phase, for a driver that measures other
/// processes around exactly the messages (e.g. Redis command counts).
#[derive(Default)]
pub struct Hooks {
    /// Right before the first message (every session connected).
    pub on_start: Option<Box<dyn FnOnce() + Send>>,
    /// Right after the window ends (every session's messages done, or the duration over).
    pub on_window_end: Option<Box<dyn FnOnce() + Send>>,
}

/// Runs one load test and returns its report (also printed and written as asked).
///
/// `command` is the argument list that reproduces the run, for the report.
pub async fn run(settings: RunSettings, command: String) -> anyhow::Result<Report> {
    run_with(settings, command, Hooks::default()).await
}

/// [`run`] with [`Hooks`].
pub async fn run_with(
    settings: RunSettings,
    command: String,
    mut hooks: Hooks,
) -> anyhow::Result<Report> {
    settings.validate()?;
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (start_tx, start_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Arc::new(Ctx::new(settings.clone(), start_rx, stop_rx));
    let n = settings.sessions;
    let hidden = settings.no_progress || !std::io::stderr().is_terminal();
    let known_total =
        (settings.messages > 0 && !settings.mode.is_idle()).then(|| settings.messages * n as u64);
    let progress = Arc::new(Progress::new(
        known_total,
        settings.duration.unwrap_or(0.0),
        hidden,
    ));
    progress.phase("connecting");

    let sample_all = || -> Vec<Option<ProcSample>> {
        settings
            .pids
            .iter()
            .map(|(_, pid)| procfs::sample(*pid))
            .collect()
    };
    let before_connect = sample_all();

    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| tokio::spawn(session::run(ctx.clone(), i, t0)))
        .collect();
    ctx.wait_all_arrived().await;

    let keys = shared::keys::Keys::new(settings.key_prefix.clone(), settings.store_partitions);
    let tap = match &settings.tap_redis {
        Some(url) => {
            let mut tap = tap::Tap::connect(url).await?;
            let channels: Vec<String> = ctx
                .session_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|id| tap::channel_of(&keys, id))
                .collect();
            tap.subscribe(&channels)
                .await
                .context("subscribing the tap")?;
            let (tap_stop, tap_rx) = watch::channel(false);
            Some((tap.spawn(tap_rx), tap_stop))
        }
        None => None,
    };
    if settings.mode.is_idle() {
        // Let the server finish its per-socket work before memory is read.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    if let Some(hook) = hooks.on_start.take() {
        hook();
    }
    let start = Instant::now();
    let _ = start_tx.send(Some(start));
    let timeline = Arc::new(Mutex::new(vec![TimelinePoint {
        t: 0.0,
        counters: ctx.live.snapshot(),
    }]));
    let ticker = tokio::spawn(tick(ctx.clone(), progress.clone(), timeline.clone(), start));

    let done =
        || Live::get(&ctx.live.sessions_done) + Live::get(&ctx.live.connect_failed) >= n as u64;
    let duration_end = settings
        .duration
        .map(|d| start + Duration::from_secs_f64(d));
    let warmup_end = start + Duration::from_secs_f64(settings.warmup);
    wait_until(&done, Some(warmup_end)).await;
    let window_start = Instant::now();
    let snap0 = if settings.warmup > 0.0 {
        ctx.live.snapshot()
    } else {
        timeline.lock().unwrap_or_else(|e| e.into_inner())[0].counters
    };
    let samples0 = sample_all();

    let interrupted = tokio::select! {
        () = wait_until(&done, duration_end) => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    let window_end = Instant::now();
    let snap1 = ctx.live.snapshot();
    let samples1 = sample_all();
    if let Some(hook) = hooks.on_window_end.take() {
        hook();
    }
    let _ = stop_tx.send(true);
    if interrupted {
        eprintln!("interrupted: finishing the messages in flight");
    }
    progress.phase("draining");

    let mut stats = Stats::default();
    let mut results: Vec<SessionResult> = Vec::with_capacity(n);
    for handle in handles {
        match handle.await {
            Ok(result) => {
                stats.merge(&result.stats);
                results.push(result);
            }
            Err(error) => {
                tracing::error!(%error, "a session task failed");
                stats.error("task_panic");
            }
        }
    }
    let phase_secs = start.elapsed().as_secs_f64();
    ticker.abort();
    progress.finish();
    timeline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(TimelinePoint {
            t: phase_secs,
            counters: ctx.live.snapshot(),
        });

    let tap_report = match tap {
        Some((handle, tap_stop)) => {
            let _ = tap_stop.send(true);
            let arrivals = handle.await.context("tap task")??;
            Some(join_tap(&keys, &results, &arrivals))
        }
        None => None,
    };

    let (messages, latency_ms, chunks, checks, histograms) = Report::stats_parts(&stats);
    let window_secs = (window_end - window_start).as_secs_f64().max(1e-9);
    let delta = snap1.since(&snap0);
    let processes = settings
        .pids
        .iter()
        .enumerate()
        .map(|(i, (name, pid))| {
            ProcReport::new(
                name.clone(),
                *pid,
                before_connect[i],
                samples0[i],
                samples1[i],
            )
        })
        .collect();
    let timeline = std::mem::take(&mut *timeline.lock().unwrap_or_else(|e| e.into_inner()));
    let report = Report {
        tool: "loadtest",
        version: env!("CARGO_PKG_VERSION"),
        started_at,
        mode: settings.mode.as_str().to_owned(),
        command,
        settings: SettingsSummary {
            urls: settings.urls.clone(),
            sessions: n,
            messages: settings.messages,
            rate: settings.rate,
            think_ms: settings.think_ms,
            stagger_ms: settings.stagger_ms,
            duration: settings.duration,
            warmup: settings.warmup,
            text: settings.text.clone(),
            window: settings.window,
            authenticated: settings.token.is_some() || settings.jwt_secret.is_some(),
        },
        sessions: SessionCounts {
            requested: n,
            connected: Live::get(&ctx.live.connected),
            failed: Live::get(&ctx.live.connect_failed),
        },
        connect: report::ConnectLatency {
            rest_create: Quantiles::of_micros(&stats.rest_create),
            ws_connect: Quantiles::of_micros(&stats.ws_connect),
        },
        messages,
        latency_ms,
        chunks,
        checks,
        errors: stats.errors.clone(),
        phase_secs,
        window: window_of(&delta, (window_start - start).as_secs_f64(), window_secs),
        processes,
        tap: tap_report,
        timeline,
        histograms,
    };
    if !settings.quiet {
        print!("{}", report::render_table(&report));
    }
    if let Some(path) = &settings.json {
        report.write_json(path)?;
    }
    if let Some(path) = &settings.html {
        report.write_html(path)?;
    }
    Ok(report)
}

fn window_of(delta: &Snapshot, start_secs: f64, secs: f64) -> Window {
    Window {
        start_secs,
        secs,
        chunks: delta.chunks,
        messages: delta.messages_done,
        events: delta.events,
        bytes: delta.bytes,
        chunks_per_sec: delta.chunks as f64 / secs,
        messages_per_sec: delta.messages_done as f64 / secs,
        events_per_sec: delta.events as f64 / secs,
        watched_chunks: delta.watched,
    }
}

/// Waits until `done()` or `until` (whichever first; without `until`, only `done`).
async fn wait_until(done: &impl Fn() -> bool, until: Option<Instant>) {
    loop {
        if done() || until.is_some_and(|u| Instant::now() >= u) {
            return;
        }
        let step = Duration::from_millis(20);
        let next = match until {
            Some(u) => u.saturating_duration_since(Instant::now()).min(step),
            None => step,
        };
        tokio::time::sleep(next).await;
    }
}

/// Updates the progress bar and samples the timeline until aborted.
async fn tick(
    ctx: Arc<Ctx>,
    progress: Arc<Progress>,
    timeline: Arc<Mutex<Vec<TimelinePoint>>>,
    start: Instant,
) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    let mut last = ctx.live.snapshot();
    let mut last_at = Instant::now();
    let mut next_point = start + TIMELINE_EVERY;
    loop {
        interval.tick().await;
        let now = Instant::now();
        let snap = ctx.live.snapshot();
        let dt = (now - last_at).as_secs_f64().max(1e-9);
        let d = snap.since(&last);
        progress.update(
            &snap,
            now - start,
            d.chunks as f64 / dt,
            d.messages_done as f64 / dt,
        );
        if now >= next_point {
            timeline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(TimelinePoint {
                    t: (now - start).as_secs_f64(),
                    counters: snap,
                });
            next_point += TIMELINE_EVERY;
        }
        last = snap;
        last_at = now;
    }
}

/// Pairs each chunk's socket arrival with its arrival at the plain subscriber.
fn join_tap(
    keys: &shared::keys::Keys,
    results: &[SessionResult],
    arrivals: &tap::Arrivals,
) -> TapReport {
    let mut added = Vec::new();
    let mut unmatched = 0u64;
    for result in results {
        let Some(id) = &result.session_id else {
            continue;
        };
        let channel = tap::channel_of(keys, id);
        for (seq, at_socket) in &result.chunk_arrivals {
            match arrivals.get(&(channel.clone(), *seq)) {
                Some(at_tap) => {
                    let micros = if at_socket >= at_tap {
                        (*at_socket - *at_tap).as_micros() as i64
                    } else {
                        -((*at_tap - *at_socket).as_micros() as i64)
                    };
                    added.push(micros);
                }
                None => unmatched += 1,
            }
        }
    }
    TapReport {
        matched: added.len() as u64,
        unmatched,
        added_ms: Quantiles::of_signed_micros(added),
    }
}
