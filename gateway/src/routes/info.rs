//! Service information and probes: `/`, `/health`, `/livez`, `/status`.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::clock;

/// The name reported as `service`.
pub const SERVICE_NAME: &str = "chat-gateway";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /`: what this is and where things are.
pub async fn api_info() -> Json<Value> {
    Json(json!({
        "service": SERVICE_NAME,
        "version": VERSION,
        "description": "Chat gateway for LLM agents: REST sessions and streaming WebSockets.",
        "endpoints": {
            "health": "GET /health",
            "liveness": "GET /livez",
            "status": "GET /status",
            "create_session": "POST /api/create-session",
            "session_info": "GET /api/session/{session_id}/info",
            "session_messages": "GET /api/session/{session_id}/messages",
            "cancel_generation": "POST /api/session/{session_id}/cancel",
            "delete_session": "DELETE /api/session/{session_id}",
            "websocket": "WS /ws/{session_id}",
            "demo": "GET /demo"
        }
    }))
}

/// `GET /livez`: the process answers; no dependency checks.
pub async fn livez() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// `GET /health`: healthy only when the store answers and this instance's bus
/// subscription still delivers (its canaries come back).
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let agent = &state.settings.llm.agent_name;
    let checked = async {
        state.backend.ping().await?;
        state.backend.active_sessions().await
    }
    .await;
    let bus_healthy = state.hub.bus_healthy();
    match checked {
        Ok(active_sessions) if bus_healthy => (
            StatusCode::OK,
            Json(json!({
                "status": "healthy",
                "service": SERVICE_NAME,
                "agent": agent,
                "version": VERSION,
                "active_sessions": active_sessions,
                "timestamp": clock::now_rfc3339(),
                "mode": mode(&state),
                "checks": {
                    "store": {"status": "ok", "backend": state.backend.kind()},
                    "bus": {"status": "ok", "canary_age_ms": state.hub.canary_age_ms()},
                },
            })),
        ),
        checked => {
            let store = match &checked {
                Ok(_) => "ok".to_owned(),
                Err(error) => {
                    tracing::warn!(%error, "health check: store unreachable");
                    "unreachable".to_owned()
                }
            };
            let bus = if bus_healthy { "ok" } else { "no canary" };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unhealthy",
                    "service": SERVICE_NAME,
                    "agent": agent,
                    "version": VERSION,
                    "active_sessions": null,
                    "timestamp": clock::now_rfc3339(),
                    "mode": mode(&state),
                    "checks": {
                        "store": {"status": store, "backend": state.backend.kind()},
                        "bus": {"status": bus, "canary_age_ms": state.hub.canary_age_ms()},
                    },
                })),
            )
        }
    }
}

fn mode(state: &AppState) -> &'static str {
    if state.settings.embedded() {
        "embedded"
    } else {
        "redis"
    }
}

/// The agent's tools as `/status` lists them: what they are, never their secrets
/// (the variables' names are shown, not their values; a URL only by its host).
fn tools(llm: &worker::settings::LlmSettings) -> Vec<Value> {
    use shared::agent::ToolKind;
    let Some(agent) = &llm.agent else {
        return Vec::new();
    };
    agent
        .tools
        .iter()
        .map(|tool| match &tool.kind {
            ToolKind::KnowledgeBase(kb) => json!({
                "name": tool.name,
                "type": tool.type_name(),
                "description": tool.description,
                "top_k": kb.top_k,
            }),
            ToolKind::Webhook(w) => json!({
                "name": tool.name,
                "type": tool.type_name(),
                "description": tool.description,
                "host": w.url.host_str(),
                "timeout_secs": w.timeout_secs,
                "signed": w.secret_env.is_some(),
            }),
        })
        .collect()
}

/// The model that answers, as far as this instance knows it. A gateway that runs no
/// worker does not know: its workers' `OPENAI_BASE_URL` / `LLM_MODEL` decide, and its
/// own values (a built-in demo model when unset) would be a false report.
fn model(settings: &crate::settings::Settings) -> Value {
    let llm = &settings.llm;
    let gateway_limits = json!({
        "max_message_chars": settings.limits.max_message_chars,
        "max_pending_messages": settings.limits.max_pending_messages,
    });
    if !settings.runs_worker() {
        return json!({
            "provider": "configured on workers",
            "configured_on": "workers",
            "note": "this gateway runs no worker; each worker's OPENAI_BASE_URL and LLM_MODEL choose the model (see its log or /metrics)",
            "limits": gateway_limits,
        });
    }
    let mut limits = gateway_limits;
    limits["context_messages"] = json!(llm.llm_context_messages);
    limits["max_tokens"] = json!(llm.llm_max_tokens);
    limits["first_token_timeout_secs"] = json!(llm.llm_first_token_timeout_secs);
    limits["total_timeout_secs"] = json!(llm.llm_total_timeout_secs);
    json!({
        "provider": if llm.is_demo() { "demo" } else { "openai-compatible" },
        "configured_on": "this gateway's worker",
        "base_url": llm.base_url_for_display(),
        "name": if llm.is_demo() { "builtin-demo" } else { llm.llm_model.as_str() },
        "demo": llm.is_demo(),
        "limits": limits,
    })
}

/// `GET /status`: this instance, its model and its load.
pub async fn status(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let settings = &state.settings;
    let llm = &settings.llm;
    let (sessions, queue) =
        tokio::join!(state.backend.active_sessions(), state.backend.queue_stats());
    let healthy = sessions.is_ok() && queue.is_ok();
    let queue = queue.ok();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": VERSION,
        "instance": &*state.instance,
        "mode": mode(&state),
        "backend": state.backend.kind(),
        "worker_in_process": settings.runs_worker(),
        "model": model(settings),
        "agent": {
            "name": llm.agent_name,
            "max_tool_rounds": llm.max_tool_rounds(),
            "tools": tools(llm),
        },
        "connections": state.hub.connection_count(),
        "active_sessions": sessions.ok(),
        "queue": {
            "backlog": queue.map(|q| q.backlog),
            "oldest_pending_age_ms": queue.map(|q| q.oldest_age_ms),
            "dead_letters": queue.map(|q| q.dead_letters),
        },
        "timestamp": clock::now_rfc3339(),
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
