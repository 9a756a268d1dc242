//! The gateway: a stateless axum app serving the REST session API and WebSockets of
//! `docs/protocol.md`. Sessions, history and events live in the backend (Redis, or memory
//! when embedded), so any instance can serve any request or socket.
//!
//! # Layout
//!
//! - [`settings`]: configuration, read once.
//! - [`error`]: the REST error type and its one mapping to responses.
//! - [`state`]: the shared handles.
//! - [`routes`]: REST handlers (`info`, `sessions`, `demo`).
//! - [`ws`]: the WebSocket upgrade, the per-socket loop and the hub that fans the
//!   instance's bus subscription out to sockets.
//! - [`startup`]: building the app and running it until stopped.
//! - [`server`]: the HTTP/1.1 accept loop (header-read timeout, graceful stop).
//! - [`auth`]: JWT verification and who the caller is.
//! - [`limits`]: rate limits, socket caps, origins, client addresses.
//! - [`openapi`]: the OpenAPI document generated from the routes, and `/docs`.
//! - [`socket_url`]: the `websocket_url` clients are told (`PUBLIC_URL`, or a checked
//!   `Host`).
//! - [`security`]: the above, built once from the settings.
//! - [`config_error`]: the one error of a bad setting.

pub mod asyncapi;
pub mod auth;
pub mod config_error;
pub mod error;
pub mod limits;
pub mod openapi;
pub mod routes;
pub mod security;
pub mod server;
pub mod settings;
pub mod socket_url;
pub mod startup;
pub mod state;
pub mod ws;

pub use settings::Settings;
pub use startup::{Application, StartError};
