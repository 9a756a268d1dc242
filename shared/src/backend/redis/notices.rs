//! Which inbox partitions a worker on a Redis Cluster should read (one Redis needs
//! none of this: see `blocked_reads`): the `ready` notices (one shard channel
//! per partition, sent when an entry is added) mark their partition due, so a read
//! asks only the partitions that may hold new entries instead of sweeping all of
//! them for every answer (with 16 partitions that was 16 `XREADGROUP`s per read).
//!
//! Every partition is due at start, after the notice subscriber reconnects or lags
//! (notices may have been missed meanwhile), and at least every `INBOX_SWEEP_MS`, a
//! safety net for a notice lost any other way: an entry then waits at most that long.

use crate::keys::{Keys, Partition};
use fred::clients::SubscriberClient;
use fred::prelude::*;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// The partitions due for a read, and a counter that moves whenever one is marked.
pub(super) struct Notices {
    due: Mutex<Due>,
    marked: watch::Sender<u64>,
    /// Longest time between two reads of every partition.
    sweep_every: Duration,
}

struct Due {
    partitions: BTreeSet<u16>,
    /// Every partition is due (start, reconnect, lag, periodic sweep).
    all: bool,
    last_sweep: Instant,
}

impl Notices {
    /// Subscribes `client` to every partition's `ready` channel and keeps marking the
    /// partitions it hears of until the returned handle is dropped.
    pub(super) async fn start(
        client: SubscriberClient,
        keys: &Keys,
        sweep_every: Duration,
    ) -> Result<Arc<Self>, crate::backend::StoreError> {
        client.init().await?;
        let channels = keys.partitions().map(|p| keys.ready(p));
        super::events::ssubscribe_each(&client, channels).await?;
        let notices = Arc::new(Self {
            due: Mutex::new(Due {
                partitions: BTreeSet::new(),
                all: true,
                last_sweep: Instant::now(),
            }),
            marked: watch::Sender::new(0),
            sweep_every,
        });
        tokio::spawn(forward(client, keys.clone(), Arc::downgrade(&notices)));
        Ok(notices)
    }

    fn due(&self) -> std::sync::MutexGuard<'_, Due> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that sees every later mark.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.marked.subscribe()
    }

    /// Takes the due partitions (all of them, in `order`, when a sweep is due), leaving
    /// none due: a notice that arrives while they are read marks its partition again.
    pub(super) fn take(&self, order: impl Iterator<Item = Partition>) -> Vec<Partition> {
        let mut due = self.due();
        if due.all || due.last_sweep.elapsed() >= self.sweep_every {
            due.all = false;
            due.partitions.clear();
            due.last_sweep = Instant::now();
            return order.collect();
        }
        let taken: Vec<Partition> = order.filter(|p| due.partitions.contains(&p.0)).collect();
        due.partitions.clear();
        taken
    }

    /// When every partition is next due (the safety-net sweep).
    pub(super) fn next_sweep(&self) -> Instant {
        self.due().last_sweep + self.sweep_every
    }

    /// Marks partitions due again (a read that came back full, or was not made).
    pub(super) fn mark(&self, partitions: impl IntoIterator<Item = Partition>) {
        let mut due = self.due();
        let before = due.partitions.len();
        due.partitions.extend(partitions.into_iter().map(|p| p.0));
        if due.partitions.len() != before {
            drop(due);
            self.marked.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn mark_all(&self) {
        self.due().all = true;
        self.marked.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Marks the partition of every notice until the [`Notices`] are dropped; after a
/// reconnect (a failover moves slots to another node) it subscribes again, and after
/// a reconnect or a lag it marks every partition, since notices may have been missed.
async fn forward(client: SubscriberClient, keys: Keys, notices: Weak<Notices>) {
    let mut messages = client.message_rx();
    let mut reconnects = client.reconnect_rx();
    loop {
        let heard = tokio::select! {
            message = messages.recv() => match message {
                Ok(message) => keys.partition_of_name(&message.channel),
                Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            reconnected = reconnects.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = reconnected { return }
                if let Err(error) = super::events::resubscribe_shards(&client).await {
                    tracing::warn!(%error, "re-subscribing to inbox notices failed");
                }
                None
            }
        };
        let Some(notices) = notices.upgrade() else {
            return;
        };
        match heard {
            Some(partition) => notices.mark([partition]),
            // A reconnect, a lag, or a channel that names no partition: read them all.
            None => notices.mark_all(),
        }
    }
}
