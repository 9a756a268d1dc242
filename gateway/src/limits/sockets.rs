//! Socket caps: at most `MAX_CONNECTIONS` sockets on this instance (one more is closed
//! with 1013), at most `MAX_SOCKETS_PER_USER` per user (`MAX_SOCKETS_PER_ADDRESS` per
//! client address for callers without a token) across every pod (4429), and keeping
//! the cross-pod count of a user's sessions (`MAX_SESSIONS_PER_USER`) fresh while the
//! session is in use.
//!
//! The cross-pod counts are the store's bounded holder sets (`Backend::acquire_slot`):
//! each socket holds a slot whose claim lapses after [`SOCKET_SLOT_TTL`] unless the
//! instance's [`SlotKeeper`] refreshes it, so a pod that dies holding sockets frees its
//! users' slots within a minute; a socket that ends normally frees its slot at once.
//! One keeper task per instance refreshes every socket's slots: a task per socket
//! cost about 7.6 KiB of memory per idle authenticated socket (measured).

use shared::backend::{Backend, SlotOutcome, StoreError};
use shared::ids::{SessionId, UserId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a socket's slot outlives its last refresh (a crashed pod's sockets count
/// this long at most).
pub const SOCKET_SLOT_TTL: Duration = Duration::from_secs(60);
/// How often a live socket refreshes its slot.
pub const SOCKET_SLOT_REFRESH: Duration = Duration::from_secs(20);

/// The scope of a caller's sockets: the user with authentication, else the address.
pub fn socket_scope(user: Option<&UserId>, addr: IpAddr) -> String {
    match user {
        Some(user) => format!("sockets:user:{user}"),
        None => format!("sockets:addr:{addr}"),
    }
}

/// The scope of a user's sessions (holders are session ids).
pub fn session_scope(user: &UserId) -> String {
    format!("sessions:user:{user}")
}

/// The instance-wide socket cap.
#[derive(Clone)]
pub struct ConnectionCap {
    permits: Arc<Semaphore>,
}

impl ConnectionCap {
    pub fn new(max: u32) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max as usize)),
        }
    }

    /// A permit for one more socket, or `None` when the instance is full.
    pub fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }
}

/// A slot a socket keeps fresh while it lives.
struct Claim {
    scope: String,
    holder: String,
    ttl: Duration,
    /// Refreshed when this much time passed since the last refresh.
    every: Duration,
    /// Freed when the socket ends (the socket's own slot), or left to lapse (the
    /// session's slot, which outlives its sockets).
    release: bool,
}

/// Why a socket may not take a slot among its caller's sockets.
#[derive(Debug)]
pub enum SlotRefusal {
    Full { held: u32 },
    Store(StoreError),
}

/// A socket being admitted: its permit and the slots it took so far. Dropped before
/// [`Admission::start`] (the socket was refused later on), it frees them.
pub struct Admission {
    permit: Option<OwnedSemaphorePermit>,
    backend: Backend,
    claims: Vec<Claim>,
    keeper: SlotKeeper,
}

impl Admission {
    pub fn new(permit: OwnedSemaphorePermit, backend: Backend, keeper: SlotKeeper) -> Self {
        Self {
            permit: Some(permit),
            backend,
            claims: Vec::new(),
            keeper,
        }
    }

    /// Takes a slot among the caller's sockets, unless `limit` (0: none) are open.
    pub async fn claim_socket(
        &mut self,
        scope: String,
        holder: String,
        limit: u32,
    ) -> Result<(), SlotRefusal> {
        if limit == 0 {
            return Ok(());
        }
        match self
            .backend
            .acquire_slot(&scope, &holder, limit, SOCKET_SLOT_TTL)
            .await
        {
            Ok(SlotOutcome::Acquired { .. }) => {}
            Ok(SlotOutcome::Full { held }) => return Err(SlotRefusal::Full { held }),
            Err(error) => return Err(SlotRefusal::Store(error)),
        }
        self.claims.push(Claim {
            scope,
            holder,
            ttl: SOCKET_SLOT_TTL,
            every: SOCKET_SLOT_REFRESH,
            release: true,
        });
        Ok(())
    }

    /// Keeps the session's slot in its owner's set fresh while the socket lives (a
    /// session in use does not lapse from the count).
    pub fn keep_session(&mut self, owner: &UserId, session: &SessionId, idle_ttl: Duration) {
        self.claims.push(Claim {
            scope: session_scope(owner),
            holder: session.to_string(),
            ttl: idle_ttl,
            every: (idle_ttl / 4).max(SOCKET_SLOT_REFRESH),
            release: false,
        });
    }

    /// The socket was admitted: keep its slots fresh until the guard drops.
    pub fn start(mut self) -> SocketGuard {
        let claims = std::mem::take(&mut self.claims);
        let kept = (!claims.is_empty()).then(|| self.keeper.keep(&self.backend, claims));
        SocketGuard {
            _permit: self.permit.take(),
            _kept: kept,
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let releases: Vec<Claim> = self.claims.drain(..).filter(|c| c.release).collect();
        if releases.is_empty() {
            return;
        }
        self.keeper.release(&self.backend, releases);
    }
}

/// What an admitted socket holds; dropping it frees the permit at once and the
/// socket's slot right after.
pub struct SocketGuard {
    _permit: Option<OwnedSemaphorePermit>,
    _kept: Option<KeptSlots>,
}

/// A claim with when it was last refreshed.
struct Kept {
    claim: Claim,
    refreshed: Instant,
}

/// Keeps the slots of every admitted socket of this instance fresh, from one task.
#[derive(Clone, Default)]
pub struct SlotKeeper {
    inner: Arc<KeeperInner>,
}

#[derive(Default)]
struct KeeperInner {
    /// By socket; a `std` mutex: held only to copy out what is due, never across a
    /// store call.
    held: Mutex<HashMap<u64, Vec<Kept>>>,
    next: AtomicU64,
    /// Where slot upkeep and releases run, so a stopping instance can let its
    /// sockets' slots be freed rather than left to lapse.
    tasks: TaskTracker,
}

/// A socket's registration with the keeper; dropping it frees the socket's slot.
pub struct KeptSlots {
    keeper: SlotKeeper,
    backend: Backend,
    id: u64,
}

impl Drop for KeptSlots {
    fn drop(&mut self) {
        let claims = self.keeper.held().remove(&self.id).unwrap_or_default();
        let releases = claims
            .into_iter()
            .map(|k| k.claim)
            .filter(|c| c.release)
            .collect();
        self.keeper.release(&self.backend, releases);
    }
}

impl SlotKeeper {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Kept>>> {
        self.inner.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tracker of upkeep and release tasks (waited for at shutdown).
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    fn keep(&self, backend: &Backend, claims: Vec<Claim>) -> KeptSlots {
        // Attaching is activity: the session's slot is refreshed at once.
        let sessions: Vec<(String, String, Duration)> = claims
            .iter()
            .filter(|c| !c.release)
            .map(|c| (c.scope.clone(), c.holder.clone(), c.ttl))
            .collect();
        if !sessions.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
            let backend = backend.clone();
            self.inner.tasks.spawn(async move {
                for (scope, holder, ttl) in sessions {
                    if let Err(error) = backend.refresh_slot(&scope, &holder, ttl).await {
                        tracing::warn!(%error, "could not refresh a session's slot");
                    }
                }
            });
        }
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let kept = claims
            .into_iter()
            .map(|claim| Kept {
                claim,
                refreshed: now,
            })
            .collect();
        self.held().insert(id, kept);
        KeptSlots {
            keeper: self.clone(),
            backend: backend.clone(),
            id,
        }
    }

    fn release(&self, backend: &Backend, releases: Vec<Claim>) {
        if releases.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let backend = backend.clone();
        self.inner.tasks.spawn(async move {
            for claim in releases {
                if let Err(error) = backend.release_slot(&claim.scope, &claim.holder).await {
                    tracing::warn!(%error, "could not free a socket's slot; it lapses on its own");
                }
            }
        });
    }

    /// The instance's upkeep loop: refreshes every claim that is due, until `stop`.
    pub async fn run(self, backend: Backend, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(SOCKET_SLOT_REFRESH / 4);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let due: Vec<(String, String, Duration, bool)> = {
                let mut held = self.held();
                let now = Instant::now();
                held.values_mut()
                    .flatten()
                    .filter(|kept| now.duration_since(kept.refreshed) >= kept.claim.every)
                    .map(|kept| {
                        kept.refreshed = now;
                        let c = &kept.claim;
                        (c.scope.clone(), c.holder.clone(), c.ttl, c.release)
                    })
                    .collect()
            };
            for (scope, holder, ttl, socket_slot) in due {
                match backend.refresh_slot(&scope, &holder, ttl).await {
                    Ok(true) => {}
                    // The socket's claim lapsed (the store was unreachable for a while):
                    // take it back, whatever the count, since the socket is open anyway.
                    Ok(false) if socket_slot => {
                        let _ = backend.acquire_slot(&scope, &holder, u32::MAX, ttl).await;
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "could not refresh a socket's slot"),
                }
            }
        }
    }
}
