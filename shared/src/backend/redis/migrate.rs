//! Upgrading a one-Redis deployment from the layout before partitions (`P:{S}:meta`,
//! a global `P:inbox` and `P:sessions`; `keys::legacy`): at start, every session still
//! in the old index is moved to its partition with its history, event log, pending
//! messages and TTLs, one session per script call (`migrate_legacy.lua`), and a
//! session with pending messages is queued on its partition's inbox. Pods starting
//! together share the work safely (each call takes its session out of the old index).
//! When the old index is empty the old inbox is dropped: its entries stood for
//! sessions that are now queued on their partitions.

use super::RedisBackend;
use crate::backend::StoreError;
use crate::ids::SessionId;
use crate::keys::legacy;
use fred::prelude::*;

/// Sessions read from the old index per round.
const BATCH: i64 = 500;

impl RedisBackend {
    pub(super) async fn migrate_legacy(&self) -> Result<(), StoreError> {
        let prefix = self.keys().prefix().to_owned();
        let old_index = legacy::sessions(&prefix);
        let old_inbox = legacy::inbox(&prefix);
        let mut moved = 0u64;
        loop {
            let ids: Vec<String> = self
                .client()
                .zrange(&old_index, 0, BATCH - 1, None, false, None, false)
                .await?;
            if ids.is_empty() {
                break;
            }
            for raw in ids {
                let Ok(id) = SessionId::parse(&raw) else {
                    // Not a session id this version accepts: it can never be addressed.
                    let _: i64 = self.client().zrem(&old_index, &raw).await?;
                    continue;
                };
                moved += u64::from(self.migrate_session(&id, &old_index).await?);
            }
        }
        let dropped: i64 = self.client().del(&old_inbox).await?;
        if moved > 0 || dropped > 0 {
            tracing::info!(moved, "moved sessions from the layout before partitions");
        }
        Ok(())
    }

    async fn migrate_session(&self, id: &SessionId, old_index: &str) -> Result<bool, StoreError> {
        let k = self.keys();
        let prefix = k.prefix();
        let partition = k.partition_of(id);
        let mut keys: Vec<String> = legacy::SUFFIXES
            .iter()
            .map(|suffix| legacy::session_key(prefix, id, suffix))
            .collect();
        keys.extend(
            legacy::SUFFIXES
                .iter()
                .map(|suffix| k.session_key(id, suffix)),
        );
        keys.extend([
            k.inbox(partition),
            k.sessions(partition),
            old_index.to_owned(),
        ]);
        let args = vec![
            id.to_string(),
            k.ready(partition),
            legacy::SUFFIXES.len().to_string(),
        ];
        let moved = self.scripts().migrate_legacy.run(self, keys, args).await?;
        Ok(moved.0)
    }
}
