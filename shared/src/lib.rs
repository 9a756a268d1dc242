//! Everything the gateway and the worker must agree on.
//!
//! # Layout
//!
//! - [`agent`]: the agent file (name, prompt, model, tools), checked at start-up.
//! - [`ids`]: newtype ids parsed at the edge (`SessionId`, `MessageId`, `UserId`).
//! - [`wire`]: the client-facing frames and events of `docs/protocol.md`, both protocols.
//! - [`model`]: what is stored (sessions, messages) and what travels inside
//!   (inbox jobs, event batches).
//! - [`config`]: settings both binaries read (store, limits of the event log).
//! - [`keys`]: the Redis key schema, in one place.
//! - [`metrics`]: the Prometheus families both binaries record, and their recorder.
//! - [`backend`]: storage, inbox queue and event bus, with a Redis and an in-memory
//!   implementation behind one enum.
//! - [`clock`]: RFC 3339 timestamps as the contract writes them.
//! - [`shutdown`]: the SIGINT/SIGTERM stop signal.
//! - [`telemetry`]: logging set-up.
//! - `testkit` (feature `testkit`): a private `redis-server` per test.

pub mod agent;
pub mod backend;
pub mod clock;
pub mod config;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wire;
