//! How a worker reads the inbox on one Redis: one `XREADGROUP ... BLOCK` over every
//! partition, on a connection of its own (a blocked command holds its connection).
//! Redis serves each new entry to one blocked reader only, so an entry wakes one idle
//! worker, not every one (as the `ready` notices a Redis Cluster needs do: there a
//! command cannot span slots), and the entry comes with the wake-up, with no read
//! after a notice and no safety-net sweep (Redis loses no blocked read's entry).
//!
//! `COUNT` applies per partition, so a read of `max` asks `max / partitions` of each
//! (at least 1). Redis serves a blocked read from the one partition that got an entry;
//! a read that finds entries at once takes from every partition that has them, which
//! with fewer free slots than partitions can pass `max`. The entries past it go back
//! to the inbox (`requeue_entry.lua`) for the next reader.

use super::RedisBackend;
use super::replies::Requeued;
use super::work::{group_is_gone, parse_xreadgroup, slot_of};
use crate::backend::StoreError;
use crate::keys::{Partition, WORKER_GROUP};
use crate::model::Delivery;
use fred::prelude::*;
use fred::types::config::Options;
use fred::types::{ClientUnblockFlag, CustomCommand};
use std::time::Duration;

impl RedisBackend {
    /// The connection blocked reads wait on. Made on first use (only workers read).
    async fn blocking_client(&self) -> Result<&Client, StoreError> {
        self.inner
            .blocking_reads
            .get_or_try_init(|| async {
                let client = self.builder().build()?;
                client.init().await?;
                Ok::<_, StoreError>(client)
            })
            .await
    }

    /// Reads up to `max` new entries of every partition for `consumer`, in one
    /// command that waits up to `block` for the first.
    pub(super) async fn read_blocked(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let client = self.blocking_client().await?;
        let order: Vec<Partition> = self.rotation().collect();
        let inboxes: Vec<String> = order.iter().map(|&p| self.keys().inbox(p)).collect();
        let per_partition = (max / order.len()).max(1);
        // BLOCK 0 would wait for ever.
        let block_ms = block.as_millis().max(1) as i64;
        let mut args: Vec<Value> = vec![
            "GROUP".into(),
            WORKER_GROUP.into(),
            consumer.into(),
            "COUNT".into(),
            (per_partition as i64).into(),
            "BLOCK".into(),
            block_ms.into(),
            "STREAMS".into(),
        ];
        args.extend(inboxes.iter().map(|inbox| Value::from(inbox.as_str())));
        args.extend(inboxes.iter().map(|_| Value::from(">")));
        let cmd = CustomCommand::new_static("XREADGROUP", slot_of(&inboxes[0]), true);
        // A blocked read is not a slow command: its deadline is the block's, and more.
        let options = Options {
            timeout: Some(block + self.settings().command_timeout()),
            ..Default::default()
        };
        let waiting = UnblockIfDropped(Some(client.clone()));
        let reply = client
            .with_options(&options)
            .custom::<Value, _>(cmd, args)
            .await;
        waiting.disarm();
        let mut found = match reply {
            Ok(reply) => parse_xreadgroup(reply, |key| self.keys().partition_of_name(key))?,
            Err(error) if group_is_gone(&error) => {
                tracing::warn!(%error, "consumer groups missing; creating them again");
                self.ensure_groups().await?;
                Vec::new()
            }
            Err(error) => return Err(error.into()),
        };
        if found.len() > max {
            let past_max = found.split_off(max);
            self.requeue(past_max).await;
        }
        Ok(found)
    }

    /// Puts entries read past `max` back on the inbox, together. One that fails stays
    /// pending on this consumer, unrefreshed, and is reclaimed after the lease.
    async fn requeue(&self, deliveries: Vec<Delivery>) {
        let requeues = deliveries.iter().map(|delivery| async move {
            let (partition, entry) = self.split_entry(&delivery.entry_id)?;
            let keys = vec![
                self.keys().meta(&delivery.session_id),
                self.keys().inbox(partition),
            ];
            let args = vec![
                entry.to_owned(),
                WORKER_GROUP.to_owned(),
                delivery.session_id.to_string(),
            ];
            self.scripts().requeue_entry.run(self, keys, args).await
        });
        for (delivery, requeued) in deliveries
            .iter()
            .zip(futures_util::future::join_all(requeues).await)
        {
            match requeued {
                Ok(Requeued(Some(again))) => {
                    tracing::debug!(entry = %delivery.entry_id, %again, "inbox entry given back")
                }
                Ok(Requeued(None)) => {
                    tracing::debug!(entry = %delivery.entry_id, "stale inbox entry dropped")
                }
                Err(error) => tracing::warn!(%error, entry = %delivery.entry_id,
                    "giving back an entry read past the free slots failed; it waits for the reclaim"),
            }
        }
    }
}

/// Unblocks the reader's connection when the read waiting on it is dropped (a worker
/// stopping): otherwise an entry arriving before the block ends would be handed to a
/// reader no one is awaiting, and wait out its lease.
struct UnblockIfDropped(Option<Client>);

impl UnblockIfDropped {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for UnblockIfDropped {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            tokio::spawn(async move {
                // As a timeout: the blocked read returns no entry.
                if let Err(error) = client.unblock_self(Some(ClientUnblockFlag::Timeout)).await {
                    tracing::debug!(%error, "unblocking an abandoned inbox read");
                }
            });
        }
    }
}
