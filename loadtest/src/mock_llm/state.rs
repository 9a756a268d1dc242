//! What the handlers share: settings, counters, the request log and the shutdown
//! signal. One cheap-to-clone handle, no global state, so several mocks can run in
//! one test process.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::settings::MockSettings;

/// How many requests `/mock/requests` remembers; older ones are dropped first.
pub(crate) const REQUEST_LOG_CAPACITY: usize = 1000;

/// The handlers' shared state.
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: MockSettings,
    /// Unix seconds at start-up: the `created` of the listed model.
    started: u64,
    /// Chat requests received, valid or not; numbers requests for `fault_every`.
    requests: AtomicU64,
    /// Injected faults answered (status, hang, cut), periodic or by directive.
    faults: AtomicU64,
    /// Tool calls made, for unique `call_<n>` ids.
    tool_calls: AtomicU64,
    /// A `std` mutex, not a Tokio one: it is held only to push, copy or clear,
    /// never across an `.await`.
    log: Mutex<VecDeque<Value>>,
    shutdown: Shutdown,
}

impl AppState {
    /// Fresh state; `shutdown` tells long requests the server is stopping.
    pub(crate) fn new(settings: MockSettings, shutdown: Shutdown) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                started: unix_now(),
                requests: AtomicU64::new(0),
                faults: AtomicU64::new(0),
                tool_calls: AtomicU64::new(0),
                log: Mutex::new(VecDeque::with_capacity(64)),
                shutdown,
            }),
        }
    }

    pub(crate) fn settings(&self) -> &MockSettings {
        &self.inner.settings
    }

    pub(crate) fn started(&self) -> u64 {
        self.inner.started
    }

    pub(crate) fn shutdown(&self) -> Shutdown {
        self.inner.shutdown.clone()
    }

    /// Counts a chat request and returns its number, from 1.
    pub(crate) fn next_request(&self) -> u64 {
        self.inner.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts an injected fault.
    pub(crate) fn count_fault(&self) {
        self.inner.faults.fetch_add(1, Ordering::Relaxed);
    }

    /// A new unique tool call id.
    pub(crate) fn next_tool_call_id(&self) -> String {
        let n = self.inner.tool_calls.fetch_add(1, Ordering::Relaxed) + 1;
        format!("call_{n}")
    }

    /// Appends to the request log, dropping the oldest beyond capacity.
    pub(crate) fn record(&self, request: Value) {
        let mut log = self.log();
        if log.len() == REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(request);
    }

    /// The logged requests, oldest first.
    pub(crate) fn recorded(&self) -> Vec<Value> {
        self.log().iter().cloned().collect()
    }

    /// Empties the request log.
    pub(crate) fn clear_recorded(&self) {
        self.log().clear();
    }

    /// The `/mock/stats` body.
    pub(crate) fn stats(&self) -> Value {
        json!({
            "requests": self.inner.requests.load(Ordering::Relaxed),
            "faults": self.inner.faults.load(Ordering::Relaxed),
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, VecDeque<Value>> {
        // A panic while holding the lock cannot leave the deque half-updated, so a
        // poisoned lock is still safe to use.
        self.inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Resolves once the server starts shutting down; cheap to clone into each request.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal and the sender that fires it.
    pub(crate) fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Waits for shutdown (or for the sender to go away, which means the same).
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// Unix time in seconds (0 if the clock is before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_log_keeps_the_newest() {
        let (_tx, shutdown) = Shutdown::new();
        let state = AppState::new(MockSettings::default(), shutdown);
        for i in 0..REQUEST_LOG_CAPACITY + 5 {
            state.record(json!(i));
        }
        let recorded = state.recorded();
        assert_eq!(recorded.len(), REQUEST_LOG_CAPACITY);
        assert_eq!(recorded[0], json!(5));
        state.clear_recorded();
        assert!(state.recorded().is_empty());
    }

    #[tokio::test]
    async fn shutdown_fires_on_send_and_on_drop() {
        let (tx, mut shutdown) = Shutdown::new();
        let mut other = shutdown.clone();
        tx.send_replace(true);
        shutdown.wait().await;
        drop(tx);
        other.wait().await;
    }
}
