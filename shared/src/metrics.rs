//! Prometheus metrics: every family's name, type and help text in one place, so the
//! gateway and the worker cannot disagree on a name, and the small functions that
//! record them (callers never spell a metric name or a label value).
//!
//! Recording goes through the `metrics` facade into one process-wide
//! `metrics-exporter-prometheus` recorder, installed on first use (tests start many
//! apps in one process; they share it). There is no exporter listener: the gateway
//! renders [`render`] on its `/metrics` route, the worker on its probe port.
//!
//! Labels are closed sets (outcomes, error codes, protocols, tool names from the agent
//! file), never a session, message or user id, so the number of series is bounded.

use crate::model::QueueStats;
use crate::wire::{ErrorCode, Protocol};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// The media type of [`render`]'s output (Prometheus text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Sockets open on this instance, by protocol (gauge).
pub const SOCKETS_OPEN: &str = "chat_sockets_open";
/// User messages accepted and queued (counter).
pub const MESSAGES_ACCEPTED: &str = "chat_messages_accepted_total";
/// Client frames refused, by `reason` (the error code the client got) (counter).
pub const MESSAGES_REJECTED: &str = "chat_messages_rejected_total";
/// Answers finished, by `outcome`: `complete` / `error` / `cancelled` (counter).
pub const MESSAGES: &str = "chat_messages_total";
/// Events written to sockets, by protocol (counter).
pub const EVENTS_FORWARDED: &str = "chat_events_forwarded_total";
/// Sockets closed because the client did not keep up (1013) (counter).
pub const SLOW_CLIENT_CLOSES: &str = "chat_slow_client_closes_total";
/// User message accepted to its first chunk published (histogram, seconds).
pub const FIRST_CHUNK_SECONDS: &str = "chat_first_chunk_seconds";
/// User message accepted to its answer finished (histogram, seconds).
pub const ANSWER_SECONDS: &str = "chat_answer_duration_seconds";
/// LLM requests, by `outcome`: `ok` / `error` / `timeout` / `cancelled` (counter).
pub const LLM_REQUESTS: &str = "chat_llm_requests_total";
/// LLM request sent to its first token (histogram, seconds).
pub const LLM_FIRST_TOKEN_SECONDS: &str = "chat_llm_first_token_seconds";
/// Tool calls, by `tool` (its name in the agent file) and `outcome`: `ok` / `error` (counter).
pub const TOOL_CALLS: &str = "chat_tool_calls_total";
/// Sessions waiting for or being answered by a worker (gauge, read at scrape time).
pub const INBOX_BACKLOG: &str = "chat_inbox_backlog";
/// Age of the oldest inbox entry (gauge, seconds, read at scrape time).
pub const INBOX_OLDEST_SECONDS: &str = "chat_inbox_oldest_pending_seconds";
/// Length of the dead-letter stream (gauge, read at scrape time).
pub const DEAD_LETTER_BACKLOG: &str = "chat_dead_letter_backlog";
/// Messages taken over from a worker that stopped (counter).
pub const RECLAIMS: &str = "chat_reclaims_total";
/// Messages given up on after too many tries (counter).
pub const DEAD_LETTERS: &str = "chat_dead_letters_total";
/// Pub/sub reconnects and re-subscriptions after lost events (counter).
pub const PUBSUB_RECONNECTS: &str = "chat_pubsub_reconnects_total";
/// Cross-pod limit checks, by `limit` (`requests` / `sessions` / `messages` / `budget`)
/// and `outcome` (`allowed` / `refused` / `store_error`) (counter).
pub const LIMIT_CHECKS: &str = "chat_limit_checks_total";
/// LLM tokens charged to callers' budgets (counter).
pub const TOKENS_CHARGED: &str = "chat_tokens_charged_total";
/// Store (Redis) commands that failed (counter).
pub const STORE_ERRORS: &str = "chat_store_errors_total";

/// Upper bounds of the latency histograms' buckets, in seconds: from a fast local
/// model's first token to a long answer.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and describes every family.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for name in [FIRST_CHUNK_SECONDS, ANSWER_SECONDS, LLM_FIRST_TOKEN_SECONDS] {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.into()), LATENCY_BUCKETS)
                .expect("bucket list is not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test's) may already be global; then ours renders empty
        // families but nothing breaks.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        describe();
        handle
    })
}

/// The Prometheus text of every family recorded in this process, with `queue` (when
/// known) as the inbox gauges.
pub fn render(queue: Option<QueueStats>) -> String {
    let handle = install();
    if let Some(queue) = queue {
        gauge!(INBOX_BACKLOG).set(queue.backlog as f64);
        gauge!(INBOX_OLDEST_SECONDS).set(queue.oldest_age_ms as f64 / 1000.0);
        gauge!(DEAD_LETTER_BACKLOG).set(queue.dead_letters as f64);
    }
    // Histograms are aggregated on upkeep; run it right before rendering.
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    describe_gauge!(
        SOCKETS_OPEN,
        "WebSockets open on this instance, by protocol."
    );
    describe_counter!(MESSAGES_ACCEPTED, "User messages accepted and queued.");
    describe_counter!(
        MESSAGES_REJECTED,
        "Client frames refused, by the error code sent back."
    );
    describe_counter!(MESSAGES, "Answers finished, by outcome.");
    describe_counter!(
        LIMIT_CHECKS,
        "Cross-pod rate and budget checks, by limit and outcome."
    );
    describe_counter!(TOKENS_CHARGED, "LLM tokens charged to callers' budgets.");
    describe_counter!(EVENTS_FORWARDED, "Events written to sockets, by protocol.");
    describe_counter!(
        SLOW_CLIENT_CLOSES,
        "Sockets closed (1013) because the client did not keep up."
    );
    describe_histogram!(
        FIRST_CHUNK_SECONDS,
        Unit::Seconds,
        "User message accepted to its first chunk published."
    );
    describe_histogram!(
        ANSWER_SECONDS,
        Unit::Seconds,
        "User message accepted to its answer finished."
    );
    describe_counter!(LLM_REQUESTS, "LLM requests, by outcome.");
    describe_histogram!(
        LLM_FIRST_TOKEN_SECONDS,
        Unit::Seconds,
        "LLM request sent to its first token."
    );
    describe_counter!(TOOL_CALLS, "Tool calls, by tool and outcome.");
    describe_gauge!(
        INBOX_BACKLOG,
        "Sessions waiting for or being answered by a worker."
    );
    describe_gauge!(
        INBOX_OLDEST_SECONDS,
        Unit::Seconds,
        "Age of the oldest inbox entry."
    );
    describe_gauge!(DEAD_LETTER_BACKLOG, "Messages in the dead-letter stream.");
    describe_counter!(RECLAIMS, "Messages taken over from a worker that stopped.");
    describe_counter!(DEAD_LETTERS, "Messages given up on after too many tries.");
    describe_counter!(
        PUBSUB_RECONNECTS,
        "Pub/sub reconnects and re-subscriptions."
    );
    describe_counter!(STORE_ERRORS, "Store (Redis) commands that failed.");
}

/// Which side of the system a process runs, to present its families (at zero) from
/// the first scrape on, before anything happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Worker,
}

/// Registers `role`'s families at zero, with every value of their closed label sets.
pub fn register(role: Role) {
    install();
    counter!(STORE_ERRORS).increment(0);
    match role {
        Role::Gateway => {
            for protocol in [Protocol::Stream, Protocol::Simple] {
                gauge!(SOCKETS_OPEN, "protocol" => protocol.as_str()).increment(0.0);
                counter!(EVENTS_FORWARDED, "protocol" => protocol.as_str()).increment(0);
            }
            counter!(MESSAGES_ACCEPTED).increment(0);
            counter!(SLOW_CLIENT_CLOSES).increment(0);
            counter!(PUBSUB_RECONNECTS).increment(0);
            gauge!(INBOX_BACKLOG).increment(0.0);
        }
        Role::Worker => {
            for outcome in AnswerOutcome::ALL {
                counter!(MESSAGES, "outcome" => outcome.as_str()).increment(0);
            }
            for outcome in LlmOutcome::ALL {
                counter!(LLM_REQUESTS, "outcome" => outcome.as_str()).increment(0);
            }
            counter!(RECLAIMS).increment(0);
            counter!(DEAD_LETTERS).increment(0);
            gauge!(INBOX_BACKLOG).increment(0.0);
        }
    }
}

/// Registers [`TOOL_CALLS`] at zero for every tool of the agent file, so the family
/// and its series exist before the first call.
pub fn tools_configured<'a>(tools: impl IntoIterator<Item = &'a str>) {
    for tool in tools {
        for outcome in [ToolOutcome::Ok, ToolOutcome::Error] {
            counter!(TOOL_CALLS, "tool" => tool.to_owned(), "outcome" => outcome.as_str())
                .increment(0);
        }
    }
}

/// How an answer ended (label `outcome` of [`MESSAGES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerOutcome {
    Complete,
    Error,
    Cancelled,
}

impl AnswerOutcome {
    const ALL: [Self; 3] = [Self::Complete, Self::Error, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// How one LLM request ended (label `outcome` of [`LLM_REQUESTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmOutcome {
    Ok,
    Error,
    Timeout,
    Cancelled,
}

impl LlmOutcome {
    const ALL: [Self; 4] = [Self::Ok, Self::Error, Self::Timeout, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }
}

/// How a tool call ended (label `outcome` of [`TOOL_CALLS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolOutcome {
    /// The tool answered; the model got its result.
    Ok,
    /// Timeout, refused connection, non-2xx, unknown tool: the model got an error.
    Error,
}

impl ToolOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// Seconds from an RFC 3339 time (a message's `created_at`) to now; `None` when the
/// time does not parse or lies ahead (clock skew between pods).
fn seconds_since(rfc3339: &str) -> Option<f64> {
    let then = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    let elapsed = chrono::Utc::now().signed_duration_since(then);
    elapsed.to_std().ok().map(|d| d.as_secs_f64())
}

/// A socket opened; the gauge goes down when the returned guard drops.
pub fn socket_opened(protocol: Protocol) -> SocketGauge {
    gauge!(SOCKETS_OPEN, "protocol" => protocol.as_str()).increment(1.0);
    SocketGauge(protocol)
}

/// Holds one socket in [`SOCKETS_OPEN`].
#[derive(Debug)]
pub struct SocketGauge(Protocol);

impl Drop for SocketGauge {
    fn drop(&mut self) {
        gauge!(SOCKETS_OPEN, "protocol" => self.0.as_str()).decrement(1.0);
    }
}

/// A cross-pod limit was checked (`limit`, `outcome`: closed sets, see [`LIMIT_CHECKS`]).
pub fn limit_checked(limit: &'static str, outcome: &'static str) {
    counter!(LIMIT_CHECKS, "limit" => limit, "outcome" => outcome).increment(1);
}

/// An answer's tokens were charged to a caller's budget.
pub fn tokens_charged(tokens: u64) {
    counter!(TOKENS_CHARGED).increment(tokens);
}

/// A user message was accepted and queued.
pub fn message_accepted() {
    counter!(MESSAGES_ACCEPTED).increment(1);
}

/// A client frame was refused with `code`.
pub fn message_rejected(code: ErrorCode) {
    counter!(MESSAGES_REJECTED, "reason" => code.as_str()).increment(1);
}

/// The counter of events written to sockets of `protocol`, for a socket to hold:
/// looking it up costs a label key and a registry search, once per socket instead
/// of once per event.
pub fn events_forwarded_counter(protocol: Protocol) -> metrics::Counter {
    counter!(EVENTS_FORWARDED, "protocol" => protocol.as_str())
}

/// A socket was closed because its client did not keep up.
pub fn slow_client_closed() {
    counter!(SLOW_CLIENT_CLOSES).increment(1);
}

/// The first chunk of the answer to a message accepted at `accepted_at` went out.
pub fn first_chunk(accepted_at: &str) {
    if let Some(seconds) = seconds_since(accepted_at) {
        histogram!(FIRST_CHUNK_SECONDS).record(seconds);
    }
}

/// The answer to a message accepted at `accepted_at` was finished with `outcome`.
pub fn answer_finished(accepted_at: &str, outcome: AnswerOutcome) {
    counter!(MESSAGES, "outcome" => outcome.as_str()).increment(1);
    if let Some(seconds) = seconds_since(accepted_at) {
        histogram!(ANSWER_SECONDS).record(seconds);
    }
}

/// One LLM request ended with `outcome`.
pub fn llm_request(outcome: LlmOutcome) {
    counter!(LLM_REQUESTS, "outcome" => outcome.as_str()).increment(1);
}

/// The model's first token came `after` the request was sent.
pub fn llm_first_token(after: Duration) {
    histogram!(LLM_FIRST_TOKEN_SECONDS).record(after.as_secs_f64());
}

/// One call of the tool named `tool` (a name from the agent file, so the label set is
/// bounded by the configuration) ended with `outcome`.
pub fn tool_call(tool: &str, outcome: ToolOutcome) {
    counter!(TOOL_CALLS, "tool" => tool.to_owned(), "outcome" => outcome.as_str()).increment(1);
}

/// A message of a stopped worker was taken over.
pub fn reclaimed(count: u64) {
    counter!(RECLAIMS).increment(count);
}

/// A message was dead-lettered.
pub fn dead_lettered() {
    counter!(DEAD_LETTERS).increment(1);
}

/// The bus subscription reconnected, or was re-subscribed because it went quiet.
pub fn pubsub_reconnected() {
    counter!(PUBSUB_RECONNECTS).increment(1);
}

/// Counts a failed store call (used by every `Backend` operation).
pub fn store_result<T, E>(result: &Result<T, E>) {
    if result.is_err() {
        counter!(STORE_ERRORS).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_since_parses_the_contracts_timestamps() {
        let past = (chrono::Utc::now() - chrono::Duration::milliseconds(1500))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let seconds = seconds_since(&past).expect("parses");
        assert!((1.4..60.0).contains(&seconds), "{seconds}");
        assert_eq!(seconds_since("not a time"), None);
        let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        assert_eq!(seconds_since(&future), None);
    }
}
