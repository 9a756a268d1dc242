//! The Redis backend: the scale-out deployment, shared by every gateway and worker pod.
//!
//! Writes that must happen together are Lua scripts (`*.lua` beside this file, each
//! headed by its KEYS, ARGV and reply), so a crash can never split them. One file per
//! concern:
//!
//! - `connection`: the clients (a small command pool, subscribers), one Redis or a
//!   Redis Cluster, and the layout checks at start;
//! - `tls`: the rustls configuration for `rediss://` (private CA, mutual TLS);
//! - `migrate`: moving a deployment's data from the layout before partitions;
//! - `scripts` / `replies`: the scripts, each bound to its typed reply;
//! - `sessions`: create, read, touch, delete, count, history;
//! - `work`: the inbox — accept, read, begin, claim, reclaim, finish, dead letters;
//! - `blocked_reads`: a worker's inbox read on one Redis, blocked on every partition;
//! - `notices`: which inbox partitions a worker reads on a cluster, from their `ready`
//!   notices;
//! - `events`: publish, replay, the gateway's subscriber, cancel requests, canaries;
//! - `slots`: the bounded holder sets (`backend::counters`);
//! - `limits`: cross-pod rate buckets and token usage (`backend::limits`).

mod blocked_reads;
mod connection;
mod events;
mod limits;
mod migrate;
mod notices;
mod replies;
mod scripts;
mod sessions;
mod slots;
mod subscriber;
pub mod tls;
mod work;

pub use scripts::audit as slot_audit;
pub use subscriber::RedisSubscriber;

use crate::config::StoreSettings;
use crate::keys::Keys;
use fred::prelude::*;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

struct Inner {
    pool: Pool,
    /// A Redis Cluster (its inbox reads follow notices), not one Redis (blocked reads).
    clustered: bool,
    /// The connection a worker's blocked inbox reads hold (one Redis); lazily made.
    blocking_reads: tokio::sync::OnceCell<Client>,
    /// The inbox partitions due for a worker's read (a cluster); lazily made.
    notices: tokio::sync::OnceCell<Arc<notices::Notices>>,
    /// Where the next inbox read or reclaim starts, so every partition gets its turn first.
    rotation: AtomicUsize,
    builder: Builder,
    keys: Keys,
    scripts: scripts::Scripts,
    settings: StoreSettings,
}

/// Handle to the Redis backend; cheap to clone.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

impl RedisBackend {
    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn client(&self) -> &Client {
        self.inner.pool.next()
    }

    fn scripts(&self) -> &scripts::Scripts {
        &self.inner.scripts
    }

    fn settings(&self) -> &StoreSettings {
        &self.inner.settings
    }

    fn ttl(&self) -> u64 {
        self.inner.settings.session_idle_ttl_secs
    }
}
