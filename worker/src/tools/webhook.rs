//! Webhook tools: one signed `POST` to the customer's server per call, in the body
//! shape VAPI sends to a tool server (so a server written for VAPI works unchanged).
//!
//! The client is shaped by what a tool URL must not become, a way into the cluster:
//! its DNS resolver drops private, loopback and link-local addresses (unless
//! `TOOL_URL_ALLOWLIST` names them), so a host name cannot resolve its way past the
//! check; IP-literal URLs, which skip the resolver, are checked before sending;
//! redirects may not leave the host; proxies from the environment are ignored. The
//! answer is read up to a byte limit, under the tool's timeout.
//!
//! Signing is the Standard Webhooks scheme through its reference crate
//! (`standardwebhooks`); the `webhook-id` is derived from the message and the call,
//! so a retried call (also by another worker after a crash) carries the same id.

use super::settings::{Allowlist, ToolSettings};
use super::{CallContext, CallResult, Outcome, ToolCall, webhook_id};
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use shared::agent::WebhookSpec;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed (to the same host only).
const MAX_REDIRECTS: usize = 5;

/// The HTTP client every webhook tool shares.
pub fn client(settings: &ToolSettings) -> reqwest::Client {
    crate::llm::install_crypto_provider();
    let guard = Arc::new(Guard {
        allow: settings.tool_url_allowlist.clone(),
    });
    reqwest::Client::builder()
        .dns_resolver(guard)
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let first = attempt.previous().first().and_then(|u| u.host_str());
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if first.is_some() && first == attempt.url().host_str() {
                attempt.follow()
            } else {
                attempt.error("redirect to another host refused")
            }
        }))
        .build()
        .expect("the webhook client builds")
}

/// Resolves host names and drops the addresses tools may not reach.
struct Guard {
    allow: Allowlist,
}

/// Every address of a host was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused: {host} resolves only to private, loopback or link-local addresses (see TOOL_URL_ALLOWLIST)"
)]
struct RefusedAddress {
    host: String,
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| allow.permits(&host, addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(Box::new(RefusedAddress { host }) as _);
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// One webhook tool.
pub struct Webhook {
    spec: WebhookSpec,
    tool: String,
    client: reqwest::Client,
    signer: Option<standardwebhooks::Webhook>,
    headers: HeaderMap,
    allow: Allowlist,
    max_bytes: usize,
}

impl Webhook {
    /// Reads the tool's secret and header values from the environment.
    pub fn new(
        tool: &str,
        spec: &WebhookSpec,
        client: reqwest::Client,
        settings: &ToolSettings,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let env =
            |var: &str| lookup(var).ok_or_else(|| format!("environment variable {var} is not set"));
        let signer = match &spec.secret_env {
            Some(var) => {
                let secret = env(var)?;
                if !secret.starts_with("whsec_") {
                    return Err(format!(
                        "{var} must hold a Standard Webhooks secret (whsec_...)"
                    ));
                }
                Some(
                    standardwebhooks::Webhook::new(&secret)
                        .map_err(|e| format!("{var} is not a valid secret: {e}"))?,
                )
            }
            None => None,
        };
        let mut headers = HeaderMap::new();
        for (name, var) in &spec.headers {
            let value = HeaderValue::from_str(&env(var)?)
                .map_err(|_| format!("{var} is not a valid header value"))?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            headers.insert(name, value);
        }
        Ok(Self {
            spec: spec.clone(),
            tool: tool.to_owned(),
            client,
            signer,
            headers,
            allow: settings.tool_url_allowlist.clone(),
            max_bytes: settings.tool_max_response_bytes as usize,
        })
    }

    /// Calls the customer's server; every failure is an error result.
    pub async fn call(
        &self,
        call: &ToolCall,
        arguments: &Value,
        context: &CallContext,
    ) -> CallResult {
        if let Some(refused) = self.refuse_literal() {
            return refused;
        }
        let body = json!({"message": {
            "type": "tool-calls",
            "toolCallList": [{"id": call.call_id, "name": call.name, "arguments": arguments}],
            "session": {
                "id": context.session_id,
                "user_id": context.user_id,
                "metadata": context.metadata,
            },
            "message_id": context.message_id,
            "timestamp": shared::clock::now_rfc3339(),
        }})
        .to_string();
        let id = webhook_id(context.message_id, &call.call_id);
        let mut request = self
            .client
            .post(self.spec.url.clone())
            .headers(self.headers.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &id);
        if let Some(signer) = &self.signer {
            let timestamp = chrono::Utc::now().timestamp();
            let signature = signer
                .sign(&id, timestamp, body.as_bytes())
                .expect("a JSON body is UTF-8");
            request = request
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature);
        }
        let timeout = Duration::from_secs(self.spec.timeout_secs);
        match tokio::time::timeout(timeout, self.send(request.body(body), &call.call_id)).await {
            Ok(result) => result,
            Err(_) => CallResult::failed(
                Outcome::Timeout,
                format!(
                    "the tool's server did not answer within {} s",
                    self.spec.timeout_secs
                ),
            ),
        }
    }

    /// An IP-literal URL never reaches the resolver: check it here.
    fn refuse_literal(&self) -> Option<CallResult> {
        let host = self.spec.url.host_str()?;
        let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
        (!self.allow.permits(host, ip)).then(|| {
            CallResult::failed(
                Outcome::Refused,
                format!("refused: {host} is a private, loopback or link-local address (see TOOL_URL_ALLOWLIST)"),
            )
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder, call_id: &str) -> CallResult {
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let refused = error_chain(&error).contains("refused:");
                tracing::warn!(tool = %self.tool, error = %error_chain(&error), "webhook call failed");
                return if refused {
                    CallResult::failed(Outcome::Refused, refused_reason(&error))
                } else {
                    CallResult::failed(
                        Outcome::Error,
                        format!(
                            "the tool's server could not be reached: {}",
                            error_chain(&error)
                        ),
                    )
                };
            }
        };
        let status = response.status();
        let body = match self.read_bounded(response).await {
            Ok(body) => body,
            Err(message) => return CallResult::failed(Outcome::Error, message),
        };
        if !status.is_success() {
            return CallResult::failed(
                Outcome::Error,
                format!("the tool's server answered HTTP {}", status.as_u16()),
            );
        }
        let Ok(value) = serde_json::from_slice::<Value>(&body) else {
            // Not JSON: the text is the result.
            return CallResult::ok(Value::String(String::from_utf8_lossy(&body).into_owned()));
        };
        CallResult::ok(vapi_result(value, call_id))
    }

    async fn read_bounded(&self, response: reqwest::Response) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| format!("the tool's answer broke off: {e}"))?;
            if body.len() + piece.len() > self.max_bytes {
                return Err(format!(
                    "the tool's answer is larger than {} bytes",
                    self.max_bytes
                ));
            }
            body.extend_from_slice(&piece);
        }
        Ok(body)
    }
}

/// VAPI's `{"results": [{"toolCallId", "result"}]}` gives the matching result; any
/// other JSON is the result as is.
fn vapi_result(value: Value, call_id: &str) -> Value {
    let found = value
        .get("results")
        .and_then(Value::as_array)
        .and_then(|results| {
            results
                .iter()
                .find(|r| r.get("toolCallId").and_then(Value::as_str) == Some(call_id))
                .or_else(|| (results.len() == 1).then(|| &results[0]))
        })
        .and_then(|r| {
            r.get("result")
                .cloned()
                .or_else(|| r.get("error").map(|e| json!({"error": e})))
        });
    found.unwrap_or(value)
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn refused_reason(error: &reqwest::Error) -> String {
    let chain = error_chain(error);
    match chain.find("refused:") {
        Some(at) => chain[at..].to_owned(),
        None => chain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vapi_results_are_unwrapped() {
        let body = json!({"results": [{"toolCallId": "c1", "result": "booked"}]});
        assert_eq!(vapi_result(body, "c1"), json!("booked"));
        let two = json!({"results": [{"toolCallId": "a", "result": 1}, {"toolCallId": "b", "result": 2}]});
        assert_eq!(vapi_result(two, "b"), json!(2));
        assert_eq!(vapi_result(json!({"ok": true}), "c"), json!({"ok": true}));
    }
}
