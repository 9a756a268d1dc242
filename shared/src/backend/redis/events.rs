//! Events and the bus: publish (seqs, log, channel in one script), replay from the
//! log, the gateway's subscriber, cancel requests for workers, canaries.

use super::work::log_after;
use super::{RedisBackend, RedisSubscriber};
use crate::backend::{PublishOutcome, StoreError, finish_replay, seq_of, split_batch};
use crate::clock;
use crate::ids::SessionId;
use crate::model::*;
use crate::wire::StreamEvent;
use fred::prelude::*;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// An event log entry as `XRANGE` reads it: its id and fields (`e`: the batch).
type Entry = (String, HashMap<String, String>);

impl RedisBackend {
    /// Publishes events in one batch; `fence` is the worker's attempt, when it has one,
    /// and carries where its last publish left the log (moved on by this one).
    pub async fn publish(
        &self,
        id: &SessionId,
        events: &[StreamEvent],
        fence: Option<Fence<'_>>,
    ) -> Result<PublishOutcome, StoreError> {
        let k = self.keys();
        let mut args = vec![
            k.channel(id),
            self.settings().event_log_max_entries.to_string(),
            self.ttl().to_string(),
            fence.map(|f| f.attempt.to_string()).unwrap_or_default(),
            fence.map(|f| f.message_id.to_string()).unwrap_or_default(),
            fence.map(|f| log_after(f.log)).unwrap_or_default(),
            events.len().to_string(),
        ];
        args.extend(events.iter().map(StreamEvent::to_json));
        let outcome = self
            .scripts()
            .publish_events
            .run(self, vec![k.meta(id), k.events(id)], args)
            .await?;
        if let (PublishOutcome::Published { last_seq }, Some(fence)) = (outcome, fence) {
            fence.log.set(last_seq);
        }
        Ok(outcome)
    }

    /// The session's last seq: the last event of its log's newest entry (the log is
    /// the seq counter, `publish_batch.lua`), 0 with no log.
    pub(super) async fn last_seq(&self, id: &SessionId) -> Result<u64, StoreError> {
        match self.newest_entry(id).await? {
            Some(entry) => entry_seqs(&entry).map(|(_, last)| last),
            None => Ok(0),
        }
    }

    async fn newest_entry(&self, id: &SessionId) -> Result<Option<Entry>, StoreError> {
        let newest: Vec<Entry> = self
            .client()
            .xrevrange(self.keys().events(id), "+", "-", Some(1))
            .await?;
        Ok(newest.into_iter().next())
    }

    pub async fn replay(&self, id: &SessionId, after_seq: u64) -> Result<Replay, StoreError> {
        let Some(newest) = self.newest_entry(id).await? else {
            return Ok(finish_replay(Vec::new(), after_seq, 0));
        };
        let (first, last_seq) = entry_seqs(&newest)?;
        if after_seq >= last_seq {
            return Ok(finish_replay(Vec::new(), after_seq, last_seq));
        }
        let entries = if first <= after_seq + 1 {
            // The tail a client usually asks for: the newest entry holds all of it.
            vec![newest]
        } else {
            // Entries are keyed by their first seq (older ones by their last): past
            // `after_seq`, and the one at or before it, which may hold seqs past it.
            let log = self.keys().events(id);
            let (before, past) = tokio::try_join!(
                self.client().xrevrange::<Vec<Entry>, _, _, _>(
                    &log,
                    format!("{after_seq}-0"),
                    "-",
                    Some(1)
                ),
                self.client().xrange::<Vec<Entry>, _, _, _>(
                    &log,
                    format!("({after_seq}-0"),
                    "+",
                    None
                ),
            )?;
            before.into_iter().chain(past).collect()
        };
        let mut events = Vec::new();
        for (_, fields) in &entries {
            if let Some(payload) = fields.get("e") {
                events.extend(split_batch(payload).map(|(_, line)| line.to_owned()));
            }
        }
        // Batches published since the newest entry was read may be among them.
        let last_seq = events
            .last()
            .and_then(|l| seq_of(l))
            .map_or(last_seq, |s| s.max(last_seq));
        Ok(finish_replay(events, after_seq, last_seq))
    }

    pub async fn subscriber(&self) -> Result<RedisSubscriber, StoreError> {
        RedisSubscriber::connect(self.builder(), self.keys().clone()).await
    }

    pub async fn cancel(&self, id: &SessionId) -> Result<CancelOutcome, StoreError> {
        let k = self.keys();
        self.scripts()
            .cancel_generation
            .run(
                self,
                vec![k.meta(id), k.pending(id)],
                vec![k.control(k.partition_of(id)), id.to_string()],
            )
            .await
    }

    /// Cancel requests from every partition's control channel. A worker may hold any
    /// session, so it listens on all of them; each request still travels on one shard.
    pub async fn cancel_requests(&self) -> Result<mpsc::Receiver<CancelRequest>, StoreError> {
        let client = self.builder().build_subscriber_client()?;
        client.init().await?;
        let channels = self.keys().partitions().map(|p| self.keys().control(p));
        ssubscribe_each(&client, channels).await?;
        let mut messages = client.message_rx();
        let mut reconnects = client.reconnect_rx();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            // Owning the client keeps the subscription alive as long as the receiver.
            loop {
                let message = tokio::select! {
                    message = messages.recv() => message,
                    reconnected = reconnects.recv() => {
                        if reconnected.is_err() { break }
                        // Also to the new master of a slot after a failover.
                        if let Err(error) = resubscribe_shards(&client).await {
                            tracing::error!(%error, "re-subscribing to cancel requests failed");
                        }
                        continue;
                    }
                };
                match message {
                    Ok(message) => {
                        let Some(text) = message.value.as_str() else {
                            continue;
                        };
                        if let Some(Control::Cancel {
                            session_id,
                            message_id,
                        }) = Control::parse(&text)
                        {
                            let request = CancelRequest {
                                session_id,
                                message_id,
                            };
                            if tx.send(request).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(rx)
    }

    /// One canary on each partition's probe channel of instance `probe`, so a
    /// subscription to any shard that went quiet is noticed (`subscriber.rs` reports a
    /// probe only when every partition's canary arrived).
    pub async fn send_canary(&self, probe: &str) -> Result<(), StoreError> {
        let round = clock::now_millis().to_string();
        let sends = self.keys().partitions().map(|p| {
            self.client()
                .spublish::<i64, _, _>(self.keys().probe(p, probe), round.as_str())
        });
        futures_util::future::try_join_all(sends).await?;
        Ok(())
    }
}

/// Subscribes again to every shard channel the client tracks, each with its own
/// `SSUBSCRIBE` (to the shard that owns its slot now). fred's `resubscribe_all` also
/// re-sends `SUBSCRIBE`/`PSUBSCRIBE` with no channels, which Redis refuses.
pub(super) async fn resubscribe_shards(
    client: &fred::clients::SubscriberClient,
) -> Result<(), StoreError> {
    let channels = client.tracked_shard_channels();
    ssubscribe_each(client, channels.into_iter().map(|c| c.to_string())).await
}

/// Subscribes to shard channels one by one: each may live on another shard.
pub(super) async fn ssubscribe_each(
    client: &fred::clients::SubscriberClient,
    channels: impl Iterator<Item = String>,
) -> Result<(), StoreError> {
    for channel in channels {
        client.ssubscribe(channel).await?;
    }
    Ok(())
}

/// The first and last seq of a log entry's batch (its first and last line's).
fn entry_seqs((entry_id, fields): &Entry) -> Result<(u64, u64), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("event log entry {entry_id}"));
    let payload = fields.get("e").ok_or_else(corrupt)?;
    let first = payload.split('\n').next().and_then(seq_of);
    let last = payload.rsplit('\n').next().and_then(seq_of);
    first.zip(last).ok_or_else(corrupt)
}
