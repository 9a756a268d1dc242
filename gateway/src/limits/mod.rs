//! Everything that bounds what one client can cost: REST rate limits ([`rest`]), the
//! socket caps ([`sockets`]: per user or address across pods, and per instance), the
//! allowed origins ([`origin`]), the client's address behind trusted proxies
//! ([`client_ip`]) and their settings ([`settings`]). Size limits (body, frame,
//! message, metadata, user id) are in `crate::settings::Limits`, enforced where the
//! data is read.

pub mod client_ip;
pub mod origin;
pub mod rest;
pub mod settings;
pub mod sockets;
