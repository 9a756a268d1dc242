//! In-memory side of the bounded holder sets ([`crate::backend::SlotOutcome`]), with the
//! Redis script's semantics: claims lapse at their deadline (tokio's clock, so tests can
//! pause time), a holder that already has a slot keeps it, and empty sets are dropped so
//! nothing grows with users that have left.

use super::MemoryBackend;
use crate::backend::{SlotOutcome, StoreError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Every set by scope: holder → when its claim lapses. A `std::sync::Mutex`: each
/// operation is a short critical section with no `.await` inside.
#[derive(Default)]
pub(super) struct Slots {
    sets: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

impl Slots {
    /// Runs `f` on the scope's set, pruned of lapsed claims; drops the set if it ends empty.
    fn with_set<R>(&self, scope: &str, f: impl FnOnce(&mut HashMap<String, Instant>) -> R) -> R {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let set = sets.entry(scope.to_owned()).or_default();
        set.retain(|_, lapses| *lapses > now);
        let result = f(set);
        if set.is_empty() {
            sets.remove(scope);
        }
        result
    }
}

impl MemoryBackend {
    pub async fn acquire_slot(
        &self,
        scope: &str,
        holder: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<SlotOutcome, StoreError> {
        Ok(self.inner.slots.with_set(scope, |set| {
            if !set.contains_key(holder) && set.len() >= limit as usize {
                return SlotOutcome::Full {
                    held: set.len() as u32,
                };
            }
            set.insert(holder.to_owned(), Instant::now() + ttl);
            SlotOutcome::Acquired {
                held: set.len() as u32,
            }
        }))
    }

    pub async fn refresh_slot(
        &self,
        scope: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .slots
            .with_set(scope, |set| match set.get_mut(holder) {
                Some(lapses) => {
                    *lapses = Instant::now() + ttl;
                    true
                }
                None => false,
            }))
    }

    pub async fn release_slot(&self, scope: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.slots.with_set(scope, |set| set.remove(holder));
        Ok(())
    }

    pub async fn slots_held(&self, scope: &str) -> Result<u32, StoreError> {
        Ok(self.inner.slots.with_set(scope, |set| set.len() as u32))
    }
}
