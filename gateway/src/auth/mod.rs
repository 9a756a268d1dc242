//! Authentication (`docs/protocol.md`, "Authentication"): off unless a verification key is
//! configured; then every route but the public ones needs a valid JWT.
//!
//! - [`settings`]: the `JWT_*` settings and their start-up check.
//! - [`jwt`]: the verifier (pinned algorithm, required claims, user claim).
//! - [`expiry`]: the token's `exp` and `nbf`, in every shape a NumericDate can take.
//! - [`claims`]: the claims set, refused when a claim name repeats.
//! - [`jwks`]: keys from a JWKS file, by `kid`, reloaded when the file changes.
//! - [`caller`]: the middleware that reads and verifies the token once per request,
//!   the 401 for REST, the [`caller::Caller`] handlers take and the ownership rule.
//!
//! A live socket's token (refresh in band, close with 4401 on expiry) is handled in
//! `ws::token`.

pub mod caller;
pub mod claims;
pub mod expiry;
pub mod jwks;
pub mod jwt;
pub mod settings;
