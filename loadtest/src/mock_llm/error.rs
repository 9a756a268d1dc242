//! OpenAI-style error answers: `{"error":{"message","type","param","code"}}` with the
//! headers a real provider sends (`retry-after` on 429), for bad requests and for
//! injected faults alike, so clients exercise their real error paths.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error the mock answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
    retry_after: Option<u64>,
    /// Body `{"error": "<message>"}` instead of an error object, as some proxies send.
    flat: bool,
}

impl ApiError {
    /// 400 for a body the mock cannot use.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
            retry_after: None,
            flat: false,
        }
    }

    /// The same error with a flat body (`{"error": "<message>"}`) when `flat`.
    pub(crate) fn flat(self, flat: bool) -> Self {
        Self { flat, ..self }
    }

    /// A body axum refused before parsing (too large, unreadable), with its status.
    pub(crate) fn rejected(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            ..Self::invalid_request(message)
        }
    }

    /// An injected fault with HTTP `status` (500 if it is not a valid status).
    ///
    /// A 429 carries `retry-after` (1 s unless `retry_after` says otherwise) and is a
    /// rate limit, or with `quota` an `insufficient_quota`, which clients such as
    /// async-openai treat as permanent. Other statuses send `retry-after` only when
    /// asked.
    pub(crate) fn injected(status: u16, retry_after: Option<u64>, quota: bool) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, code, message) = match status.as_u16() {
            429 if quota => (
                "insufficient_quota",
                Some("insufficient_quota"),
                "mock-llm: you exceeded your current quota (injected)",
            ),
            429 => (
                "rate_limit_error",
                Some("rate_limit_exceeded"),
                "mock-llm: rate limit reached (injected)",
            ),
            401 => (
                "authentication_error",
                Some("invalid_api_key"),
                "mock-llm: invalid API key (injected)",
            ),
            403 => (
                "permission_error",
                None,
                "mock-llm: permission denied (injected)",
            ),
            404 => (
                "not_found_error",
                Some("model_not_found"),
                "mock-llm: model not found (injected)",
            ),
            400..=499 => (
                "invalid_request_error",
                None,
                "mock-llm: request rejected (injected)",
            ),
            _ => (
                "server_error",
                None,
                "mock-llm: internal server error (injected)",
            ),
        };
        let retry_after = retry_after.or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
        Self {
            status,
            message: message.to_owned(),
            kind,
            code,
            retry_after,
            flat: false,
        }
    }

    /// 503 for a request still open when the server stops.
    pub(crate) fn shutting_down() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "mock-llm is shutting down".to_owned(),
            kind: "server_error",
            code: None,
            retry_after: None,
            flat: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.flat {
            Json(json!({"error": self.message}))
        } else {
            Json(json!({"error": {
                "message": self.message,
                "type": self.kind,
                "param": null,
                "code": self.code,
            }}))
        };
        let mut response = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_carry_retry_after() {
        let e = ApiError::injected(429, None, false);
        assert_eq!(e.retry_after, Some(1));
        assert_eq!(e.code, Some("rate_limit_exceeded"));
        let e = ApiError::injected(429, Some(0), true);
        assert_eq!(e.retry_after, Some(0));
        assert_eq!(e.kind, "insufficient_quota");
        assert_eq!(ApiError::injected(500, None, false).retry_after, None);
        assert_eq!(ApiError::injected(503, Some(2), false).retry_after, Some(2));
    }

    #[test]
    fn invalid_statuses_become_500() {
        assert_eq!(
            ApiError::injected(42, None, false).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
