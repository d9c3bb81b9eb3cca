//! Wall-clock timestamps: stored as Unix milliseconds, shown as RFC 3339 in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::macros::format_description;

/// Returns the current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Formats Unix milliseconds as an RFC 3339 timestamp in UTC with exactly three fraction
/// digits, so that timestamps have one width and sort as strings.
pub fn format_ms(ms: i64) -> String {
    let layout =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(layout).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_have_fixed_width() {
        assert_eq!(
            super::format_ms(1_796_400_000_650),
            "2026-12-04T16:00:00.650Z"
        );
        assert_eq!(super::format_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
