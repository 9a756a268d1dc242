//! The worker: consumes the inbox, builds prompts from session history, streams the
//! LLM's answer and publishes it as events.
//!
//! # Layout
//!
//! - [`settings`]: LLM and consumer settings (env / flags).
//! - [`llm`]: the model client (OpenAI-compatible, or the built-in demo model).
//! - [`prompt`]: history → prompt.
//! - [`tools`]: the agent's tools (webhooks, knowledge bases), set up at start-up.
//! - [`tool_turn`]: one model turn's tool calls: announced, run concurrently, stored.
//! - [`coalesce`]: when a streamed answer's tokens go out as chunk batches.
//! - [`answer`]: one delivery from `begin` to `finish` (restarts, cancel, dead letters).
//! - [`cancel`]: cancel tokens of the answers running here.
//! - [`consumer`]: the read loop, claim keeping, reclaiming, concurrency and shutdown.
//! - [`probes`]: `/livez` and `/readyz` for the standalone binary.
//! - [`usage`]: the tokens an answer cost, charged to its payer's budget.
//!
//! The gateway links this crate to run a worker in-process in embedded mode.

pub mod answer;
pub mod cancel;
pub mod coalesce;
pub mod consumer;
pub mod llm;
pub mod probes;
pub mod prompt;
pub mod settings;
pub mod tool_turn;
pub mod tools;
pub mod usage;

use answer::Answerer;
use settings::{ConsumerSettings, LlmSettings};
use shared::backend::Backend;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A consumer started by [`spawn`].
pub struct Running {
    /// Ends when the consumer has stopped (after `shutdown` and the drain).
    pub task: JoinHandle<()>,
    /// Whether its intake is reading (for `/readyz`).
    pub reading: consumer::Reading,
}

/// Starts a consumer on `backend`; it stops (draining) when `shutdown` is cancelled.
/// Fails, before anything runs, when a tool of the agent cannot be set up.
pub fn spawn(
    backend: Backend,
    llm_settings: LlmSettings,
    consumer: ConsumerSettings,
    consumer_name: String,
    shutdown: CancellationToken,
) -> Result<Running, tools::ToolError> {
    shared::metrics::register(shared::metrics::Role::Worker);
    let tools = tools::Toolbox::build(llm_settings.agent.as_deref(), &llm_settings.tools)?;
    shared::metrics::tools_configured(tools.definitions().iter().map(|t| t.name.as_str()));
    let answerer = Answerer {
        backend,
        llm: llm::Llm::from_settings(&llm_settings),
        llm_settings,
        consumer,
        cancels: cancel::CancelRegistry::default(),
        tools,
    };
    let reading = consumer::Reading::default();
    let task = tokio::spawn(consumer::run(
        answerer,
        consumer_name,
        shutdown,
        reading.clone(),
    ));
    Ok(Running { task, reading })
}

/// A consumer name unique to this process: host name plus a short random suffix.
pub fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}
