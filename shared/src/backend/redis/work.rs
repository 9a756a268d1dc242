//! The inbox and the work on it: accept a message (history, current message or pending
//! list, inbox entry in one script), read, begin, keep claims fresh, reclaim a dead worker's entries,
//! save tool calls, finish, dead-letter, and the queue's figures.

use super::RedisBackend;
use super::notices::Notices;
use crate::backend::{DEAD_LETTERS_KEPT, StoreError};
use crate::clock;
use crate::ids::{MessageId, SessionId};
use crate::keys::{Partition, WORKER_GROUP};
use crate::model::*;
use crate::telemetry::TraceContext;
use crate::wire::{Status, StreamEvent};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl RedisBackend {
    pub async fn accept_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        trace: &TraceContext,
        client_message_id: Option<&str>,
        max_pending: u32,
        charge: &str,
    ) -> Result<AcceptOutcome, StoreError> {
        let k = self.keys();
        let queued = QueuedMessage {
            message: message.clone(),
            trace: trace.clone(),
        };
        let partition = k.partition_of(id);
        let mut keys = self.session_keys(id);
        keys.push(k.inbox(partition));
        keys.push(k.sessions(partition));
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
            self.ready_channel(partition),
            charge.to_owned(),
        ];
        self.scripts().accept_message.run(self, keys, args).await
    }

    /// The queue's figures summed over every partition (the oldest entry of any).
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let per_partition = self.keys().partitions().map(|p| async move {
            let inbox = self.keys().inbox(p);
            let backlog: u64 = self.client().xlen(&inbox).await?;
            let oldest: Vec<(String, HashMap<String, String>)> =
                self.client().xrange(&inbox, "-", "+", Some(1)).await?;
            let oldest_ms = oldest
                .first()
                .and_then(|(id, _)| id.split('-').next()?.parse::<i64>().ok());
            Ok::<_, StoreError>((backlog, oldest_ms))
        });
        let per_partition = futures_util::future::try_join_all(per_partition).await?;
        let dead_letters: u64 = self.client().xlen(self.keys().dead_letters()).await?;
        let backlog = per_partition.iter().map(|(n, _)| n).sum();
        let oldest_age_ms = per_partition
            .iter()
            .filter_map(|(_, ms)| *ms)
            .min()
            .map(|ms| (clock::now_millis() - ms).max(0) as u64)
            .unwrap_or(0);
        Ok(QueueStats {
            backlog,
            oldest_age_ms,
            dead_letters,
        })
    }

    /// The partitions in the order this call visits them: each call starts one further,
    /// so no partition's entries wait behind another's.
    pub(super) fn rotation(&self) -> impl Iterator<Item = Partition> + use<> {
        let n = self.keys().partition_count() as usize;
        let start = self.inner.rotation.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(move |i| Partition(((start + i) % n) as u16))
    }

    /// Where a new entry of `partition` is announced: its `ready` channel on a Redis
    /// Cluster, none ('') on one Redis, whose blocked reads need no notice.
    fn ready_channel(&self, partition: Partition) -> String {
        if self.inner.clustered {
            self.keys().ready(partition)
        } else {
            String::new()
        }
    }

    /// The `ready` notices of every partition (see [`Notices`]). Made on first use
    /// (only workers read the inbox).
    async fn notices(&self) -> Result<&Arc<Notices>, StoreError> {
        self.inner
            .notices
            .get_or_try_init(|| async {
                let sweep_every = Duration::from_millis(self.settings().inbox_sweep_ms);
                let client = self.builder().build_subscriber_client()?;
                Notices::start(client, self.keys(), sweep_every).await
            })
            .await
    }

    /// Reads up to `max` new inbox entries for `consumer`, waiting up to `block` for
    /// one when there are none: on one Redis in one blocked read of every partition
    /// (`blocked_reads`), on a Redis Cluster from the partitions notices name.
    pub async fn read_inbox(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        if self.inner.clustered {
            self.read_notified(consumer, max, block).await
        } else {
            self.read_blocked(consumer, max, block).await
        }
    }

    /// Reads up to `max` new inbox entries for `consumer` from the partitions a notice
    /// marked due (every partition now and then, see [`Notices`]), in turn; when none
    /// has any, waits (up to `block`) for a notice and reads again. A command cannot
    /// span a cluster's slots, so one blocked read of every partition is not possible
    /// there; the price is that a notice wakes every idle worker, and each reads.
    async fn read_notified(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let notices = self.notices().await?;
        let mut marked = notices.subscribe();
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // Marks seen before the reads, so one made during them still wakes.
            marked.borrow_and_update();
            let due = notices.take(self.rotation());
            let found = self.read_partitions(consumer, max, due, notices).await?;
            if !found.is_empty() {
                return Ok(found);
            }
            let sweep = notices.next_sweep();
            match tokio::time::timeout_at(deadline.min(sweep), marked.changed()).await {
                Ok(Ok(())) => continue,
                // The sweep is due before the deadline: read every partition.
                Err(_) if sweep < deadline => continue,
                // The deadline passed (or the notices stopped: the next call starts them).
                _ => return Ok(Vec::new()),
            }
        }
    }

    /// Reads new entries from `due`, up to `max` in all: up to `max` partitions at once
    /// (one pipelined round trip, not one per partition: a burst of messages over many
    /// partitions is taken in one go), `max` shared out between them, then the next
    /// ones while entries are still wanted. A partition that filled its share may hold
    /// more and is read again in a later round; one still to read when `max` is reached
    /// is marked due, as is one whose read failed. What was read is returned even when
    /// another read failed (it is this consumer's now); the error only when nothing was.
    async fn read_partitions(
        &self,
        consumer: &str,
        max: usize,
        due: Vec<Partition>,
        notices: &Notices,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut found = Vec::new();
        let mut failure = None;
        let mut queue = std::collections::VecDeque::from(due);
        while !queue.is_empty() && found.len() < max && failure.is_none() {
            let wanted = max - found.len();
            let batch: Vec<Partition> = queue.drain(..queue.len().min(wanted)).collect();
            let shares = shares(wanted, batch.len());
            let reads = batch
                .iter()
                .zip(&shares)
                .map(|(&partition, &count)| self.read_partition(consumer, partition, count));
            let reads = futures_util::future::join_all(reads).await;
            for ((partition, count), read) in batch.into_iter().zip(shares).zip(reads) {
                match read {
                    Ok(read) => {
                        if read.len() >= count {
                            queue.push_back(partition);
                        }
                        found.extend(read);
                    }
                    Err(error) => {
                        notices.mark([partition]);
                        failure = Some(error);
                    }
                }
            }
        }
        notices.mark(queue);
        match failure {
            Some(error) if found.is_empty() => Err(error),
            _ => Ok(found),
        }
    }

    /// `XREADGROUP` of up to `count` new entries of one partition's inbox.
    async fn read_partition(
        &self,
        consumer: &str,
        partition: Partition,
        count: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let inbox = self.keys().inbox(partition);
        let cmd = CustomCommand::new_static("XREADGROUP", slot_of(&inbox), false);
        let args: Vec<Value> = vec![
            "GROUP".into(),
            WORKER_GROUP.into(),
            consumer.into(),
            "COUNT".into(),
            (count as i64).into(),
            "STREAMS".into(),
            inbox.as_str().into(),
            ">".into(),
        ];
        match self.client().custom::<Value, _>(cmd, args).await {
            Ok(reply) => parse_xreadgroup(reply, |_| Some(partition)),
            Err(error) if group_is_gone(&error) => {
                tracing::warn!(%inbox, "consumer group missing; creating it again");
                self.ensure_groups().await?;
                Ok(Vec::new())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Claims up to `max` entries idle for `min_idle`, from the partitions in turn.
    pub async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut found = Vec::new();
        for partition in self.rotation() {
            if found.len() >= max {
                break;
            }
            let inbox = self.keys().inbox(partition);
            let cmd = CustomCommand::new_static("XAUTOCLAIM", slot_of(&inbox), false);
            let args: Vec<Value> = vec![
                inbox.into(),
                WORKER_GROUP.into(),
                consumer.into(),
                (min_idle.as_millis() as i64).into(),
                "0-0".into(),
                "COUNT".into(),
                ((max - found.len()) as i64).into(),
            ];
            let reply: Value = self.client().custom(cmd, args).await?;
            // [next cursor, [entries], [deleted ids]]: the entries read like XREADGROUP's.
            let Value::Array(mut parts) = reply else {
                return Err(StoreError::Corrupt(format!("XAUTOCLAIM reply {reply:?}")));
            };
            if parts.len() < 2 {
                return Err(StoreError::Corrupt("XAUTOCLAIM reply".into()));
            }
            let entries = parts.swap_remove(1);
            found.extend(parse_xreadgroup(
                Value::Array(vec![Value::Array(vec![Value::Null, entries])]),
                |_| Some(partition),
            )?);
        }
        Ok(found)
    }

    /// Resets the idle time of the given entries (ids from this backend's deliveries).
    pub async fn refresh_claims(
        &self,
        consumer: &str,
        entry_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut by_partition: HashMap<Partition, Vec<&str>> = HashMap::new();
        for entry in entry_ids {
            let (partition, id) = self.split_entry(entry)?;
            by_partition.entry(partition).or_default().push(id);
        }
        for (partition, ids) in by_partition {
            let inbox = self.keys().inbox(partition);
            let cmd = CustomCommand::new_static("XCLAIM", slot_of(&inbox), false);
            let mut args: Vec<Value> =
                vec![inbox.into(), WORKER_GROUP.into(), consumer.into(), 0.into()];
            args.extend(ids.into_iter().map(Value::from));
            args.push("JUSTID".into());
            let _: Value = self.client().custom(cmd, args).await?;
        }
        Ok(())
    }

    /// A delivery's entry id is `partition/stream id`: stream ids are unique per stream
    /// only, and the partition says which inbox the entry is on.
    pub(super) fn split_entry<'e>(
        &self,
        entry: &'e str,
    ) -> Result<(Partition, &'e str), StoreError> {
        entry
            .split_once('/')
            .and_then(|(p, id)| Some((Partition(p.parse().ok()?), id)))
            .filter(|(p, _)| p.0 < self.keys().partition_count())
            .ok_or_else(|| StoreError::Corrupt(format!("inbox entry id {entry:?}")))
    }

    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        work: &Work,
        reason: &str,
    ) -> Result<(), StoreError> {
        let dead = self.keys().dead_letters();
        let cmd = CustomCommand::new_static("XADD", slot_of(&dead), false);
        let args: Vec<Value> = vec![
            dead.into(),
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
        let (partition, entry) = self.split_entry(&delivery.entry_id)?;
        let keys = vec![
            k.meta(id),
            k.pending(id),
            k.inbox(partition),
            k.history(id),
            k.calls(id),
            k.events(id),
            k.charge(id),
        ];
        // The `typing` event as JSON around its message id, which only the script
        // knows (the session's current message): made with a stand-in id and split there.
        let stand_in = MessageId::new_random();
        let typing = StreamEvent::status(Status::Typing, id, Some(stand_in)).to_json();
        let (before, after) = typing
            .split_once(&stand_in.to_string())
            .expect("a status event carries its message id");
        let args = vec![
            entry.to_owned(),
            WORKER_GROUP.to_owned(),
            context_messages.to_string(),
            k.channel(id),
            self.settings().event_log_max_entries.to_string(),
            self.ttl().to_string(),
            before.to_owned(),
            after.to_owned(),
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
        let (partition, entry) = self.split_entry(&delivery.entry_id)?;
        let mut keys = self.session_keys(id);
        keys.push(k.inbox(partition));
        keys.push(k.sessions(partition));
        keys.push(k.calls(id));
        let mut args = vec![
            id.to_string(),
            work.attempt.to_string(),
            work.message.id.to_string(),
            answer.map(StoredMessage::to_json).unwrap_or_default(),
            k.channel(id),
            self.settings().event_log_max_entries.to_string(),
            self.ttl().to_string(),
            entry.to_owned(),
            WORKER_GROUP.to_owned(),
            clock::now_millis().to_string(),
            self.settings().history_max_messages.to_string(),
            self.ready_channel(partition),
            log_after(&work.log),
            events.len().to_string(),
        ];
        args.extend(events.iter().map(StreamEvent::to_json));
        self.scripts().finish_work.run(self, keys, args).await
    }

    pub async fn save_tool_calls(
        &self,
        id: &SessionId,
        fence: Fence<'_>,
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
            log_after(fence.log),
        ];
        for call in calls {
            args.push(call.slot());
            args.push(call.to_json());
        }
        args.extend(events.iter().map(StreamEvent::to_json));
        let keys = vec![k.meta(id), k.calls(id), k.events(id)];
        let saved = self.scripts().save_tool_calls.run(self, keys, args).await?;
        if let Some(last_seq) = saved.last_seq {
            fence.log.set(last_seq);
        }
        Ok(saved.outcome)
    }
}

/// The `after` argument of the publishing scripts: the last seq the publisher saw, or
/// '' for none (`publish_batch.lua` then reads the log).
pub(super) fn log_after(log: &LogPosition) -> String {
    log.get().map(|seq| seq.to_string()).unwrap_or_default()
}

/// Redis restarted without persistence (the stream and its group are gone), or the
/// stream was deleted under a blocked read: the groups are to be made again.
pub(super) fn group_is_gone(error: &fred::error::Error) -> bool {
    error.details().contains("NOGROUP") || error.details().contains("no longer exists")
}

/// Routes a command by its key's slot, computed here rather than by fred guessing
/// which argument is the key.
pub(super) fn slot_of(key: &str) -> ClusterHash {
    ClusterHash::Custom(crate::keys::key_slot(key))
}

/// `total` shared out over `n` reads as evenly as it goes, each at least 1 (`n` ≤
/// `total`): the counts of one round of partition reads.
fn shares(total: usize, n: usize) -> Vec<usize> {
    let (base, extra) = (total / n.max(1), total % n.max(1));
    (0..n).map(|i| base + usize::from(i < extra)).collect()
}

/// `XREADGROUP` reply (RESP2 or RESP3 shape) → deliveries, each stream's entries in the
/// partition `partition_of` names for the stream's key (a stream it names none of is
/// skipped: not ours).
pub(super) fn parse_xreadgroup(
    reply: Value,
    partition_of: impl Fn(&str) -> Option<Partition>,
) -> Result<Vec<Delivery>, StoreError> {
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
        let key = pair.pop().and_then(|k| k.as_string()).unwrap_or_default();
        let Some(partition) = partition_of(&key) else {
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
                    entry_id: format!("{}/{entry_id}", partition.0),
                    session_id,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn a_read_round_shares_its_count_evenly_and_exactly() {
        assert_eq!(shares(32, 16), vec![2; 16]);
        assert_eq!(shares(5, 3), vec![2, 2, 1]);
        assert_eq!(shares(3, 3), vec![1, 1, 1]);
        assert_eq!(shares(7, 1), vec![7]);
        for (total, n) in [(1, 1), (17, 16), (4096, 16), (100, 7)] {
            let got = shares(total, n);
            assert_eq!(got.iter().sum::<usize>(), total);
            assert!(got.iter().all(|&c| c >= 1));
        }
    }
}
