//! Who may open a socket, checked right after the upgrade (the contract reports every
//! refusal on the socket: an `error` event, then the close code), cheapest first:
//!
//! 1. the page's origin (1008): cross-site WebSocket hijacking;
//! 2. the instance's socket cap (1013);
//! 3. the token (4401), already verified by the `authenticate` middleware;
//! 4. the caller's open sockets across every pod (4429).
//!
//! The session checks (id, existence, ownership: 4404) follow in `ws::prepare`.

use super::token::SocketAuth;
use super::{Refusal, close};
use crate::auth::caller::Authn;
use crate::auth::jwt::{AuthError, ClaimedBudget};
use crate::limits::client_ip::ClientAddr;
use crate::limits::rest::RateKey;
use crate::limits::sockets::{Admission, SlotRefusal, socket_scope};
use crate::state::AppState;
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use shared::wire::{ErrorCode, Protocol};
use std::net::{IpAddr, Ipv4Addr};

/// What the upgrade request says about its caller (read before the upgrade, checked after).
#[derive(Debug, Clone)]
pub struct Gate {
    origin_allowed: bool,
    authn: Authn,
    client: IpAddr,
}

impl Gate {
    pub fn of(
        state: &AppState,
        headers: &HeaderMap,
        authn: Option<Authn>,
        client: Option<ClientAddr>,
    ) -> Self {
        let security = &state.security;
        let origin_allowed = security.origins.allows_socket(
            headers.get(ORIGIN),
            headers.get(HOST),
            state.settings.public_url.as_deref(),
        );
        // `authenticate` always runs on this route; if it did not, fail closed.
        let authn = authn.unwrap_or(match security.verifier {
            None => Authn::Off,
            Some(_) => Authn::Failed(AuthError::Missing),
        });
        Self {
            origin_allowed,
            authn,
            client: client
                .map(|ClientAddr(ip)| ip)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        }
    }

    pub fn authn(&self) -> &Authn {
        &self.authn
    }

    /// The token budget the token itself carries (`JWT_BUDGET_CLAIM`), if any.
    pub fn claimed_budget(&self) -> Option<&ClaimedBudget> {
        match &self.authn {
            Authn::Verified(identity) => identity.budget.as_ref(),
            _ => None,
        }
    }

    /// Whom the socket's messages count against: the token's user, else the address.
    pub fn payer(&self) -> RateKey {
        match self.authn.user() {
            Some(user) => RateKey::User(user.clone()),
            None => RateKey::Addr(self.client),
        }
    }
}

/// Steps 1–4; on success the socket's token state and its held permit and slot.
pub async fn admit(
    state: &AppState,
    gate: &Gate,
    protocol: Protocol,
) -> Result<(SocketAuth, Admission), Refusal> {
    let refuse = |code, message: String, close_code| Refusal {
        code,
        message,
        close_code,
        protocol,
    };
    if !gate.origin_allowed {
        return Err(refuse(
            ErrorCode::Unauthorized,
            "This web origin may not open sockets on this server.".into(),
            close::POLICY,
        ));
    }
    let Some(permit) = state.security.connections.try_admit() else {
        return Err(refuse(
            ErrorCode::Unavailable,
            "This server is at its connection limit; please reconnect shortly.".into(),
            close::OVERLOADED,
        ));
    };
    let auth = match &gate.authn {
        Authn::Off => SocketAuth::off(),
        Authn::Verified(identity) => {
            let leeway = state
                .security
                .verifier
                .as_ref()
                .map_or(0, |v| v.leeway_secs());
            SocketAuth::of(identity, leeway)
        }
        Authn::Failed(error) => {
            let message = match error {
                AuthError::Missing => {
                    "A token is required: add ?token=<JWT> or the subprotocols \"bearer, <JWT>\"."
                        .to_owned()
                }
                other => other.client_message(),
            };
            return Err(refuse(
                ErrorCode::Unauthorized,
                message,
                close::UNAUTHORIZED,
            ));
        }
    };
    let keeper = state.security.slots.clone();
    let mut admission = Admission::new(permit, state.backend.clone(), keeper);
    let scope = socket_scope(auth.user(), gate.client);
    let holder = format!("{}:{}", state.instance, uuid::Uuid::new_v4().simple());
    let settings = &state.security.settings;
    let limit = match auth.user() {
        Some(_) => settings.max_sockets_per_user,
        None => settings.max_sockets_per_address,
    };
    match admission.claim_socket(scope, holder, limit).await {
        Ok(()) => Ok((auth, admission)),
        Err(SlotRefusal::Full { held }) => Err(refuse(
            ErrorCode::RateLimited,
            format!("{held} sockets are already open for this user or address; close one first."),
            close::TOO_MANY_CONNECTIONS,
        )),
        Err(SlotRefusal::Store(error)) => {
            tracing::warn!(%error, "could not count a caller's sockets");
            Err(refuse(
                ErrorCode::Unavailable,
                "The service is temporarily unavailable; please reconnect.".into(),
                close::RESTARTING,
            ))
        }
    }
}
