//! Integration tests of the gateway against real Redis, real sockets, real HTTP and
//! the project's own `mock-llm`. One test binary; modules by area.

mod bad_input;
mod browser;
mod budgets;
mod helpers;
mod limits_shared;
mod llm_compat;
mod multi_instance;
mod recovery;
mod rest;
mod security_canary;
mod security_claims;
mod security_disclosure;
mod security_frames;
mod security_jwt;
mod security_limits;
mod security_ownership;
mod security_support;
mod security_surface;
mod seeds;
mod tools;
mod ws_rejoin;
mod ws_simple;
mod ws_stream;
