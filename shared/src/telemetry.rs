//! Logging set-up shared by the binaries: `RUST_LOG` filters, `LOG_FORMAT=json` for
//! production log pipelines, human-readable text otherwise.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops (tests start many apps).
pub fn init_logging(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
