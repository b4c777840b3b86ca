//! The pacing schedule's rule for one account (see `crate::pacing`), pure:
//! SQLite runs it in Rust, PostgreSQL as one statement.

/// The schedule itself, for one account: given when the next free turn is
/// (`None`: never used), the turn taken now and the next free one after it;
/// `None` when the free turn is more than `max_wait_ms` away (nothing taken).
pub fn take_turn(
    next_free: Option<i64>,
    now_ms: i64,
    interval_ms: i64,
    max_wait_ms: i64,
) -> Option<(i64, i64)> {
    let slot = next_free.map_or(now_ms, |n| n.max(now_ms));
    (slot - now_ms <= max_wait_ms).then_some((slot, slot + interval_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_spaced_by_the_interval_and_refused_beyond_the_longest_wait() {
        assert_eq!(take_turn(None, 1_000, 40, 1_000), Some((1_000, 1_040)));
        assert_eq!(
            take_turn(Some(1_040), 1_000, 40, 1_000),
            Some((1_040, 1_080))
        );
        assert_eq!(
            take_turn(Some(500), 1_000, 40, 1_000),
            Some((1_000, 1_040)),
            "an idle account's turn is now, not in the past"
        );
        assert_eq!(take_turn(Some(2_001), 1_000, 40, 1_000), None);
    }
}
