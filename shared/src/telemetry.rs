//! Logs and traces, set up once by each binary.
//!
//! Logs: `RUST_LOG` filters them, `LOG_FORMAT=json` for production log pipelines,
//! human-readable text otherwise. Inside a message's spans every line carries the
//! span's `trace_id` field (set when traces are on), so a log line leads to its trace.
//!
//! Traces are off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-only
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Then the spans of this project's
//! crates go out over OTLP/HTTP (protobuf), batched by a background thread of the
//! SDK; the standard `OTEL_*` variables apply (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`). The filter of `RUST_LOG`
//! does not apply to them: `RUST_LOG=warn` still exports every message's spans.
//!
//! One user message is one trace: the gateway's span for it is the parent of the
//! worker's, across processes, through the W3C context the message is queued with
//! ([`TraceContext`]). Whichever worker answers (the first, or one that reclaimed
//! it after a crash) continues that trace.

use opentelemetry::Context;
pub use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::SystemTime;
use thiserror::Error;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterExt, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Why traces could not be set up (the process stops with this one line).
#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={0} is not supported: this build exports traces over http/protobuf only"
    )]
    Protocol(String),
    #[error("the OTLP trace exporter could not be set up (OTEL_EXPORTER_OTLP_ENDPOINT): {0}")]
    Exporter(String),
}

/// The trace context a user message is queued with: W3C `traceparent` (and
/// `tracestate`) of the gateway's span for it. Empty when traces are off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceContext {
    pub fn is_empty(&self) -> bool {
        self.traceparent.is_none()
    }

    /// The context of `span`, to continue it elsewhere; empty when it is not traced.
    pub fn of(span: &tracing::Span) -> Self {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        Self {
            traceparent: carrier.remove("traceparent"),
            tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
        }
    }

    /// Makes `span` (not yet entered) a child of this context. An empty or unreadable
    /// context leaves it the root of a trace of its own.
    pub fn continue_in(&self, span: &tracing::Span) {
        let Some(traceparent) = &self.traceparent else {
            return;
        };
        let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.clone())]);
        if let Some(state) = &self.tracestate {
            carrier.insert("tracestate".to_owned(), state.clone());
        }
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
}

/// Records the span's trace id in its `trace_id` field (declared `Empty` at creation),
/// so the log lines inside it carry the id. Call after [`TraceContext::continue_in`].
pub fn record_trace_id(span: &tracing::Span) {
    let context = span.context();
    let trace = context.span().span_context().trace_id();
    if trace != opentelemetry::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace));
    }
}

/// Records a span that happened between two moments already past (the wait in the
/// queue, known only once a worker takes the message) as a child of `parent`.
pub fn record_past_span(
    name: &'static str,
    parent: &tracing::Span,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    let parent: Context = parent.context();
    if !parent.span().span_context().is_valid() {
        return;
    }
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start.min(end))
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    span.end_with_timestamp(end);
}

/// The tracer of [`record_past_span`], set when traces are on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// What [`init`] set up; [`Telemetry::shutdown`] sends the spans still buffered.
#[must_use = "call shutdown() before exiting, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the buffered spans and stops the exporter, waiting at most the export
    /// timeout. Call once, at the end of `main` (SIGTERM included).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK's shutdown blocks until its export thread is done: off the runtime.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "flushing traces failed");
        }
    }
}

/// Installs the global subscriber: logs, plus OTLP traces when an endpoint is set
/// (`service` names the process unless `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` does). Later calls (tests start many apps) only log.
pub fn init(service: &str, default_filter: &str) -> Result<Telemetry, TelemetryError> {
    let provider = if traces_configured() {
        Some(tracer_provider(service)?)
    } else {
        None
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![log_layer(default_filter)];
    if let Some(provider) = &provider {
        let tracer = provider.tracer(service.to_owned());
        let _ = TRACER.set(tracer.clone());
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(project_spans())
                .boxed(),
        );
    }
    if tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_err()
    {
        // Already installed by an earlier call: this provider would export nothing.
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Ok(Telemetry { provider: None });
    }
    Ok(Telemetry { provider })
}

/// Logs only, for tests and tools: [`init`] without traces.
pub fn init_logging(default_filter: &str) {
    let _ = tracing_subscriber::registry()
        .with(log_layer(default_filter))
        .try_init();
}

fn log_layer(default_filter: &str) -> Box<dyn Layer<Registry> + Send + Sync> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let spec = filter_spec(rust_log.as_deref(), default_filter);
    let filter = EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| EnvFilter::new(filter_spec(None, default_filter)));
    // Spans that carry a `trace_id` (a message's roots) are known to the log layer
    // whatever `RUST_LOG` says, so every line inside them names the trace; a span is
    // printed only as the context of a line, never on its own.
    let carries_trace =
        filter_fn(|meta| meta.is_span() && meta.fields().field("trace_id").is_some())
            .with_max_level_hint(LevelFilter::INFO);
    let filter = filter.or(carries_trace);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let layer = tracing_subscriber::fmt::layer();
    if json {
        layer.json().with_filter(filter).boxed()
    } else {
        layer.with_filter(filter).boxed()
    }
}

/// async-openai logs every body it cannot read as its own type at ERROR ("failed
/// deserialization of: ..."): a provider's error in another shape, an empty
/// keep-alive event. The worker reads those itself and logs what they mean (the
/// provider's message), so that line is off unless `RUST_LOG` names the crate.
const QUIET_CRATE_ERRORS: &str = "async_openai::error=off";

/// The filter: `RUST_LOG` (else `default_filter`), with [`QUIET_CRATE_ERRORS`]
/// unless it names async-openai.
fn filter_spec(rust_log: Option<&str>, default_filter: &str) -> String {
    let spec = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(default_filter);
    if spec.contains("async_openai") {
        spec.to_owned()
    } else {
        format!("{spec},{QUIET_CRATE_ERRORS}")
    }
}

/// Spans (and the events inside them) of this project's crates, at info and above:
/// libraries' own spans and debug detail stay out of the traces.
fn project_spans() -> Targets {
    Targets::new()
        .with_target("gateway", LevelFilter::INFO)
        .with_target("worker", LevelFilter::INFO)
        .with_target("shared", LevelFilter::INFO)
}

fn traces_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

fn tracer_provider(service: &str) -> Result<SdkTracerProvider, TelemetryError> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(protocol) = std::env::var(name)
            && protocol.trim() != "http/protobuf"
        {
            return Err(TelemetryError::Protocol(protocol));
        }
    }
    // The exporter's reqwest uses rustls with no provider of its own (ring is the
    // build's); installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build())
}

/// The SDK's resource (from `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`), named
/// `service` when neither names the service.
fn resource(service: &str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(service.to_owned())
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_openais_own_error_lines_are_off_unless_asked_for() {
        assert_eq!(filter_spec(None, "info"), "info,async_openai::error=off");
        assert_eq!(
            filter_spec(Some(" "), "info"),
            "info,async_openai::error=off"
        );
        assert_eq!(
            filter_spec(Some("warn,worker=debug"), "info"),
            "warn,worker=debug,async_openai::error=off"
        );
        assert_eq!(
            filter_spec(Some("async_openai=trace"), "info"),
            "async_openai=trace"
        );
        for spec in [filter_spec(None, "info"), filter_spec(Some("warn"), "x")] {
            EnvFilter::try_new(&spec).expect("a valid filter");
        }
    }

    #[test]
    fn an_untraced_span_has_an_empty_context() {
        let span = tracing::info_span!("x");
        assert!(TraceContext::of(&span).is_empty());
    }

    /// A real tracer (no exporter) behind a subscriber of this thread only.
    fn traced<T>(run: impl FnOnce() -> T) -> T {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, run)
    }

    fn ids(span: &tracing::Span) -> (opentelemetry::TraceId, opentelemetry::SpanId) {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        (span_context.trace_id(), span_context.span_id())
    }

    #[test]
    fn a_continued_span_joins_the_trace_it_was_queued_in() {
        traced(|| {
            let gateway = tracing::info_span!("chat.message");
            let queued = TraceContext::of(&gateway);
            let (trace, parent) = ids(&gateway);
            assert_eq!(
                queued.traceparent.as_deref(),
                Some(format!("00-{trace}-{parent}-01").as_str())
            );
            let worker =
                tracing::info_span!(parent: None, "chat.answer", trace_id = tracing::field::Empty);
            queued.continue_in(&worker);
            record_trace_id(&worker);
            let (joined, own) = ids(&worker);
            assert_eq!(joined, trace);
            assert_ne!(own, parent);
        });
    }

    #[test]
    fn an_unreadable_context_starts_a_trace_of_its_own() {
        traced(|| {
            let queued = TraceContext {
                traceparent: Some("00-not-a-trace-01".into()),
                tracestate: None,
            };
            let worker = tracing::info_span!(parent: None, "chat.answer");
            queued.continue_in(&worker);
            let (trace, _) = ids(&worker);
            assert_ne!(trace, opentelemetry::TraceId::INVALID);
        });
    }

    #[test]
    fn an_empty_context_is_left_out_of_the_json() {
        assert_eq!(
            serde_json::to_string(&TraceContext::default()).unwrap(),
            "{}"
        );
        let traced = TraceContext {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: None,
        };
        let json = serde_json::to_string(&traced).unwrap();
        assert_eq!(serde_json::from_str::<TraceContext>(&json).unwrap(), traced);
    }
}
