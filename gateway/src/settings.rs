//! The gateway's settings, read once at start-up into one typed struct (clap with
//! `env`: every setting is an environment variable and a `--flag`). A bad value stops
//! the process with a one-line error naming the variable. Settings are only read here;
//! what is built from them (the verifier, the proxies, the origins: `security`) is
//! built once, by `startup`, after logging is up, so its warnings reach the log.

use crate::auth::settings::AuthSettings;
use crate::limits::settings::ProtectionSettings;
use clap::{Args, Parser};
use shared::config::StoreSettings;
use std::time::Duration;
use worker::settings::{ConsumerSettings, LlmSettings};

/// Chat gateway: REST session API and WebSockets in front of LLM workers.
#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "CHAT_SERVICE_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "CHAT_SERVICE_PORT", default_value_t = 8002)]
    pub port: u16,

    /// Public base URL (e.g. `https://chat.example.com`) used in `websocket_url`;
    /// unset: taken from the request's Host and `X-Forwarded-Proto`.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Run a worker inside this process. Default: on when embedded (no `REDIS_URL`),
    /// off with Redis (run `worker` processes instead).
    #[arg(long, env = "RUN_WORKER")]
    pub run_worker: Option<bool>,

    /// Comma-separated origins allowed by CORS and to open sockets, or `*`.
    /// Unset: `*` while authentication is off, none (same origin only) once it is on.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS")]
    pub cors_allowed_origins: Option<String>,

    /// Seconds a stopping gateway waits for its sockets to close.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub auth: AuthSettings,

    #[command(flatten)]
    pub protection: ProtectionSettings,

    #[command(flatten)]
    pub store: StoreSettings,

    #[command(flatten)]
    pub llm: LlmSettings,

    #[command(flatten)]
    pub consumer: ConsumerSettings,
}

/// Every limit a client can run into, each with a sane default.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Longest user message, in characters (`message_too_long`).
    #[arg(long, env = "MAX_MESSAGE_CHARS", default_value_t = 8_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_message_chars: u32,

    /// Unanswered messages a session may have queued (`too_many_pending`).
    #[arg(long, env = "MAX_PENDING_MESSAGES", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_messages: u32,

    /// User messages one socket may send per minute (`rate_limited`).
    #[arg(long, env = "WS_MESSAGES_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_messages_per_minute: u32,

    /// Messages a socket may send in a burst before the per-minute rate applies.
    #[arg(long, env = "WS_MESSAGE_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_message_burst: u32,

    /// Frames of any kind (messages, `auth`, `cancel`, `ping`, invalid ones) one socket
    /// may send per minute; past it a frame gets `rate_limited` and is not handled.
    #[arg(long, env = "WS_FRAMES_PER_MINUTE", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_frames_per_minute: u32,

    /// Frames a socket may send in a burst before the per-minute frame rate applies.
    #[arg(long, env = "WS_FRAME_BURST", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_frame_burst: u32,

    /// Frames refused in a row (over the frame budget) before the socket is closed
    /// with 4429.
    #[arg(long, env = "WS_FRAME_OVERRUNS", default_value_t = 10)]
    pub ws_frame_overruns: u32,

    /// Largest WebSocket message or frame in bytes; bigger closes the socket with 1009.
    #[arg(long, env = "WS_MAX_MESSAGE_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1024..))]
    pub ws_max_message_bytes: u32,

    /// Read and write buffer of each socket, in bytes (memory per idle socket).
    #[arg(long, env = "WS_BUFFER_BYTES", default_value_t = 4_096,
          value_parser = clap::value_parser!(u32).range(512..))]
    pub ws_buffer_bytes: u32,

    /// Kernel send buffer of every connection (`SO_SNDBUF`), in bytes; Linux holds up
    /// to twice this. Bounds what a client that never reads pins in the kernel (else
    /// autotuning lets it grow to megabytes). 0 leaves the kernel's default.
    #[arg(long, env = "TCP_SEND_BUFFER_BYTES", default_value_t = 65_536,
          value_parser = tcp_buffer_bytes)]
    pub tcp_send_buffer_bytes: u32,

    /// Events queued for one socket before it counts as not reading (closed 1013).
    #[arg(long, env = "WS_OUTBOUND_QUEUE", default_value_t = 1_024,
          value_parser = clap::value_parser!(u32).range(8..))]
    pub ws_outbound_queue: u32,

    /// Seconds one write to a socket may take before the client counts as not reading
    /// (closed with 1013).
    #[arg(long, env = "WS_SEND_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_send_timeout_secs: u64,

    /// Seconds between server pings; a peer silent for two intervals is dropped.
    #[arg(long, env = "WS_PING_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_ping_interval_secs: u64,

    /// Largest REST request body, in bytes (`payload_too_large`).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(256..))]
    pub max_body_bytes: u32,

    /// Largest session `metadata`, serialized, in bytes.
    #[arg(long, env = "MAX_METADATA_BYTES", default_value_t = 8_192,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub max_metadata_bytes: u32,

    /// Longest `user_id`, in characters.
    #[arg(long, env = "MAX_USER_ID_CHARS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_user_id_chars: u32,

    /// A socket on an unknown session id creates it (as the simple client expects).
    /// Default: on while authentication is off, off once it is on.
    #[arg(long, env = "AUTO_CREATE_SESSIONS", action = clap::ArgAction::Set)]
    pub auto_create_sessions: Option<bool>,
}

/// 0, or at least 4 KiB (smaller would slow every answer down for nothing).
fn tcp_buffer_bytes(raw: &str) -> Result<u32, String> {
    let n: u32 = raw.parse().map_err(|e| format!("{e}"))?;
    if n != 0 && n < 4_096 {
        return Err("must be 0 (the kernel's default) or at least 4096".into());
    }
    Ok(n)
}

impl Settings {
    /// Parses settings from the process environment and arguments and loads the agent
    /// and `REDIS_TLS_*` files; exits with a one-line error naming the variable when one is wrong. The
    /// combinations clap cannot check are checked when `Application::build` makes the
    /// `Security` out of them (`StartError::Config`).
    pub fn from_env() -> Self {
        let mut settings = Self::parse();
        if let Err(error) = settings.llm.load_agent() {
            shared::config::exit_on_bad_setting(error);
        }
        if let Err(error) = settings.store.load_tls() {
            shared::config::exit_on_bad_setting(error);
        }
        settings
    }

    /// Every default plus what the environment sets (tests start here and override).
    pub fn defaults() -> Self {
        Self::try_parse_from(["gateway"]).expect("defaults parse")
    }

    pub fn embedded(&self) -> bool {
        self.store.redis_url.is_none()
    }

    pub fn runs_worker(&self) -> bool {
        self.run_worker.unwrap_or(self.embedded())
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.limits.ws_ping_interval_secs)
    }

    /// Whether a socket on an unknown id creates the session (contract: on by default
    /// only while authentication is off).
    pub fn auto_create_sessions(&self) -> bool {
        self.limits
            .auto_create_sessions
            .unwrap_or(!self.auth.enabled())
    }
}
