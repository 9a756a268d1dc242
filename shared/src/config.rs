//! Settings both binaries read: where state lives and how much of it is kept.
//!
//! Each setting is an environment variable and a `--flag` (clap with `env`); each
//! binary flattens these into its own typed settings struct, read once at start-up.

use crate::backend::redis::tls::{RedisTls, TlsError};
use clap::Args;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Ends the process the way clap ends it for a bad flag: one line on stderr, exit
/// code 2. For start-up checks clap cannot do itself (the agent file, key material,
/// the trace exporter's settings).
pub fn exit_on_bad_setting(error: impl fmt::Display) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{error}\n"),
    )
    .exit()
}

/// A value that must never appear in logs or `Debug` output (keys, URLs with passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

fn parse_prefix(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.contains(['{', '}', ' ']) {
        Err("must be non-empty, without braces or spaces".into())
    } else {
        Ok(raw.to_owned())
    }
}

/// Where sessions, history, the inbox and the event log live.
#[derive(Debug, Clone, Args)]
pub struct StoreSettings {
    /// Redis URL: `redis://h:p` (`rediss://` for TLS) for one Redis,
    /// `redis-cluster://h:p[,h:p...]` (`rediss-cluster://`) for a Redis Cluster.
    /// Unset: embedded in-memory mode.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<Secret>,

    /// Prefix of every Redis key and channel (pub/sub ignores the DB number).
    #[arg(long, env = "KEY_PREFIX", default_value = "chat", value_parser = parse_prefix)]
    pub key_prefix: String,

    /// A session with no activity for this long expires with all its data.
    #[arg(long, env = "SESSION_IDLE_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_ttl_secs: u64,

    /// Event batches kept per session for resume (`last_seq`); older ones are trimmed.
    #[arg(long, env = "EVENT_LOG_MAX_ENTRIES", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub event_log_max_entries: u64,

    /// Messages kept per session's history; older ones are trimmed.
    #[arg(long, env = "HISTORY_MAX_MESSAGES", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(2..))]
    pub history_max_messages: u64,

    /// Partitions of the inbox and session index (`keys.rs`): how many slots, so how
    /// many cluster masters, the queue spreads over. Fixed once a deployment started.
    #[arg(long, env = "STORE_PARTITIONS", default_value_t = crate::keys::DEFAULT_PARTITIONS,
          value_parser = clap::value_parser!(u16).range(1..=crate::keys::MAX_PARTITIONS as i64))]
    pub store_partitions: u16,

    /// Longest a worker goes without reading every inbox partition, in milliseconds.
    /// On a Redis Cluster workers read the partitions their `ready` notices name; this
    /// sweep of all of them is the safety net for a notice missed some other way (one
    /// Redis needs none: its workers wait in one blocked read of every partition).
    #[arg(long, env = "INBOX_SWEEP_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub inbox_sweep_ms: u64,

    /// Deadline of one Redis command, in milliseconds.
    #[arg(long, env = "REDIS_COMMAND_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub redis_command_timeout_ms: u64,

    /// PEM bundle of the CAs a `rediss://` server certificate must chain to, instead of
    /// the platform's roots (a private CA).
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    pub redis_tls_ca_file: Option<PathBuf>,

    /// PEM client certificate (chain) for mutual TLS; needs `REDIS_TLS_KEY_FILE`.
    #[arg(long, env = "REDIS_TLS_CERT_FILE")]
    pub redis_tls_cert_file: Option<PathBuf>,

    /// PEM private key of `REDIS_TLS_CERT_FILE`.
    #[arg(long, env = "REDIS_TLS_KEY_FILE")]
    pub redis_tls_key_file: Option<PathBuf>,

    /// The TLS configuration once the files above are read ([`StoreSettings::load_tls`]).
    #[arg(skip)]
    pub redis_tls: Option<RedisTls>,
}

impl StoreSettings {
    /// Settings with every default and the given Redis URL and prefix (for tests and tools).
    pub fn new(redis_url: Option<&str>, key_prefix: &str) -> Self {
        Self {
            redis_url: redis_url.map(Secret::from),
            key_prefix: key_prefix.to_owned(),
            session_idle_ttl_secs: 86_400,
            event_log_max_entries: 1_000,
            history_max_messages: 1_000,
            store_partitions: crate::keys::DEFAULT_PARTITIONS,
            inbox_sweep_ms: 2_000,
            redis_command_timeout_ms: 5_000,
            redis_tls_ca_file: None,
            redis_tls_cert_file: None,
            redis_tls_key_file: None,
            redis_tls: None,
        }
    }

    /// Reads the `REDIS_TLS_*` files (once, at start-up); refuses them on a URL
    /// without TLS, where they would be silently ignored.
    pub fn load_tls(&mut self) -> Result<(), TlsError> {
        self.redis_tls = self.tls()?;
        Ok(())
    }

    /// The loaded TLS configuration, or (settings built in code, not by a binary) the
    /// files read now.
    pub(crate) fn tls(&self) -> Result<Option<RedisTls>, TlsError> {
        if self.redis_tls.is_some() {
            return Ok(self.redis_tls.clone());
        }
        crate::backend::redis::tls::load(
            self.redis_url.as_ref().map(Secret::expose),
            self.redis_tls_ca_file.as_deref(),
            self.redis_tls_cert_file.as_deref(),
            self.redis_tls_key_file.as_deref(),
        )
    }

    pub fn idle_ttl(&self) -> Duration {
        Duration::from_secs(self.session_idle_ttl_secs)
    }

    /// The key schema these settings name.
    pub fn keys(&self) -> crate::keys::Keys {
        crate::keys::Keys::new(self.key_prefix.clone(), self.store_partitions)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_command_timeout_ms)
    }
}
