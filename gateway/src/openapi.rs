//! The OpenAPI 3.1 document, generated from the code: every route is registered
//! through `utoipa_axum`'s `routes!` from the same `#[utoipa::path]` annotation that
//! documents it (a route cannot be served undocumented or documented unserved), the
//! bodies are the handlers' own types, and the WebSocket frames are the schemas of
//! `shared::wire`'s types. Served at `/openapi.json`, with the socket's AsyncAPI
//! document made from it (`asyncapi`) at `/asyncapi.json`; `/docs/` is Swagger UI from
//! the copy vendored in `utoipa-swagger-ui` (no CDN, no download at build time).

use crate::asyncapi;
use crate::error::ErrorBody;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use shared::wire::{ClientFrameWire, ErrorCode, SimpleEvent, StreamEvent};
use std::sync::Arc;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::Config;

/// Where the document and the page are served.
pub const SPEC_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";

/// The parts of the document that are not routes: its header, the bearer scheme, the
/// WebSocket frames and the error body.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-gateway",
        description = "REST session API and WebSocket streaming of a chat gateway for LLM agents. \
            Errors are always `{\"error\": \"<code>\", \"message\": \"<sentence>\"}`. \
            With authentication off (no JWT key configured) no route needs a token; with it on, \
            every route but `/`, `/health`, `/livez`, `/metrics`, `/openapi.json`, `/docs` and `/demo` \
            needs `Authorization: Bearer <JWT>`. Bodies are read by the handlers themselves, so the \
            framework's own rejections never reach a client as such: a malformed or mistyped body \
            is a 400 (never 415 or 422; any content type is read as JSON), a body over the limit \
            a 413, a bad path or query value a 400, an unknown route a 404 (`not_found`) and a \
            wrong method a 405 (`invalid_request`), all with the error body. The WebSocket frames \
            are the schemas `ClientFrameWire` (client to server), `StreamEvent` and `SimpleEvent` \
            (server to client), and /asyncapi.json describes the socket as AsyncAPI 3.0; the \
            protocol is written out in docs/protocol.md of the repository.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(file),
    components(schemas(ClientFrameWire, StreamEvent, SimpleEvent, ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "service", description = "Service information, probes and metrics."),
        (name = "sessions", description = "The session API."),
        (name = "websocket", description = "The streaming socket."),
        (name = "demo", description = "The built-in chat page."),
        (name = "docs", description = "This document and its interactive page."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` (JWT) security scheme the protected routes name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// What the documentation routes serve.
#[derive(Clone)]
struct Served {
    json: Arc<str>,
    asyncapi: Arc<str>,
    page: Arc<Config<'static>>,
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "docs",
    responses((status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json", body = Object)))]
async fn spec(Extension(served): Extension<Served>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        served.json.to_string(),
    )
        .into_response()
}

/// `GET /asyncapi.json`.
#[utoipa::path(get, path = "/asyncapi.json", operation_id = "asyncapi", tag = "docs",
    responses((status = 200, description = "The AsyncAPI 3.0 document of the WebSocket protocol, made from this one's frame schemas.", content_type = "application/json", body = Object)))]
async fn asyncapi_spec(Extension(served): Extension<Served>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        served.asyncapi.to_string(),
    )
        .into_response()
}

/// `GET /docs`: to the page's folder, where its relative asset links resolve.
#[utoipa::path(get, path = "/docs", operation_id = "docs", tag = "docs",
    responses((status = 303, description = "Redirect to `/docs/`.")))]
async fn docs() -> Redirect {
    Redirect::to("/docs/")
}

/// `GET /docs/`: the interactive page (Swagger UI) on `/openapi.json`.
#[utoipa::path(get, path = "/docs/", operation_id = "docs_page", tag = "docs",
    responses((status = 200, description = "The interactive page.", content_type = "text/html", body = String)))]
async fn page(Extension(served): Extension<Served>) -> Response {
    asset(&served, "index.html")
}

/// `GET /docs/{file}`: the page's scripts and stylesheets.
#[utoipa::path(get, path = "/docs/{file}", operation_id = "docs_file", tag = "docs",
    params(("file" = String, Path, description = "A file of the page, e.g. `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/javascript"), (String = "text/css"), (String = "text/html"), (String = "image/png"))),
        (status = 404, description = "No such file (`not_found`).", body = ErrorBody)))]
async fn file(Path(file): Path<String>, Extension(served): Extension<Served>) -> Response {
    asset(&served, &file)
}

fn asset(served: &Served, file: &str) -> Response {
    match utoipa_swagger_ui::serve(file, served.page.clone()) {
        Ok(Some(found)) => (
            [(CONTENT_TYPE, found.content_type)],
            found.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(ErrorBody::new(
                ErrorCode::NotFound,
                "No such file of the documentation page.",
            )),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "serving the documentation page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(ErrorBody::new(
                    ErrorCode::Internal,
                    "The documentation page could not be served.",
                )),
            )
                .into_response()
        }
    }
}

/// The documentation's own routes, documented in `document` like every other.
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(spec))
        .routes(routes!(asyncapi_spec))
        .routes(routes!(docs))
        .routes(routes!(page))
        .route("/docs/{*file}", get(file))
}

/// The session operations a created session's `session_id` leads to (OpenAPI links:
/// clients and fuzzers can follow them from the 201 of `create_session`).
const SESSION_OPERATIONS: [&str; 4] = [
    "session_info",
    "session_messages",
    "cancel_generation",
    "delete_session",
];

// Written into the JSON: utoipa 5.5 serializes `Link`'s `operationId` as
// `operation_id`, which no OpenAPI tool reads.
fn link_created_session(document: &mut serde_json::Value) {
    let created = &mut document["paths"]["/api/create-session"]["post"]["responses"]["201"];
    if !created.is_object() {
        return;
    }
    let links: serde_json::Map<String, serde_json::Value> = SESSION_OPERATIONS
        .iter()
        .map(|operation| {
            let link = serde_json::json!({
                "operationId": operation,
                "parameters": {"id": "$response.body#/session_id"},
                "description": "The session just created.",
            });
            ((*operation).to_owned(), link)
        })
        .collect();
    created["links"] = links.into();
}

/// Serves `document` on the documentation routes of `router`.
pub fn serve<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    document: &utoipa::openapi::OpenApi,
) -> Router<S> {
    let mut value = serde_json::to_value(document).expect("the OpenAPI document serializes");
    link_created_session(&mut value);
    let asyncapi = asyncapi::document(&value).to_string().into();
    let json: Arc<str> = value.to_string().into();
    let page = Config::new([SPEC_PATH])
        // Swagger UI's default sends the document to an online validator.
        .validator_url("none")
        .try_it_out_enabled(true);
    router.layer(Extension(Served {
        json,
        asyncapi,
        page: Arc::new(page),
    }))
}
