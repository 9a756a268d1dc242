//! The in-memory backend: the embedded, single-process deployment.
//!
//! One `std::sync::Mutex` guards all state: every operation is a short critical
//! section with no `.await` inside, which is also what makes each one atomic like the
//! Redis scripts it mirrors. Idle expiry is checked lazily on access (and swept when
//! counting sessions) against `tokio::time::Instant`, so tests can pause time.

mod limits;
mod slots;

use super::Charge;
use super::batch::{splice_seq, split_batch};
use super::{BusSignal, DEAD_LETTERS_KEPT, PublishOutcome, StoreError, finish_replay};
use crate::clock;
use crate::config::StoreSettings;
use crate::ids::{MessageId, SessionId};
use crate::model::*;
use crate::telemetry::TraceContext;
use crate::wire::{Status, StreamEvent};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;

struct SessionState {
    record: SessionRecord,
    history: VecDeque<StoredMessage>,
    pending: VecDeque<QueuedMessage>,
    idempotency: HashMap<String, MessageId>,
    /// `(last seq of the batch, newline-separated events)`.
    events: VecDeque<(u64, String)>,
    attempt: u64,
    /// Starts of the current message (reset when it is finished).
    tries: u64,
    /// The message asked to stop, if any.
    cancel: Option<MessageId>,
    /// The session's live inbox entry; any other entry for it is stale.
    entry: Option<String>,
    /// Who pays for the answers, as the latest accepted message named it.
    charge: Option<Charge>,
    /// Tool calls stored for this message, by slot (`round:index`, run order).
    calls: Option<(MessageId, std::collections::BTreeMap<String, FunctionCall>)>,
    expires_at: Instant,
}

struct InboxEntry {
    entry_id: String,
    session_id: SessionId,
    queued_ms: i64,
    /// When a worker last claimed (or refreshed) it; reclaimable after the lease.
    claimed_at: Instant,
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, SessionState>,
    /// Entries not yet delivered, oldest first.
    inbox_new: VecDeque<InboxEntry>,
    /// Delivered, not yet acknowledged, by entry id.
    inbox_pending: HashMap<String, InboxEntry>,
    next_entry: u64,
    /// `(session, message, tries, reason)`, newest last, bounded.
    dead_letters: VecDeque<(SessionId, MessageId, u64, String)>,
}

impl State {
    /// The live session, dropping it first if it expired.
    fn live(&mut self, id: &SessionId) -> Option<&mut SessionState> {
        let expired = self
            .sessions
            .get(id)
            .is_some_and(|s| s.expires_at <= Instant::now());
        if expired {
            self.sessions.remove(id);
        }
        self.sessions.get_mut(id)
    }

    /// Queues the session and records the entry as its live one.
    fn enqueue(&mut self, session_id: &SessionId) {
        self.next_entry += 1;
        let now = clock::now_millis();
        let entry_id = format!("{now}-{}", self.next_entry);
        if let Some(session) = self.sessions.get_mut(session_id) {
            session.entry = Some(entry_id.clone());
        }
        self.inbox_new.push_back(InboxEntry {
            entry_id,
            session_id: session_id.clone(),
            queued_ms: now,
            claimed_at: Instant::now(),
        });
    }

    fn ack(&mut self, entry_id: &str) {
        self.inbox_pending.remove(entry_id);
    }
}

struct Inner {
    state: Mutex<State>,
    inbox_ready: Notify,
    bus: broadcast::Sender<BusMessage>,
    /// Canaries, by the name of the instance probe they are for (not session channels).
    probes: broadcast::Sender<Arc<str>>,
    cancels: broadcast::Sender<CancelRequest>,
    settings: StoreSettings,
    /// Bounded holder sets (`slots.rs`), under their own lock.
    slots: slots::Slots,
    /// Rate buckets and token usage (`limits.rs`), under their own lock.
    limits: limits::Limits,
}

/// Handle to the in-memory backend; cheap to clone.
#[derive(Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

impl MemoryBackend {
    pub fn new(settings: &StoreSettings) -> Self {
        let (bus, _) = broadcast::channel(16_384);
        let (cancels, _) = broadcast::channel(1_024);
        let (probes, _) = broadcast::channel(64);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                inbox_ready: Notify::new(),
                bus,
                probes,
                cancels,
                settings: settings.clone(),
                slots: slots::Slots::default(),
                limits: limits::Limits::default(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave half a write behind (no await,
        // no partial updates that matter), so a poisoned lock is still usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ttl(&self) -> Duration {
        self.inner.settings.idle_ttl()
    }

    fn publish_lines(&self, id: &SessionId, payload: String) {
        let _ = self.inner.bus.send(BusMessage {
            session_id: id.clone(),
            payload: Arc::from(payload),
        });
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    pub async fn create_session(&self, new: &NewSession) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.live(&new.id).is_some() {
            return Ok(false);
        }
        state.sessions.insert(
            new.id.clone(),
            SessionState {
                record: SessionRecord {
                    id: new.id.clone(),
                    user_id: new.user_id.clone(),
                    created_at_ms: new.created_at_ms,
                    last_activity_ms: new.created_at_ms,
                    message_count: 0,
                    protocol: new.protocol,
                    metadata: new.metadata.clone(),
                    last_seq: 0,
                },
                history: VecDeque::new(),
                pending: VecDeque::new(),
                idempotency: HashMap::new(),
                events: VecDeque::new(),
                attempt: 0,
                tries: 0,
                cancel: None,
                entry: None,
                charge: None,
                calls: None,
                expires_at: Instant::now() + self.ttl(),
            },
        );
        Ok(true)
    }

    pub async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.state().live(id).map(|s| s.record.clone()))
    }

    pub async fn touch_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        let ttl = self.ttl();
        Ok(match self.state().live(id) {
            Some(session) => {
                session.record.last_activity_ms = clock::now_millis();
                session.expires_at = Instant::now() + ttl;
                true
            }
            None => false,
        })
    }

    pub async fn delete_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        let existed = {
            let mut state = self.state();
            state.live(id).is_some() && state.sessions.remove(id).is_some()
        };
        if existed {
            self.publish_lines(id, Control::SessionDeleted.to_json());
        }
        Ok(existed)
    }

    pub async fn active_sessions(&self) -> Result<u64, StoreError> {
        let mut state = self.state();
        let now = Instant::now();
        state.sessions.retain(|_, s| s.expires_at > now);
        Ok(state.sessions.len() as u64)
    }

    pub async fn history_all(&self, id: &SessionId) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(self
            .state()
            .live(id)
            .map(|s| s.history.iter().cloned().collect())
            .unwrap_or_default())
    }

    pub async fn accept_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        trace: &TraceContext,
        client_message_id: Option<&str>,
        max_pending: u32,
        charge: &str,
    ) -> Result<AcceptOutcome, StoreError> {
        let charge = (!charge.is_empty())
            .then(|| Charge::parse(charge))
            .transpose()?;
        let ttl = self.ttl();
        let history_max = self.inner.settings.history_max_messages as usize;
        let mut state = self.state();
        let Some(session) = state.live(id) else {
            return Ok(AcceptOutcome::SessionNotFound);
        };
        if let Some(previous) = client_message_id.and_then(|c| session.idempotency.get(c)) {
            return Ok(AcceptOutcome::Duplicate(*previous));
        }
        if session.pending.len() >= max_pending as usize {
            return Ok(AcceptOutcome::TooManyPending);
        }
        push_bounded(&mut session.history, message.clone(), history_max);
        session.pending.push_back(QueuedMessage {
            message: message.clone(),
            trace: trace.clone(),
        });
        session.record.message_count += 1;
        session.charge = charge;
        session.record.last_activity_ms = clock::now_millis();
        session.expires_at = Instant::now() + ttl;
        if let Some(client_id) = client_message_id {
            session.idempotency.insert(client_id.to_owned(), message.id);
        }
        let was_idle = session.pending.len() == 1;
        if was_idle {
            state.enqueue(id);
            drop(state);
            self.inner.inbox_ready.notify_waiters();
            self.inner.inbox_ready.notify_one();
        }
        Ok(AcceptOutcome::Accepted(message.id))
    }

    /// Appends a batch to the session's log and returns `(last seq, payload)`.
    fn log_batch(&self, session: &mut SessionState, events: &[StreamEvent]) -> (u64, String) {
        let first = session.record.last_seq + 1;
        session.record.last_seq += events.len() as u64;
        let lines: Vec<String> = events
            .iter()
            .zip(first..)
            .map(|(event, seq)| splice_seq(seq, &event.to_json()))
            .collect();
        let payload = lines.join("\n");
        session
            .events
            .push_back((session.record.last_seq, payload.clone()));
        while session.events.len() > self.inner.settings.event_log_max_entries as usize {
            session.events.pop_front();
        }
        (session.record.last_seq, payload)
    }

    pub async fn publish(
        &self,
        id: &SessionId,
        events: &[StreamEvent],
        fence: Option<Fence<'_>>,
    ) -> Result<PublishOutcome, StoreError> {
        let (last_seq, payload) = {
            let mut state = self.state();
            let Some(session) = state.live(id) else {
                return Ok(PublishOutcome::SessionGone);
            };
            if let Some(fence) = fence {
                if fence.attempt != session.attempt {
                    return Ok(PublishOutcome::Fenced);
                }
                if session.cancel == Some(fence.message_id) {
                    return Ok(PublishOutcome::Cancelled);
                }
            }
            self.log_batch(session, events)
        };
        if let Some(fence) = fence {
            fence.log.set(last_seq);
        }
        self.publish_lines(id, payload);
        Ok(PublishOutcome::Published { last_seq })
    }

    pub async fn save_tool_calls(
        &self,
        id: &SessionId,
        fence: Fence<'_>,
        calls: &[FunctionCall],
        events: &[StreamEvent],
    ) -> Result<SaveOutcome, StoreError> {
        let payload = {
            let mut state = self.state();
            let Some(session) = state.live(id) else {
                return Ok(SaveOutcome::SessionGone);
            };
            if fence.attempt != session.attempt {
                return Ok(SaveOutcome::Fenced);
            }
            if session.cancel == Some(fence.message_id) {
                return Ok(SaveOutcome::Cancelled);
            }
            let stored = session
                .calls
                .get_or_insert_with(|| (fence.message_id, Default::default()));
            if stored.0 != fence.message_id {
                *stored = (fence.message_id, Default::default());
            }
            for call in calls {
                stored.1.insert(call.slot(), call.clone());
            }
            (!events.is_empty()).then(|| {
                let (last_seq, payload) = self.log_batch(session, events);
                fence.log.set(last_seq);
                payload
            })
        };
        if let Some(payload) = payload {
            self.publish_lines(id, payload);
        }
        Ok(SaveOutcome::Saved)
    }

    pub async fn replay(&self, id: &SessionId, after_seq: u64) -> Result<Replay, StoreError> {
        let mut state = self.state();
        let Some(session) = state.live(id) else {
            return Ok(finish_replay(Vec::new(), after_seq, 0));
        };
        let last_seq = session.record.last_seq;
        let lines = session
            .events
            .iter()
            .filter(|(last, _)| *last > after_seq)
            .flat_map(|(_, payload)| split_batch(payload).map(|(_, line)| line.to_owned()))
            .collect();
        Ok(finish_replay(lines, after_seq, last_seq))
    }

    pub fn subscriber(&self) -> MemorySubscriber {
        MemorySubscriber {
            bus: self.inner.bus.clone(),
            probes: self.inner.probes.clone(),
            subscribed: Arc::new(Mutex::new(HashSet::new())),
            probe: Arc::new(Mutex::new(None)),
        }
    }

    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let state = self.state();
        let now = clock::now_millis();
        let oldest = state
            .inbox_new
            .iter()
            .chain(state.inbox_pending.values())
            .map(|e| e.queued_ms)
            .min();
        Ok(QueueStats {
            backlog: (state.inbox_new.len() + state.inbox_pending.len()) as u64,
            oldest_age_ms: oldest.map(|ms| (now - ms).max(0) as u64).unwrap_or(0),
            dead_letters: state.dead_letters.len() as u64,
        })
    }

    pub async fn read_inbox(
        &self,
        _consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let deadline = Instant::now() + block;
        loop {
            let notified = self.inner.inbox_ready.notified();
            {
                let mut state = self.state();
                let mut out = Vec::new();
                while out.len() < max {
                    let Some(mut entry) = state.inbox_new.pop_front() else {
                        break;
                    };
                    entry.claimed_at = Instant::now();
                    out.push(Delivery {
                        entry_id: entry.entry_id.clone(),
                        session_id: entry.session_id.clone(),
                    });
                    state.inbox_pending.insert(entry.entry_id.clone(), entry);
                }
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    pub async fn begin(
        &self,
        delivery: &Delivery,
        context_messages: usize,
    ) -> Result<Begin, StoreError> {
        let mut state = self.state();
        let Some(session) = state.live(&delivery.session_id) else {
            state.ack(&delivery.entry_id);
            return Ok(Begin::SessionGone);
        };
        let current = session.entry.as_deref() == Some(delivery.entry_id.as_str());
        let Some(QueuedMessage { message, trace }) =
            session.pending.front().cloned().filter(|_| current)
        else {
            state.ack(&delivery.entry_id);
            return Ok(Begin::Idle);
        };
        session.attempt += 1;
        session.tries += 1;
        let skip = session.history.len().saturating_sub(context_messages);
        if session
            .calls
            .as_ref()
            .is_some_and(|(owner, _)| *owner != message.id)
        {
            session.calls = None;
        }
        let tool_calls = session
            .calls
            .as_ref()
            .map(|(_, calls)| calls.values().cloned().collect())
            .unwrap_or_default();
        let cancelled = session.cancel == Some(message.id);
        let charge = session.charge.clone();
        // As begin_work.lua: a first try with nothing to check first says `typing` now.
        let announced = session.tries == 1 && !cancelled && charge.is_none();
        let typing = announced.then(|| {
            let typing =
                StreamEvent::status(Status::Typing, &delivery.session_id, Some(message.id));
            self.log_batch(session, &[typing]).1
        });
        let work = Work {
            attempt: session.attempt,
            tries: session.tries,
            cancelled,
            message,
            trace,
            history: session.history.iter().skip(skip).cloned().collect(),
            tool_calls,
            user_id: session.record.user_id.clone(),
            metadata: session.record.metadata.clone(),
            log: LogPosition::at(session.record.last_seq),
            charge,
            announced,
        };
        drop(state);
        if let Some(payload) = typing {
            self.publish_lines(&delivery.session_id, payload);
        }
        Ok(Begin::Work(Box::new(work)))
    }

    pub async fn reclaim(
        &self,
        _consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut state = self.state();
        let now = Instant::now();
        let mut out = Vec::new();
        for entry in state.inbox_pending.values_mut() {
            if out.len() >= max {
                break;
            }
            if entry.claimed_at + min_idle <= now {
                entry.claimed_at = now;
                out.push(Delivery {
                    entry_id: entry.entry_id.clone(),
                    session_id: entry.session_id.clone(),
                });
            }
        }
        Ok(out)
    }

    pub async fn refresh_claims(
        &self,
        _consumer: &str,
        entry_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let now = Instant::now();
        for id in entry_ids {
            if let Some(entry) = state.inbox_pending.get_mut(id) {
                entry.claimed_at = now;
            }
        }
        Ok(())
    }

    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        work: &Work,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.dead_letters.push_back((
            delivery.session_id.clone(),
            work.message.id,
            work.tries,
            reason.to_owned(),
        ));
        while state.dead_letters.len() > DEAD_LETTERS_KEPT {
            state.dead_letters.pop_front();
        }
        Ok(())
    }

    pub async fn cancel(&self, id: &SessionId) -> Result<CancelOutcome, StoreError> {
        let request = {
            let mut state = self.state();
            let Some(session) = state.live(id) else {
                return Ok(CancelOutcome::SessionNotFound);
            };
            let Some(head) = session.pending.front().map(|m| m.message.id) else {
                return Ok(CancelOutcome::Idle);
            };
            session.cancel = Some(head);
            CancelRequest {
                session_id: id.clone(),
                message_id: head,
            }
        };
        let _ = self.inner.cancels.send(request);
        Ok(CancelOutcome::Cancelled)
    }

    pub async fn cancel_requests(&self) -> Result<mpsc::Receiver<CancelRequest>, StoreError> {
        let mut requests = self.inner.cancels.subscribe();
        let (tx, rx) = mpsc::channel(1_024);
        tokio::spawn(async move {
            loop {
                match requests.recv().await {
                    Ok(request) => {
                        if tx.send(request).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(rx)
    }

    pub async fn send_canary(&self, probe: &str) -> Result<(), StoreError> {
        let _ = self.inner.probes.send(Arc::from(probe));
        Ok(())
    }

    pub async fn finish(
        &self,
        delivery: &Delivery,
        work: &Work,
        answer: Option<&StoredMessage>,
        events: &[StreamEvent],
    ) -> Result<FinishOutcome, StoreError> {
        let ttl = self.ttl();
        let history_max = self.inner.settings.history_max_messages as usize;
        let id = &delivery.session_id;
        let (payload, requeue) = {
            let mut state = self.state();
            let Some(session) = state.live(id) else {
                state.ack(&delivery.entry_id);
                return Ok(FinishOutcome::SessionGone);
            };
            if session.attempt != work.attempt {
                return Ok(FinishOutcome::Fenced);
            }
            let mut payload = None;
            if session.pending.front().map(|m| m.message.id) == Some(work.message.id) {
                if let Some(answer) = answer {
                    push_bounded(&mut session.history, answer.clone(), history_max);
                    session.record.message_count += 1;
                }
                if !events.is_empty() {
                    payload = Some(self.log_batch(session, events).1);
                }
                session.pending.pop_front();
                session.tries = 0;
                session.cancel = None;
                session.calls = None;
            }
            session.record.last_activity_ms = clock::now_millis();
            session.expires_at = Instant::now() + ttl;
            let requeue = !session.pending.is_empty();
            state.ack(&delivery.entry_id);
            if requeue {
                state.enqueue(id);
            }
            (payload, requeue)
        };
        if let Some(payload) = payload {
            self.publish_lines(id, payload);
        }
        if requeue {
            self.inner.inbox_ready.notify_one();
        }
        Ok(FinishOutcome::Done)
    }
}

fn push_bounded(list: &mut VecDeque<StoredMessage>, message: StoredMessage, max: usize) {
    list.push_back(message);
    while list.len() > max {
        list.pop_front();
    }
}

/// The in-process bus subscription of the embedded gateway.
#[derive(Clone)]
pub struct MemorySubscriber {
    bus: broadcast::Sender<BusMessage>,
    probes: broadcast::Sender<Arc<str>>,
    subscribed: Arc<Mutex<HashSet<SessionId>>>,
    /// The instance probe watched, if any (kept apart from the session set).
    probe: Arc<Mutex<Option<Arc<str>>>>,
}

impl MemorySubscriber {
    fn subscribed(&self) -> std::sync::MutexGuard<'_, HashSet<SessionId>> {
        self.subscribed.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self, id: &SessionId) {
        self.subscribed().insert(id.clone());
    }

    pub fn unsubscribe(&self, id: &SessionId) {
        self.subscribed().remove(id);
    }

    pub fn watch_probe(&self, probe: &str) {
        *self.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::from(probe));
    }

    fn watches(&self, probe: &str) -> bool {
        self.probe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(probe)
    }

    pub fn dispatch<F, Fut>(&self, mut sink: F)
    where
        F: FnMut(BusSignal) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let mut messages = self.bus.subscribe();
        let mut probes = self.probes.subscribe();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => {
                            if !this.subscribed().contains(&message.session_id) {
                                continue;
                            }
                            BusSignal::Message(message)
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => BusSignal::Resync,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    probe = probes.recv() => match probe {
                        Ok(probe) if this.watches(&probe) => BusSignal::Probe,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                };
                if !sink(signal).await {
                    break;
                }
            }
        });
    }
}
