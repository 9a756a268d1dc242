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
                vec![k.control(), id.to_string()],
            )
            .await
    }

    pub async fn cancel_requests(&self) -> Result<mpsc::Receiver<CancelRequest>, StoreError> {
        let client = self.builder().build_subscriber_client()?;
        client.init().await?;
        // Re-subscribes after reconnects; the task ends with the client.
        drop(client.manage_subscriptions());
        client.subscribe(self.keys().control()).await?;
        let mut messages = client.message_rx();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            // Owning the client keeps the subscription alive as long as the receiver.
            let _client = client;
            loop {
                match messages.recv().await {
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

    pub async fn send_canary(&self, probe: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .client()
            .publish(self.keys().probe(probe), clock::now_millis().to_string())
            .await?;
        Ok(())
    }
}
