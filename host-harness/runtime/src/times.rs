//! Times as people read them: the invoice view's `nextRetryAt`, the log.

/// `ms` since the epoch as RFC 3339, UTC, to the second.
pub fn rfc3339(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}
