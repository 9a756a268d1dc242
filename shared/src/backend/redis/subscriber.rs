//! One pub/sub connection per gateway instance, shared by all its sockets.
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
use tokio::sync::{broadcast, mpsc};

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
        self.client.subscribe(self.keys.channel(id)).await?;
        Ok(())
    }

    pub async fn unsubscribe(&self, id: &SessionId) -> Result<(), StoreError> {
        self.client.unsubscribe(self.keys.channel(id)).await?;
        Ok(())
    }

    pub async fn watch_probe(&self, probe: &str) -> Result<(), StoreError> {
        self.client.subscribe(self.keys.probe(probe)).await?;
        Ok(())
    }

    /// Drops and re-opens the connection (a wedged one may not even fail); the
    /// reconnect then re-subscribes and triggers a resync, as after any reconnect.
    pub async fn resubscribe(&self) -> Result<(), StoreError> {
        self.client.force_reconnection().await?;
        Ok(())
    }

    /// Starts forwarding messages; the receiver gets every message of every subscribed
    /// channel, and `Resync` after a reconnect or when it fell behind.
    pub fn signals(&self, capacity: usize) -> mpsc::Receiver<BusSignal> {
        let (tx, rx) = mpsc::channel(capacity);
        let mut messages = self.client.message_rx();
        let mut reconnects = self.client.reconnect_rx();
        let client = self.client.clone();
        let keys = self.keys.clone();
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) if keys.is_probe(&message.channel) => BusSignal::Probe,
                        Ok(message) => {
                            let Some(session_id) = keys.session_of_channel(&message.channel) else { continue };
                            let Some(payload) = message.value.as_str().map(|p| Arc::<str>::from(p.as_ref())) else { continue };
                            BusSignal::Message(BusMessage { session_id, payload })
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "pub/sub reader fell behind; re-reading event logs");
                            BusSignal::Resync
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    reconnected = reconnects.recv() => match reconnected {
                        Ok(server) => {
                            tracing::info!(%server, "pub/sub reconnected; re-subscribing");
                            crate::metrics::pubsub_reconnected();
                            if let Err(error) = client.resubscribe_all().await {
                                tracing::error!(%error, "re-subscribe failed");
                            }
                            BusSignal::Resync
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => BusSignal::Resync,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                };
                // The hub never awaits socket writes, so this only waits briefly; a
                // full channel means the hub itself is behind, which resync covers.
                if tx.send(signal).await.is_err() {
                    break;
                }
            }
        });
        rx
    }
}
