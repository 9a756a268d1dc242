//! Settings of the gateway's protections: REST rate limits, socket caps, cross-pod
//! per-user limits, trusted proxies and HTTP timeouts. Each has a default that is safe
//! on the public internet and generous for a person; load tests raise them (a limit of
//! 0 turns a per-minute or per-user limit off).

use crate::limits::budget::Budget;
use crate::limits::rest::RateKey;
use clap::{Args, ValueEnum};
use shared::backend::Rate;

/// Which header a trusted proxy writes the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (nginx, most load balancers).
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    #[value(name = "forwarded")]
    Forwarded,
}

#[derive(Debug, Clone, Args)]
pub struct ProtectionSettings {
    /// REST requests (and socket upgrades) per minute for one user, or one client
    /// address when there is no valid token, in total over every pod. 0 = no limit.
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_per_minute: u32,

    /// Requests allowed in a burst before the per-minute rate applies.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// `POST /api/create-session` per minute for one user or address, over every pod
    /// (on top of the general limit). 0 = no limit.
    #[arg(long, env = "CREATE_SESSION_PER_MINUTE", default_value_t = 60)]
    pub create_session_per_minute: u32,

    /// Sessions one may create in a burst before the per-minute rate applies.
    #[arg(long, env = "CREATE_SESSION_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub create_session_burst: u32,

    /// User messages per minute for one authenticated user, over all their sockets on
    /// every pod (`rate_limited`, with `retry_after_ms`). Each socket is also held to
    /// `WS_MESSAGES_PER_MINUTE` on its own. 0 = no limit.
    #[arg(long, env = "MESSAGES_PER_MINUTE_PER_USER", default_value_t = 60)]
    pub messages_per_minute_per_user: u32,

    /// Messages one user may send in a burst before their per-minute rate applies.
    #[arg(long, env = "MESSAGE_BURST_PER_USER", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_burst_per_user: u32,

    /// User messages per minute for one client address without a token, over all its
    /// sockets on every pod. Higher than per user: one NAT hides many people. 0 = no
    /// limit.
    #[arg(long, env = "MESSAGES_PER_MINUTE_PER_ADDRESS", default_value_t = 600)]
    pub messages_per_minute_per_address: u32,

    /// Messages one address may send in a burst before its per-minute rate applies.
    #[arg(long, env = "MESSAGE_BURST_PER_ADDRESS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_burst_per_address: u32,

    /// Open sockets per authenticated user, across every gateway pod; one more is
    /// closed with 4429. 0 = no limit.
    #[arg(long, env = "MAX_SOCKETS_PER_USER", default_value_t = 32)]
    pub max_sockets_per_user: u32,

    /// Open sockets per client address for callers without a token (authentication
    /// off), across every pod (4429). Higher than per user: one office or mobile
    /// carrier NAT puts many people behind one address. 0 = no limit.
    #[arg(long, env = "MAX_SOCKETS_PER_ADDRESS", default_value_t = 256)]
    pub max_sockets_per_address: u32,

    /// Open sockets on this instance; one more is closed with 1013.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Live sessions per authenticated user, across every pod (429 on creation, 4429 on
    /// a socket that would auto-create one). 0 = no limit.
    #[arg(long, env = "MAX_SESSIONS_PER_USER", default_value_t = 100)]
    pub max_sessions_per_user: u32,

    /// LLM tokens (prompt + completion) one user, or one client address without a
    /// token, may spend per UTC day, over every pod; past it a message gets
    /// `budget_exceeded` until the day ends. Unset: no daily budget.
    #[arg(long, env = "BUDGET_TOKENS_PER_DAY",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_tokens_per_day: Option<u64>,

    /// The same per minute (a brake on bursts of spending). Unset: none.
    #[arg(long, env = "BUDGET_TOKENS_PER_MINUTE",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_tokens_per_minute: Option<u64>,

    /// Comma-separated addresses or CIDRs of reverse proxies whose forwarding header is
    /// believed (e.g. `10.0.0.0/8,127.0.0.1`). Unset: no proxy is trusted and the
    /// client address is the peer's.
    #[arg(long, env = "TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,

    /// The header trusted proxies write (`x-forwarded-for` or `forwarded`); only that
    /// one is read, from the right, so a client cannot pick its own address.
    #[arg(long, env = "CLIENT_IP_HEADER", default_value = "x-forwarded-for")]
    pub client_ip_header: ClientIpHeader,

    /// Seconds a client may take to send a request's headers (including a socket's
    /// handshake) before the connection is dropped (slowloris). Also closes idle
    /// keep-alive connections after this long.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_read_timeout_secs: u64,

    /// Seconds a REST request (body included) may take before it is answered 408.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_request_timeout_secs: u64,
}

impl ProtectionSettings {
    /// The configured token budget (before a token's own claim).
    pub fn budget(&self) -> Budget {
        Budget {
            per_day: self.budget_tokens_per_day,
            per_minute: self.budget_tokens_per_minute,
        }
    }

    /// The cross-pod message rate of a caller (`MESSAGES_PER_MINUTE_PER_USER` or
    /// `..._PER_ADDRESS`); `None`: no limit.
    pub fn message_rate(&self, caller: &RateKey) -> Option<Rate> {
        match caller {
            RateKey::User(_) => Rate::new(
                self.messages_per_minute_per_user,
                self.message_burst_per_user,
            ),
            RateKey::Addr(_) => Rate::new(
                self.messages_per_minute_per_address,
                self.message_burst_per_address,
            ),
        }
    }
}
