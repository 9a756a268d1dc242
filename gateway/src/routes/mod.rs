//! REST routes; each module owns one group.

pub mod demo;
pub mod info;
pub mod metrics;
pub mod ownership;
pub mod refusals;
pub mod sessions;
pub mod usage;
