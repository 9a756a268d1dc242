//! Connections. A small pool for commands, one dedicated client for the worker's
//! blocking `XREADGROUP` (a blocking read holds its connection), and subscriber
//! clients (`subscriber.rs`, `events.rs`). `max_command_attempts` is 1: fred would
//! otherwise re-send a command that was in flight when a connection dropped, and a
//! second `XADD` is a second answer.

use super::{Inner, RedisBackend, scripts::Scripts};
use crate::backend::StoreError;
use crate::config::StoreSettings;
use crate::keys::{Keys, WORKER_GROUP};
use fred::prelude::*;
use std::sync::Arc;
use std::time::Duration;

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

    pub(super) fn builder(&self) -> &Builder {
        &self.inner.builder
    }

    pub(super) async fn ensure_group(&self) -> Result<(), StoreError> {
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

    /// The worker's client for blocking reads, made on first use.
    pub(super) async fn reader(&self) -> Result<&Client, StoreError> {
        self.inner
            .reader
            .get_or_try_init(|| async {
                let client = self.inner.builder.build()?;
                client.init().await?;
                Ok::<_, StoreError>(client)
            })
            .await
    }
}
