//! Builds the app from settings (binding first, so port 0 works in tests) and runs it
//! until its cancellation token fires. In embedded mode a worker runs in-process on
//! the same in-memory backend.

use crate::auth::caller::{authenticate, redacted_uri, require_caller};
use crate::config_error::ConfigError;
use crate::limits::client_ip::record_client;
use crate::limits::rest::RestLimit;
use crate::limits::shared_rate::{self, Limit};
use crate::openapi::{self, ApiDoc};
use crate::routes::{demo, info, metrics, sessions, usage};
use crate::security::Security;
use crate::server::{self, ServerOptions};
use crate::settings::Settings;
use crate::state::AppState;
use crate::ws::{self, hub::Hub};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use shared::backend::{Backend, Rate, StoreError};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Why the gateway could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot listen on CHAT_SERVICE_HOST:CHAT_SERVICE_PORT: {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot reach the store (REDIS_URL): {0}")]
    Store(#[from] StoreError),
    /// A setting that cannot work (its message names the variable).
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Tools(#[from] worker::tools::ToolError),
}

/// A built, bound, not yet serving gateway.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    worker: Option<JoinHandle<()>>,
    worker_shutdown: CancellationToken,
}

impl Application {
    /// Binds `CHAT_SERVICE_HOST:CHAT_SERVICE_PORT` and builds the app.
    pub async fn build(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .await
            .map_err(StartError::Bind)?;
        Self::build_with_listener(settings, listener, shutdown).await
    }

    /// Builds the app on an already bound listener.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        log_start(&settings, &listener);
        shared::metrics::register(shared::metrics::Role::Gateway);
        let security = Arc::new(Security::from_settings(&settings)?);
        match &security.verifier {
            Some(verifier) => tracing::info!(?verifier, "authentication on"),
            None => tracing::info!(
                "authentication off (no JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE): every route is open"
            ),
        }
        let backend = Backend::connect(&settings.store).await?;
        let subscriber = backend.subscriber().await?;
        let instance: Arc<str> = worker::default_consumer_name().into();
        let hub = Hub::start(
            backend.clone(),
            subscriber,
            &instance,
            settings.limits.ws_outbound_queue as usize,
            shutdown.clone(),
        )
        .await?;
        let worker_shutdown = CancellationToken::new();
        let worker = settings
            .runs_worker()
            .then(|| {
                worker::spawn(
                    backend.clone(),
                    settings.llm.clone(),
                    settings.consumer.clone(),
                    format!("{instance}-embedded"),
                    worker_shutdown.clone(),
                )
                .map(|running| running.task)
            })
            .transpose()?;
        let state = AppState {
            settings: Arc::new(settings),
            backend,
            hub,
            instance,
            shutdown,
            security,
        };
        let keeper = state.security.slots.clone();
        keeper.tasks().spawn(
            keeper
                .clone()
                .run(state.backend.clone(), state.shutdown.clone()),
        );
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
            worker,
            worker_shutdown,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The state, for tests that look inside.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled, then closes sockets (1012),
    /// stops the in-process worker and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            listener,
            router,
            state,
            worker,
            worker_shutdown,
        } = self;
        let shutdown = state.shutdown.clone();
        let grace = Duration::from_secs(state.settings.shutdown_grace_secs);
        let options = ServerOptions {
            header_read_timeout: Duration::from_secs(
                state.settings.protection.http_header_read_timeout_secs,
            ),
            send_buffer_bytes: Some(state.settings.limits.tcp_send_buffer_bytes)
                .filter(|bytes| *bytes > 0),
        };
        let serving = tokio::spawn(server::serve(listener, router, options, shutdown.clone()));
        shutdown.cancelled().await;
        tracing::info!("stopping: closing sockets with 1012");
        let deadline = tokio::time::Instant::now() + grace;
        match tokio::time::timeout_at(deadline, serving).await {
            Ok(joined) => joined.map_err(std::io::Error::other)?,
            Err(_) => tracing::warn!("shutdown grace elapsed with connections still open"),
        }
        // Upgraded sockets are no longer HTTP connections: give them the rest of the
        // grace period to send what is in flight and close with 1012.
        while state.hub.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Closed sockets free their cross-pod slots (not left to lapse for a minute).
        let slot_tasks = state.security.slots.tasks();
        slot_tasks.close();
        let _ = tokio::time::timeout_at(deadline, slot_tasks.wait()).await;
        worker_shutdown.cancel();
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        Ok(())
    }
}

/// The first log line says how this instance runs.
fn log_start(settings: &Settings, listener: &TcpListener) {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let llm = if !settings.runs_worker() {
        "configured on the workers (this gateway runs none)".to_owned()
    } else if settings.llm.is_demo() {
        "built-in demo model (set OPENAI_API_KEY / OPENAI_BASE_URL for a real LLM)".to_owned()
    } else {
        format!(
            "{} at {}",
            settings.llm.llm_model,
            settings.llm.base_url_for_display()
        )
    };
    if settings.embedded() {
        tracing::info!(
            %address,
            "gateway running EMBEDDED: in-memory store and in-process worker (no REDIS_URL); LLM: {llm}; chat at http://{address}/demo"
        );
    } else {
        tracing::info!(
            %address,
            worker_in_process = settings.runs_worker(),
            "gateway running on Redis; LLM: {llm}"
        );
    }
}

/// Every route of the contract.
///
/// Public routes (no token, no rate limit: probes all come from one kubelet address)
/// are `/`, `/health`, `/livez`, `/metrics`, `/openapi.json` and the demo page; put new
/// ones of that kind in `public`. Everything else is `protected`, where a request goes
/// through, in order: `record_client` (resolve the client address) → `authenticate`
/// (verify the token once) → the general rate limit (by user, else address; the pod's
/// bucket, then the deployment's in the store) → on REST routes `require_caller` (401)
/// → on creation the stricter creation limit (same two steps) → the handler.
/// The socket route skips `require_caller`: the contract reports a bad token on the
/// socket (4401), after the upgrade.
///
/// Every route but the documentation's own goes through `routes!`, so it is in
/// `/openapi.json` by construction (see `openapi`).
pub fn router(state: AppState) -> Router {
    let (router, document) = api_router(&state)
        .merge(openapi::routes())
        .split_for_parts();
    let body_limit = state.settings.limits.max_body_bytes as usize;
    let security = state.security.clone();
    let protection = &security.settings;
    let deadline = Duration::from_secs(protection.http_request_timeout_secs);
    openapi::serve(router, &document)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn(move |request: Request, next: Next| {
            within_deadline(deadline, request, next)
        }))
        .layer(security.origins.cors_layer())
        // Requests are traced with a query's `token` redacted; 5xx causes are logged
        // where they happen (once), not again here.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::debug_span!("request", method = %request.method(), uri = %redacted_uri(request.uri()))
                })
                .on_failure(()),
        )
        .with_state(state)
}

/// The documented routes with their middleware, before state and global layers.
fn api_router(state: &AppState) -> OpenApiRouter<AppState> {
    let security = state.security.clone();
    let protection = &security.settings;
    let public = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(info::api_info))
        .routes(routes!(info::health))
        .routes(routes!(info::livez))
        .routes(routes!(metrics::metrics))
        .routes(routes!(demo::page))
        .route("/demo/", get(demo::page))
        .routes(routes!(demo::script))
        .routes(routes!(demo::stylesheet));

    let create = rate_limited(
        OpenApiRouter::new().routes(routes!(sessions::create)),
        state,
        Limit::Sessions,
        protection.create_session_per_minute,
        protection.create_session_burst,
    );
    let rest = OpenApiRouter::new()
        .routes(routes!(info::status))
        .routes(routes!(sessions::info))
        .routes(routes!(sessions::messages))
        .routes(routes!(sessions::delete))
        .routes(routes!(sessions::cancel))
        .routes(routes!(usage::usage))
        .merge(create)
        .route_layer(from_fn(require_caller));
    let protected = rate_limited(
        rest.routes(routes!(ws::upgrade))
            .routes(routes!(ws::upgrade_new_session)),
        state,
        Limit::Requests,
        protection.rate_limit_per_minute,
        protection.rate_limit_burst,
    );
    let verifying = security.clone();
    let protected = protected
        .route_layer(from_fn(move |request: Request, next: Next| {
            let security = verifying.clone();
            async move { authenticate(security.verifier.as_ref(), request, next).await }
        }))
        .route_layer(from_fn(move |request: Request, next: Next| {
            let security = security.clone();
            async move { record_client(&security.trusted_proxies, request, next).await }
        }));
    public.merge(protected)
}

/// Limits `router` to `per_minute` (with `burst`) per caller, in two layers: the pod's
/// bucket first, then the deployment's (store); `per_minute` 0 means no limit.
fn rate_limited(
    mut router: OpenApiRouter<AppState>,
    state: &AppState,
    limit: Limit,
    per_minute: u32,
    burst: u32,
) -> OpenApiRouter<AppState> {
    if let Some(rate) = Rate::new(per_minute, burst) {
        let backend = state.backend.clone();
        router = router.route_layer(from_fn(move |request: Request, next: Next| {
            let backend = backend.clone();
            async move { shared_rate::enforce(&backend, limit, rate, request, next).await }
        }));
    }
    if let Some(local) = RestLimit::new(per_minute, burst) {
        local.spawn_cleanup(state.shutdown.clone());
        router = router.route_layer(local.layer());
    }
    router
}

/// A request (its body included: a slow upload holds a task) must be answered within
/// `HTTP_REQUEST_TIMEOUT_SECS`; socket upgrades answer at once and are not affected.
async fn within_deadline(deadline: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(json!({
                "error": "invalid_request",
                "message": "The request took too long to arrive; please retry.",
            })),
        )
            .into_response(),
    }
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            json!({"error": "not_found", "message": "No such route; see GET / for the API."}),
        ),
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(
            json!({"error": "invalid_request", "message": "This method is not allowed on this route."}),
        ),
    )
}
