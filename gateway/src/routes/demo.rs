//! `GET /demo`: the chat page, embedded in the binary (no files to ship, no CDN).
//!
//! Every answer carries a Content-Security-Policy that allows only this origin's own
//! script, style and connections (so an injected `<script>` or a stolen-token beacon
//! to another host does not run or connect), forbids framing (`frame-ancestors`, and
//! `X-Frame-Options` for old browsers: no clickjacking of the chat), `nosniff` and no
//! referrer. The page keeps its token out of its URL (`app.js`).

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The demo's policy: nothing but its own files and its own API and sockets.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

fn with_policy(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `GET /demo` (and `/demo/`): the page.
#[utoipa::path(get, path = "/demo", operation_id = "demo_page", tag = "demo",
    responses((status = 200, description = "The chat page.", content_type = "text/html", body = String)))]
pub async fn page() -> Response {
    with_policy(
        "text/html; charset=utf-8",
        include_str!("../../static/demo/index.html"),
    )
}

/// `GET /demo/app.js`: the page's script.
#[utoipa::path(get, path = "/demo/app.js", operation_id = "demo_script", tag = "demo",
    responses((status = 200, description = "The page's script.", content_type = "text/javascript", body = String)))]
pub async fn script() -> Response {
    with_policy(
        "text/javascript; charset=utf-8",
        include_str!("../../static/demo/app.js"),
    )
}

/// `GET /demo/style.css`: the page's stylesheet.
#[utoipa::path(get, path = "/demo/style.css", operation_id = "demo_stylesheet", tag = "demo",
    responses((status = 200, description = "The page's stylesheet.", content_type = "text/css", body = String)))]
pub async fn stylesheet() -> Response {
    with_policy(
        "text/css; charset=utf-8",
        include_str!("../../static/demo/style.css"),
    )
}
