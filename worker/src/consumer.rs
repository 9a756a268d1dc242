//! The consumer loop: reads the inbox through the `workers` group and answers up to
//! `WORKER_CONCURRENCY` messages at once.
//!
//! One task, the intake, starts every answer, and it alone takes slots: it waits for
//! a free slot, takes every other free one, and then asks the store for exactly as
//! many entries as it holds, first those a dead worker left (reclaimed, idle past
//! the lease), then new ones. Each started entry takes one of the held slots; the
//! rest go back. So no entry is read without a slot to run it, and a message that a
//! dead worker had already started never waits behind newer ones: once the reclaim
//! is due (every half lease), the next free slots are its. The intake runs until
//! shutdown; should it ever die (a panic), it is restarted, and [`Reading`] (behind
//! `/readyz`) says it is not running meanwhile.
//!
//! Beside the intake run two duties: a claim keeper re-claims this worker's
//! in-flight entries every third of the lease (so a live worker's long answer is
//! never taken over), and a listener fires cancel requests.
//!
//! Shutdown order: stop reading (the blocking read wakes within `INBOX_BLOCK`), then
//! wait for in-flight answers up to the grace period; whatever is still running then
//! stays pending in the inbox, stops being refreshed, and is answered elsewhere.

use crate::answer::{Answerer, INBOX_BLOCK};
use shared::model::Delivery;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
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

/// Whether the intake (the loop that reads and reclaims) is running; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Reading(Arc<AtomicBool>);

impl Reading {
    /// True while the intake runs: it is started and not stopped or dead.
    pub fn is_running(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Marks the intake running until the guard is dropped (also by a panic).
    fn running(&self) -> RunningGuard {
        self.0.store(true, Ordering::SeqCst);
        RunningGuard(self.clone())
    }
}

struct RunningGuard(Reading);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.0.store(false, Ordering::SeqCst);
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
    /// Starts answering a delivery in the background, holding `slot` (one permit)
    /// until done.
    fn start(&self, delivery: Delivery, slot: OwnedSemaphorePermit) {
        if !self.in_flight.insert(&delivery.entry_id) {
            return;
        }
        let answerer = self.answerer.clone();
        let in_flight = self.in_flight.clone();
        self.tracker.spawn(async move {
            let entry_id = delivery.entry_id.clone();
            answerer.handle(delivery).await;
            in_flight.remove(&entry_id);
            drop(slot);
        });
    }

    /// Starts each delivery with one of the `held` slots. The store never returns
    /// more than it was asked for; if it did, the extra entries stay pending
    /// unrefreshed and are reclaimed after the lease.
    fn start_all(&self, deliveries: Vec<Delivery>, held: &mut OwnedSemaphorePermit) {
        for delivery in deliveries {
            match held.split(1) {
                Some(slot) => self.start(delivery, slot),
                None => tracing::error!(
                    entry_id = %delivery.entry_id,
                    "the store returned more entries than asked for; leaving this one to be reclaimed"
                ),
            }
        }
    }
}

/// Runs until `shutdown` is cancelled, then drains. `reading` says whether the
/// intake is running.
pub async fn run(
    answerer: Answerer,
    consumer_name: String,
    shutdown: CancellationToken,
    reading: Reading,
) {
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
    let canceller = tokio::spawn(
        consumer
            .answerer
            .cancels
            .clone()
            .listen(consumer.answerer.backend.clone(), duties.clone()),
    );

    // The intake returns only at shutdown. It runs as its own task so that a panic
    // in it ends that task, not the worker: it is then started again.
    loop {
        let intake = tokio::spawn(intake(consumer.clone(), shutdown.clone(), reading.clone()));
        match intake.await {
            Ok(()) => break,
            Err(error) => {
                tracing::error!(%error, "the inbox intake died; restarting it");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(INTAKE_RESTART_DELAY) => {}
                }
            }
        }
    }

    consumer.tracker.close();
    let drained = tokio::time::timeout(grace, consumer.tracker.wait()).await;
    duties.cancel();
    let _ = tokio::join!(keeper, canceller);
    if drained.is_err() {
        tracing::warn!(
            in_flight = consumer.tracker.len(),
            "shutdown grace elapsed; unfinished answers stay queued for another worker"
        );
    }
    tracing::info!("worker stopped");
}

/// Pause before a dead intake is started again (a panic that repeats must not spin).
const INTAKE_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Longest wait between two failed store calls of the intake.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The intake: takes free slots, fills them with reclaimed entries first, then with
/// new ones. Returns when `shutdown` is cancelled.
async fn intake(consumer: Arc<Consumer>, shutdown: CancellationToken, reading: Reading) {
    let _running = reading.running();
    let backend = &consumer.answerer.backend;
    let lease = consumer.answerer.consumer.claim_lease();
    let reclaim_every = lease / 2;
    // A worker that starts (or restarts) looks for abandoned entries at once.
    let mut reclaim_at = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        // Wait for one free slot, then take every other free one: this task is the
        // only one that takes slots, so what it holds is exactly what it may start.
        let mut held = tokio::select! {
            _ = shutdown.cancelled() => return,
            slot = consumer.slots.clone().acquire_owned() => slot.expect("the slot semaphore is never closed"),
        };
        let more = consumer.slots.available_permits() as u32;
        if more > 0
            && let Ok(extra) = consumer.slots.clone().try_acquire_many_owned(more)
        {
            held.merge(extra);
        }

        let mut failed = false;
        if Instant::now() >= reclaim_at {
            let asked = held.num_permits();
            match backend.reclaim(&consumer.name, lease, asked).await {
                Ok(deliveries) => {
                    // A full batch may mean more are waiting: look again next round.
                    let full = deliveries.len() >= asked;
                    reclaim_at = if full {
                        Instant::now()
                    } else {
                        Instant::now() + reclaim_every
                    };
                    if !deliveries.is_empty() {
                        shared::metrics::reclaimed(deliveries.len() as u64);
                        tracing::warn!(
                            count = deliveries.len(),
                            "reclaimed messages of a stopped worker"
                        );
                    }
                    consumer.start_all(deliveries, &mut held);
                }
                Err(error) => {
                    tracing::warn!(%error, "reclaiming failed; retrying");
                    failed = true;
                }
            }
        }
        if !failed && held.num_permits() > 0 {
            let read = tokio::select! {
                _ = shutdown.cancelled() => return,
                read = backend.read_inbox(&consumer.name, held.num_permits(), INBOX_BLOCK) => read,
            };
            match read {
                Ok(deliveries) => consumer.start_all(deliveries, &mut held),
                Err(error) => {
                    tracing::warn!(%error, ?backoff, "reading the inbox failed; retrying");
                    failed = true;
                }
            }
        }
        // Slots not filled go back before any wait.
        drop(held);
        if failed {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = Duration::from_millis(100);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reading_is_false_before_during_nothing_and_after_a_panic() {
        let reading = Reading::default();
        assert!(!reading.is_running(), "not before the intake starts");
        let task = tokio::spawn({
            let reading = reading.clone();
            async move {
                let _running = reading.running();
                assert!(reading.is_running());
                panic!("an intake that dies");
            }
        });
        assert!(task.await.is_err());
        assert!(!reading.is_running(), "not once it died");
    }
}
