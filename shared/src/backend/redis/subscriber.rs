//! One pub/sub client per gateway instance, shared by all its sockets. Session channels
//! are shard channels (`SSUBSCRIBE`): on a cluster, fred keeps a connection to each
//! shard that owns a subscribed slot, and a message reaches only that shard's
//! subscribers instead of being broadcast to every node.
//!
//! Reconnects are handled here rather than by fred's `manage_subscriptions`, so the
//! order is right: re-subscribe first, then tell the hub to re-read the event log of
//! every attached session. Events published while the connection was down are in the
//! log, so nothing is lost.

use super::super::{BusSignal, StoreError};
use crate::ids::SessionId;
use crate::keys::Keys;
use crate::model::BusMessage;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Messages the subscriber buffers before the reader counts as lagging (and resyncs).
const SUBSCRIBER_BUFFER: usize = 16_384;

/// Subscribes this instance to the channels of the sessions it holds sockets for.
#[derive(Clone)]
pub struct RedisSubscriber {
    client: SubscriberClient,
    keys: Keys,
}

impl RedisSubscriber {
    pub(crate) async fn connect(builder: &Builder, keys: Keys) -> Result<Self, StoreError> {
        // Only the subscriber needs a deep message buffer (a burst of events for many
        // sessions); the pooled command clients keep fred's small default.
        let mut builder = builder.clone();
        builder.with_performance_config(|p| p.broadcast_channel_capacity = SUBSCRIBER_BUFFER);
        let client = builder.build_subscriber_client()?;
        client.init().await?;
        Ok(Self { client, keys })
    }

    pub async fn subscribe(&self, id: &SessionId) -> Result<(), StoreError> {
        self.client.ssubscribe(self.keys.channel(id)).await?;
        Ok(())
    }

    pub async fn unsubscribe(&self, id: &SessionId) -> Result<(), StoreError> {
        self.client.sunsubscribe(self.keys.channel(id)).await?;
        Ok(())
    }

    /// Subscribes to the instance's probe channel in every partition (so on every shard).
    pub async fn watch_probe(&self, probe: &str) -> Result<(), StoreError> {
        let channels = self.keys.partitions().map(|p| self.keys.probe(p, probe));
        super::events::ssubscribe_each(&self.client, channels).await
    }

    /// Drops and re-opens the connection (a wedged one may not even fail); the
    /// reconnect then re-subscribes and triggers a resync, as after any reconnect.
    pub async fn resubscribe(&self) -> Result<(), StoreError> {
        self.client.force_reconnection().await?;
        Ok(())
    }

    /// Starts handing every message of every subscribed channel to `sink`, and
    /// `Resync` after a reconnect or when it fell behind, until `sink` says stop.
    pub fn dispatch<F, Fut>(&self, mut sink: F)
    where
        F: FnMut(BusSignal) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let mut messages = self.client.message_rx();
        let mut reconnects = self.client.reconnect_rx();
        let client = self.client.clone();
        let keys = self.keys.clone();
        tokio::spawn(async move {
            let mut canaries = Canaries::new(keys.partition_count());
            loop {
                let signal = tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) if keys.is_probe(&message.channel) => {
                            let round = message.value.as_string().unwrap_or_default();
                            let Some(partition) = keys.partition_of_name(&message.channel) else { continue };
                            if !canaries.arrived(round, partition.0) { continue }
                            BusSignal::Probe
                        }
                        Ok(message) => {
                            let Some(session_id) = keys.session_of_channel(&message.channel) else { continue };
                            let Some(payload) = message.value.as_str().map(|p| Arc::<str>::from(p.as_ref())) else { continue };
                            BusSignal::Message(BusMessage { session_id, payload })
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "pub/sub reader fell behind; re-reading event logs");
                            BusSignal::Resync
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            tracing::warn!("bus subscription ended");
                            break;
                        }
                    },
                    reconnected = reconnects.recv() => match reconnected {
                        Ok(server) => {
                            tracing::info!(%server, "pub/sub reconnected; re-subscribing");
                            crate::metrics::pubsub_reconnected();
                            if let Err(error) = super::events::resubscribe_shards(&client).await {
                                tracing::error!(%error, "re-subscribe failed");
                            }
                            BusSignal::Resync
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => BusSignal::Resync,
                        Err(broadcast::error::RecvError::Closed) => {
                            tracing::warn!("bus subscription ended");
                            break;
                        }
                    },
                };
                if !sink(signal).await {
                    break;
                }
            }
        });
    }
}

/// One canary round: its payload and the partitions whose copy arrived. A round counts
/// as a probe only once every partition's copy arrived (every shard delivers).
struct Canaries {
    partitions: usize,
    round: String,
    seen: std::collections::HashSet<u16>,
}

impl Canaries {
    fn new(partitions: u16) -> Self {
        Self {
            partitions: partitions as usize,
            round: String::new(),
            seen: Default::default(),
        }
    }

    /// Records one copy; true when it completes its round.
    fn arrived(&mut self, round: String, partition: u16) -> bool {
        if round != self.round {
            self.round = round;
            self.seen.clear();
        }
        self.seen.insert(partition) && self.seen.len() == self.partitions
    }
}

#[cfg(test)]
mod tests {
    use super::Canaries;

    #[test]
    fn a_round_counts_once_every_partition_delivered() {
        let mut canaries = Canaries::new(3);
        assert!(!canaries.arrived("1".into(), 0));
        assert!(!canaries.arrived("1".into(), 2));
        assert!(!canaries.arrived("1".into(), 2), "a copy twice is one copy");
        assert!(canaries.arrived("1".into(), 1));
        // A new round starts over; a partition missing from it keeps it incomplete.
        assert!(!canaries.arrived("2".into(), 0));
        assert!(!canaries.arrived("2".into(), 1));
        assert!(!canaries.arrived("3".into(), 2));
    }
}
