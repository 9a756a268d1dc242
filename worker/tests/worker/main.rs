//! Integration tests of the worker: its model client against `mock-llm` over HTTP,
//! and its consumer (intake, reclaim priority, readiness) on a private
//! `redis-server`. One test binary; modules by area.

mod helpers;
mod intake;
mod llm;
