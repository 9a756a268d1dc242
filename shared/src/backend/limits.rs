//! Limits that hold across every gateway pod: request rates and token budgets.
//!
//! - **Rates** ([`Backend::check_rate`]): a GCRA bucket per scope (`rest:user:alice`,
//!   `messages:addr:10.0.0.7`, ...), one round trip and one key that lapses once the
//!   bucket is full again. GCRA stores a single timestamp (the "theoretical arrival
//!   time"), so a check is one read and one write, with no counters to sweep.
//! - **Token usage** ([`Backend::add_usage`], [`Backend::usage`]): tokens spent per
//!   scope in fixed windows aligned to the epoch ([`UsageWindow`]: the UTC minute and
//!   day), every window in one key, so recording an answer is one step.
//! - **Who pays for a session's answers** ([`Charge`]): the gateway that accepts a
//!   message names the scope (the caller's user, else address) and its budget with it
//!   ([`Backend::accept_message`], stored in the session in the same step); the worker
//!   gets it with the message ([`Work::charge`](crate::model::Work)), checks that
//!   budget before it calls the model ([`Backend::over_budget`]: messages queued
//!   before it ran out are refused too) and adds the answer's tokens there
//!   ([`Backend::add_usage`]). The worker never needs to know how a caller was
//!   identified.
//!
//! Redis runs each step as one script on one key (`redis/rate.lua`, `redis/usage.lua`;
//! cluster-safe) with Redis's own clock; memory mirrors them on tokio's clock, so tests
//! can pause time (`memory/limits.rs`). Both pass `tests/conformance/limits.rs`.

use super::{Backend, StoreError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What [`Backend::check_rate`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateOutcome {
    /// Counted; `remaining` more would pass right now.
    Allowed { remaining: u32 },
    /// Over the rate: nothing was counted; one more passes after `retry_after`.
    Limited { retry_after: Duration },
}

/// A rate: `per_minute` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    /// `None` when `per_minute` is 0 (no limit).
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        (per_minute > 0).then_some(Self {
            per_minute,
            burst: burst.max(1),
        })
    }

    /// Microseconds between two requests at the average rate (GCRA's emission interval).
    pub fn interval_us(self) -> u64 {
        (60_000_000 / u64::from(self.per_minute)).max(1)
    }
}

/// A window tokens are summed over. Fixed windows aligned to the Unix epoch: a minute
/// starts at second 0, a day at 00:00 UTC, so every pod agrees on when one resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageWindow {
    Day,
    Minute,
}

impl UsageWindow {
    /// Every window usage is recorded in, longest first.
    pub const ALL: [UsageWindow; 2] = [UsageWindow::Day, UsageWindow::Minute];

    pub fn name(self) -> &'static str {
        match self {
            UsageWindow::Day => "day",
            UsageWindow::Minute => "minute",
        }
    }

    pub fn length_ms(self) -> i64 {
        match self {
            UsageWindow::Day => 86_400_000,
            UsageWindow::Minute => 60_000,
        }
    }
}

/// Tokens spent in the current window of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUsage {
    pub window: UsageWindow,
    pub used: u64,
    /// When the current window ends (epoch ms): `used` is 0 from then on.
    pub resets_at_ms: i64,
}

impl Backend {
    /// Counts one request against `scope`'s bucket, unless it is over `rate`.
    pub async fn check_rate(&self, scope: &str, rate: Rate) -> Result<RateOutcome, StoreError> {
        dispatch!(self, b => b.check_rate(scope, rate).await)
    }

    /// Tokens `scope` spent in each current window, in [`UsageWindow::ALL`]'s order.
    pub async fn usage(&self, scope: &str) -> Result<Vec<WindowUsage>, StoreError> {
        dispatch!(self, b => b.record_usage(scope, 0).await)
    }

    /// Adds `tokens` to every current window of `scope`; returns the sums after.
    pub async fn add_usage(
        &self,
        scope: &str,
        tokens: u64,
    ) -> Result<Vec<WindowUsage>, StoreError> {
        dispatch!(self, b => b.record_usage(scope, tokens).await)
    }

    /// The first window of `charge`'s budget that its payer used up, if any.
    pub async fn over_budget(&self, charge: &Charge) -> Result<Option<Exceeded>, StoreError> {
        if charge.per_day.is_none() && charge.per_minute.is_none() {
            return Ok(None);
        }
        Ok(charge.exceeded(&self.usage(&charge.scope).await?))
    }
}

/// Who pays for a session's answers (a usage scope: a user or an address) and how many
/// tokens they may spend per window; written by the gateway that accepted the latest
/// message, read by the worker before it calls the model and after it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
}

impl Charge {
    /// A charge as the gateway stores it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("charges always serialize")
    }

    /// A charge as the gateway stored it (JSON).
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("charge {text:?}: {e}")))
    }
}

impl Charge {
    pub fn limit(&self, window: UsageWindow) -> Option<u64> {
        match window {
            UsageWindow::Day => self.per_day,
            UsageWindow::Minute => self.per_minute,
        }
    }

    /// The first window (the longest: its wait is the longest) that `usage` used up.
    pub fn exceeded(&self, usage: &[WindowUsage]) -> Option<Exceeded> {
        usage.iter().find_map(|w| {
            let limit = self.limit(w.window)?;
            (w.used >= limit).then_some(Exceeded {
                window: w.window,
                limit,
                resets_at_ms: w.resets_at_ms,
            })
        })
    }
}

/// A budget window that is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub window: UsageWindow,
    pub limit: u64,
    pub resets_at_ms: i64,
}

impl Exceeded {
    /// Milliseconds until the window resets (at least 1).
    pub fn retry_after_ms(&self) -> u64 {
        (self.resets_at_ms - crate::clock::now_millis()).max(1) as u64
    }

    /// The sentence the client gets with `budget_exceeded`.
    pub fn message(&self) -> String {
        format!(
            "The token budget of this {} ({} tokens) is used up; it resets at {}.",
            self.window.name(),
            self.limit,
            crate::clock::millis_to_rfc3339(self.resets_at_ms)
        )
    }
}

/// Reads a usage script's reply: `used, resets_at_ms` per window of [`UsageWindow::ALL`].
pub(crate) fn parse_usage(reply: &[i64]) -> Result<Vec<WindowUsage>, StoreError> {
    if reply.len() != UsageWindow::ALL.len() * 2 || reply.iter().any(|n| *n < 0) {
        return Err(StoreError::Corrupt(format!("usage reply {reply:?}")));
    }
    Ok(UsageWindow::ALL
        .iter()
        .zip(reply.chunks(2))
        .map(|(window, pair)| WindowUsage {
            window: *window,
            used: pair[0] as u64,
            resets_at_ms: pair[1],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_of_zero_are_no_limit() {
        assert_eq!(Rate::new(0, 5), None);
        let rate = Rate::new(60, 0).unwrap();
        assert_eq!(rate.burst, 1);
        assert_eq!(rate.interval_us(), 1_000_000);
    }

    #[test]
    fn malformed_usage_replies_are_errors() {
        assert!(parse_usage(&[1, 2]).is_err());
        assert!(parse_usage(&[1, 2, -1, 4]).is_err());
        let ok = parse_usage(&[10, 86_400_000, 3, 60_000]).unwrap();
        assert_eq!(ok[0].window, UsageWindow::Day);
        assert_eq!(ok[1].used, 3);
    }
}
