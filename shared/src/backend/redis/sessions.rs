//! Sessions: create, read, touch, delete, the live count and the stored history.

use super::RedisBackend;
use super::replies::parse_message;
use crate::backend::StoreError;
use crate::clock;
use crate::ids::{SessionId, UserId};
use crate::model::*;
use crate::wire::Protocol;
use fred::prelude::*;
use std::collections::HashMap;

impl RedisBackend {
    /// The keys every session script takes first, in this order (see the scripts' headers).
    pub(super) fn session_keys(&self, id: &SessionId) -> Vec<String> {
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
        keys.push(self.keys().sessions(self.keys().partition_of(&new.id)));
        let args = vec![
            new.id.to_string(),
            new.user_id
                .as_ref()
                .map(|u| u.as_str().to_owned())
                .unwrap_or_default(),
            new.created_at_ms.to_string(),
            new.protocol.as_str().to_owned(),
            new.metadata.to_string(),
            self.ttl().to_string(),
        ];
        let created = self.scripts().create_session.run(self, keys, args).await?;
        Ok(created.0)
    }

    pub async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let (fields, last_seq) = tokio::try_join!(
            async {
                let fields: HashMap<String, String> =
                    self.client().hgetall(self.keys().meta(id)).await?;
                Ok::<_, StoreError>(fields)
            },
            self.last_seq(id),
        )?;
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
            last_seq,
        }))
    }

    pub async fn touch_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        let mut keys = self.session_keys(id);
        keys.push(self.keys().sessions(self.keys().partition_of(id)));
        let args = vec![
            id.to_string(),
            clock::now_millis().to_string(),
            self.ttl().to_string(),
        ];
        let touched = self.scripts().touch_session.run(self, keys, args).await?;
        Ok(touched.0)
    }

    pub async fn delete_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        let mut keys = self.session_keys(id);
        keys.push(self.keys().sessions(self.keys().partition_of(id)));
        keys.push(self.keys().calls(id));
        let args = vec![
            id.to_string(),
            self.keys().channel(id),
            Control::SessionDeleted.to_json(),
        ];
        let deleted = self.scripts().delete_session.run(self, keys, args).await?;
        Ok(deleted.0)
    }

    /// Counts sessions active within the TTL over every partition's index; a read only
    /// (creating a session prunes the index), so health checks never write.
    pub async fn active_sessions(&self) -> Result<u64, StoreError> {
        let cutoff = clock::now_millis() - (self.ttl() as i64) * 1000;
        let counts = self.keys().partitions().map(|p| {
            self.client()
                .zcount::<u64, _>(self.keys().sessions(p), cutoff as f64, f64::INFINITY)
        });
        let counts = futures_util::future::try_join_all(counts).await?;
        Ok(counts.into_iter().sum())
    }

    pub async fn history_all(&self, id: &SessionId) -> Result<Vec<StoredMessage>, StoreError> {
        let raw: Vec<String> = self.client().lrange(self.keys().history(id), 0, -1).await?;
        raw.iter().map(|m| parse_message(m)).collect()
    }
}
