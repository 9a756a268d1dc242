//! `GET /demo`: the chat page, embedded in the binary (no files to ship, no CDN).

use axum::http::header;
use axum::response::{Html, IntoResponse};

pub async fn page() -> Html<&'static str> {
    Html(include_str!("../../static/demo/index.html"))
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/demo/app.js"),
    )
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/demo/style.css"),
    )
}
