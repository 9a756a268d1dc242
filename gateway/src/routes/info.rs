//! Service information and probes: `/`, `/health`, `/livez`, `/status`. Each answer
//! is a typed body, so `/openapi.json` describes exactly what is sent.

use super::refusals::{TooManyRequests, Unauthenticated};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use shared::clock;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The name reported as `service`.
pub const SERVICE_NAME: &str = "chat-gateway";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiInfo {
    service: &'static str,
    version: &'static str,
    description: &'static str,
    /// Route of each endpoint, by name (`"health": "GET /health"`, ...).
    endpoints: BTreeMap<&'static str, &'static str>,
}

/// `GET /`: what this is and where things are.
#[utoipa::path(get, path = "/", tag = "service",
    responses((status = 200, description = "Service, version and endpoints.", body = ApiInfo)))]
pub async fn api_info() -> Json<ApiInfo> {
    let endpoints = [
        ("health", "GET /health"),
        ("liveness", "GET /livez"),
        ("status", "GET /status"),
        ("metrics", "GET /metrics"),
        ("openapi", "GET /openapi.json"),
        ("asyncapi", "GET /asyncapi.json"),
        ("docs", "GET /docs"),
        ("create_session", "POST /api/create-session"),
        ("session_info", "GET /api/session/{session_id}/info"),
        ("session_messages", "GET /api/session/{session_id}/messages"),
        ("cancel_generation", "POST /api/session/{session_id}/cancel"),
        ("delete_session", "DELETE /api/session/{session_id}"),
        ("usage", "GET /api/usage"),
        ("websocket", "WS /ws/{session_id}"),
        ("websocket_new_session", "WS /ws"),
        ("demo", "GET /demo"),
    ];
    Json(ApiInfo {
        service: SERVICE_NAME,
        version: VERSION,
        description: "Chat gateway for LLM agents: REST sessions and streaming WebSockets.",
        endpoints: endpoints.into_iter().collect(),
    })
}

/// `GET /livez`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `alive`.
    #[schema(example = "alive")]
    status: &'static str,
}

/// `GET /livez`: the process answers; no dependency checks.
#[utoipa::path(get, path = "/livez", tag = "service",
    responses((status = 200, description = "The process runs.", body = Liveness)))]
pub async fn livez() -> Json<Liveness> {
    Json(Liveness { status: "alive" })
}

/// Whether the instance can serve.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
}

/// How this instance runs: in-memory store with an in-process worker, or on Redis.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Embedded,
    Redis,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    status: HealthStatus,
    service: &'static str,
    /// The agent's name (`AGENT_NAME` or the agent file).
    agent: String,
    version: &'static str,
    /// Live sessions across all instances; `null` when the store cannot be reached.
    active_sessions: Option<u64>,
    timestamp: String,
    mode: Mode,
    checks: HealthChecks,
}

/// The checks behind `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthChecks {
    store: StoreCheck,
    bus: BusCheck,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreCheck {
    /// `ok` or `unreachable`.
    status: &'static str,
    /// `redis` or `memory`.
    backend: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BusCheck {
    /// `ok`, or `no canary` when this instance's subscription stopped delivering.
    status: &'static str,
    /// Since this instance's last canary came back through the bus.
    canary_age_ms: i64,
}

/// `GET /health`: healthy only when the store answers and this instance's bus
/// subscription still delivers (its canaries come back).
#[utoipa::path(get, path = "/health", tag = "service", responses(
    (status = 200, description = "Healthy.", body = Health),
    (status = 503, description = "Unhealthy: the store cannot be reached or the bus stopped delivering; `checks` says which (`active_sessions` is `null`).", body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let checked = async {
        state.backend.ping().await?;
        state.backend.active_sessions().await
    }
    .await;
    let bus_healthy = state.hub.bus_healthy();
    let checks = |store| HealthChecks {
        store: StoreCheck {
            status: store,
            backend: state.backend.kind(),
        },
        bus: BusCheck {
            status: if bus_healthy { "ok" } else { "no canary" },
            canary_age_ms: state.hub.canary_age_ms(),
        },
    };
    let mut body = Health {
        status: HealthStatus::Healthy,
        service: SERVICE_NAME,
        agent: state.settings.llm.agent_name.clone(),
        version: VERSION,
        active_sessions: None,
        timestamp: clock::now_rfc3339(),
        mode: mode(&state),
        checks: checks("ok"),
    };
    match checked {
        Ok(active_sessions) if bus_healthy => {
            body.active_sessions = Some(active_sessions);
            (StatusCode::OK, Json(body))
        }
        checked => {
            let store = match &checked {
                Ok(_) => "ok",
                Err(error) => {
                    tracing::warn!(%error, "health check: store unreachable");
                    "unreachable"
                }
            };
            body.status = HealthStatus::Unhealthy;
            body.checks = checks(store);
            (StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    }
}

fn mode(state: &AppState) -> Mode {
    if state.settings.embedded() {
        Mode::Embedded
    } else {
        Mode::Redis
    }
}

/// `GET /status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceStatus {
    /// `ok`, or `degraded` when the store could not be read.
    status: &'static str,
    version: &'static str,
    /// This instance's name (host name + random suffix).
    instance: String,
    mode: Mode,
    /// `redis` or `memory`.
    backend: &'static str,
    worker_in_process: bool,
    model: ModelInfo,
    agent: AgentInfo,
    /// Sockets open on this instance.
    connections: usize,
    /// Live sessions across all instances; `null` when the store cannot be read.
    active_sessions: Option<u64>,
    queue: QueueInfo,
    timestamp: String,
}

/// The model that answers, as far as this instance knows it (never a key). A gateway
/// that runs no worker does not know: its workers' `OPENAI_BASE_URL` / `LLM_MODEL`
/// decide, and its own values (a built-in demo model when unset) would be a false
/// report; then only `provider`, `configured_on`, `note` and the gateway's limits are
/// given.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    /// `openai-compatible`, `demo` (the built-in demo model) or `configured on workers`.
    provider: &'static str,
    /// `this gateway's worker` or `workers`.
    configured_on: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
    /// The provider's base URL, credentials removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    demo: Option<bool>,
    limits: ModelLimits,
}

/// The limits that shape answers; the model's own only when this instance runs a worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelLimits {
    max_message_chars: u32,
    max_pending_messages: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_messages: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_token_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_timeout_secs: Option<u64>,
}

/// The model that answers, as far as this instance knows it.
fn model(settings: &crate::settings::Settings) -> ModelInfo {
    let llm = &settings.llm;
    let mut limits = ModelLimits {
        max_message_chars: settings.limits.max_message_chars,
        max_pending_messages: settings.limits.max_pending_messages,
        context_messages: None,
        max_tokens: None,
        first_token_timeout_secs: None,
        total_timeout_secs: None,
    };
    if !settings.runs_worker() {
        return ModelInfo {
            provider: "configured on workers",
            configured_on: "workers",
            note: Some(
                "this gateway runs no worker; each worker's OPENAI_BASE_URL and LLM_MODEL choose the model (see its log or /metrics)",
            ),
            base_url: None,
            name: None,
            demo: None,
            limits,
        };
    }
    limits.context_messages = Some(llm.llm_context_messages);
    limits.max_tokens = llm.llm_max_tokens;
    limits.first_token_timeout_secs = Some(llm.llm_first_token_timeout_secs);
    limits.total_timeout_secs = Some(llm.llm_total_timeout_secs);
    ModelInfo {
        provider: if llm.is_demo() {
            "demo"
        } else {
            "openai-compatible"
        },
        configured_on: "this gateway's worker",
        note: None,
        base_url: Some(llm.base_url_for_display()),
        name: Some(if llm.is_demo() {
            "builtin-demo".to_owned()
        } else {
            llm.llm_model.clone()
        }),
        demo: Some(llm.is_demo()),
        limits,
    }
}

/// The agent (`AGENT_FILE`, else the defaults).
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentInfo {
    name: String,
    /// Model turns with tool calls per answer; then it must answer.
    max_tool_rounds: u32,
    tools: Vec<ToolInfo>,
}

/// One tool as `/status` lists it: what it is, never its secrets (the variables'
/// names are not even shown; a webhook only by its host).
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolInfo {
    name: String,
    /// `knowledge_base` or `webhook`.
    #[serde(rename = "type")]
    kind: &'static str,
    description: String,
    /// Knowledge base: passages returned per search.
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    /// Webhook: the host it calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// Webhook: its deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_secs: Option<u64>,
    /// Webhook: requests are signed (Standard Webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<bool>,
}

/// The agent's tools as `/status` lists them.
fn tools(llm: &worker::settings::LlmSettings) -> Vec<ToolInfo> {
    use shared::agent::ToolKind;
    let Some(agent) = &llm.agent else {
        return Vec::new();
    };
    agent
        .tools
        .iter()
        .map(|tool| {
            let mut info = ToolInfo {
                name: tool.name.clone(),
                kind: tool.type_name(),
                description: tool.description.clone(),
                top_k: None,
                host: None,
                timeout_secs: None,
                signed: None,
            };
            match &tool.kind {
                ToolKind::KnowledgeBase(kb) => info.top_k = Some(kb.top_k),
                ToolKind::Webhook(w) => {
                    info.host = w.url.host_str().map(str::to_owned);
                    info.timeout_secs = Some(w.timeout_secs);
                    info.signed = Some(w.secret_env.is_some());
                }
            }
            info
        })
        .collect()
}

/// The inbox; each field `null` when the store cannot be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueInfo {
    /// Sessions waiting for or being answered by a worker.
    backlog: Option<u64>,
    oldest_pending_age_ms: Option<u64>,
    dead_letters: Option<u64>,
}

/// `GET /status`: this instance, its model and its load.
#[utoipa::path(get, path = "/status", tag = "service", security((), ("bearer" = [])), responses(
    (status = 200, description = "This instance, its model and its load.", body = InstanceStatus),
    (status = 503, description = "Degraded: the store could not be read (its fields are `null`).", body = InstanceStatus),
    Unauthenticated, TooManyRequests))]
pub async fn status(State(state): State<AppState>) -> (StatusCode, Json<InstanceStatus>) {
    let settings = &state.settings;
    let llm = &settings.llm;
    let (sessions, queue) =
        tokio::join!(state.backend.active_sessions(), state.backend.queue_stats());
    let healthy = sessions.is_ok() && queue.is_ok();
    let queue = queue.ok();
    let body = InstanceStatus {
        status: if healthy { "ok" } else { "degraded" },
        version: VERSION,
        instance: state.instance.to_string(),
        mode: mode(&state),
        backend: state.backend.kind(),
        worker_in_process: settings.runs_worker(),
        model: model(settings),
        agent: AgentInfo {
            name: llm.agent_name.clone(),
            max_tool_rounds: llm.max_tool_rounds(),
            tools: tools(llm),
        },
        connections: state.hub.connection_count(),
        active_sessions: sessions.ok(),
        queue: QueueInfo {
            backlog: queue.map(|q| q.backlog),
            oldest_pending_age_ms: queue.map(|q| q.oldest_age_ms),
            dead_letters: queue.map(|q| q.dead_letters),
        },
        timestamp: clock::now_rfc3339(),
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
