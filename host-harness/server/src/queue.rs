//! The durable work queue's runners: work that failed with a retryable
//! error (a finalize that met a Stripe 429 or 5xx, or a timeout; a
//! merchant's catch-up sync that did) is kept in the store and retried with
//! backoff by whichever worker is free.
//! A job is held by one worker at a time (a lease; `SKIP LOCKED` on
//! PostgreSQL), deleted once done, and never lost: a worker that dies lets
//! its lease run out, and another takes the job. Running a job twice (after
//! a lost lease) changes nothing: a finalize is idempotent in the plugin.
//! A job that fails for good is kept as a dead letter, which an operator
//! lists and queues again (`/dead-letters`).

use crate::bindings::PluginError;

/// Where the host notes which merchants' syncs this period are queued (a kv
/// namespace no merchant's account id can be).
pub(crate) const SYNC_PERIODS: &str = "host/sync-periods";

/// How long a worker holds a job before another may take it.
pub(crate) const LEASE_MS: i64 = 60_000;
/// The longest wait between two tries.
const MAX_BACKOFF_MS: i64 = 5 * 60_000;

/// Why a try failed, as far as waiting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Stripe's rate limiter (429 `rate_limit`): the account is busy now,
    /// the request is fine. Waiting longer each time would only leave the
    /// account's budget unused, so the wait does not grow.
    RateLimited,
    /// Anything else a retry can cure (5xx, a timeout, a lock): the wait
    /// doubles, as Stripe advises.
    Transient,
}

impl Failure {
    pub fn of(e: &PluginError) -> Self {
        match e {
            PluginError::Stripe(s)
                if s.status == 429 && s.code.as_deref() == Some("rate_limit") =>
            {
                Failure::RateLimited
            }
            _ => Failure::Transient,
        }
    }
}

/// How long after try number `attempts` (1 for the first) job `id` waits
/// for the next, never less than Stripe's `Retry-After`: after a rate
/// limit, that (or 1 s) and up to 2 s more; otherwise doubling from 1 s to
/// 5 min and up to 1 s more. The extra, fixed per job, spreads jobs that
/// failed together.
pub fn backoff_ms(id: i64, attempts: i32, failure: Failure, retry_after_ms: Option<u64>) -> i64 {
    let asked = retry_after_ms.map_or(0, |ms| i64::try_from(ms).unwrap_or(MAX_BACKOFF_MS));
    let spread = id.wrapping_mul(7_919).rem_euclid(1_000);
    match failure {
        Failure::RateLimited => asked.max(1_000) + 2 * spread,
        Failure::Transient => {
            let doubling = 1_000i64
                .saturating_mul(1i64 << attempts.clamp(1, 20).saturating_sub(1))
                .min(MAX_BACKOFF_MS);
            doubling.max(asked) + spread
        }
    }
}

pub(crate) fn retry_after(e: &PluginError) -> Option<u64> {
    match e {
        PluginError::Stripe(s) => s.retry_after_ms,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes_and_honours_retry_after() {
        let t = Failure::Transient;
        assert_eq!(backoff_ms(0, 1, t, None), 1_000);
        assert_eq!(backoff_ms(0, 2, t, None), 2_000);
        assert_eq!(backoff_ms(0, 4, t, None), 8_000);
        assert_eq!(backoff_ms(0, 30, t, None), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(0, 1, t, Some(3_000)), 3_000);
        let spread = backoff_ms(1, 1, t, None);
        assert!((1_000..2_000).contains(&spread), "{spread}");
    }

    #[test]
    fn a_rate_limit_is_waited_out_without_growing() {
        let r = Failure::RateLimited;
        assert_eq!(backoff_ms(0, 1, r, Some(1_000)), 1_000);
        assert_eq!(
            backoff_ms(0, 9, r, Some(1_000)),
            1_000,
            "the ninth try waits as the first"
        );
        assert_eq!(backoff_ms(0, 9, r, None), 1_000);
        assert_eq!(backoff_ms(0, 2, r, Some(4_000)), 4_000);
        assert!((1_000..3_000).contains(&backoff_ms(5, 7, r, Some(1_000))));
    }
}
