//! The agent file (`AGENT_FILE`, YAML or JSON): who the assistant is and which tools it
//! may call, in one file a team keeps beside its deployment (the Helm chart mounts it
//! from a ConfigMap). The format is `docs/protocol.md` "Agent file and tools".
//!
//! Both binaries load it at start-up, so the types live here: the gateway shows the
//! name and lists the tools, the worker prompts, picks the model and runs the tools.
//! Parsing is strict (`deny_unknown_fields` everywhere) and every check that needs
//! only the file happens here, so a typo stops the process with one line naming the
//! field (`tools[1].timeout_secs: ...`) instead of surfacing as a tool that is never
//! offered. Checks that need the worker's environment (the secret's variable is set,
//! the documents folder exists, the schema compiles) are the worker's.

use clap::Args;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where the agent file is.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentSettings {
    /// Agent file (YAML, or JSON when it ends in `.json`): name, system prompt, model,
    /// tools. Unset: `AGENT_NAME`, `SYSTEM_PROMPT` and the `LLM_*` settings apply and
    /// no tools are offered.
    #[arg(long, env = "AGENT_FILE")]
    pub agent_file: Option<PathBuf>,
}

impl AgentSettings {
    /// The agent file's content, checked; `None` without a file.
    pub fn load(&self) -> Result<Option<Agent>, AgentError> {
        self.agent_file.as_deref().map(Agent::load).transpose()
    }
}

/// Why the agent file was refused: one line naming the file and the field.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error("AGENT_FILE {path}: cannot be read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("AGENT_FILE {path}: {field}: {message}")]
    Invalid {
        path: String,
        field: String,
        message: String,
    },
}

/// The assistant as the agent file describes it, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub name: String,
    pub system_prompt: Option<String>,
    pub model: ModelSpec,
    /// Model turns with tool calls per answer; after them the model must answer.
    pub max_tool_rounds: u32,
    pub tools: Vec<ToolSpec>,
}

/// Overrides of the `LLM_*` settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// One tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// What the model calls it (`^[a-zA-Z0-9_-]{1,64}$`, as OpenAI requires).
    pub name: String,
    pub description: String,
    pub kind: ToolKind,
}

/// What runs when the model calls a tool.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolKind {
    /// Searches local documents; no network.
    KnowledgeBase(KnowledgeBaseSpec),
    /// Calls the customer's server.
    Webhook(WebhookSpec),
}

/// A built-in search over a folder of `.md` / `.txt` files.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeBaseSpec {
    /// The folder, resolved against the agent file's folder.
    pub documents: PathBuf,
    /// Passages returned per query.
    pub top_k: u32,
}

/// A tool answered by an HTTP endpoint of the customer's.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    pub url: url::Url,
    /// JSON Schema of the arguments, passed to the model as is.
    pub parameters: Value,
    pub timeout_secs: u64,
    /// Environment variable holding the Standard Webhooks secret (`whsec_...`).
    pub secret_env: Option<String>,
    /// Extra request headers: header name → environment variable holding the value.
    pub headers: BTreeMap<String, String>,
}

impl ToolSpec {
    /// `"knowledge_base"` or `"webhook"`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ToolKind::KnowledgeBase(_) => "knowledge_base",
            ToolKind::Webhook(_) => "webhook",
        }
    }

    /// The JSON Schema of the tool's arguments.
    pub fn parameters(&self) -> Value {
        match &self.kind {
            ToolKind::KnowledgeBase(_) => serde_json::json!({
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look up."}},
                "required": ["query"],
            }),
            ToolKind::Webhook(w) => w.parameters.clone(),
        }
    }
}

/// Turns in a row the model may call tools, when the file does not say.
pub const DEFAULT_MAX_TOOL_ROUNDS: u32 = 5;
/// Webhook timeout when the tool does not say.
pub const DEFAULT_TOOL_TIMEOUT_SECS: u64 = 10;
/// Knowledge-base passages per query when the tool does not say.
pub const DEFAULT_TOP_K: u32 = 3;

// The file as written. Unknown fields are errors; every field but `name` is optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: String,
    system_prompt: Option<String>,
    #[serde(default)]
    model: ModelSpec,
    max_tool_rounds: Option<u32>,
    #[serde(default)]
    tools: Vec<RawTool>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum RawTool {
    KnowledgeBase {
        name: String,
        #[serde(default)]
        description: String,
        documents: PathBuf,
        top_k: Option<u32>,
    },
    Webhook {
        name: String,
        #[serde(default)]
        description: String,
        url: String,
        parameters: Option<Value>,
        timeout_secs: Option<u64>,
        secret_env: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, EnvRef>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvRef {
    env: String,
}

impl Agent {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Self::parse(&text, json, base).map_err(|(field, message)| AgentError::Invalid {
            path: path.display().to_string(),
            field,
            message,
        })
    }

    /// Parses the file's text; relative document folders resolve against `base`.
    /// The error is `(field path, message)`.
    pub fn parse(text: &str, json: bool, base: &Path) -> Result<Self, (String, String)> {
        let raw: RawAgent = if json {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(path_error)?
        } else {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(path_error)?
        };
        raw.check(base)
    }
}

fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> (String, String) {
    let path = e.path().to_string();
    let field = if path == "." {
        "(file)".to_owned()
    } else {
        path
    };
    // One line: YAML errors may carry a multi-line snippet.
    let message = e.inner().to_string().replace('\n', " ");
    // serde_norway already starts some messages with the path.
    let message = match message.strip_prefix(&format!("{field}: ")) {
        Some(rest) => rest.to_owned(),
        None => message,
    };
    (field, message)
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> (String, String) {
    (field.into(), message.into())
}

impl RawAgent {
    fn check(self, base: &Path) -> Result<Agent, (String, String)> {
        if self.name.trim().is_empty() {
            return Err(bad("name", "must not be empty"));
        }
        if let Some(t) = self.model.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(bad("model.temperature", "must be between 0 and 2"));
        }
        if self.model.max_tokens == Some(0) {
            return Err(bad("model.max_tokens", "must be at least 1"));
        }
        if self
            .model
            .name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(bad("model.name", "must not be empty"));
        }
        let max_tool_rounds = self.max_tool_rounds.unwrap_or(DEFAULT_MAX_TOOL_ROUNDS);
        if !(1..=50).contains(&max_tool_rounds) {
            return Err(bad("max_tool_rounds", "must be between 1 and 50"));
        }
        let mut names = HashSet::new();
        let mut tools = Vec::with_capacity(self.tools.len());
        for (i, raw) in self.tools.into_iter().enumerate() {
            let tool = raw.check(base, &format!("tools[{i}]"))?;
            if !names.insert(tool.name.clone()) {
                return Err(bad(
                    format!("tools[{i}].name"),
                    format!("`{}` is used by an earlier tool", tool.name),
                ));
            }
            tools.push(tool);
        }
        Ok(Agent {
            name: self.name,
            system_prompt: self.system_prompt,
            model: self.model,
            max_tool_rounds,
            tools,
        })
    }
}

impl RawTool {
    fn check(self, base: &Path, at: &str) -> Result<ToolSpec, (String, String)> {
        match self {
            RawTool::KnowledgeBase {
                name,
                description,
                documents,
                top_k,
            } => {
                check_name(&name, at)?;
                let top_k = top_k.unwrap_or(DEFAULT_TOP_K);
                if !(1..=20).contains(&top_k) {
                    return Err(bad(format!("{at}.top_k"), "must be between 1 and 20"));
                }
                Ok(ToolSpec {
                    name,
                    description,
                    kind: ToolKind::KnowledgeBase(KnowledgeBaseSpec {
                        documents: base.join(documents),
                        top_k,
                    }),
                })
            }
            RawTool::Webhook {
                name,
                description,
                url,
                parameters,
                timeout_secs,
                secret_env,
                headers,
            } => {
                check_name(&name, at)?;
                let url = url::Url::parse(&url)
                    .map_err(|e| bad(format!("{at}.url"), format!("not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(bad(
                        format!("{at}.url"),
                        "must be an http(s) URL with a host",
                    ));
                }
                let parameters = parameters
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
                if parameters.get("type").and_then(Value::as_str) != Some("object") {
                    return Err(bad(
                        format!("{at}.parameters"),
                        "must be a JSON Schema with `type: object`",
                    ));
                }
                let timeout_secs = timeout_secs.unwrap_or(DEFAULT_TOOL_TIMEOUT_SECS);
                if !(1..=300).contains(&timeout_secs) {
                    return Err(bad(
                        format!("{at}.timeout_secs"),
                        "must be between 1 and 300",
                    ));
                }
                if let Some(var) = &secret_env {
                    check_env_name(var, &format!("{at}.secret_env"))?;
                }
                let mut header_envs = BTreeMap::new();
                for (header, value) in headers {
                    let field = format!("{at}.headers.{header}");
                    let valid = !header.is_empty()
                        && header
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                    if !valid {
                        return Err(bad(field, "not a valid header name"));
                    }
                    if header.to_ascii_lowercase().starts_with("webhook-")
                        || header.eq_ignore_ascii_case("content-type")
                    {
                        return Err(bad(field, "is set by the gateway"));
                    }
                    check_env_name(&value.env, &format!("{field}.env"))?;
                    header_envs.insert(header, value.env);
                }
                Ok(ToolSpec {
                    name,
                    description,
                    kind: ToolKind::Webhook(WebhookSpec {
                        url,
                        parameters,
                        timeout_secs,
                        secret_env,
                        headers: header_envs,
                    }),
                })
            }
        }
    }
}

fn check_name(name: &str, at: &str) -> Result<(), (String, String)> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(bad(
            format!("{at}.name"),
            format!("`{name}` must be 1 to 64 letters, digits, `_` or `-`"),
        ))
    }
}

fn check_env_name(var: &str, field: &str) -> Result<(), (String, String)> {
    let valid = !var.is_empty()
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("`{var}` is not an environment variable name"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name: Info Agent
system_prompt: |
  You are the information assistant.
model: {name: gpt-4o-mini, temperature: 0.3, max_tokens: 600}
max_tool_rounds: 4
tools:
  - name: knowledge_base_lombardia
    type: knowledge_base
    description: Opening hours, prices, preparation for exams.
    documents: ./kb
  - name: book_appointment
    type: webhook
    description: Books an appointment for a patient.
    url: https://api.example.com/tools
    parameters:
      type: object
      properties: {exam: {type: string}, date: {type: string}}
      required: [exam]
    timeout_secs: 20
    secret_env: BOOKING_WEBHOOK_SECRET
    headers: {X-Api-Key: {env: BOOKING_API_KEY}}
"#;

    fn parse(text: &str) -> Result<Agent, (String, String)> {
        Agent::parse(text, false, Path::new("/etc/agent"))
    }

    #[test]
    fn the_contract_example_parses() {
        let agent = parse(EXAMPLE).unwrap();
        assert_eq!(agent.name, "Info Agent");
        assert_eq!(agent.max_tool_rounds, 4);
        assert_eq!(agent.model.max_tokens, Some(600));
        assert_eq!(agent.tools.len(), 2);
        let ToolKind::KnowledgeBase(kb) = &agent.tools[0].kind else {
            panic!("knowledge base first")
        };
        assert_eq!(kb.documents, Path::new("/etc/agent/./kb"));
        assert_eq!(kb.top_k, DEFAULT_TOP_K);
        let ToolKind::Webhook(w) = &agent.tools[1].kind else {
            panic!("webhook second")
        };
        assert_eq!(w.timeout_secs, 20);
        assert_eq!(w.headers["X-Api-Key"], "BOOKING_API_KEY");
        assert_eq!(w.parameters["required"][0], "exam");
    }

    #[test]
    fn only_the_name_is_required_and_json_works() {
        let agent = Agent::parse(r#"{"name": "A"}"#, true, Path::new(".")).unwrap();
        assert_eq!(agent.max_tool_rounds, DEFAULT_MAX_TOOL_ROUNDS);
        assert!(agent.tools.is_empty() && agent.system_prompt.is_none());
        assert_eq!(parse("system_prompt: hi").unwrap_err().0, "(file)");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("name: A\nmodl: {}", "modl", "unknown field"),
            ("name: A\nmodel: {temp: 1}", "model.temp", "unknown field"),
            ("name: A\nmax_tool_rounds: 0", "max_tool_rounds", "between"),
            (
                "name: A\nmax_tool_rounds: many",
                "max_tool_rounds",
                "invalid",
            ),
            (
                "name: A\ntools: [{type: webhook, name: t, url: 'http://h', timeout_secs: 0}]",
                "tools[0].timeout_secs",
                "between",
            ),
            (
                "name: A\ntools: [{type: webhook, name: t, url: 'http://h', urll: x}]",
                "tools[0]",
                "urll",
            ),
            (
                "name: A\ntools: [{type: smtp, name: t}]",
                "tools[0].type",
                "unknown variant `smtp`",
            ),
            (
                "name: A\ntools: [{type: webhook, name: 'a b', url: 'http://h'}]",
                "tools[0].name",
                "letters",
            ),
            (
                "name: A\ntools: [{type: webhook, name: t, url: 'ftp://h'}]",
                "tools[0].url",
                "http",
            ),
            (
                "name: A\ntools: [{type: webhook, name: t, url: 'http://h', parameters: {type: string}}]",
                "tools[0].parameters",
                "object",
            ),
            (
                "name: A\ntools: [{type: webhook, name: t, url: 'http://h', headers: {X-K: {env: 'a-b'}}}]",
                "tools[0].headers.X-K.env",
                "environment",
            ),
            (
                "name: A\ntools: [{type: knowledge_base, name: t, documents: d}, {type: knowledge_base, name: t, documents: e}]",
                "tools[1].name",
                "earlier",
            ),
        ];
        let mut wrong = Vec::new();
        for (text, field, needle) in cases {
            let (got_field, message) = parse(text).unwrap_err();
            if got_field != field || !message.contains(needle) || message.contains('\n') {
                wrong.push(format!("{text} => {got_field}: {message}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn load_reports_the_file_in_one_line() {
        let dir = std::env::temp_dir().join(format!("agent-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.yaml");
        std::fs::write(&path, "name: A\nmax_tool_rounds: 99\n").unwrap();
        let error = Agent::load(&path).unwrap_err().to_string();
        assert!(error.starts_with("AGENT_FILE "), "{error}");
        assert!(
            error.contains("max_tool_rounds: must be between 1 and 50"),
            "{error}"
        );
        let missing = Agent::load(&dir.join("nope.yaml")).unwrap_err().to_string();
        assert!(missing.contains("cannot be read"), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
