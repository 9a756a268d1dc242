//! A webhook tool server for tests: the customer's side of a webhook tool, on its own
//! loopback port, recording every call.
//!
//! It checks Standard Webhooks signatures itself, with its own HMAC-SHA256 (the
//! `hmac`/`sha2`/`base64` crates, not the worker's signing code), so a test proves the
//! signature a real server would verify. What a path answers:
//!
//! | path | answer |
//! |---|---|
//! | `/echo` | VAPI's `{"results":[{"toolCallId","result":"echo:<arguments>"}]}` |
//! | `/plain` | `{"answer": "plain <arguments>"}` (not VAPI's shape) |
//! | `/status/CODE` | HTTP CODE, `{"error": "..."}` |
//! | `/slow/MS` | `/echo`, after MS milliseconds |
//! | `/wait/N` | `/echo`, once N requests are in flight at once (or after 5 s) |
//! | `/hang` | never answers |
//! | `/redirect` | 307 to another host (`http://127.0.0.2:PORT/echo`) |
//! | `/big` | a 1 MiB JSON string |

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct ReceivedCall {
    pub path: String,
    pub webhook_id: Option<String>,
    /// The signature verified against the secret (false when unsigned or wrong).
    pub signature_valid: bool,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<ReceivedCall>>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: Mutex<(usize, usize)>,
    secret: Option<Vec<u8>>,
    port: Mutex<u16>,
}

/// The server, running in the background; dropping it stops it.
pub struct ToolServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ToolServer {
    /// Serves on a free loopback port; `secret` (`whsec_...`) checks signatures.
    pub async fn start(secret: Option<&str>) -> Self {
        let secret = secret.map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.strip_prefix("whsec_").unwrap_or(s))
                .expect("a base64 secret")
        });
        let inner = Arc::new(Inner {
            secret,
            ..Inner::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        *inner.port.lock().unwrap() = addr.port();
        let app = Router::new()
            .route("/{*path}", post(handle))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner, task }
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn calls(&self) -> Vec<ReceivedCall> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.inner.in_flight.lock().unwrap().1
    }

    /// How many requests carried each `webhook-id`.
    pub fn calls_per_webhook_id(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for call in self.calls() {
            *counts
                .entry(call.webhook_id.unwrap_or_default())
                .or_default() += 1;
        }
        counts
    }
}

/// A freshly generated Standard Webhooks secret.
pub fn new_secret() -> String {
    let bytes: Vec<u8> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(uuid::Uuid::new_v4().as_bytes())
        .copied()
        .collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

/// Counts a request in flight until dropped (also when the client gives up).
struct InFlight(Arc<Inner>);

impl InFlight {
    fn new(inner: &Arc<Inner>) -> Self {
        let mut counts = inner.in_flight.lock().unwrap();
        counts.0 += 1;
        counts.1 = counts.1.max(counts.0);
        Self(inner.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.lock().unwrap().0 -= 1;
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::new(&inner);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let call = ReceivedCall {
        path: path.clone(),
        webhook_id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        signature_valid: inner
            .secret
            .as_deref()
            .is_some_and(|s| verify(s, &headers, &body)),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: parsed.clone(),
    };
    inner.calls.lock().unwrap().push(call);
    let tool_call = &parsed["message"]["toolCallList"][0];
    let call_id = tool_call["id"].clone();
    let arguments = tool_call["arguments"].to_string();
    let echo = || {
        axum::Json(
            json!({"results": [{"toolCallId": call_id, "result": format!("echo:{arguments}")}]}),
        )
        .into_response()
    };
    let mut parts = path.split('/');
    match (parts.next(), parts.next()) {
        (Some("echo"), _) => echo(),
        (Some("plain"), _) => {
            axum::Json(json!({"answer": format!("plain {arguments}")})).into_response()
        }
        (Some("status"), Some(code)) => {
            let code = code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok());
            let code = code.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (code, axum::Json(json!({"error": "tool server failure"}))).into_response()
        }
        (Some("slow"), Some(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(1000))).await;
            echo()
        }
        (Some("wait"), Some(n)) => {
            // Answers only when N calls overlap: proof they were made concurrently.
            let wanted: usize = n.parse().unwrap_or(2);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            // The peak, not the current count: the first to see it answers at once.
            while inner.in_flight.lock().unwrap().1 < wanted
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            echo()
        }
        (Some("hang"), _) => std::future::pending().await,
        (Some("redirect"), _) => {
            let port = *inner.port.lock().unwrap();
            (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("http://127.0.0.2:{port}/echo"))],
            )
                .into_response()
        }
        (Some("big"), _) => axum::Json(Value::String("x".repeat(1 << 20))).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
