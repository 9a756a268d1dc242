//! `mock-llm`: an OpenAI-compatible Chat Completions server for tests, benchmarks and
//! running the system without an API key.
//!
//! Its answer is a pure function of the request's `messages` ([`reply_text`]), so a
//! test knows exactly what a worker must relay, token by token ([`reply_tokens`]).
//! Speed comes from [`MockSettings`]; faults come either from the settings (every Nth
//! request) or from `[mock:...]` directives in the last user message, so one test can
//! break one request:
//!
//! | directive | effect |
//! |---|---|
//! | `[mock:status=CODE]` | HTTP CODE with an OpenAI error body; 429 adds `retry-after: 1` |
//! | `[mock:status=429 retry_after=S]` | ... with `retry-after: S` (0 makes retrying clients fast) |
//! | `[mock:status=429 quota]` | `insufficient_quota`, which clients must not retry |
//! | `[mock:hang]` | never answers (until the client leaves or the server stops) |
//! | `[mock:cut=N]` | streams N content deltas, then drops the connection |
//! | `[mock:slow=MS]`, `[mock:first=MS]` | per-token / first-token delay for this request |
//! | `[mock:pieces=N]` | the same text streamed as N content deltas (tokens joined) |
//! | `[mock:tool=NAME]` (repeatable) | calls tool NAME with `{"query": "<message>"}`, if the request has `tools` and no tool result follows the message; several are parallel calls of one turn, arguments streamed in three pieces |
//! | `[mock:tool_rounds=N]` | ... in each of the first N turns after the message (then answers from the results) |
//! | `[mock:bad_args]` | ... with arguments that are not valid JSON |
//! | `[mock:arg=KEY]` | ... with the message as argument `KEY` instead of `query` |
//! | `[mock:deviate=NAME]` (repeatable) | answers in a shape real servers use but the specification does not: `bare` (no `id`/`object`/`created`/`model`), `empty_finish` (`finish_reason: ""`), `empty_usage` (`usage: {}`), `usage_chunk` (a last usage-only chunk), `reasoning` (`reasoning_content` deltas), `comments` (SSE comments and pings), `crlf`, `no_done` (no `[DONE]`), `no_index` (tool calls without `index`), `error_event` (an error event mid-stream), `flat_error` (an error body `{"error":"text"}`) |
//!
//! Mind that async-openai retries 429 and 5xx answers up to three times, honouring
//! `retry-after` (else 100, 200, 400 ms): a directive in the message hits every
//! retry, a periodic fault only one request.
//!
//! `/mock/requests` and `/mock/stats` let a test check what was sent.
//!
//! # Layout
//!
//! - `settings`: [`MockSettings`], flags and `MOCK_LLM_*` variables.
//! - `conversation`: reading the `messages` array.
//! - `reply`: the deterministic text and its tokens.
//! - `directives`: the `[mock:...]` tags.
//! - `deviation`: the off-specification shapes of `[mock:deviate=..]`.
//! - `answer`: text or tool calls, as deltas or as one message.
//! - `wire`: OpenAI request, chunk, completion and model shapes.
//! - `error`: OpenAI error answers.
//! - `sse`: the paced, cuttable event stream.
//! - `state`: counters, request log, shutdown signal.
//! - `server`: routes and [`serve`]; `handle`: [`MockServer`] for tests.

mod answer;
mod conversation;
mod deviation;
mod directives;
mod error;
mod handle;
mod reply;
mod server;
mod settings;
mod sse;
mod state;
mod wire;

pub use handle::MockServer;
pub use reply::{reply_text, reply_tokens};
pub use server::serve;
pub use settings::MockSettings;
