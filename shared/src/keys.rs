//! The Redis key schema, in one place.
//!
//! Every per-session key carries the session id as a `{hash tag}`, so one session's
//! keys share a Redis Cluster slot and the scripts that touch them stay single-slot.
//! All names start with a configurable prefix: tests give each run its own, and
//! pub/sub ignores the database number, so a prefix is the only thing that keeps two
//! deployments on one Redis apart.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{S}:meta` | hash | user, times, message count, protocol, metadata, `seq`, `attempt` |
//! | `P:{S}:history` | list | stored messages, JSON, oldest first |
//! | `P:{S}:pending` | list | accepted user messages not yet answered, oldest first |
//! | `P:{S}:idem` | hash | `client_message_id` → message id, for idempotent resends |
//! | `P:{S}:events` | stream | recent event batches, entry id = last `seq` of the batch |
//! | `P:{S}:calls` | hash | tool calls of the message being answered: `message` → its id, `round:index` → call JSON |
//! | `P:{S}` | channel | live event batches |
//! | `P:probe:{I}` | channel | canaries of gateway instance `I` (its bus health probe) |
//! | `P:inbox` | stream, group `workers` | one entry per session with pending messages |
//! | `P:sessions` | sorted set | session ids by last activity (ms) |
//! | `P:dead` | stream | messages given up on after too many tries |
//! | `P:control` | channel | cancel requests for workers |
//! | `P:slots:{scope}` | sorted set | holders of a bounded set (a user's sockets or sessions) by lapse time (ms) |
//! | `P:rate:{scope}` | string | a cross-pod rate bucket's theoretical arrival time (GCRA, epoch us) |
//! | `P:usage:{scope}` | hash | tokens a user or address spent, `window:start_ms` → sum |
//! | `P:{S}:charge` | string | the usage scope the session's answers are charged to |
//!
//! **Internal names are out of the clients' reach.** A session's names always start
//! with `P:{` (its id is the hash tag, and ids are parsed before any name is built);
//! every internal name starts with `P:` and a word (`probe:`, `control`, `inbox`, ...),
//! so no session id, however chosen, names an internal key or channel, and opening or
//! closing a session's socket can never subscribe or unsubscribe one.

use crate::ids::SessionId;

/// The consumer group every worker reads the inbox through.
pub const WORKER_GROUP: &str = "workers";

/// Builds every Redis name from one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` must not contain `{` or `}` (checked by the settings).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn session_key(&self, id: &SessionId, suffix: &str) -> String {
        format!("{}:{{{}}}:{}", self.prefix, id, suffix)
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

    /// The session's pub/sub channel.
    pub fn channel(&self, id: &SessionId) -> String {
        format!("{}:{{{}}}", self.prefix, id)
    }

    /// The session a channel name belongs to, if it is one of ours.
    pub fn session_of_channel(&self, channel: &str) -> Option<SessionId> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix(":{")?;
        SessionId::parse(rest.strip_suffix('}')?).ok()
    }

    /// The channel of one gateway instance's canaries (`instance` is any text: it is
    /// not a session id and never becomes one).
    pub fn probe(&self, instance: &str) -> String {
        format!("{}:probe:{}", self.prefix, instance)
    }

    /// Whether `channel` is an instance probe channel of this prefix.
    pub fn is_probe(&self, channel: &str) -> bool {
        channel
            .strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with(":probe:"))
    }

    pub fn inbox(&self) -> String {
        format!("{}:inbox", self.prefix)
    }

    pub fn sessions(&self) -> String {
        format!("{}:sessions", self.prefix)
    }

    pub fn dead_letters(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// The workers' control channel (cancel requests).
    pub fn control(&self) -> String {
        format!("{}:control", self.prefix)
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

    /// Who pays for the session's answers (`backend::limits`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_share_one_hash_tag() {
        let keys = Keys::new("chat");
        let id = SessionId::parse("abc").unwrap();
        assert_eq!(keys.meta(&id), "chat:{abc}:meta");
        assert_eq!(keys.history(&id), "chat:{abc}:history");
        assert_eq!(keys.events(&id), "chat:{abc}:events");
        assert_eq!(keys.calls(&id), "chat:{abc}:calls");
        assert_eq!(keys.channel(&id), "chat:{abc}");
        assert_eq!(keys.inbox(), "chat:inbox");
    }

    #[test]
    fn slot_scopes_cannot_break_out_of_their_hash_tag() {
        let keys = Keys::new("chat");
        assert_eq!(
            keys.slots("sockets:user:a}b{c%"),
            "chat:slots:{sockets:user:a%7Db%7Bc%25}"
        );
        assert_ne!(keys.slots("x%7D"), keys.slots("x}"));
    }

    #[test]
    fn no_session_id_names_an_internal_channel() {
        let keys = Keys::new("chat");
        let probe = keys.probe("gw-1");
        assert!(keys.is_probe(&probe));
        assert_eq!(keys.session_of_channel(&probe), None);
        // Ids that spell the internal names still get a session channel, never those.
        for raw in [
            "probe:gw-1",
            "canary.gw-1",
            "control",
            "inbox",
            ":probe:gw-1",
        ] {
            let Ok(id) = SessionId::parse(raw) else {
                continue;
            };
            let channel = keys.channel(&id);
            assert!(channel.starts_with("chat:{"), "{channel}");
            assert!(!keys.is_probe(&channel), "{channel}");
            assert_ne!(channel, probe);
            assert_ne!(channel, keys.control());
        }
    }

    #[test]
    fn channel_maps_back_to_its_session() {
        let keys = Keys::new("t1");
        let id = SessionId::parse("s-1").unwrap();
        assert_eq!(keys.session_of_channel(&keys.channel(&id)), Some(id));
        assert_eq!(keys.session_of_channel("other:{s-1}"), None);
        assert_eq!(keys.session_of_channel("t1:inbox"), None);
    }
}
