//! Everything that bounds what one client can cost: REST rate limits per pod ([`rest`])
//! and across pods ([`shared_rate`], also for user messages), token budgets
//! ([`budget`]), the
//! socket caps ([`sockets`]: per user or address across pods, and per instance), the
//! allowed origins ([`origin`]), the client's address behind trusted proxies
//! ([`client_ip`]) and their settings ([`settings`]). Size limits (body, frame,
//! message, metadata, user id) are in `crate::settings::Limits`, enforced where the
//! data is read.

pub mod budget;
pub mod client_ip;
pub mod origin;
pub mod rest;
pub mod settings;
pub mod shared_rate;
pub mod sockets;
