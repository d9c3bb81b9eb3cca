//! Wall-clock timestamps: stored as Unix milliseconds, shown as RFC 3339 in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Returns the current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Formats Unix milliseconds as an RFC 3339 timestamp in UTC with millisecond precision.
pub fn format_ms(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(at) => {
            let at = at
                .replace_nanosecond((ms.rem_euclid(1000) as u32) * 1_000_000)
                .unwrap_or(at);
            at.format(&Rfc3339).unwrap_or_else(|_| ms.to_string())
        }
        Err(_) => ms.to_string(),
    }
}
