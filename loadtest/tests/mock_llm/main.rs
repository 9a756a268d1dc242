//! Integration tests of the mock LLM: a real server on a free port, real HTTP,
//! through async-openai (the client the worker uses) and raw reqwest.

mod binary;
mod control;
mod deviations;
mod faults;
mod helpers;
mod streaming;
mod tools;
