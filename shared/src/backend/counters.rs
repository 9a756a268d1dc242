//! Bounded holder sets shared by every gateway pod: the per-user limits that must hold
//! across pods ("at most N sockets per user", "at most N sessions per user").
//!
//! A set is named by a scope the caller chooses (e.g. `sockets:user:alice`) and holds
//! holder ids (a socket's id, a session's id), each with a claim that lapses after a
//! TTL unless its holder refreshes it. So a pod that crashes holding slots frees them
//! within one TTL, with no sweeper: lapsed claims are pruned by every call on the set.
//! Redis keeps each set in one sorted set scored by lapse time (`redis/slots.lua`); the
//! in-memory backend mirrors it (`memory/slots.rs`); both pass the same conformance cases
//! (`tests/conformance/slots.rs`).

use super::{Backend, StoreError};
use std::time::Duration;

/// What [`Backend::acquire_slot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOutcome {
    /// The holder has a slot (new, or it already had one and it was refreshed);
    /// `held` counts the set's holders now.
    Acquired { held: u32 },
    /// The set already has `limit` other holders; nothing changed.
    Full { held: u32 },
}

impl Backend {
    /// Takes a slot in `scope` for `holder` for `ttl`, unless `limit` other holders
    /// have live claims. Taking it again refreshes it (never refused).
    pub async fn acquire_slot(
        &self,
        scope: &str,
        holder: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<SlotOutcome, StoreError> {
        dispatch!(self, b => b.acquire_slot(scope, holder, limit, ttl).await)
    }

    /// Extends a live claim to `ttl` from now; false when the holder has no live slot
    /// (released, or lapsed because it was not refreshed in time).
    pub async fn refresh_slot(
        &self,
        scope: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.refresh_slot(scope, holder, ttl).await)
    }

    /// Frees the holder's slot (a no-op when it has none).
    pub async fn release_slot(&self, scope: &str, holder: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.release_slot(scope, holder).await)
    }

    /// Holders with live claims in `scope`.
    pub async fn slots_held(&self, scope: &str) -> Result<u32, StoreError> {
        dispatch!(self, b => b.slots_held(scope).await)
    }
}
