//! REST errors: one enum, mapped once to the contract's `{error, message}` body.
//! 5xx bodies stay generic; their cause is logged here, once.

use crate::auth::jwt::AuthError;
use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::backend::StoreError;
use shared::wire::ErrorCode;
use thiserror::Error;
use utoipa::ToSchema;

/// The body of every REST error (and of the framework's own rejections, which are
/// mapped onto it): `{"error": "<machine_code>", "message": "<one human sentence>"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "session_not_found", "message": "No session with this id exists."}))]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// One human sentence.
    pub message: String,
}

impl ErrorBody {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }
}

/// Everything a REST handler can answer with besides success.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("unauthorized: {0}")]
    Unauthorized(AuthError),
    #[error("session not found")]
    SessionNotFound,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, ErrorCode, String) {
        match self {
            ApiError::InvalidRequest(message) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                message.clone(),
            ),
            ApiError::Unauthorized(error) => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                error.client_message(),
            ),
            ApiError::SessionNotFound => (
                StatusCode::NOT_FOUND,
                ErrorCode::SessionNotFound,
                "No session with this id exists.".into(),
            ),
            ApiError::PayloadTooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                message.clone(),
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "Too many requests; retry after the time in Retry-After.".into(),
            ),
            ApiError::Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "The service is temporarily unavailable; please retry.".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(error) = &self {
            tracing::error!(%error, "store call failed");
        }
        let (status, code, message) = self.parts();
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        if let ApiError::Unauthorized(_) = self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("The request body is larger than allowed.".into())
        } else {
            ApiError::InvalidRequest(rejection.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::InvalidRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::InvalidRequest(rejection.body_text())
    }
}
