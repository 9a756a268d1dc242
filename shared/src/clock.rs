//! Timestamps as the contract writes them: RFC 3339, UTC, milliseconds, `Z`.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time in the contract's format, e.g. `2026-11-26T10:30:00.123Z`.
pub fn now_rfc3339() -> String {
    format_rfc3339(Utc::now())
}

/// Formats a time in the contract's format.
pub fn format_rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds since the Unix epoch, the unit stored in Redis.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// Formats epoch milliseconds in the contract's format.
pub fn millis_to_rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(format_rfc3339)
        .unwrap_or_else(now_rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(
            millis_to_rfc3339(1_764_153_000_123),
            "2025-11-26T10:30:00.123Z"
        );
        let now = now_rfc3339();
        assert!(now.ends_with('Z') && now.len() == 24, "{now}");
    }
}
