//! Redis side of the cross-pod limits (`backend::limits`): `rate.lua` (GCRA) and
//! `usage.lua` (token windows), each one script on one key. The session's charge is a
//! meta field, written by `accept_message.lua` and read by `begin_work.lua`.

use super::RedisBackend;
use crate::backend::StoreError;
use crate::backend::limits::{Rate, RateOutcome, UsageWindow, WindowUsage, parse_usage};
use fred::types::scripts::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// Immutable (the script text and its SHA), so one copy serves every backend handle.
static RATE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(include_str!("rate.lua")));
static USAGE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(include_str!("usage.lua")));

impl RedisBackend {
    pub async fn check_rate(&self, scope: &str, rate: Rate) -> Result<RateOutcome, StoreError> {
        let key = self.keys().rate(scope);
        let args = vec![rate.interval_us().to_string(), rate.burst.to_string()];
        let reply: Vec<i64> = RATE
            .evalsha_with_reload(self.client(), vec![key], args)
            .await?;
        match reply.as_slice() {
            [1, remaining] if *remaining >= 0 => Ok(RateOutcome::Allowed {
                remaining: (*remaining).min(i64::from(u32::MAX)) as u32,
            }),
            [0, wait_us] if *wait_us >= 0 => Ok(RateOutcome::Limited {
                retry_after: Duration::from_micros(*wait_us as u64),
            }),
            other => Err(StoreError::Corrupt(format!("rate reply {other:?}"))),
        }
    }

    pub async fn record_usage(
        &self,
        scope: &str,
        tokens: u64,
    ) -> Result<Vec<WindowUsage>, StoreError> {
        let key = self.keys().usage(scope);
        let mut args = vec![tokens.to_string()];
        for window in UsageWindow::ALL {
            args.push(window.name().to_owned());
            args.push(window.length_ms().to_string());
        }
        let reply: Vec<i64> = USAGE
            .evalsha_with_reload(self.client(), vec![key], args)
            .await?;
        parse_usage(&reply)
    }
}
