//! Fan-out of one instance's bus subscription to its sockets.
//!
//! Only this instance's sockets' sessions are subscribed, so an event reaches
//! "whichever pod holds the socket" with no ownership registry. The reader task
//! never awaits a socket: it `try_send`s into each socket's bounded queue, and a
//! socket whose queue is full is cut loose (its task closes it with 1013). One slow
//! client therefore cannot make Redis drop this pod's subscription.
//!
//! A subscription can also go quiet without an error (a peer's known failure), so the
//! hub sends itself a canary through the bus every `CANARY_INTERVAL`. When canaries
//! stop arriving, `/health` fails and the hub re-subscribes and has every socket
//! re-read its session's log.
//!
//! The canaries travel on the instance's *probe* channels (`keys::Keys::probe`, one per
//! partition so every shard of a cluster is probed; `send_canary` sends on all), not on
//! a session's: no session id names it, so no client can open, close or publish to it,
//! and the session subscriptions this hub adds and drops as sockets come and go can
//! never drop it. (It once was the pseudo-session `canary.<instance>`, which any client
//! could open and close to make the instance report itself unhealthy for good.)

use shared::backend::{Backend, BusSignal, Subscriber};
use shared::clock;
use shared::ids::SessionId;
use shared::model::Control;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the hub hands a socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A batch of events as published (newline-separated JSON, each with `seq`).
    Events(Arc<str>),
    /// Events may have been missed: re-read the log past the last `seq` sent.
    Resync,
    /// The session was deleted.
    SessionDeleted,
}

struct SocketSlot {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    overflowed: Arc<AtomicBool>,
}

/// How often the hub proves its subscription delivers.
pub const CANARY_INTERVAL: Duration = Duration::from_secs(2);
/// Canaries missed before the subscription counts as broken.
const CANARIES_MISSED: i64 = 3;

struct Inner {
    subscriber: Subscriber,
    /// The name of this instance's probe channel (carries its canaries only).
    probe: Arc<str>,
    /// When the last canary came back (epoch ms).
    canary_seen_ms: AtomicI64,
    sockets: Mutex<HashMap<SessionId, Vec<SocketSlot>>>,
    /// Sessions subscribed on the bus. Changed only under this lock, which also
    /// orders subscribe/unsubscribe calls for one session.
    subscribed: tokio::sync::Mutex<HashSet<SessionId>>,
    next_id: AtomicU64,
    queue_capacity: usize,
}

/// The instance's fan-out; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A socket's place in the hub; detaches on drop.
pub struct Attachment {
    hub: Hub,
    session_id: SessionId,
    id: u64,
    pub rx: mpsc::Receiver<Outbound>,
    overflowed: Arc<AtomicBool>,
}

impl Attachment {
    /// True when the hub dropped this socket because its queue was full.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let hub = self.hub.clone();
        let session_id = self.session_id.clone();
        let id = self.id;
        let now_empty = hub.remove_slot(&session_id, id);
        if now_empty && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { hub.sync_subscription(&session_id).await });
        }
    }
}

impl Hub {
    /// Starts the reader task over `subscriber`'s signals, and the canary.
    pub async fn start(
        backend: Backend,
        subscriber: Subscriber,
        instance: &str,
        queue_capacity: usize,
        shutdown: CancellationToken,
    ) -> Result<Self, shared::backend::StoreError> {
        let hub = Hub {
            inner: Arc::new(Inner {
                subscriber: subscriber.clone(),
                probe: Arc::from(instance),
                canary_seen_ms: AtomicI64::new(clock::now_millis()),
                sockets: Mutex::new(HashMap::new()),
                subscribed: tokio::sync::Mutex::new(HashSet::new()),
                next_id: AtomicU64::new(1),
                queue_capacity,
            }),
        };
        // Routed in the subscriber's task: `route` never waits, so no hop per event.
        subscriber.dispatch({
            let hub = hub.clone();
            move |signal| std::future::ready(hub.route(signal))
        });
        subscriber.watch_probe(instance).await?;
        tokio::spawn(hub.clone().send_canaries(backend, shutdown));
        Ok(hub)
    }

    /// True while canaries come back through the bus.
    pub fn bus_healthy(&self) -> bool {
        self.canary_age_ms() <= CANARY_INTERVAL.as_millis() as i64 * CANARIES_MISSED
    }

    /// Milliseconds since the last canary came back (`/health` shows it).
    pub fn canary_age_ms(&self) -> i64 {
        let seen = self.inner.canary_seen_ms.load(Ordering::Acquire);
        (clock::now_millis() - seen).max(0)
    }

    /// Sends a canary every interval; when they stopped coming back, re-subscribes and
    /// has every socket re-read its log.
    async fn send_canaries(self, backend: Backend, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(CANARY_INTERVAL);
        let mut was_healthy = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = backend.send_canary(&self.inner.probe).await {
                tracing::warn!(%error, "could not send the bus canary");
            }
            let healthy = self.bus_healthy();
            if !healthy {
                tracing::warn!("bus canaries stopped arriving; re-subscribing");
                shared::metrics::pubsub_reconnected();
                if let Err(error) = self.inner.subscriber.resubscribe().await {
                    tracing::warn!(%error, "re-subscribe failed");
                }
                self.deliver(None, Outbound::Resync);
            } else if !was_healthy {
                tracing::info!("bus canaries arrive again");
            }
            was_healthy = healthy;
        }
    }

    fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Vec<SocketSlot>>> {
        self.inner.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a socket of `session_id`; returns once the session's channel is
    /// subscribed, so anything published from then on reaches the attachment.
    pub async fn attach(
        &self,
        session_id: &SessionId,
    ) -> Result<Attachment, shared::backend::StoreError> {
        let (tx, rx) = mpsc::channel(self.inner.queue_capacity);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.sockets()
            .entry(session_id.clone())
            .or_default()
            .push(SocketSlot {
                id,
                tx,
                overflowed: overflowed.clone(),
            });
        let attachment = Attachment {
            hub: self.clone(),
            session_id: session_id.clone(),
            id,
            rx,
            overflowed,
        };
        self.try_sync_subscription(session_id).await?;
        Ok(attachment)
    }

    /// Sockets attached on this instance.
    pub fn connection_count(&self) -> usize {
        self.sockets().values().map(Vec::len).sum()
    }

    fn remove_slot(&self, session_id: &SessionId, id: u64) -> bool {
        let mut sockets = self.sockets();
        let Some(slots) = sockets.get_mut(session_id) else {
            return false;
        };
        slots.retain(|slot| slot.id != id);
        if slots.is_empty() {
            sockets.remove(session_id);
            true
        } else {
            false
        }
    }

    async fn sync_subscription(&self, session_id: &SessionId) {
        if let Err(error) = self.try_sync_subscription(session_id).await {
            tracing::warn!(%error, %session_id, "pub/sub subscription change failed");
        }
    }

    /// Makes the bus subscription match whether any socket of the session is attached.
    async fn try_sync_subscription(
        &self,
        session_id: &SessionId,
    ) -> Result<(), shared::backend::StoreError> {
        let mut subscribed = self.inner.subscribed.lock().await;
        let wanted = self.sockets().contains_key(session_id);
        let have = subscribed.contains(session_id);
        if wanted && !have {
            self.inner.subscriber.subscribe(session_id).await?;
            subscribed.insert(session_id.clone());
        } else if !wanted && have {
            subscribed.remove(session_id);
            self.inner.subscriber.unsubscribe(session_id).await?;
        }
        Ok(())
    }

    /// Hands one bus signal to the sockets it is for; never waits. Always true: the
    /// hub takes signals for as long as the subscriber has them.
    fn route(&self, signal: BusSignal) -> bool {
        match signal {
            BusSignal::Message(message) => {
                let outbound = match Control::parse(&message.payload) {
                    None => Outbound::Events(message.payload),
                    Some(Control::SessionDeleted) => Outbound::SessionDeleted,
                    Some(Control::Cancel { .. }) => return true,
                };
                self.deliver(Some(&message.session_id), outbound);
            }
            BusSignal::Probe => {
                let now = clock::now_millis();
                self.inner.canary_seen_ms.store(now, Ordering::Release);
            }
            BusSignal::Resync => self.deliver(None, Outbound::Resync),
        }
        true
    }

    /// Hands `outbound` to the sockets of one session (or all), never waiting.
    fn deliver(&self, session_id: Option<&SessionId>, outbound: Outbound) {
        let mut sockets = self.sockets();
        let offer = |slots: &mut Vec<SocketSlot>| {
            slots.retain(|slot| match slot.tx.try_send(outbound.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.overflowed.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        };
        match session_id {
            Some(id) => {
                if let Some(slots) = sockets.get_mut(id) {
                    offer(slots);
                }
            }
            None => sockets.values_mut().for_each(offer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::StoreSettings;

    async fn hub(queue: usize) -> (Hub, Backend) {
        let backend = Backend::connect(&StoreSettings::new(None, "hub"))
            .await
            .unwrap();
        let subscriber = backend.subscriber().await.unwrap();
        let hub = Hub::start(
            backend.clone(),
            subscriber,
            "test",
            queue,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        (hub, backend)
    }

    #[tokio::test]
    async fn a_socket_that_does_not_drain_is_cut_loose_and_others_keep_receiving() {
        let (hub, _backend) = hub(8).await;
        let session = SessionId::parse("s").unwrap();
        let stalled = hub.attach(&session).await.unwrap();
        let mut reader = hub.attach(&session).await.unwrap();
        for i in 0..20 {
            hub.deliver(
                Some(&session),
                Outbound::Events(Arc::from(format!("{{\"seq\":{i}}}"))),
            );
            while reader.rx.try_recv().is_ok() {}
        }
        assert!(stalled.overflowed(), "the full queue marked the socket");
        assert!(!reader.overflowed());
        assert_eq!(
            hub.connection_count(),
            1,
            "the stalled socket was dropped from the hub"
        );
        let mut stalled = stalled;
        let mut drained = 0;
        while stalled.rx.recv().await.is_some() {
            drained += 1;
        }
        assert_eq!(
            drained, 8,
            "what was queued is still delivered, then the queue closes"
        );
    }

    #[tokio::test]
    async fn a_session_named_like_the_probe_cannot_drop_it() {
        let (hub, backend) = hub(8).await;
        hub.inner.canary_seen_ms.store(0, Ordering::Release);
        for raw in ["canary.test", "probe:test", "test"] {
            let lookalike = SessionId::parse(raw).unwrap();
            drop(hub.attach(&lookalike).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        backend.send_canary("test").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(hub.canary_age_ms() < 1_000, "the canary still arrives");
    }

    #[tokio::test]
    async fn detaching_the_last_socket_unsubscribes() {
        let (hub, _backend) = hub(8).await;
        let session = SessionId::parse("s2").unwrap();
        let attachment = hub.attach(&session).await.unwrap();
        assert!(hub.inner.subscribed.lock().await.contains(&session));
        drop(attachment);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!hub.inner.subscribed.lock().await.contains(&session));
        assert_eq!(hub.connection_count(), 0);
    }
}
