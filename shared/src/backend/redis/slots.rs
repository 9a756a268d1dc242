//! Redis side of the bounded holder sets ([`crate::backend::SlotOutcome`]): one script,
//! `slots.lua`, so pruning lapsed claims, checking the limit and adding the holder are
//! one step no other pod can interleave with.

use super::RedisBackend;
use crate::backend::{SlotOutcome, StoreError};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// Immutable (the script text and its SHA), so one copy serves every backend handle.
static SLOTS: LazyLock<Script> = LazyLock::new(|| Script::from_lua(include_str!("slots.lua")));

impl RedisBackend {
    async fn slots_call<R: FromValue>(
        &self,
        scope: &str,
        op: &str,
        holder: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<R, StoreError> {
        let key = self.keys().slots(scope);
        let args = vec![
            op.to_owned(),
            holder.to_owned(),
            limit.to_string(),
            ttl.as_millis().max(1).to_string(),
        ];
        Ok(SLOTS
            .evalsha_with_reload(self.client(), vec![key], args)
            .await?)
    }

    pub async fn acquire_slot(
        &self,
        scope: &str,
        holder: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<SlotOutcome, StoreError> {
        let reply: Vec<i64> = self
            .slots_call(scope, "acquire", holder, limit, ttl)
            .await?;
        match reply.as_slice() {
            [1, held] => Ok(SlotOutcome::Acquired { held: *held as u32 }),
            [0, held] => Ok(SlotOutcome::Full { held: *held as u32 }),
            other => Err(StoreError::Corrupt(format!("slots reply {other:?}"))),
        }
    }

    pub async fn refresh_slot(
        &self,
        scope: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let held: i64 = self.slots_call(scope, "refresh", holder, 0, ttl).await?;
        Ok(held == 1)
    }

    pub async fn release_slot(&self, scope: &str, holder: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .slots_call(scope, "release", holder, 0, Duration::ZERO)
            .await?;
        Ok(())
    }

    pub async fn slots_held(&self, scope: &str) -> Result<u32, StoreError> {
        let held: i64 = self
            .slots_call(scope, "count", "", 0, Duration::ZERO)
            .await?;
        Ok(held as u32)
    }
}
