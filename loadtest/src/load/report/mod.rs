//! The run's report: one serializable struct, written as JSON, printed as a table
//! and drawn as a self-contained HTML page (inline CSS and SVG, nothing fetched).

mod html;
mod table;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::live::TimelinePoint;
use super::procfs::ProcSample;
use super::seq::SeqReport;
use super::stats::{Quantiles, Stats, log_buckets};

pub use html::render as render_html;
pub use table::render as render_table;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub started_at: String,
    pub mode: String,
    /// The `loadtest` arguments that reproduce this run.
    pub command: String,
    pub settings: SettingsSummary,
    pub sessions: SessionCounts,
    pub connect: ConnectLatency,
    pub messages: MessageCounts,
    pub latency_ms: Latency,
    pub chunks: ChunkCounts,
    pub checks: Checks,
    pub errors: BTreeMap<String, u64>,
    /// Seconds from the start of the message phase to the last session's end.
    pub phase_secs: f64,
    pub window: Window,
    pub processes: Vec<ProcReport>,
    pub tap: Option<TapReport>,
    pub timeline: Vec<TimelinePoint>,
    pub histograms: Histograms,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingsSummary {
    pub urls: Vec<String>,
    pub sessions: usize,
    pub messages: u64,
    pub rate: Option<f64>,
    pub think_ms: u64,
    /// Closed loop: first sends spread over this many ms (0: all at once).
    pub stagger_ms: u64,
    pub duration: Option<f64>,
    pub warmup: f64,
    pub text: String,
    pub window: usize,
    pub authenticated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionCounts {
    pub requested: usize,
    pub connected: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectLatency {
    pub rest_create: Quantiles,
    pub ws_connect: Quantiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageCounts {
    pub sent: u64,
    pub completed: u64,
    pub failed: u64,
    pub rejected: u64,
    pub timed_out: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub typing: Quantiles,
    pub first_chunk: Quantiles,
    pub complete: Quantiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChunkCounts {
    pub total: u64,
    pub bytes: u64,
    pub per_message_mean: f64,
    pub per_message_max: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checks {
    pub seq: SeqReport,
    pub order_violations: u64,
    pub content_mismatches: u64,
    pub unexpected_events: u64,
    pub restarts: u64,
    /// Every message completed and no check failed.
    pub clean: bool,
}

/// The measured window: after the warm-up, up to the end of the duration (or of the
/// last session, without one).
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub start_secs: f64,
    pub secs: f64,
    pub chunks: u64,
    pub messages: u64,
    pub events: u64,
    pub bytes: u64,
    pub chunks_per_sec: f64,
    pub messages_per_sec: f64,
    pub events_per_sec: f64,
    /// Chunk events received by watcher sockets (`--watchers`).
    pub watched_chunks: u64,
}

/// One sampled process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcReport {
    pub name: String,
    pub pid: u32,
    pub before_connect: Option<ProcSample>,
    pub window_start: Option<ProcSample>,
    pub window_end: Option<ProcSample>,
    /// RSS growth from before connecting to the window's start, KiB.
    pub rss_growth_kib: Option<i64>,
    /// CPU time spent in the window, µs.
    pub cpu_window_us: Option<u64>,
    /// Wake-ups (voluntary context switches of its threads) in the window.
    pub wakeups_window: Option<u64>,
}

impl ProcReport {
    pub fn new(
        name: String,
        pid: u32,
        before_connect: Option<ProcSample>,
        window_start: Option<ProcSample>,
        window_end: Option<ProcSample>,
    ) -> Self {
        let rss_growth_kib = match (before_connect, window_start) {
            (Some(a), Some(b)) => Some(b.rss_kib as i64 - a.rss_kib as i64),
            _ => None,
        };
        let (cpu_window_us, wakeups_window) = match (window_start, window_end) {
            (Some(a), Some(b)) => (
                Some(b.cpu_us.saturating_sub(a.cpu_us)),
                Some(b.wakeups.saturating_sub(a.wakeups)),
            ),
            _ => (None, None),
        };
        Self {
            name,
            pid,
            before_connect,
            window_start,
            window_end,
            rss_growth_kib,
            cpu_window_us,
            wakeups_window,
        }
    }
}

/// Socket arrival minus plain-subscriber arrival, per chunk.
#[derive(Debug, Clone, Serialize)]
pub struct TapReport {
    pub matched: u64,
    pub unmatched: u64,
    pub added_ms: Quantiles,
}

/// Histograms for the HTML page: `(upper bound ms, count)`.
#[derive(Debug, Clone, Serialize)]
pub struct Histograms {
    pub typing: Vec<(f64, u64)>,
    pub first_chunk: Vec<(f64, u64)>,
    pub complete: Vec<(f64, u64)>,
}

impl Report {
    /// The latency rows every rendering shows, in order.
    pub fn latency_rows(&self) -> [(&'static str, &Quantiles); 5] {
        [
            ("typing", &self.latency_ms.typing),
            ("first chunk", &self.latency_ms.first_chunk),
            ("complete", &self.latency_ms.complete),
            ("REST create", &self.connect.rest_create),
            ("socket open", &self.connect.ws_connect),
        ]
    }

    /// The parts of the report that come from the merged stats.
    pub fn stats_parts(stats: &Stats) -> (MessageCounts, Latency, ChunkCounts, Checks, Histograms) {
        let per_message = &stats.chunks_per_message;
        (
            MessageCounts {
                sent: stats.sent,
                completed: stats.completed,
                failed: stats.failed,
                rejected: stats.rejected,
                timed_out: stats.timed_out,
            },
            Latency {
                typing: Quantiles::of_micros(&stats.typing),
                first_chunk: Quantiles::of_micros(&stats.first_chunk),
                complete: Quantiles::of_micros(&stats.complete),
            },
            ChunkCounts {
                total: stats.chunks,
                bytes: stats.chunk_bytes,
                per_message_mean: if per_message.is_empty() {
                    0.0
                } else {
                    per_message.mean()
                },
                per_message_max: per_message.max(),
            },
            Checks {
                seq: stats.seq,
                order_violations: stats.order_violations,
                content_mismatches: stats.content_mismatches,
                unexpected_events: stats.unexpected_events,
                restarts: stats.restarts,
                clean: stats.is_clean(),
            },
            Histograms {
                typing: log_buckets(&stats.typing),
                first_chunk: log_buckets(&stats.first_chunk),
                complete: log_buckets(&stats.complete),
            },
        )
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        create_parent(path)?;
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Writes the HTML report.
    pub fn write_html(&self, path: &Path) -> anyhow::Result<()> {
        create_parent(path)?;
        std::fs::write(path, render_html(self))
            .with_context(|| format!("writing {}", path.display()))
    }
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::load::live::Snapshot;

    #[test]
    fn signed_quantiles_take_negative_values() {
        let q = Quantiles::of_signed_micros(vec![-1000, 0, 1000, 2000]);
        assert_eq!(q.count, 4);
        assert_eq!(q.min, -1.0);
        assert_eq!(q.p50, 0.0);
        assert_eq!(q.max, 2.0);
        assert_eq!(q.mean, 0.5);
        assert_eq!(
            Quantiles::of_signed_micros(Vec::new()),
            Quantiles::default()
        );
    }

    /// A small report for the renderers' tests.
    pub(crate) fn sample_report() -> Report {
        let mut stats = Stats {
            sent: 2,
            ..Stats::default()
        };
        for ms in [3u64, 5] {
            let times = crate::load::stats::MessageTimes {
                typing: Some(std::time::Duration::from_millis(1)),
                first_chunk: Some(std::time::Duration::from_millis(2)),
                complete: Some(std::time::Duration::from_millis(ms)),
                chunks: 3,
                bytes: 12,
            };
            stats.message(&times, &crate::load::stats::Outcome::Completed);
        }
        stats.chunks = 6;
        let (messages, latency_ms, chunks, checks, histograms) = Report::stats_parts(&stats);
        let point = |t: f64, chunks: u64| TimelinePoint {
            t,
            counters: Snapshot {
                chunks,
                ..Snapshot::default()
            },
        };
        Report {
            tool: "loadtest",
            version: "0",
            started_at: "2026-01-01T00:00:00Z".into(),
            mode: "stream".into(),
            command: "loadtest --sessions 1".into(),
            settings: SettingsSummary {
                urls: vec!["http://127.0.0.1:1".into()],
                sessions: 1,
                messages: 2,
                rate: None,
                think_ms: 0,
                stagger_ms: 0,
                duration: None,
                warmup: 0.0,
                text: "hi <b>".into(),
                window: 1,
                authenticated: false,
            },
            sessions: SessionCounts {
                requested: 1,
                connected: 1,
                failed: 0,
            },
            connect: ConnectLatency {
                rest_create: Quantiles::default(),
                ws_connect: Quantiles::default(),
            },
            messages,
            latency_ms,
            chunks,
            checks,
            errors: BTreeMap::new(),
            phase_secs: 1.0,
            window: Window {
                start_secs: 0.0,
                secs: 1.0,
                chunks: 6,
                messages: 2,
                events: 12,
                bytes: 600,
                chunks_per_sec: 6.0,
                messages_per_sec: 2.0,
                events_per_sec: 12.0,
                watched_chunks: 0,
            },
            processes: vec![ProcReport::new(
                "gateway".into(),
                1,
                Some(ProcSample {
                    rss_kib: 1000,
                    cpu_us: 0,
                    wakeups: 0,
                }),
                Some(ProcSample {
                    rss_kib: 1500,
                    cpu_us: 10,
                    wakeups: 7,
                }),
                Some(ProcSample {
                    rss_kib: 1500,
                    cpu_us: 60_010,
                    wakeups: 307,
                }),
            )],
            tap: None,
            timeline: vec![point(0.0, 0), point(0.5, 3), point(1.0, 6)],
            histograms,
        }
    }

    #[test]
    fn process_reports_compute_growth_and_cpu() {
        let report = sample_report();
        assert_eq!(report.processes[0].rss_growth_kib, Some(500));
        assert_eq!(report.processes[0].cpu_window_us, Some(60_000));
        assert_eq!(report.processes[0].wakeups_window, Some(300));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["window"]["chunks_per_sec"], 6.0);
        assert_eq!(json["checks"]["clean"], true);
        assert_eq!(json["timeline"][1]["chunks"], 3);
    }
}
