//! The Redis key schema, in one place.
//!
//! # Partitions: why every script stays in one slot
//!
//! Redis Cluster runs a script only when all its keys hash to one slot, and a slot is
//! chosen by a key's `{hash tag}`. The writes that must happen together are a
//! session's own keys *and* the shared queue: accepting a message writes the session's
//! history and pending list and the inbox entry that tells a worker; finishing one
//! acknowledges that entry and may queue the next; creating, touching and deleting a
//! session update the live-session index. So the inbox and the index cannot be global
//! keys. They are split into `N` **partitions** (`STORE_PARTITIONS`, default 16); a
//! session belongs to partition `fnv1a(session id) mod N`, and *every* key of the
//! session carries its partition's tag, as do the partition's inbox stream (with its
//! consumer group), live-session index and channels. Every script therefore touches
//! one slot ([`key_slot`]; `tests/conformance.rs` computes the slot of every key each
//! script is given and fails if any two differ), the scripts stay as atomic as on one
//! Redis, and N partitions spread the load over the cluster's masters.
//!
//! The tags are chosen so that partition `k`'s slot falls in the `k`-th of `N` equal
//! slot ranges ([`partition_tags`]): a cluster whose masters own equal slot ranges (what
//! `redis-cli --cluster create` makes) gets an equal share of partitions on each. On
//! one Redis, partitions are only names. `N` is stored in Redis at first start
//! (`P:partitions`) and a start with another `N` is refused: it would move sessions.
//!
//! All names start with a configurable prefix: tests give each run its own, and
//! pub/sub ignores the database number, so a prefix is the only thing that keeps two
//! deployments on one Redis apart.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{T}:s:S:meta` | hash | user, times, message count, protocol, metadata, `attempt` (the fence), the current message (`head`, `head_id`: the one being answered, '' none), `charge` (who pays for the answers, '' none), `entry` (the live inbox entry) |
//! | `P:{T}:s:S:history` | list | stored messages, JSON, oldest first |
//! | `P:{T}:s:S:pending` | list | accepted user messages waiting behind the current one, oldest first (an earlier release kept the current one first here too) |
//! | `P:{T}:s:S:idem` | hash | `client_message_id` → message id, for idempotent resends |
//! | `P:{T}:s:S:events` | stream | recent event batches, entry id = `<first seq of the batch>-0`; the newest entry's last event is the session's last `seq` (no counter of its own: `publish_batch.lua`) |
//! | `P:{T}:s:S:calls` | hash | tool calls of the message being answered: `message` → its id, `round:index` → call JSON |
//! | `P:{T}:s:S` | shard channel | live event batches and the session's delete notice |
//! | `P:{T}:inbox` | stream, group `workers` | one entry per session of the partition with a current message |
//! | `P:{T}:sessions` | sorted set | the partition's session ids by last activity (ms) |
//! | `P:{T}:control` | shard channel | cancel requests for the partition's sessions |
//! | `P:{T}:ready` | shard channel | "the inbox has a new entry": wakes idle workers (on a Redis Cluster; one Redis wakes a blocked reader itself) |
//! | `P:{T}:probe:I` | shard channel | canaries of gateway instance `I`, one per partition so every shard is probed |
//! | `P:dead` | stream | messages given up on after too many tries (plain `XADD`, no script) |
//! | `P:partitions` | string | `N`, set at first start |
//! | `P:slots:{scope}` | sorted set | holders of a bounded set (a user's sockets or sessions) by lapse time (ms) |
//! | `P:rate:{scope}` | string | a cross-pod rate bucket's theoretical arrival time (GCRA, epoch us) |
//! | `P:usage:{scope}` | hash | tokens a user or address spent, `window:start_ms` → sum |
//! | `P:{T}:s:S:charge` | string | who pays for the answers, as an earlier release kept it (now meta's `charge`; read only for a session that has none there) |
//!
//! (`T` is the partition's tag, `S` the session id.) Channels are sharded (`SPUBLISH`
//! / `SSUBSCRIBE`): a message goes to the one shard that owns its slot, not to every
//! node. The layout before partitions (`P:{S}:meta`, a global `P:inbox` and
//! `P:sessions`) is moved over at start by `backend::redis::migrate`.
//!
//! **Internal names are out of the clients' reach.** Session ids are parsed before any
//! name is built and hold no braces; a session's names always continue `}:s:` after
//! the tag, every internal name continues with a word (`}:inbox`, `}:probe:`, ...),
//! so no session id, however chosen, names an internal key or channel, and opening or
//! closing a session's socket can never subscribe or unsubscribe one.

use crate::ids::SessionId;
use std::sync::Arc;

/// The consumer group every worker reads the inboxes through.
pub const WORKER_GROUP: &str = "workers";

/// Partitions when `STORE_PARTITIONS` is not set.
pub const DEFAULT_PARTITIONS: u16 = 16;

/// Most partitions allowed (each is a stream every worker polls).
pub const MAX_PARTITIONS: u16 = 1024;

/// Redis Cluster's slot count.
const SLOTS: u32 = 16_384;

/// One partition of the inbox and index, `0..N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(pub u16);

/// Builds every Redis name from one prefix and the partition count.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    tags: Arc<[String]>,
}

impl Keys {
    /// `prefix` must not contain `{` or `}` (checked by the settings); `partitions`
    /// is clamped to `1..=MAX_PARTITIONS`.
    pub fn new(prefix: impl Into<String>, partitions: u16) -> Self {
        Self {
            prefix: prefix.into(),
            tags: partition_tags(partitions.clamp(1, MAX_PARTITIONS)).into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn partition_count(&self) -> u16 {
        self.tags.len() as u16
    }

    /// Every partition, in order.
    pub fn partitions(&self) -> impl Iterator<Item = Partition> + use<> {
        (0..self.partition_count()).map(Partition)
    }

    /// The partition a session belongs to (FNV-1a of its id: stable across versions).
    pub fn partition_of(&self, id: &SessionId) -> Partition {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.as_str().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Partition((hash % u64::from(self.partition_count())) as u16)
    }

    fn partition_name(&self, partition: Partition, rest: &str) -> String {
        format!(
            "{}:{{{}}}:{}",
            self.prefix, self.tags[partition.0 as usize], rest
        )
    }

    /// The session's key named `suffix` (`meta`, `history`, ...).
    pub fn session_key(&self, id: &SessionId, suffix: &str) -> String {
        self.partition_name(self.partition_of(id), &format!("s:{id}:{suffix}"))
    }

    pub fn meta(&self, id: &SessionId) -> String {
        self.session_key(id, "meta")
    }

    pub fn history(&self, id: &SessionId) -> String {
        self.session_key(id, "history")
    }

    pub fn pending(&self, id: &SessionId) -> String {
        self.session_key(id, "pending")
    }

    pub fn idempotency(&self, id: &SessionId) -> String {
        self.session_key(id, "idem")
    }

    pub fn events(&self, id: &SessionId) -> String {
        self.session_key(id, "events")
    }

    /// Tool calls of the message being answered (see `save_tool_calls.lua`).
    pub fn calls(&self, id: &SessionId) -> String {
        self.session_key(id, "calls")
    }

    /// The session's (shard) channel.
    pub fn channel(&self, id: &SessionId) -> String {
        self.partition_name(self.partition_of(id), &format!("s:{id}"))
    }

    /// The session a channel name belongs to, if it is one of ours.
    pub fn session_of_channel(&self, channel: &str) -> Option<SessionId> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix(":{")?;
        let (tag, rest) = rest.split_once('}')?;
        let id = SessionId::parse(rest.strip_prefix(":s:")?).ok()?;
        (self.tags[self.partition_of(&id).0 as usize] == tag).then_some(id)
    }

    /// The channel of one gateway instance's canaries in `partition` (`instance` is any
    /// text: it is not a session id and never becomes one).
    pub fn probe(&self, partition: Partition, instance: &str) -> String {
        self.partition_name(partition, &format!("probe:{instance}"))
    }

    /// Whether `channel` is an instance probe channel of this prefix.
    pub fn is_probe(&self, channel: &str) -> bool {
        channel
            .strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix(":{"))
            .and_then(|rest| rest.split_once('}'))
            .is_some_and(|(_, rest)| rest.starts_with(":probe:"))
    }

    pub fn inbox(&self, partition: Partition) -> String {
        self.partition_name(partition, "inbox")
    }

    pub fn sessions(&self, partition: Partition) -> String {
        self.partition_name(partition, "sessions")
    }

    /// The partition's cancel requests for workers.
    pub fn control(&self, partition: Partition) -> String {
        self.partition_name(partition, "control")
    }

    /// The partition's "new inbox entry" notices for idle workers.
    pub fn ready(&self, partition: Partition) -> String {
        self.partition_name(partition, "ready")
    }

    /// The partition whose `inbox`/`ready` name this is.
    pub fn partition_of_name(&self, name: &str) -> Option<Partition> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix(":{")?;
        let (tag, _) = rest.split_once('}')?;
        self.tags
            .iter()
            .position(|t| t == tag)
            .map(|i| Partition(i as u16))
    }

    pub fn dead_letters(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// Where the partition count is recorded.
    pub fn partition_record(&self) -> String {
        format!("{}:partitions", self.prefix)
    }

    /// A bounded holder set (`backend::counters`). The scope may hold any character (it
    /// carries a user id), so braces are escaped: the whole scope stays the hash tag.
    pub fn slots(&self, scope: &str) -> String {
        self.scoped("slots", scope)
    }

    /// A cross-pod rate bucket (`backend::limits`); the scope is escaped like `slots`.
    pub fn rate(&self, scope: &str) -> String {
        self.scoped("rate", scope)
    }

    /// The token usage of a user or address (`backend::limits`).
    pub fn usage(&self, scope: &str) -> String {
        self.scoped("usage", scope)
    }

    /// Who paid for the session's answers in an earlier release (now meta's `charge`).
    pub fn charge(&self, id: &SessionId) -> String {
        self.session_key(id, "charge")
    }

    /// `P:kind:{scope}`, braces in the scope escaped so it stays the whole hash tag.
    fn scoped(&self, kind: &str, scope: &str) -> String {
        let escaped = scope
            .replace('%', "%25")
            .replace('{', "%7B")
            .replace('}', "%7D");
        format!("{}:{kind}:{{{}}}", self.prefix, escaped)
    }
}

/// The key layout before partitions, read once by the migration at start.
pub mod legacy {
    use crate::ids::SessionId;

    pub fn session_key(prefix: &str, id: &SessionId, suffix: &str) -> String {
        format!("{prefix}:{{{id}}}:{suffix}")
    }

    pub fn inbox(prefix: &str) -> String {
        format!("{prefix}:inbox")
    }

    pub fn sessions(prefix: &str) -> String {
        format!("{prefix}:sessions")
    }

    /// The per-session suffixes the migration moves: `meta`, `history`, `pending`
    /// first (its script reads those by position).
    pub const SUFFIXES: [&str; 7] = [
        "meta", "history", "pending", "idem", "events", "calls", "charge",
    ];
}

/// Tags for `n` partitions: partition `k`'s tag hashes into the `k`-th of `n` equal slot
/// ranges (searching `pK.0`, `pK.1`, ...), so partitions spread evenly over masters
/// that own equal ranges. Deterministic: every pod computes the same tags.
pub fn partition_tags(n: u16) -> Vec<String> {
    let n = u32::from(n.max(1));
    (0..n)
        .map(|k| {
            let (low, high) = (k * SLOTS / n, (k + 1) * SLOTS / n);
            (0u32..)
                .map(|j| format!("p{k}.{j}"))
                .find(|tag| (low..high).contains(&u32::from(crc16(tag.as_bytes()) % 16_384)))
                .expect("some tag hashes into every range")
        })
        .collect()
}

/// The Redis Cluster slot of a key or channel: CRC16 (XMODEM) of its hash tag (the
/// text inside the first `{...}`, when not empty) or of the whole name.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = key.find('{').and_then(|open| {
        let close = key[open + 1..].find('}')? + open + 1;
        (close > open + 1).then(|| &bytes[open + 1..close])
    });
    crc16(tagged.unwrap_or(bytes)) % SLOTS as u16
}

/// CRC16-CCITT (XMODEM), as Redis Cluster defines it.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), key_slot("foo{}{bar}"));
        assert_ne!(key_slot("foo{}{bar}"), key_slot("bar"));
    }

    #[test]
    fn a_sessions_keys_share_its_partitions_slot() {
        let keys = Keys::new("chat", 16);
        let id = SessionId::parse("abc").unwrap();
        let p = keys.partition_of(&id);
        let slot = key_slot(&keys.inbox(p));
        for key in [
            keys.meta(&id),
            keys.history(&id),
            keys.pending(&id),
            keys.idempotency(&id),
            keys.events(&id),
            keys.calls(&id),
            keys.channel(&id),
            keys.sessions(p),
            keys.control(p),
            keys.ready(p),
            keys.probe(p, "gw-1"),
        ] {
            assert_eq!(key_slot(&key), slot, "{key}");
        }
        assert!(
            keys.meta(&id).ends_with(":s:abc:meta"),
            "{}",
            keys.meta(&id)
        );
    }

    #[test]
    fn partitions_spread_evenly_over_slot_ranges() {
        for n in [1u16, 3, 16, 100] {
            let keys = Keys::new("chat", n);
            let mut slots: Vec<u32> = keys
                .partitions()
                .map(|p| u32::from(key_slot(&keys.inbox(p))))
                .collect();
            for (k, slot) in slots.iter().enumerate() {
                let k = k as u32;
                let n = u32::from(n);
                assert!((k * SLOTS / n..(k + 1) * SLOTS / n).contains(slot));
            }
            slots.dedup();
            assert_eq!(slots.len(), n as usize);
        }
        // Sessions land on every partition.
        let keys = Keys::new("chat", 16);
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            seen.insert(keys.partition_of(&SessionId::parse(&format!("s{i}")).unwrap()));
        }
        assert_eq!(seen.len(), 16);
    }

    #[test]
    fn slot_scopes_cannot_break_out_of_their_hash_tag() {
        let keys = Keys::new("chat", 16);
        assert_eq!(
            keys.slots("sockets:user:a}b{c%"),
            "chat:slots:{sockets:user:a%7Db%7Bc%25}"
        );
        assert_ne!(keys.slots("x%7D"), keys.slots("x}"));
    }

    #[test]
    fn no_session_id_names_an_internal_channel() {
        let keys = Keys::new("chat", 4);
        for p in keys.partitions() {
            let probe = keys.probe(p, "gw-1");
            assert!(keys.is_probe(&probe));
            assert_eq!(keys.session_of_channel(&probe), None);
            assert_eq!(keys.session_of_channel(&keys.control(p)), None);
            assert_eq!(keys.session_of_channel(&keys.ready(p)), None);
        }
        // Ids that spell the internal names still get a session channel, never those.
        for raw in [
            "probe:gw-1",
            "canary.gw-1",
            "control",
            "inbox",
            "ready",
            ":probe:gw-1",
        ] {
            let Ok(id) = SessionId::parse(raw) else {
                continue;
            };
            let channel = keys.channel(&id);
            assert!(!keys.is_probe(&channel), "{channel}");
            for p in keys.partitions() {
                assert_ne!(channel, keys.probe(p, "gw-1"));
                assert_ne!(channel, keys.control(p));
                assert_ne!(channel, keys.ready(p));
            }
        }
    }

    #[test]
    fn channel_maps_back_to_its_session() {
        let keys = Keys::new("t1", 16);
        let id = SessionId::parse("s-1").unwrap();
        assert_eq!(
            keys.session_of_channel(&keys.channel(&id)),
            Some(id.clone())
        );
        assert_eq!(keys.session_of_channel("other:{s-1}"), None);
        assert_eq!(keys.session_of_channel(&keys.inbox(Partition(0))), None);
        // A channel whose tag is not the session's own partition is not ours.
        let wrong = Partition((keys.partition_of(&id).0 + 1) % 16);
        assert_eq!(
            keys.session_of_channel(&keys.partition_name(wrong, "s:s-1")),
            None
        );
        let p = keys.partition_of(&id);
        assert_eq!(keys.partition_of_name(&keys.inbox(p)), Some(p));
    }
}
