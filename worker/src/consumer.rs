//! The consumer loop: reads the inbox through the `workers` group and answers up to
//! `WORKER_CONCURRENCY` messages at once.
//!
//! Beside the reads run three duties: a claim keeper re-claims this worker's
//! in-flight entries every third of the lease (so a live worker's long answer is
//! never taken over), a reclaimer takes over entries idle past the lease (their worker
//! died), and a listener fires cancel requests.
//!
//! Shutdown order: stop reading (the blocking read wakes within `INBOX_BLOCK`), then
//! wait for in-flight answers up to the grace period; whatever is still running then
//! stays pending in the inbox, stops being refreshed, and is answered elsewhere.

use crate::answer::{Answerer, INBOX_BLOCK};
use shared::model::Delivery;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Entry ids being answered by this worker.
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<HashSet<String>>>);

impl InFlight {
    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an entry; false when it is already being answered here.
    fn insert(&self, entry_id: &str) -> bool {
        self.ids().insert(entry_id.to_owned())
    }

    fn remove(&self, entry_id: &str) {
        self.ids().remove(entry_id);
    }

    fn snapshot(&self) -> Vec<String> {
        self.ids().iter().cloned().collect()
    }
}

struct Consumer {
    answerer: Answerer,
    name: String,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    in_flight: InFlight,
}

impl Consumer {
    /// Starts answering a delivery in the background, holding `permit` until done.
    fn start(&self, delivery: Delivery, permit: OwnedSemaphorePermit) {
        if !self.in_flight.insert(&delivery.entry_id) {
            return;
        }
        let answerer = self.answerer.clone();
        let in_flight = self.in_flight.clone();
        self.tracker.spawn(async move {
            let entry_id = delivery.entry_id.clone();
            answerer.handle(delivery).await;
            in_flight.remove(&entry_id);
            drop(permit);
        });
    }
}

/// Runs until `shutdown` is cancelled, then drains.
pub async fn run(answerer: Answerer, consumer_name: String, shutdown: CancellationToken) {
    let settings = answerer.consumer.clone();
    let concurrency = settings.worker_concurrency as usize;
    let grace = Duration::from_secs(settings.worker_shutdown_grace_secs);
    let consumer = Arc::new(Consumer {
        slots: Arc::new(Semaphore::new(concurrency)),
        tracker: TaskTracker::new(),
        in_flight: InFlight::default(),
        name: consumer_name,
        answerer,
    });
    tracing::info!(consumer = %consumer.name, concurrency, "worker consuming the inbox");

    // Duties stop as soon as shutdown starts; in-flight answers are then left to finish
    // on their own (or to be reclaimed elsewhere when the grace period runs out).
    let duties = CancellationToken::new();
    let keeper = tokio::spawn(keep_claims(consumer.clone(), duties.clone()));
    let reclaimer = tokio::spawn(reclaim(consumer.clone(), duties.clone()));
    let canceller = tokio::spawn(
        consumer
            .answerer
            .cancels
            .clone()
            .listen(consumer.answerer.backend.clone(), duties.clone()),
    );

    read_loop(&consumer, &shutdown).await;

    consumer.tracker.close();
    let drained = tokio::time::timeout(grace, consumer.tracker.wait()).await;
    duties.cancel();
    let _ = tokio::join!(keeper, reclaimer, canceller);
    if drained.is_err() {
        tracing::warn!(
            in_flight = consumer.tracker.len(),
            "shutdown grace elapsed; unfinished answers stay queued for another worker"
        );
    }
    tracing::info!("worker stopped");
}

async fn read_loop(consumer: &Consumer, shutdown: &CancellationToken) {
    let backend = &consumer.answerer.backend;
    let mut backoff = Duration::from_millis(100);
    loop {
        // Wait for at least one free slot, then read as many entries as there are slots.
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = consumer.slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let free = consumer.slots.available_permits() + 1;
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            read = backend.read_inbox(&consumer.name, free, INBOX_BLOCK) => read,
        };
        let deliveries = match read {
            Ok(deliveries) => {
                backoff = Duration::from_millis(100);
                deliveries
            }
            Err(error) => {
                tracing::warn!(%error, ?backoff, "reading the inbox failed; retrying");
                drop(first);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut first = Some(first);
        for delivery in deliveries {
            let permit = match first.take() {
                Some(permit) => permit,
                None => consumer
                    .slots
                    .clone()
                    .try_acquire_owned()
                    .expect("read no more entries than free slots"),
            };
            consumer.start(delivery, permit);
        }
    }
}

/// Refreshes this worker's claims every third of the lease.
async fn keep_claims(consumer: Arc<Consumer>, stop: CancellationToken) {
    let every = consumer.answerer.consumer.claim_lease() / 3;
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let ids = consumer.in_flight.snapshot();
        if let Err(error) = consumer
            .answerer
            .backend
            .refresh_claims(&consumer.name, &ids)
            .await
        {
            tracing::warn!(%error, "refreshing claims failed");
        }
    }
}

/// Takes over entries whose worker stopped refreshing them, when slots are free.
async fn reclaim(consumer: Arc<Consumer>, stop: CancellationToken) {
    let lease = consumer.answerer.consumer.claim_lease();
    let mut ticks = tokio::time::interval(lease / 2);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let free = consumer.slots.available_permits();
        if free == 0 {
            continue;
        }
        let reclaimed = consumer
            .answerer
            .backend
            .reclaim(&consumer.name, lease, free)
            .await;
        match reclaimed {
            Ok(deliveries) => {
                if !deliveries.is_empty() {
                    shared::metrics::reclaimed(deliveries.len() as u64);
                }
                for delivery in deliveries {
                    let Ok(permit) = consumer.slots.clone().try_acquire_owned() else {
                        break;
                    };
                    tracing::warn!(session_id = %delivery.session_id, "reclaimed a message of a stopped worker");
                    consumer.start(delivery, permit);
                }
            }
            Err(error) => tracing::warn!(%error, "reclaiming failed"),
        }
    }
}
