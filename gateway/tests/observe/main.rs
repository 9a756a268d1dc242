//! Observability as an operator sees it, on real processes: `/metrics` read by the
//! Prometheus project's own text parser, the served OpenAPI spec checked by a
//! validator and fuzzed by schemathesis, traces received by an OTLP/HTTP receiver.
//! The third-party tools are Python packages in a private venv
//! (`scripts/python-env.sh`, installed on first use).

#[allow(dead_code)]
#[path = "../faults/cluster.rs"]
mod cluster;
mod procs;
mod python;
mod socket;

mod docs;
mod metrics;
mod openapi;
mod traces;
