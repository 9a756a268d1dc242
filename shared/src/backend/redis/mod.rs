//! The Redis backend: the scale-out deployment, shared by every gateway and worker pod.
//!
//! Writes that must happen together are Lua scripts (`*.lua` beside this file, each
//! headed by its KEYS and ARGV), so a crash can never split them. Connections:
//! a small pool for commands, one dedicated client for the worker's blocking
//! `XREADGROUP` (a blocking read holds its connection), and one subscriber client per
//! gateway. `max_command_attempts` is 1: fred would otherwise re-send a command that was
//! in flight when a connection dropped, and a second `XADD` is a second answer.

mod slots;
mod subscriber;

pub use subscriber::RedisSubscriber;

use super::{PublishOutcome, StoreError, split_batch};
use crate::clock;
use crate::config::StoreSettings;
use crate::ids::{MessageId, SessionId, UserId};
use crate::keys::{Keys, WORKER_GROUP};
use crate::model::*;
use crate::telemetry::TraceContext;
use crate::wire::{Protocol, StreamEvent};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Dead letters kept (approximately) for inspection.
const DEAD_LETTERS_KEPT: i64 = 10_000;

struct Scripts {
    create_session: Script,
    touch_session: Script,
    delete_session: Script,
    accept_message: Script,
    publish_events: Script,
    begin_work: Script,
    finish_work: Script,
    save_tool_calls: Script,
    cancel_generation: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            create_session: Script::from_lua(include_str!("create_session.lua")),
            touch_session: Script::from_lua(include_str!("touch_session.lua")),
            delete_session: Script::from_lua(include_str!("delete_session.lua")),
            accept_message: Script::from_lua(include_str!("accept_message.lua")),
            publish_events: Script::from_lua(concat!(
                include_str!("publish_batch.lua"),
                include_str!("publish_events.lua")
            )),
            begin_work: Script::from_lua(include_str!("begin_work.lua")),
            finish_work: Script::from_lua(concat!(
                include_str!("publish_batch.lua"),
                include_str!("finish_work.lua")
            )),
            save_tool_calls: Script::from_lua(concat!(
                include_str!("publish_batch.lua"),
                include_str!("save_tool_calls.lua")
            )),
            cancel_generation: Script::from_lua(include_str!("cancel_generation.lua")),
        }
    }
}

struct Inner {
    pool: Pool,
    /// Lazily made: only workers read the inbox.
    reader: tokio::sync::OnceCell<Client>,
    builder: Builder,
    keys: Keys,
    scripts: Scripts,
    settings: StoreSettings,
}

/// Handle to the Redis backend; cheap to clone.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

fn builder_for(url: &str, settings: &StoreSettings) -> Result<Builder, StoreError> {
    let config = Config::from_url(url)?;
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|p| {
            p.default_command_timeout = settings.command_timeout();
        })
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(5);
            c.internal_command_timeout = Duration::from_secs(5);
            c.max_command_attempts = 1;
            // Every command is a small write awaiting its reply: Nagle would hold the
            // next one back until the previous reply's ACK (milliseconds per message).
            c.tcp.nodelay = Some(true);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    Ok(builder)
}

impl RedisBackend {
    /// Connects (waiting for the first connection) and makes sure the consumer group exists.
    pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let builder = builder_for(url, settings)?;
        let pool = builder.build_pool(4)?;
        pool.init().await?;
        let backend = Self {
            inner: Arc::new(Inner {
                pool,
                reader: tokio::sync::OnceCell::new(),
                builder,
                keys: Keys::new(settings.key_prefix.clone()),
                scripts: Scripts::load(),
                settings: settings.clone(),
            }),
        };
        backend.ensure_group().await?;
        Ok(backend)
    }

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn client(&self) -> &Client {
        self.inner.pool.next()
    }

    fn ttl(&self) -> u64 {
        self.inner.settings.session_idle_ttl_secs
    }

    async fn ensure_group(&self) -> Result<(), StoreError> {
        // Start at 0, not $: entries queued before the first worker started must be answered.
        let created: Result<Value, _> = self
            .client()
            .xgroup_create(self.keys().inbox(), WORKER_GROUP, "0", true)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.client().ping(None).await?;
        Ok(())
    }

    fn session_keys(&self, id: &SessionId) -> Vec<String> {
        let k = self.keys();
        vec![
            k.meta(id),
            k.history(id),
            k.pending(id),
            k.idempotency(id),
            k.events(id),
        ]
    }

    pub async fn create_session(&self, new: &NewSession) -> Result<bool, StoreError> {
        let mut keys = self.session_keys(&new.id);
        keys.push(self.keys().sessions());
        let created: i64 = self
            .inner
            .scripts
            .create_session
            .evalsha_with_reload(
                self.client(),
                keys,
                vec![
                    new.id.to_string(),
                    new.user_id
                        .as_ref()
                        .map(|u| u.as_str().to_owned())
                        .unwrap_or_default(),
                    new.created_at_ms.to_string(),
                    new.protocol.as_str().to_owned(),
                    new.metadata.to_string(),
                    self.ttl().to_string(),
                ],
            )
            .await?;
        Ok(created == 1)
    }

    pub async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let fields: HashMap<String, String> = self.client().hgetall(self.keys().meta(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let num = |name: &str| -> Result<i64, StoreError> {
            fields
                .get(name)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("session field {name}")))
        };
        Ok(Some(SessionRecord {
            id: id.clone(),
            user_id: fields
                .get("user_id")
                .filter(|u| !u.is_empty())
                .map(|u| UserId::new(u.clone())),
            created_at_ms: num("created_ms")?,
            last_activity_ms: num("last_ms")?,
            message_count: num("count")? as u64,
            protocol: fields
                .get("protocol")
                .and_then(|p| Protocol::parse(p))
                .unwrap_or_default(),
            metadata: fields
                .get("metadata")
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_else(|| serde_json::json!({})),
            last_seq: num("seq")? as u64,
        }))
    }

    pub async fn touch_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        let mut keys = self.session_keys(id);
        keys.push(self.keys().sessions());
        let touched: i64 = self
            .inner
            .scripts
            .touch_session
            .evalsha_with_reload(
                self.client(),
                keys,
                vec![
                    id.to_string(),
                    clock::now_millis().to_string(),
                    self.ttl().to_string(),
                ],
            )
            .await?;
        Ok(touched == 1)
    }

    pub async fn delete_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        let mut keys = self.session_keys(id);
        keys.push(self.keys().sessions());
        keys.push(self.keys().calls(id));
        let existed: i64 = self
            .inner
            .scripts
            .delete_session
            .evalsha_with_reload(
                self.client(),
                keys,
                vec![
                    id.to_string(),
                    self.keys().channel(id),
                    Control::SessionDeleted.to_json(),
                ],
            )
            .await?;
        Ok(existed == 1)
    }

    /// Counts sessions active within the TTL; a read only (creating a session prunes
    /// the index), so health checks never write.
    pub async fn active_sessions(&self) -> Result<u64, StoreError> {
        let cutoff = clock::now_millis() - (self.ttl() as i64) * 1000;
        Ok(self
            .client()
            .zcount(self.keys().sessions(), cutoff as f64, f64::INFINITY)
            .await?)
    }

    pub async fn history_all(&self, id: &SessionId) -> Result<Vec<StoredMessage>, StoreError> {
        let raw: Vec<String> = self.client().lrange(self.keys().history(id), 0, -1).await?;
        raw.iter().map(|m| parse_message(m)).collect()
    }

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
        let reply: Vec<String> = self
            .inner
            .scripts
            .accept_message
            .evalsha_with_reload(
                self.client(),
                keys,
                vec![
                    id.to_string(),
                    message.to_json(),
                    message.id.to_string(),
                    client_message_id.unwrap_or_default().to_owned(),
                    max_pending.to_string(),
                    self.ttl().to_string(),
                    clock::now_millis().to_string(),
                    self.inner.settings.history_max_messages.to_string(),
                    queued.to_json(),
                ],
            )
            .await?;
        accept_outcome(&reply)
    }

    /// Publishes events in one batch; `fence` is the worker's attempt, when it has one.
    pub async fn publish(
        &self,
        id: &SessionId,
        events: &[StreamEvent],
        fence: Option<Fence>,
    ) -> Result<PublishOutcome, StoreError> {
        let k = self.keys();
        let mut args = vec![
            k.channel(id),
            self.inner.settings.event_log_max_entries.to_string(),
            self.ttl().to_string(),
            fence.map(|f| f.attempt.to_string()).unwrap_or_default(),
            fence.map(|f| f.message_id.to_string()).unwrap_or_default(),
            events.len().to_string(),
        ];
        args.extend(events.iter().map(StreamEvent::to_json));
        let last: i64 = self
            .inner
            .scripts
            .publish_events
            .evalsha_with_reload(self.client(), vec![k.meta(id), k.events(id)], args)
            .await?;
        Ok(match last {
            0 => PublishOutcome::SessionGone,
            -1 => PublishOutcome::Fenced,
            -2 => PublishOutcome::Cancelled,
            n => PublishOutcome::Published { last_seq: n as u64 },
        })
    }

    pub async fn replay(&self, id: &SessionId, after_seq: u64) -> Result<Replay, StoreError> {
        let k = self.keys();
        let last_seq: Option<u64> = self.client().hget(k.meta(id), "seq").await?;
        let last_seq = last_seq.unwrap_or(0);
        if after_seq >= last_seq {
            return Ok(Replay {
                events: Vec::new(),
                recovered: after_seq == last_seq,
                last_seq,
            });
        }
        // Entries are keyed by the last seq of their batch: every batch holding a seq
        // past `after_seq` has an id past `after_seq`-0.
        let entries: Vec<(String, HashMap<String, String>)> = self
            .client()
            .xrange(k.events(id), format!("({after_seq}-0"), "+", None)
            .await?;
        let mut events = Vec::new();
        for (_, fields) in &entries {
            if let Some(payload) = fields.get("e") {
                events.extend(split_batch(payload).map(|(_, line)| line.to_owned()));
            }
        }
        Ok(super::finish_replay(events, after_seq, last_seq))
    }

    pub async fn subscriber(&self) -> Result<RedisSubscriber, StoreError> {
        RedisSubscriber::connect(&self.inner.builder, self.keys().clone()).await
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

    async fn reader(&self) -> Result<&Client, StoreError> {
        self.inner
            .reader
            .get_or_try_init(|| async {
                let client = self.inner.builder.build()?;
                client.init().await?;
                Ok::<_, StoreError>(client)
            })
            .await
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
            timeout: Some(block + self.inner.settings.command_timeout()),
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
            DEAD_LETTERS_KEPT.into(),
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

    pub async fn cancel(&self, id: &SessionId) -> Result<CancelOutcome, StoreError> {
        let k = self.keys();
        let outcome: String = self
            .inner
            .scripts
            .cancel_generation
            .evalsha_with_reload(
                self.client(),
                vec![k.meta(id), k.pending(id)],
                vec![k.control(), id.to_string()],
            )
            .await?;
        match outcome.as_str() {
            "cancelled" => Ok(CancelOutcome::Cancelled),
            "idle" => Ok(CancelOutcome::Idle),
            "gone" => Ok(CancelOutcome::SessionNotFound),
            other => Err(StoreError::Corrupt(format!("cancel reply {other}"))),
        }
    }

    pub async fn cancel_requests(&self) -> Result<mpsc::Receiver<CancelRequest>, StoreError> {
        let client = self.inner.builder.build_subscriber_client()?;
        client.init().await?;
        // Re-subscribes after reconnects; the task ends with the client.
        drop(client.manage_subscriptions());
        client.subscribe(self.keys().control()).await?;
        let mut messages = client.message_rx();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            // Owning the client keeps the subscription alive as long as the receiver.
            let _client = client;
            loop {
                match messages.recv().await {
                    Ok(message) => {
                        let Some(text) = message.value.as_str() else {
                            continue;
                        };
                        if let Some(Control::Cancel {
                            session_id,
                            message_id,
                        }) = Control::parse(&text)
                        {
                            let request = CancelRequest {
                                session_id,
                                message_id,
                            };
                            if tx.send(request).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(rx)
    }

    pub async fn send_canary(&self, probe: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .client()
            .publish(self.keys().probe(probe), clock::now_millis().to_string())
            .await?;
        Ok(())
    }

    pub async fn begin(
        &self,
        delivery: &Delivery,
        context_messages: usize,
    ) -> Result<Begin, StoreError> {
        let k = self.keys();
        let id = &delivery.session_id;
        let reply: Vec<Value> = self
            .inner
            .scripts
            .begin_work
            .evalsha_with_reload(
                self.client(),
                vec![
                    k.meta(id),
                    k.pending(id),
                    k.inbox(),
                    k.history(id),
                    k.calls(id),
                ],
                vec![
                    delivery.entry_id.clone(),
                    WORKER_GROUP.to_owned(),
                    context_messages.to_string(),
                ],
            )
            .await?;
        let tag = reply
            .first()
            .and_then(|v| v.as_string())
            .unwrap_or_default();
        match tag.as_str() {
            "gone" => Ok(Begin::SessionGone),
            "idle" => Ok(Begin::Idle),
            "ok" => {
                let raw = reply
                    .get(1)
                    .and_then(|v| v.as_string())
                    .ok_or_else(|| StoreError::Corrupt("begin reply".into()))?;
                let number = |i: usize| reply.get(i).and_then(|v| v.as_u64()).unwrap_or(0);
                let history = match reply.get(5) {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .ok_or_else(|| StoreError::Corrupt("begin history".into()))
                                .and_then(|m| parse_message(&m))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => Vec::new(),
                };
                let mut tool_calls = match reply.get(8) {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .and_then(|c| serde_json::from_str::<FunctionCall>(&c).ok())
                                .ok_or_else(|| StoreError::Corrupt("begin tool call".into()))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => Vec::new(),
                };
                tool_calls.sort_by_key(|c| (c.round, c.index));
                let text = |i: usize| reply.get(i).and_then(|v| v.as_string()).unwrap_or_default();
                let owner = text(6);
                let queued = parse_queued(&raw)?;
                Ok(Begin::Work(Box::new(Work {
                    message: queued.message,
                    trace: queued.trace,
                    attempt: number(2),
                    tries: number(3),
                    cancelled: number(4) == 1,
                    history,
                    tool_calls,
                    user_id: (!owner.is_empty()).then(|| UserId::new(owner)),
                    metadata: serde_json::from_str(&text(7))
                        .unwrap_or_else(|_| serde_json::json!({})),
                })))
            }
            other => Err(StoreError::Corrupt(format!("begin reply {other}"))),
        }
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
            self.inner.settings.event_log_max_entries.to_string(),
            self.ttl().to_string(),
            delivery.entry_id.clone(),
            WORKER_GROUP.to_owned(),
            clock::now_millis().to_string(),
            self.inner.settings.history_max_messages.to_string(),
            events.len().to_string(),
        ];
        args.extend(events.iter().map(StreamEvent::to_json));
        let outcome: String = self
            .inner
            .scripts
            .finish_work
            .evalsha_with_reload(self.client(), keys, args)
            .await?;
        match outcome.as_str() {
            "ok" => Ok(FinishOutcome::Done),
            "fenced" => Ok(FinishOutcome::Fenced),
            "gone" => Ok(FinishOutcome::SessionGone),
            other => Err(StoreError::Corrupt(format!("finish reply {other}"))),
        }
    }
}

impl RedisBackend {
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
            self.inner.settings.event_log_max_entries.to_string(),
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
        let outcome: String = self
            .inner
            .scripts
            .save_tool_calls
            .evalsha_with_reload(
                self.client(),
                vec![k.meta(id), k.calls(id), k.events(id)],
                args,
            )
            .await?;
        match outcome.as_str() {
            "ok" => Ok(SaveOutcome::Saved),
            "fenced" => Ok(SaveOutcome::Fenced),
            "cancelled" => Ok(SaveOutcome::Cancelled),
            "gone" => Ok(SaveOutcome::SessionGone),
            other => Err(StoreError::Corrupt(format!(
                "save tool calls reply {other}"
            ))),
        }
    }
}

fn parse_message(raw: &str) -> Result<StoredMessage, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("stored message: {e}")))
}

/// A pending list entry; entries queued before traces existed have no `trace`.
fn parse_queued(raw: &str) -> Result<QueuedMessage, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("queued message: {e}")))
}

fn accept_outcome(reply: &[String]) -> Result<AcceptOutcome, StoreError> {
    let id = |i: usize| -> Result<MessageId, StoreError> {
        reply
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("accept reply".into()))
    };
    match reply.first().map(String::as_str) {
        Some("ok") => Ok(AcceptOutcome::Accepted(id(1)?)),
        Some("dup") => Ok(AcceptOutcome::Duplicate(id(1)?)),
        Some("full") => Ok(AcceptOutcome::TooManyPending),
        Some("gone") => Ok(AcceptOutcome::SessionNotFound),
        _ => Err(StoreError::Corrupt("accept reply".into())),
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
