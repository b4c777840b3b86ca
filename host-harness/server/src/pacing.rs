//! Stripe's rate limit, kept on our side of the wire. Stripe allows each
//! account a number of requests per second (live 100, sandbox 25) and answers
//! 429 beyond it (https://docs.stripe.com/rate-limits). A month-end run that
//! sends every invoice at once spends most of those requests on 429s and then
//! waits out backoffs while the budget sits unused. With pacing on, every
//! worker takes its turn from one schedule per account kept in the store, so
//! the whole fleet sends at the chosen rate however many workers there are:
//! a request waits for its turn when that is near, and when it is far the
//! call gets the 429 Stripe would have sent, without sending anything, so the
//! work is queued and retried after it.

use crate::db::{Db, StoreResult};
use crate::ports::Pacer;
pub use crate::ports::Turn;
use std::sync::Arc;
use std::time::Duration;

/// Requests per second per account, and how long one may wait for its turn.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub per_second: u32,
    pub max_wait: Duration,
}

impl Pacing {
    pub fn new(per_second: u32) -> Option<Self> {
        (per_second > 0).then_some(Self {
            per_second,
            max_wait: Duration::from_secs(1),
        })
    }

    /// Milliseconds between two requests of one account, rounded up so the
    /// rate never goes over `per_second` (24/s: 42 ms, 23.8/s).
    pub fn interval_ms(&self) -> i64 {
        let n = i64::from(self.per_second);
        (1000 + n - 1) / n
    }

    /// Takes `account`'s next turn from the schedule in the store.
    pub fn turn(&self, db: &Db, account: &str, now_ms: i64) -> StoreResult<Turn> {
        let interval = self.interval_ms();
        let max_wait = i64::try_from(self.max_wait.as_millis()).unwrap_or(i64::MAX);
        Ok(match db.pace(account, now_ms, interval, max_wait)? {
            Some(slot) => Turn::After(ms(slot - now_ms)),
            // The schedule is full for longer than we wait: come back when
            // the turns already given have gone.
            None => Turn::Refused {
                retry_after: self.max_wait + ms(interval),
            },
        })
    }
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n).unwrap_or(0))
}

/// The schedule of a store, as the runtime's `Pacer`.
pub struct PacedStore {
    pub pacing: Pacing,
    pub db: Arc<Db>,
}

impl Pacer for PacedStore {
    fn turn(&self, account: &str, now_ms: i64) -> StoreResult<Turn> {
        self.pacing.turn(&self.db, account, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_never_lets_more_than_the_rate_through() {
        for n in [1, 24, 25, 30, 99, 100, 1000, 5000] {
            let interval = Pacing::new(n).unwrap().interval_ms();
            assert!(
                interval >= 1 && interval * i64::from(n) >= 1000,
                "{n}/s: {interval} ms"
            );
        }
        assert_eq!(Pacing::new(25).unwrap().interval_ms(), 40);
        assert!(Pacing::new(0).is_none(), "0 turns pacing off");
    }
}
