//! Connections: a small pool for commands and subscriber clients (`subscriber.rs`,
//! `events.rs`, the worker's wake-ups in `work.rs`), to one Redis or to a Redis Cluster
//! (fred's cluster client: it follows `MOVED`/`ASK` and re-reads the slot map after a
//! failover). `max_command_attempts` is 1: fred would otherwise re-send a command that
//! was in flight when a connection dropped, and a second `XADD` is a second answer.

use super::{Inner, RedisBackend, scripts::Scripts};
use crate::backend::StoreError;
use crate::config::StoreSettings;
use crate::keys::WORKER_GROUP;
use fred::prelude::*;
use fred::types::config::TlsConnector;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;

/// `redis-cluster://a:1,b:2` (the form the settings document) as fred reads it
/// (`redis-cluster://a:1?node=b:2`); any other URL unchanged.
fn fred_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    if !scheme.ends_with("-cluster") {
        return url.to_owned();
    }
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    let mut hosts = hosts.split(',').filter(|h| !h.is_empty());
    let Some(first) = hosts.next() else {
        return url.to_owned();
    };
    let nodes: Vec<String> = hosts.map(|h| format!("node={h}")).collect();
    if nodes.is_empty() {
        return url.to_owned();
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let query = query
        .into_iter()
        .map(str::to_owned)
        .chain(nodes)
        .collect::<Vec<_>>()
        .join("&");
    format!("{scheme}://{userinfo}{first}{path}?{query}")
}

fn builder_for(url: &str, settings: &StoreSettings) -> Result<Builder, StoreError> {
    let mut config = Config::from_url(&fred_url(url))?;
    if let Some(tls) = settings.tls()? {
        // Replaces the platform-roots connector fred picked for `rediss`.
        config.tls = Some(TlsConnector::from(ClientConfig::clone(&tls.0)).into());
    }
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
    /// Connects (waiting for the first connection), checks the stored layout, makes
    /// sure every partition's consumer group exists and, on one Redis, moves data
    /// from the layout before partitions.
    pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let builder = builder_for(url, settings)?;
        let clustered = builder
            .get_config()
            .is_some_and(|c| c.server.is_clustered());
        let pool = builder.build_pool(4)?;
        pool.init().await?;
        let backend = Self {
            inner: Arc::new(Inner {
                pool,
                clustered,
                blocking_reads: tokio::sync::OnceCell::new(),
                notices: tokio::sync::OnceCell::new(),
                rotation: Default::default(),
                builder,
                keys: settings.keys(),
                scripts: Scripts::load(),
                settings: settings.clone(),
            }),
        };
        backend.check_partitions().await?;
        backend.ensure_groups().await?;
        if !clustered {
            backend.migrate_legacy().await?;
        }
        Ok(backend)
    }

    pub(super) fn builder(&self) -> &Builder {
        &self.inner.builder
    }

    /// Records the partition count at first start; refuses another one later (it would
    /// put sessions in partitions where no one looks for them).
    async fn check_partitions(&self) -> Result<(), StoreError> {
        let key = self.keys().partition_record();
        let wanted = self.keys().partition_count();
        let _: Value = self
            .client()
            .set(&key, wanted, None, Some(SetOptions::NX), false)
            .await?;
        let stored: Option<u16> = self.client().get(&key).await?;
        match stored {
            Some(stored) if stored == wanted => Ok(()),
            other => Err(StoreError::Incompatible(format!(
                "{key} holds {other:?} partitions, STORE_PARTITIONS is {wanted}"
            ))),
        }
    }

    pub(super) async fn ensure_groups(&self) -> Result<(), StoreError> {
        for partition in self.keys().partitions() {
            // Start at 0, not $: entries queued before the first worker started must be answered.
            let created: Result<Value, _> = self
                .client()
                .xgroup_create(self.keys().inbox(partition), WORKER_GROUP, "0", true)
                .await;
            match created {
                Ok(_) => {}
                Err(e) if e.details().contains("BUSYGROUP") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.client().ping(None).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::fred_url;

    #[test]
    fn cluster_node_lists_become_fred_urls() {
        assert_eq!(
            fred_url("redis-cluster://a:1,b:2,c:3"),
            "redis-cluster://a:1?node=b:2&node=c:3"
        );
        assert_eq!(
            fred_url("rediss-cluster://u:pw@a:1,b:2/?x=y"),
            "rediss-cluster://u:pw@a:1/?x=y&node=b:2"
        );
        assert_eq!(fred_url("redis-cluster://a:1"), "redis-cluster://a:1");
        assert_eq!(fred_url("redis://a:1"), "redis://a:1");
    }
}
