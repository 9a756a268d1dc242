//! In-memory side of the cross-pod limits (`backend::limits`), with the Redis scripts'
//! semantics. Time is the wall clock at creation advanced by tokio's clock, so windows
//! still align to the epoch while tests pause time and jump over a minute or a day.
//! Entries that no longer hold anything (a full bucket, past windows) are swept when a map has doubled since the last sweep, so memory follows
//! the callers seen recently, not every caller ever.

use super::MemoryBackend;
use crate::backend::StoreError;
use crate::backend::limits::{Rate, RateOutcome, UsageWindow, WindowUsage};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Current windows of one scope: `(window start ms, tokens)` per [`UsageWindow::ALL`].
type Windows = [(i64, u64); UsageWindow::ALL.len()];

/// A map swept of dead entries each time it doubles.
struct Swept<K, V> {
    map: HashMap<K, V>,
    sweep_at: usize,
}

impl<K: std::hash::Hash + Eq, V> Default for Swept<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: 1_024,
        }
    }
}

impl<K: std::hash::Hash + Eq, V> Swept<K, V> {
    fn sweep_if_grown(&mut self, live: impl FnMut(&K, &mut V) -> bool) {
        if self.map.len() >= self.sweep_at {
            self.map.retain(live);
            self.sweep_at = (self.map.len() * 2).max(1_024);
        }
    }
}

#[derive(Default)]
struct Tables {
    /// Scope → theoretical arrival time (us on [`Limits::now_us`]'s clock).
    rates: Swept<String, i64>,
    usage: Swept<String, Windows>,
}

pub(super) struct Limits {
    tables: Mutex<Tables>,
    wall_at_start_us: i64,
    start: Instant,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tables: Mutex::default(),
            wall_at_start_us: chrono::Utc::now().timestamp_micros(),
            start: Instant::now(),
        }
    }
}

impl Limits {
    fn now_us(&self) -> i64 {
        self.wall_at_start_us + self.start.elapsed().as_micros() as i64
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryBackend {
    pub async fn check_rate(&self, scope: &str, rate: Rate) -> Result<RateOutcome, StoreError> {
        let limits = &self.inner.limits;
        let now = limits.now_us();
        let interval = rate.interval_us() as i64;
        let mut tables = limits.tables();
        tables.rates.sweep_if_grown(|_, tat| *tat > now);
        let tat = tables.rates.map.get(scope).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        let allow_at = new_tat - i64::from(rate.burst) * interval;
        if allow_at > now {
            return Ok(RateOutcome::Limited {
                retry_after: Duration::from_micros((allow_at - now) as u64),
            });
        }
        tables.rates.map.insert(scope.to_owned(), new_tat);
        Ok(RateOutcome::Allowed {
            remaining: ((now - allow_at) / interval).min(i64::from(u32::MAX)) as u32,
        })
    }

    pub async fn record_usage(
        &self,
        scope: &str,
        tokens: u64,
    ) -> Result<Vec<WindowUsage>, StoreError> {
        let limits = &self.inner.limits;
        let now_ms = limits.now_us() / 1_000;
        let starts: Vec<i64> = UsageWindow::ALL
            .iter()
            .map(|w| now_ms - now_ms.rem_euclid(w.length_ms()))
            .collect();
        let mut tables = limits.tables();
        let current = tables.usage.map.get(scope).copied().unwrap_or_default();
        let mut windows = current;
        for (slot, start) in windows.iter_mut().zip(&starts) {
            if slot.0 != *start {
                *slot = (*start, 0);
            }
            slot.1 += tokens;
        }
        if tokens > 0 {
            let day_start = starts[0];
            tables.usage.sweep_if_grown(|_, w| w[0].0 >= day_start);
            tables.usage.map.insert(scope.to_owned(), windows);
        }
        Ok(UsageWindow::ALL
            .iter()
            .zip(windows)
            .map(|(window, (start, used))| WindowUsage {
                window: *window,
                used,
                resets_at_ms: start + window.length_ms(),
            })
            .collect())
    }
}
