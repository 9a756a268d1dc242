//! The agent's tools, ready to run: the agent file's specs with their secrets read
//! from the environment, their argument schemas compiled and their knowledge bases
//! indexed, all at start-up, so a missing secret or folder stops the worker instead
//! of failing the first customer who needs the tool.
//!
//! A call never fails an answer: whatever goes wrong (arguments the schema refuses,
//! a timeout, a 500, a refused address) becomes `{"error": "..."}` as the tool's
//! result, so the model can tell the user. Which of those happened is the call's
//! [`Outcome`], for logs and metrics.
//!
//! - [`settings`]: `TOOL_URL_ALLOWLIST` and the size limits.
//! - [`webhook`]: the signed HTTP call to the customer's server, with the address guard.
//! - [`knowledge`]: the built-in BM25 search over a documents folder.

pub mod knowledge;
pub mod settings;
pub mod webhook;

pub use settings::ToolSettings;

use serde_json::{Value, json};
use shared::agent::{Agent, ToolKind, ToolSpec};
use shared::ids::{MessageId, SessionId, UserId};
use std::sync::Arc;
use thiserror::Error;

/// A tool that cannot be set up (the worker does not start).
#[derive(Debug, Error)]
pub enum ToolError {
    #[error("AGENT_FILE: tool `{tool}`: {message}")]
    Setup { tool: String, message: String },
}

impl ToolError {
    fn setup(tool: &str, message: impl Into<String>) -> Self {
        ToolError::Setup {
            tool: tool.to_owned(),
            message: message.into(),
        }
    }
}

/// One call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's id for the call (`call_...`).
    pub call_id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON text, possibly invalid).
    pub arguments: String,
}

/// Who the call is made for (what the webhook body tells the customer's server).
#[derive(Debug, Clone)]
pub struct CallContext {
    pub session_id: SessionId,
    pub user_id: Option<UserId>,
    pub metadata: Value,
    pub message_id: MessageId,
}

/// How a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The model named a tool that does not exist.
    UnknownTool,
    /// The arguments were not JSON or did not match the schema; nothing was called.
    InvalidArguments,
    Timeout,
    /// The address guard refused the URL.
    Refused,
    /// Any other failure (connection, status, body).
    Error,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UnknownTool => "unknown_tool",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }
}

/// A call's result, as given to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    pub result: Value,
    pub outcome: Outcome,
}

impl CallResult {
    fn ok(result: Value) -> Self {
        Self {
            result,
            outcome: Outcome::Ok,
        }
    }

    fn failed(outcome: Outcome, error: impl Into<String>) -> Self {
        Self {
            result: json!({"error": error.into()}),
            outcome,
        }
    }
}

/// A tool's name, description and argument schema, as offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

struct Tool {
    spec: ToolSpec,
    validator: jsonschema::Validator,
    runner: Runner,
}

enum Runner {
    Knowledge(knowledge::KnowledgeBase),
    Webhook(webhook::Webhook),
}

/// The agent's tools; cheap to clone. Empty without an agent file or tools.
#[derive(Clone, Default)]
pub struct Toolbox {
    tools: Arc<Vec<Tool>>,
    max_result_chars: usize,
}

impl Toolbox {
    /// Sets up every tool of `agent`, reading secrets from the process environment.
    pub fn build(agent: Option<&Agent>, settings: &ToolSettings) -> Result<Self, ToolError> {
        Self::build_with_env(agent, settings, &|var| std::env::var(var).ok())
    }

    /// [`Toolbox::build`] with the environment given as a lookup (tests).
    pub fn build_with_env(
        agent: Option<&Agent>,
        settings: &ToolSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ToolError> {
        let Some(agent) = agent else {
            return Ok(Self::default());
        };
        let client = webhook::client(settings);
        let mut tools = Vec::with_capacity(agent.tools.len());
        for spec in &agent.tools {
            let validator = jsonschema::validator_for(&spec.parameters()).map_err(|e| {
                ToolError::setup(
                    &spec.name,
                    format!("parameters is not a valid JSON Schema: {e}"),
                )
            })?;
            let runner = match &spec.kind {
                ToolKind::KnowledgeBase(kb) => Runner::Knowledge(
                    knowledge::KnowledgeBase::open(kb, settings)
                        .map_err(|e| ToolError::setup(&spec.name, e))?,
                ),
                ToolKind::Webhook(w) => Runner::Webhook(
                    webhook::Webhook::new(&spec.name, w, client.clone(), settings, env)
                        .map_err(|e| ToolError::setup(&spec.name, e))?,
                ),
            };
            tools.push(Tool {
                spec: spec.clone(),
                validator,
                runner,
            });
        }
        Ok(Self {
            tools: Arc::new(tools),
            max_result_chars: settings.tool_max_result_chars as usize,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// What the model is offered.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools
            .iter()
            .map(|t| ToolDefinition {
                name: t.spec.name.clone(),
                description: t.spec.description.clone(),
                parameters: t.spec.parameters(),
            })
            .collect()
    }

    /// Runs one call. Arguments that are not JSON or that the schema refuses go back to
    /// the model as an error without calling anything.
    pub async fn run(&self, call: &ToolCall, context: &CallContext) -> CallResult {
        let Some(tool) = self.tools.iter().find(|t| t.spec.name == call.name) else {
            return CallResult::failed(
                Outcome::UnknownTool,
                format!("there is no tool named `{}`", call.name),
            );
        };
        let raw = if call.arguments.trim().is_empty() {
            "{}"
        } else {
            call.arguments.as_str()
        };
        let arguments: Value = match serde_json::from_str(raw) {
            Ok(value) => value,
            Err(e) => {
                return CallResult::failed(
                    Outcome::InvalidArguments,
                    format!(
                        "the arguments are not valid JSON ({e}); call the tool again with a JSON object"
                    ),
                );
            }
        };
        let problems: Vec<String> = tool
            .validator
            .iter_errors(&arguments)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if !problems.is_empty() {
            return CallResult::failed(
                Outcome::InvalidArguments,
                format!(
                    "the arguments do not match the tool's schema: {}",
                    problems.join("; ")
                ),
            );
        }
        let mut result = match &tool.runner {
            Runner::Knowledge(kb) => kb.query(&arguments),
            Runner::Webhook(hook) => hook.call(call, &arguments, context).await,
        };
        result.result = bound(result.result, self.max_result_chars);
        result
    }
}

/// A result whose JSON text is over `max` characters becomes its text, cut.
fn bound(result: Value, max: usize) -> Value {
    let text = match &result {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= max {
        return result;
    }
    let cut: String = text.chars().take(max).collect();
    Value::String(format!("{cut}… (cut to {max} characters)"))
}

/// The webhook id of one call: the same for every retry of the call (restarts
/// included), so the customer's server can deduplicate.
pub fn webhook_id(message_id: MessageId, call_id: &str) -> String {
    let call: String = call_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    format!("msg_{}_{call}", message_id.to_string().replace('-', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_results_are_cut() {
        assert_eq!(bound(json!({"a": 1}), 100), json!({"a": 1}));
        let cut = bound(Value::String("x".repeat(200)), 10);
        assert!(cut.as_str().unwrap().starts_with("xxxxxxxxxx…"));
    }

    #[test]
    fn webhook_ids_are_stable_per_call() {
        let m = MessageId::new_random();
        assert_eq!(webhook_id(m, "call_1"), webhook_id(m, "call_1"));
        assert_ne!(webhook_id(m, "call_1"), webhook_id(m, "call_2"));
        assert!(webhook_id(m, "call 1\n").ends_with("_call1"));
    }
}
