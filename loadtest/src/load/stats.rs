//! What the sessions measured: per-message latencies in HDR histograms, outcomes and
//! error codes, and the protocol checks.
//!
//! Each session task owns a [`Stats`] and records into it without locks; the run
//! merges them at the end. Latencies are kept in microseconds (1 µs to 1 h, three
//! significant digits), which is exact enough for a p99 of a few hundred µs and small
//! enough to keep one histogram per session.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::seq::SeqReport;

/// Largest latency a histogram holds, in µs (one hour).
const MAX_MICROS: u64 = 3_600_000_000;

/// An empty latency histogram (µs).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// Records `d` in a µs histogram, clamped to its range.
pub fn record(histogram: &mut Histogram<u64>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS);
    histogram.saturating_record(micros.clamp(1, MAX_MICROS));
}

/// How one user message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `complete` (stream), `assistant` (simple), the whole stream (llm), the echo (echo),
    /// or accepted (accept mode).
    Completed,
    /// An `error` event answering the message (its code).
    Failed(String),
    /// Refused on arrival by a per-socket error (its code): never queued.
    Rejected(String),
    /// No outcome within the message timeout.
    TimedOut,
}

/// One message's timings, measured from when its frame was sent.
#[derive(Debug, Clone, Default)]
pub struct MessageTimes {
    pub typing: Option<Duration>,
    pub first_chunk: Option<Duration>,
    pub complete: Option<Duration>,
    pub chunks: u64,
    pub bytes: u64,
}

/// Per-message counts and latencies of one session, or of all of them merged.
#[derive(Debug, Clone)]
pub struct Stats {
    pub typing: Histogram<u64>,
    pub first_chunk: Histogram<u64>,
    pub complete: Histogram<u64>,
    /// Chunks per completed message (a count, not µs).
    pub chunks_per_message: Histogram<u64>,
    pub rest_create: Histogram<u64>,
    pub ws_connect: Histogram<u64>,
    pub sent: u64,
    pub completed: u64,
    pub failed: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub chunks: u64,
    pub chunk_bytes: u64,
    /// Every error seen, by code (`timeout` and `connect` included).
    pub errors: BTreeMap<String, u64>,
    pub seq: SeqReport,
    /// Events out of the contract's order within one message (e.g. a chunk after
    /// `complete`, or two outcomes).
    pub order_violations: u64,
    /// `complete.full_response` differing from the concatenated chunks.
    pub content_mismatches: u64,
    /// Session events that matched no message this client sent.
    pub unexpected_events: u64,
    /// `status: restarted` announcements.
    pub restarts: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            typing: new_histogram(),
            first_chunk: new_histogram(),
            complete: new_histogram(),
            chunks_per_message: Histogram::new_with_bounds(1, 1_000_000, 3)
                .expect("static histogram bounds are valid"),
            rest_create: new_histogram(),
            ws_connect: new_histogram(),
            sent: 0,
            completed: 0,
            failed: 0,
            rejected: 0,
            timed_out: 0,
            chunks: 0,
            chunk_bytes: 0,
            errors: BTreeMap::new(),
            seq: SeqReport::default(),
            order_violations: 0,
            content_mismatches: 0,
            unexpected_events: 0,
            restarts: 0,
        }
    }
}

impl Stats {
    /// Counts one error code.
    pub fn error(&mut self, code: &str) {
        *self.errors.entry(code.to_owned()).or_default() += 1;
    }

    /// Records a finished message.
    pub fn message(&mut self, times: &MessageTimes, outcome: &Outcome) {
        if let Some(d) = times.typing {
            record(&mut self.typing, d);
        }
        if let Some(d) = times.first_chunk {
            record(&mut self.first_chunk, d);
        }
        match outcome {
            Outcome::Completed => {
                self.completed += 1;
                if let Some(d) = times.complete {
                    record(&mut self.complete, d);
                }
                self.chunks_per_message
                    .saturating_record(times.chunks.max(1));
            }
            Outcome::Failed(code) => {
                self.failed += 1;
                self.error(code);
            }
            Outcome::Rejected(code) => {
                self.rejected += 1;
                self.error(code);
            }
            Outcome::TimedOut => {
                self.timed_out += 1;
                self.error("timeout");
            }
        }
    }

    /// Adds another session's stats.
    pub fn merge(&mut self, other: &Stats) {
        // `add` fails only when bounds differ, and every histogram here shares its bounds.
        let _ = self.typing.add(&other.typing);
        let _ = self.first_chunk.add(&other.first_chunk);
        let _ = self.complete.add(&other.complete);
        let _ = self.chunks_per_message.add(&other.chunks_per_message);
        let _ = self.rest_create.add(&other.rest_create);
        let _ = self.ws_connect.add(&other.ws_connect);
        self.sent += other.sent;
        self.completed += other.completed;
        self.failed += other.failed;
        self.rejected += other.rejected;
        self.timed_out += other.timed_out;
        self.chunks += other.chunks;
        self.chunk_bytes += other.chunk_bytes;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        self.seq.merge(&other.seq);
        self.order_violations += other.order_violations;
        self.content_mismatches += other.content_mismatches;
        self.unexpected_events += other.unexpected_events;
        self.restarts += other.restarts;
    }

    /// True when every message completed and every check passed.
    pub fn is_clean(&self) -> bool {
        self.seq.is_clean()
            && self.errors.is_empty()
            && self.order_violations == 0
            && self.content_mismatches == 0
            && self.unexpected_events == 0
            && self.completed == self.sent
    }
}

/// A latency distribution in milliseconds, for tables and JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Quantiles {
    /// From µs values that may be negative (differences between two clocks' views).
    pub fn of_signed_micros(mut values: Vec<i64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let ms = |v: i64| v as f64 / 1000.0;
        let at = |q: f64| {
            let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
            ms(values[i])
        };
        Self {
            count: values.len() as u64,
            min: ms(values[0]),
            mean: values.iter().sum::<i64>() as f64 / values.len() as f64 / 1000.0,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: ms(values[values.len() - 1]),
        }
    }

    /// The quantiles of a µs histogram, in ms.
    pub fn of_micros(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// A histogram as `(upper bound in ms, count)` buckets on a log scale (4 per
/// power of ten, 1 µs up), empty buckets at both ends dropped: what the HTML draws.
pub fn log_buckets(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut buckets = Vec::new();
    let mut low = 0u64;
    let mut exponent = 0.0f64;
    while low <= h.max() {
        exponent += 0.25;
        let high = 10f64.powf(exponent).round() as u64;
        if high <= low {
            continue;
        }
        let count = h.count_between(low + 1, high);
        buckets.push((high as f64 / 1000.0, count));
        low = high;
    }
    let first = buckets.iter().position(|b| b.1 > 0).unwrap_or(0);
    let last = buckets.iter().rposition(|b| b.1 > 0).unwrap_or(0);
    buckets[first..=last].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn messages_are_counted_by_outcome() {
        let mut stats = Stats::default();
        let times = MessageTimes {
            typing: Some(ms(1)),
            first_chunk: Some(ms(2)),
            complete: Some(ms(10)),
            chunks: 4,
            bytes: 40,
        };
        stats.sent = 4;
        stats.message(&times, &Outcome::Completed);
        stats.message(&times, &Outcome::Failed("llm_error".into()));
        stats.message(
            &MessageTimes::default(),
            &Outcome::Rejected("rate_limited".into()),
        );
        stats.message(&MessageTimes::default(), &Outcome::TimedOut);
        assert_eq!(stats.completed, 1);
        assert_eq!(stats.failed, 1);
        assert_eq!(stats.rejected, 1);
        assert_eq!(stats.timed_out, 1);
        assert_eq!(stats.errors["llm_error"], 1);
        assert_eq!(stats.errors["rate_limited"], 1);
        assert_eq!(stats.errors["timeout"], 1);
        // Only completed messages have a completion time.
        assert_eq!(stats.complete.len(), 1);
        assert_eq!(stats.first_chunk.len(), 2);
        assert!(!stats.is_clean());
    }

    #[test]
    fn merged_quantiles_cover_both_sessions() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for i in 1..=50 {
            record(&mut a.first_chunk, ms(i));
            record(&mut b.first_chunk, ms(50 + i));
        }
        a.sent = 1;
        b.sent = 2;
        b.error("timeout");
        a.merge(&b);
        let q = Quantiles::of_micros(&a.first_chunk);
        assert_eq!(q.count, 100);
        assert!((q.p50 - 50.0).abs() < 0.1, "p50 {}", q.p50);
        assert!((q.p99 - 99.0).abs() < 0.1, "p99 {}", q.p99);
        assert!((q.max - 100.0).abs() < 0.1, "max {}", q.max);
        assert!((q.mean - 50.5).abs() < 0.1, "mean {}", q.mean);
        assert_eq!(a.sent, 3);
        assert_eq!(a.errors["timeout"], 1);
    }

    #[test]
    fn a_clean_run_has_every_message_completed() {
        let mut stats = Stats {
            sent: 1,
            ..Stats::default()
        };
        stats.message(
            &MessageTimes {
                complete: Some(ms(3)),
                chunks: 2,
                ..MessageTimes::default()
            },
            &Outcome::Completed,
        );
        assert!(stats.is_clean());
        stats.content_mismatches = 1;
        assert!(!stats.is_clean());
    }

    #[test]
    fn empty_histograms_give_zero_quantiles() {
        assert_eq!(Quantiles::of_micros(&new_histogram()), Quantiles::default());
        assert!(log_buckets(&new_histogram()).is_empty());
    }

    #[test]
    fn log_buckets_hold_every_value() {
        let mut h = new_histogram();
        for us in [5u64, 50, 500, 5_000, 5_000, 50_000] {
            h.record(us).unwrap();
        }
        let buckets = log_buckets(&h);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 6);
        assert!(buckets.first().unwrap().1 > 0);
        assert!(buckets.last().unwrap().1 > 0);
        assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn out_of_range_latencies_are_clamped() {
        let mut h = new_histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(100_000));
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
    }
}
