//! Events and the bus: publish (seqs, log, channel in one script), replay from the
//! log, the gateway's subscriber, cancel requests for workers, canaries.

use super::{RedisBackend, RedisSubscriber};
use crate::backend::{PublishOutcome, StoreError, finish_replay, split_batch};
use crate::clock;
use crate::ids::SessionId;
use crate::model::*;
use crate::wire::StreamEvent;
use fred::prelude::*;
use std::collections::HashMap;
use tokio::sync::mpsc;

impl RedisBackend {
    /// Publishes events in one batch; `fence` is the worker's attempt, when it has one.
    pub async fn publish(
        &self,
        id: &SessionId,
        events: &[StreamEvent],
        fence: Option<Fence>,
    ) -> Result<PublishOutcome, StoreError> {
        let k = self.keys();
        let mut args = vec![
            k.channel(id),
            self.settings().event_log_max_entries.to_string(),
            self.ttl().to_string(),
            fence.map(|f| f.attempt.to_string()).unwrap_or_default(),
            fence.map(|f| f.message_id.to_string()).unwrap_or_default(),
            events.len().to_string(),
        ];
        args.extend(events.iter().map(StreamEvent::to_json));
        self.scripts()
            .publish_events
            .run(self, vec![k.meta(id), k.events(id)], args)
            .await
    }

    pub async fn replay(&self, id: &SessionId, after_seq: u64) -> Result<Replay, StoreError> {
        let k = self.keys();
        let last_seq: Option<u64> = self.client().hget(k.meta(id), "seq").await?;
        let last_seq = last_seq.unwrap_or(0);
        if after_seq >= last_seq {
            return Ok(Replay {
                events: Vec::new(),
                recovered: after_seq == last_seq,
                last_seq,
            });
        }
        // Entries are keyed by the last seq of their batch: every batch holding a seq
        // past `after_seq` has an id past `after_seq`-0.
        let entries: Vec<(String, HashMap<String, String>)> = self
            .client()
            .xrange(k.events(id), format!("({after_seq}-0"), "+", None)
            .await?;
        let mut events = Vec::new();
        for (_, fields) in &entries {
            if let Some(payload) = fields.get("e") {
                events.extend(split_batch(payload).map(|(_, line)| line.to_owned()));
            }
        }
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
