//! The inbox and the work on it: accept a message (history, pending list, inbox entry
//! in one script), read, begin, keep claims fresh, reclaim a dead worker's entries,
//! save tool calls, finish, dead-letter, and the queue's figures.

use super::RedisBackend;
use crate::backend::{DEAD_LETTERS_KEPT, StoreError};
use crate::clock;
use crate::ids::SessionId;
use crate::keys::WORKER_GROUP;
use crate::model::*;
use crate::telemetry::TraceContext;
use crate::wire::StreamEvent;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand};
use std::collections::HashMap;
use std::time::Duration;

impl RedisBackend {
    pub async fn accept_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        trace: &TraceContext,
        client_message_id: Option<&str>,
        max_pending: u32,
    ) -> Result<AcceptOutcome, StoreError> {
        let k = self.keys();
        let queued = QueuedMessage {
            message: message.clone(),
            trace: trace.clone(),
        };
        let mut keys = self.session_keys(id);
        keys.push(k.inbox());
        keys.push(k.sessions());
        let args = vec![
            id.to_string(),
            message.to_json(),
            message.id.to_string(),
            client_message_id.unwrap_or_default().to_owned(),
            max_pending.to_string(),
            self.ttl().to_string(),
            clock::now_millis().to_string(),
            self.settings().history_max_messages.to_string(),
            queued.to_json(),
        ];
        self.scripts().accept_message.run(self, keys, args).await
    }

    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let inbox = self.keys().inbox();
        let backlog: u64 = self.client().xlen(&inbox).await?;
        let oldest: Vec<(String, HashMap<String, String>)> =
            self.client().xrange(&inbox, "-", "+", Some(1)).await?;
        let dead_letters: u64 = self.client().xlen(self.keys().dead_letters()).await?;
        let oldest_age_ms = oldest
            .first()
            .and_then(|(id, _)| id.split('-').next()?.parse::<i64>().ok())
            .map(|ms| (clock::now_millis() - ms).max(0) as u64)
            .unwrap_or(0);
        Ok(QueueStats {
            backlog,
            oldest_age_ms,
            dead_letters,
        })
    }

    /// Reads up to `max` new inbox entries for `consumer`, blocking up to `block`.
    pub async fn read_inbox(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let reader = self.reader().await?;
        let cmd = CustomCommand::new_static("XREADGROUP", ClusterHash::Offset(6), true);
        let args: Vec<Value> = vec![
            "GROUP".into(),
            WORKER_GROUP.into(),
            consumer.into(),
            "COUNT".into(),
            (max as i64).into(),
            "BLOCK".into(),
            (block.as_millis() as i64).into(),
            "STREAMS".into(),
            self.keys().inbox().into(),
            ">".into(),
        ];
        // Waiting `block` is the point of the call; the command deadline starts after it.
        let options = fred::types::config::Options {
            timeout: Some(block + self.settings().command_timeout()),
            ..Default::default()
        };
        let reply: Result<Value, _> = reader.with_options(&options).custom(cmd, args).await;
        match reply {
            Ok(reply) => parse_xreadgroup(reply),
            // Redis restarted without persistence: the stream and its group are gone.
            Err(error) if error.details().contains("NOGROUP") => {
                tracing::warn!("consumer group missing; creating it again");
                self.ensure_group().await?;
                Ok(Vec::new())
            }
            Err(error) => Err(error.into()),
        }
    }

    pub async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let cmd = CustomCommand::new_static("XAUTOCLAIM", ClusterHash::FirstKey, false);
        let args: Vec<Value> = vec![
            self.keys().inbox().into(),
            WORKER_GROUP.into(),
            consumer.into(),
            (min_idle.as_millis() as i64).into(),
            "0-0".into(),
            "COUNT".into(),
            (max as i64).into(),
        ];
        let reply: Value = self.client().custom(cmd, args).await?;
        // [next cursor, [entries], [deleted ids]]: the entries read like XREADGROUP's.
        let Value::Array(mut parts) = reply else {
            return Ok(Vec::new());
        };
        if parts.len() < 2 {
            return Ok(Vec::new());
        }
        let entries = parts.swap_remove(1);
        parse_xreadgroup(Value::Array(vec![Value::Array(vec![
            self.keys().inbox().into(),
            entries,
        ])]))
    }

    pub async fn refresh_claims(
        &self,
        consumer: &str,
        entry_ids: &[String],
    ) -> Result<(), StoreError> {
        let cmd = CustomCommand::new_static("XCLAIM", ClusterHash::FirstKey, false);
        let mut args: Vec<Value> = vec![
            self.keys().inbox().into(),
            WORKER_GROUP.into(),
            consumer.into(),
            0.into(),
        ];
        args.extend(entry_ids.iter().map(|id| Value::from(id.as_str())));
        args.push("JUSTID".into());
        let _: Value = self.client().custom(cmd, args).await?;
        Ok(())
    }

    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        work: &Work,
        reason: &str,
    ) -> Result<(), StoreError> {
        let cmd = CustomCommand::new_static("XADD", ClusterHash::FirstKey, false);
        let args: Vec<Value> = vec![
            self.keys().dead_letters().into(),
            "MAXLEN".into(),
            "~".into(),
            (DEAD_LETTERS_KEPT as i64).into(),
            "*".into(),
            "session".into(),
            delivery.session_id.as_str().into(),
            "message".into(),
            work.message.id.to_string().into(),
            "tries".into(),
            (work.tries as i64).into(),
            "reason".into(),
            reason.into(),
        ];
        let _: Value = self.client().custom(cmd, args).await?;
        Ok(())
    }

    pub async fn begin(
        &self,
        delivery: &Delivery,
        context_messages: usize,
    ) -> Result<Begin, StoreError> {
        let k = self.keys();
        let id = &delivery.session_id;
        let keys = vec![
            k.meta(id),
            k.pending(id),
            k.inbox(),
            k.history(id),
            k.calls(id),
        ];
        let args = vec![
            delivery.entry_id.clone(),
            WORKER_GROUP.to_owned(),
            context_messages.to_string(),
        ];
        self.scripts().begin_work.run(self, keys, args).await
    }

    pub async fn finish(
        &self,
        delivery: &Delivery,
        work: &Work,
        answer: Option<&StoredMessage>,
        events: &[StreamEvent],
    ) -> Result<FinishOutcome, StoreError> {
        let k = self.keys();
        let id = &delivery.session_id;
        let mut keys = self.session_keys(id);
        keys.push(k.inbox());
        keys.push(k.sessions());
        keys.push(k.calls(id));
        let mut args = vec![
            id.to_string(),
            work.attempt.to_string(),
            work.message.id.to_string(),
            answer.map(StoredMessage::to_json).unwrap_or_default(),
            k.channel(id),
            self.settings().event_log_max_entries.to_string(),
            self.ttl().to_string(),
            delivery.entry_id.clone(),
            WORKER_GROUP.to_owned(),
            clock::now_millis().to_string(),
            self.settings().history_max_messages.to_string(),
            events.len().to_string(),
        ];
        args.extend(events.iter().map(StreamEvent::to_json));
        self.scripts().finish_work.run(self, keys, args).await
    }

    pub async fn save_tool_calls(
        &self,
        id: &SessionId,
        fence: Fence,
        calls: &[FunctionCall],
        events: &[StreamEvent],
    ) -> Result<SaveOutcome, StoreError> {
        let k = self.keys();
        let mut args = vec![
            k.channel(id),
            self.settings().event_log_max_entries.to_string(),
            self.ttl().to_string(),
            fence.attempt.to_string(),
            fence.message_id.to_string(),
            calls.len().to_string(),
            events.len().to_string(),
        ];
        for call in calls {
            args.push(call.slot());
            args.push(call.to_json());
        }
        args.extend(events.iter().map(StreamEvent::to_json));
        let keys = vec![k.meta(id), k.calls(id), k.events(id)];
        self.scripts().save_tool_calls.run(self, keys, args).await
    }
}

/// `XREADGROUP` reply (RESP2 or RESP3 shape) → deliveries.
fn parse_xreadgroup(reply: Value) -> Result<Vec<Delivery>, StoreError> {
    let streams: Vec<Value> = match reply {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        Value::Map(map) => map
            .inner()
            .into_iter()
            .map(|(k, v)| Value::Array(vec![Value::from(k), v]))
            .collect(),
        other => return Err(StoreError::Corrupt(format!("XREADGROUP reply {other:?}"))),
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(mut pair) = stream else {
            continue;
        };
        let Some(Value::Array(entries)) = pair.pop() else {
            continue;
        };
        for entry in entries {
            let Value::Array(parts) = entry else { continue };
            let entry_id = parts
                .first()
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            let fields: Vec<String> = match parts.get(1).cloned() {
                Some(Value::Array(f)) => f.iter().filter_map(|v| v.as_string()).collect(),
                Some(Value::Map(m)) => m
                    .inner()
                    .into_iter()
                    .flat_map(|(k, v)| [k.as_str().map(str::to_owned), v.as_string()])
                    .flatten()
                    .collect(),
                _ => Vec::new(),
            };
            let session = fields
                .chunks(2)
                .find(|kv| kv[0] == "session")
                .and_then(|kv| kv.get(1))
                .and_then(|raw| SessionId::parse(raw).ok());
            if let Some(session_id) = session {
                out.push(Delivery {
                    entry_id,
                    session_id,
                });
            }
        }
    }
    Ok(out)
}
