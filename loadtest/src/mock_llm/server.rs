//! The HTTP routes and [`serve`].
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/chat/completions` | the deterministic answer, streamed or whole, or a fault |
//! | `GET /v1/models` | the configured model |
//! | `GET /health` | `ok` |
//! | `GET /mock/requests` | the last requests received, oldest first |
//! | `DELETE /mock/requests` | clears that log |
//! | `GET /mock/stats` | `{"requests": n, "faults": n}` |
//!
//! A chat request is handled in this order: count it, parse it (400 on a bad body),
//! log it, then the periodic fault, then the directives of its last user message
//! (`status`, then `hang`, then the answer with `tool`, `first`, `slow` and `cut`).

use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;

use super::answer::{Answer, ToolCall};
use super::conversation;
use super::deviation::Deviation;
use super::directives::Directives;
use super::error::ApiError;
use super::reply::{last_user_query, regroup, reply_tokens};
use super::settings::MockSettings;
use super::sse::{self, StreamPlan};
use super::state::{AppState, Shutdown, unix_now};
use super::wire::{ChatRequest, Envelope, Usage, model_list};

/// Largest request body accepted: long load-test histories exceed axum's 2 MB default.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Serves the mock on `listener` until `shutdown` resolves.
///
/// On shutdown it stops accepting, breaks the streams still running and releases
/// hung requests (503), then returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    settings: MockSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopping) = Shutdown::new();
    let app = router(AppState::new(settings, stopping));
    tracing::info!(addr = ?listener.local_addr().ok(), "mock-llm serving");
    // Tokens are small writes: with Nagle's algorithm on, each one after the first
    // waits for the client's delayed ACK (~40 ms), which real providers do not do.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("mock-llm shutting down");
            stop.send_replace(true);
        })
        .await
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/mock/requests", get(recorded).delete(clear_recorded))
        .route("/mock/stats", get(stats))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn chat_completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let number = state.next_request();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return ApiError::rejected(rejection.status(), rejection.body_text()).into_response();
        }
    };
    let request = match ChatRequest::parse(&body) {
        Ok(request) => request,
        Err(message) => return ApiError::invalid_request(message).into_response(),
    };
    state.record(request.record());

    let settings = state.settings();
    if settings.is_periodic_fault(number) {
        state.count_fault();
        tracing::debug!(number, "periodic fault");
        return ApiError::injected(settings.periodic_fault_status(), None, false).into_response();
    }

    let directives = Directives::parse(&conversation::last_user_text(&request.messages));
    if !directives.is_empty() {
        tracing::debug!(number, ?directives, "mock directives");
    }
    if let Some(status) = directives.status {
        state.count_fault();
        return ApiError::injected(status, directives.retry_after, directives.quota)
            .flat(directives.deviations.has(Deviation::FlatError))
            .into_response();
    }
    if directives.hang {
        state.count_fault();
        // Holds the request until shutdown; if the client leaves first, hyper drops
        // this future.
        state.shutdown().wait().await;
        return ApiError::shutting_down().into_response();
    }
    if directives.cut.is_some() {
        state.count_fault();
    }
    respond(&state, number, &request, &directives).await
}

/// The normal answer (text or tool calls), streamed or whole.
async fn respond(
    state: &AppState,
    number: u64,
    request: &ChatRequest,
    directives: &Directives,
) -> Response {
    let settings = state.settings();
    let answer = answer(state, request, directives);
    let usage = Usage {
        prompt: conversation::prompt_words(&request.messages),
        completion: answer.completion_tokens(),
    };
    let envelope = Envelope {
        id: format!("chatcmpl-mock-{number}"),
        created: unix_now(),
        model: request
            .model
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| settings.model.clone()),
    };
    let first_delay =
        Duration::from_millis(directives.first_ms.unwrap_or(settings.first_token_delay_ms));
    let token_delay = Duration::from_millis(directives.slow_ms.unwrap_or(settings.token_delay_ms));

    if request.is_stream() {
        let plan = StreamPlan {
            envelope,
            answer,
            usage,
            include_usage: request.include_usage(),
            first_delay,
            token_delay,
            cut: directives.cut,
            deviations: directives.deviations.clone(),
        };
        return sse::response(plan, state.shutdown());
    }

    // A whole answer takes as long as its stream would have.
    let pieces = u32::try_from(answer.completion_tokens()).unwrap_or(u32::MAX);
    let total = first_delay + token_delay.saturating_mul(pieces.saturating_sub(1));
    if !total.is_zero() {
        let mut shutdown = state.shutdown();
        tokio::select! {
            () = tokio::time::sleep(total) => {}
            () = shutdown.wait() => return ApiError::shutting_down().into_response(),
        }
    }
    if directives.cut.is_some() {
        return sse::broken_response();
    }
    Json(envelope.completion(&answer, usage)).into_response()
}

/// Tool calls when the last user message asks for them, the request offers tools and
/// no tool result has come back yet; text otherwise.
fn answer(state: &AppState, request: &ChatRequest, directives: &Directives) -> Answer {
    let rounds = directives.tool_rounds.unwrap_or(1);
    let wants_tools = !directives.tools.is_empty()
        && request.has_tools()
        && conversation::tool_turns_since_user(&request.messages) < rounds;
    if !wants_tools {
        let tokens = reply_tokens(&request.messages, state.settings().tokens);
        return Answer::Text(match directives.pieces {
            Some(pieces) => regroup(tokens, pieces),
            None => tokens,
        });
    }
    let query = last_user_query(&request.messages);
    Answer::ToolCalls(
        directives
            .tools
            .iter()
            .map(|name| {
                let key = directives.arg.as_deref().unwrap_or("query");
                let mut call = ToolCall::new(state.next_tool_call_id(), name.clone(), key, &query);
                if directives.bad_args {
                    call.arguments = format!("{{{key:?}: {query:?}");
                }
                call
            })
            .collect(),
    )
}

async fn models(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(model_list(&state.settings().model, state.started()))
}

async fn health() -> &'static str {
    "ok"
}

async fn recorded(State(state): State<AppState>) -> Json<Vec<serde_json::Value>> {
    Json(state.recorded())
}

async fn clear_recorded(State(state): State<AppState>) -> StatusCode {
    state.clear_recorded();
    StatusCode::NO_CONTENT
}

async fn stats(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.stats())
}
