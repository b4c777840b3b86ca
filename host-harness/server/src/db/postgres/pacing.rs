//! Each account's schedule of Stripe requests.

use super::*;
use crate::db::PacingStore;

impl PacingStore for Postgres {
    /// `turns::take_turn` as one statement: the row's lock orders the
    /// workers, and a turn too far away updates nothing and returns no row.
    fn pace(
        &self,
        account: &str,
        now_ms: i64,
        interval_ms: i64,
        max_wait_ms: i64,
    ) -> StoreResult<Option<i64>> {
        let row = self
            .conn()?
            .query_opt(
                "INSERT INTO stripe_pacing AS p (account, next_free_ms)
                 VALUES ($1, $2::BIGINT + $3::BIGINT)
                 ON CONFLICT (account) DO UPDATE
                 SET next_free_ms = GREATEST(p.next_free_ms, $2) + $3
                 WHERE GREATEST(p.next_free_ms, $2) <= $2 + $4::BIGINT
                 RETURNING next_free_ms - $3",
                &[&account, &now_ms, &interval_ms, &max_wait_ms],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }
}
