//! Error responses that several routes answer alike, described once for the OpenAPI
//! document (`responses(...)` of each route lists them). The handlers answer with
//! `ApiError`; these types only describe those answers.

use crate::error::ErrorBody;
use utoipa::IntoResponses;

/// 400 of the routes under `/api/session/{id}`.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "The id is not a valid session id (`invalid_request`)."
)]
pub struct InvalidSessionId(pub ErrorBody);

/// 401 of every route behind the caller check.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "Authentication is on and the token is missing or invalid."
)]
pub struct Unauthenticated(pub ErrorBody);

/// 404 of the routes under `/api/session/{id}`.
#[derive(IntoResponses)]
#[response(
    status = 404,
    description = "No such session, or another user's (`session_not_found`)."
)]
pub struct SessionNotFound(pub ErrorBody);

/// 429 of the routes behind the request rate limit (session creation has its own).
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "Too many requests from this user or address; see `Retry-After`."
)]
pub struct TooManyRequests(pub ErrorBody);

/// 503 of the routes that read or write the store.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "The store cannot be reached (`unavailable`)."
)]
pub struct Unavailable(pub ErrorBody);

/// The upgrade refusals of both socket routes (`/ws/{id}` and `/ws`), answered before
/// the upgrade as HTTP; later ones are events and close codes.
#[derive(IntoResponses)]
pub enum UpgradeRefused {
    #[response(
        status = 400,
        description = "Not a WebSocket handshake (`invalid_request`)."
    )]
    NotHandshake(ErrorBody),
    #[response(
        status = 426,
        description = "The connection cannot be upgraded (`invalid_request`)."
    )]
    NotUpgradable(ErrorBody),
    #[response(
        status = 429,
        description = "Too many upgrades from this user or address; see `Retry-After`."
    )]
    TooManyUpgrades(ErrorBody),
}
