//! Each account's schedule of Stripe requests.

use super::*;
use crate::db::PacingStore;

impl PacingStore for Sqlite {
    fn pace(
        &self,
        account: &str,
        now_ms: i64,
        interval_ms: i64,
        max_wait_ms: i64,
    ) -> StoreResult<Option<i64>> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let next_free = turns.get(account).copied();
        let taken = crate::db::turns::take_turn(next_free, now_ms, interval_ms, max_wait_ms);
        Ok(taken.map(|(slot, next)| {
            turns.insert(account.to_string(), next);
            slot
        }))
    }
}
