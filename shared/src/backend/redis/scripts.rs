//! The Lua scripts (`*.lua` beside this file, each headed by its KEYS, ARGV and
//! reply), each bound to the type its reply parses into (`replies.rs`), so a caller
//! cannot read a script's reply as another shape.

use super::RedisBackend;
use super::replies::{Created, Deleted, Moved, Requeued, Saved, ScriptReply, Touched};
use crate::backend::{PublishOutcome, StoreError};
use crate::model::{AcceptOutcome, Begin, CancelOutcome, FinishOutcome};
use fred::types::Value;
use fred::types::scripts::Script;
use std::marker::PhantomData;

/// A script whose reply is an `R`.
pub(super) struct TypedScript<R> {
    script: Script,
    reply: PhantomData<fn() -> R>,
}

impl<R: ScriptReply> TypedScript<R> {
    fn new(lua: &str) -> Self {
        Self {
            script: Script::from_lua(lua),
            reply: PhantomData,
        }
    }

    /// Runs the script (loading it first where the server lacks it) and parses its reply.
    /// Refused before it is sent when its keys, or the channels among its arguments
    /// (arguments that are names of this prefix), span two cluster slots.
    pub(super) async fn run(
        &self,
        backend: &RedisBackend,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<R, StoreError> {
        if !R::SPANS_SLOTS {
            let ours = format!("{}:", backend.keys().prefix());
            let names = keys
                .iter()
                .chain(args.iter().filter(|a| a.starts_with(&ours)));
            let slots = slots_of(names);
            audit::record(R::SCRIPT, slots.len());
            if slots.len() > 1 {
                return Err(StoreError::CrossSlot(R::SCRIPT));
            }
        }
        let reply: Value = self
            .script
            .evalsha_with_reload(backend.client(), keys, args)
            .await?;
        R::parse(reply)
    }
}

/// The distinct cluster slots of `names`.
fn slots_of<'a>(names: impl Iterator<Item = &'a String>) -> std::collections::BTreeSet<u16> {
    names.map(|name| crate::keys::key_slot(name)).collect()
}

/// What the slot check saw, per script: test support for the suite that proves every
/// script single-slot (`tests/conformance.rs`, `every_script_stays_in_one_slot`).
pub mod audit {
    use std::collections::HashMap;
    use std::sync::Mutex;

    static SEEN: Mutex<Option<HashMap<&'static str, usize>>> = Mutex::new(None);

    /// Records that `script` was called with names in `slots` distinct slots.
    pub(super) fn record(script: &'static str, slots: usize) {
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        let most = seen
            .get_or_insert_with(HashMap::new)
            .entry(script)
            .or_default();
        *most = (*most).max(slots);
    }

    /// Every script called so far in this process, with the most slots one call spanned.
    pub fn most_slots_per_script() -> HashMap<&'static str, usize> {
        SEEN.lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

pub(super) struct Scripts {
    pub create_session: TypedScript<Created>,
    pub touch_session: TypedScript<Touched>,
    pub delete_session: TypedScript<Deleted>,
    pub accept_message: TypedScript<AcceptOutcome>,
    pub publish_events: TypedScript<PublishOutcome>,
    pub begin_work: TypedScript<Begin>,
    pub finish_work: TypedScript<FinishOutcome>,
    pub save_tool_calls: TypedScript<Saved>,
    pub cancel_generation: TypedScript<CancelOutcome>,
    pub migrate_legacy: TypedScript<Moved>,
    pub requeue_entry: TypedScript<Requeued>,
}

impl Scripts {
    pub(super) fn load() -> Self {
        Self {
            create_session: TypedScript::new(include_str!("create_session.lua")),
            touch_session: TypedScript::new(concat!(
                include_str!("refresh_ttl.lua"),
                include_str!("touch_session.lua")
            )),
            delete_session: TypedScript::new(include_str!("delete_session.lua")),
            accept_message: TypedScript::new(concat!(
                include_str!("refresh_ttl.lua"),
                include_str!("accept_message.lua")
            )),
            publish_events: TypedScript::new(concat!(
                include_str!("publish_batch.lua"),
                include_str!("publish_events.lua")
            )),
            begin_work: TypedScript::new(concat!(
                include_str!("publish_batch.lua"),
                include_str!("begin_work.lua")
            )),
            finish_work: TypedScript::new(concat!(
                include_str!("refresh_ttl.lua"),
                include_str!("publish_batch.lua"),
                include_str!("finish_work.lua")
            )),
            save_tool_calls: TypedScript::new(concat!(
                include_str!("publish_batch.lua"),
                include_str!("save_tool_calls.lua")
            )),
            cancel_generation: TypedScript::new(include_str!("cancel_generation.lua")),
            migrate_legacy: TypedScript::new(include_str!("migrate_legacy.lua")),
            requeue_entry: TypedScript::new(include_str!("requeue_entry.lua")),
        }
    }
}
