//! Counters every session bumps as things happen, read by the progress bar, the
//! throughput timeline and the measured window. Relaxed atomics: each is a count on
//! its own, and readers only need a recent value.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Run-wide live counters.
#[derive(Debug, Default)]
pub struct Live {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_done: AtomicU64,
    pub chunks: AtomicU64,
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub sessions_done: AtomicU64,
    /// Chunk events received by watcher sockets (`--watchers`).
    pub watched: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub connected: u64,
    pub messages_sent: u64,
    pub messages_done: u64,
    pub chunks: u64,
    pub events: u64,
    pub bytes: u64,
    pub errors: u64,
    pub watched: u64,
}

impl Live {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            connected: Self::get(&self.connected),
            messages_sent: Self::get(&self.messages_sent),
            messages_done: Self::get(&self.messages_done),
            chunks: Self::get(&self.chunks),
            events: Self::get(&self.events),
            bytes: Self::get(&self.bytes),
            errors: Self::get(&self.errors),
            watched: Self::get(&self.watched),
        }
    }
}

impl Snapshot {
    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            connected: self.connected.saturating_sub(earlier.connected),
            messages_sent: self.messages_sent.saturating_sub(earlier.messages_sent),
            messages_done: self.messages_done.saturating_sub(earlier.messages_done),
            chunks: self.chunks.saturating_sub(earlier.chunks),
            events: self.events.saturating_sub(earlier.events),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            errors: self.errors.saturating_sub(earlier.errors),
            watched: self.watched.saturating_sub(earlier.watched),
        }
    }
}

/// One timeline point: seconds since the message phase began, and the counters then.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelinePoint {
    pub t: f64,
    #[serde(flatten)]
    pub counters: Snapshot,
}

/// Per-interval rates between consecutive timeline points: `(t, chunks/s, messages/s)`.
pub fn rates(points: &[TimelinePoint]) -> Vec<(f64, f64, f64)> {
    points
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].t - w[0].t;
            (dt > 0.0).then(|| {
                let d = w[1].counters.since(&w[0].counters);
                (w[1].t, d.chunks as f64 / dt, d.messages_done as f64 / dt)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_subtract_and_rates_follow() {
        let live = Live::default();
        let a = live.snapshot();
        Live::add(&live.chunks, 10);
        Live::add(&live.messages_done, 2);
        let b = live.snapshot();
        assert_eq!(b.since(&a).chunks, 10);
        let points = [
            TimelinePoint {
                t: 0.0,
                counters: a,
            },
            TimelinePoint {
                t: 0.5,
                counters: b,
            },
        ];
        assert_eq!(rates(&points), vec![(0.5, 20.0, 4.0)]);
    }
}
