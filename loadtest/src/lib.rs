//! Load generation and the mock LLM used by tests, benchmarks and key-less runs.
//!
//! # Layout
//!
//! - [`mock_llm`]: an OpenAI-compatible Chat Completions server with a deterministic
//!   answer, tunable speed, tool calls and faults injected per message or per N
//!   requests. The `mock-llm` binary is a thin wrapper around [`mock_llm::serve`].
//! - [`load`]: the load generator behind the `loadtest` binary (sessions, protocol
//!   checks, stats, progress, reports) and the benchmark driver (`loadtest bench`).
//! - [`tool_server`]: a webhook tool server for tests that checks Standard Webhooks
//!   signatures on its own.

pub mod load;
pub mod mock_llm;
pub mod tool_server;
