//! Logging set-up shared by the binaries: `RUST_LOG` filters, `LOG_FORMAT=json` for
//! production log pipelines, human-readable text otherwise.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops (tests start many apps).
pub fn init_logging(default_filter: &str) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let spec = filter_spec(rust_log.as_deref(), default_filter);
    let filter = EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| EnvFilter::new(filter_spec(None, default_filter)));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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
}
