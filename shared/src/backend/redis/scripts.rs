//! The Lua scripts (`*.lua` beside this file, each headed by its KEYS, ARGV and
//! reply), each bound to the type its reply parses into (`replies.rs`), so a caller
//! cannot read a script's reply as another shape.

use super::RedisBackend;
use super::replies::{Created, Deleted, ScriptReply, Touched};
use crate::backend::{PublishOutcome, StoreError};
use crate::model::{AcceptOutcome, Begin, CancelOutcome, FinishOutcome, SaveOutcome};
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
    pub(super) async fn run(
        &self,
        backend: &RedisBackend,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<R, StoreError> {
        let reply: Value = self
            .script
            .evalsha_with_reload(backend.client(), keys, args)
            .await?;
        R::parse(reply)
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
    pub save_tool_calls: TypedScript<SaveOutcome>,
    pub cancel_generation: TypedScript<CancelOutcome>,
}

impl Scripts {
    pub(super) fn load() -> Self {
        Self {
            create_session: TypedScript::new(include_str!("create_session.lua")),
            touch_session: TypedScript::new(include_str!("touch_session.lua")),
            delete_session: TypedScript::new(include_str!("delete_session.lua")),
            accept_message: TypedScript::new(include_str!("accept_message.lua")),
            publish_events: TypedScript::new(concat!(
                include_str!("publish_batch.lua"),
                include_str!("publish_events.lua")
            )),
            begin_work: TypedScript::new(include_str!("begin_work.lua")),
            finish_work: TypedScript::new(concat!(
                include_str!("publish_batch.lua"),
                include_str!("finish_work.lua")
            )),
            save_tool_calls: TypedScript::new(concat!(
                include_str!("publish_batch.lua"),
                include_str!("save_tool_calls.lua")
            )),
            cancel_generation: TypedScript::new(include_str!("cancel_generation.lua")),
        }
    }
}
