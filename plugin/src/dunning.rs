//! Dunning, the pure rules: which declines are worth retrying, when the
//! next retry is due, and who is told of a failure. No host calls.
//!
//! A soft decline may succeed later on the same card (the money is not
//! there yet, the issuer was down); a hard one will not (stolen, lost,
//! fraudulent, a wrong number, "do not try again"), and the customer is
//! asked to pay through the link instead.
//! https://docs.stripe.com/declines/codes
//! https://docs.stripe.com/declines/card#retrying-issuer-declines

const DAY_MS: u64 = 86_400_000;

/// Declines worth retrying on the same card, by `decline_code`.
const SOFT_DECLINES: [&str; 5] = [
    "insufficient_funds",
    "processing_error",
    "try_again_later",
    "issuer_not_available",
    "reenter_transaction",
];

/// Whether a decline may succeed later on the same card. An advice code
/// wins over the decline code: `try_again_later` makes any decline soft,
/// `do_not_try_again` or `confirm_card_data` any decline hard.
/// `authentication_required` is never one: the customer must be present.
pub fn soft(code: Option<&str>, decline_code: Option<&str>, advice_code: Option<&str>) -> bool {
    if code == Some("authentication_required") {
        return false;
    }
    match advice_code {
        Some("try_again_later") => true,
        Some(_) => false,
        None => {
            decline_code.is_some_and(|d| SOFT_DECLINES.contains(&d))
                || code == Some("processing_error")
        }
    }
}

/// How a failed payment attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// An off-session charge of the payment method on file (auto-charge,
    /// or a retry of one): the one kind dunning retries.
    OffSession,
    /// The customer on Checkout's page, who can try again there.
    Checkout,
}

/// A failed attempt, as dunning sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    pub channel: Channel,
    pub soft: bool,
    /// Which retry the attempt was (0: not a retry), as its charge says.
    pub retry: u32,
}

impl Failed {
    pub fn retried(self) -> bool {
        self.channel == Channel::OffSession && self.soft
    }
}

/// The next retry: when, and how many are still to come, it included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    pub due_ms: u64,
    pub retries_left: u32,
}

/// After `retries_done` retries, the next on the schedule `days` (days after
/// the first failure, at `first_failed_ms`); none when the schedule is
/// spent or empty.
pub fn next_retry(days: &[u32], retries_done: u32, first_failed_ms: u64) -> Option<Next> {
    let k = usize::try_from(retries_done).ok()?;
    let day = *days.get(k)?;
    Some(Next {
        due_ms: first_failed_ms.saturating_add(u64::from(day).saturating_mul(DAY_MS)),
        retries_left: u32::try_from(days.len() - k).unwrap_or(u32::MAX),
    })
}

/// Whether a failure is told to anyone (as the caller would otherwise
/// tell it): any but a soft-declined retry is; a retry only when it was the
/// schedule's last. Read from the attempt itself, so a retry's failure
/// heard late (after a reopen, say) is told as it was then: not at all.
pub fn told(failed: Failed, scheduled: usize) -> bool {
    !failed.retried() || failed.retry == 0 || failed.retry as usize >= scheduled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_declines_are_retried_and_hard_ones_are_not() {
        for code in [
            "insufficient_funds",
            "processing_error",
            "try_again_later",
            "issuer_not_available",
        ] {
            assert!(soft(Some("card_declined"), Some(code), None), "{code}");
        }
        for code in [
            "stolen_card",
            "lost_card",
            "fraudulent",
            "incorrect_number",
            "generic_decline",
            "expired_card",
        ] {
            assert!(!soft(Some("card_declined"), Some(code), None), "{code}");
        }
        assert!(!soft(
            Some("card_declined"),
            Some("do_not_honor"),
            Some("do_not_try_again")
        ));
        assert!(!soft(
            Some("card_declined"),
            Some("insufficient_funds"),
            Some("do_not_try_again")
        ));
        assert!(soft(
            Some("card_declined"),
            Some("do_not_honor"),
            Some("try_again_later")
        ));
        assert!(!soft(
            Some("authentication_required"),
            None,
            Some("try_again_later")
        ));
        assert!(!soft(Some("incorrect_number"), None, None));
    }

    #[test]
    fn the_default_schedule_retries_four_times_from_the_first_failure() {
        let days = [1, 3, 5, 7];
        let t0 = 1_000;
        let due: Vec<(u64, u32)> = (0..5)
            .filter_map(|k| next_retry(&days, k, t0))
            .map(|n| ((n.due_ms - t0) / DAY_MS, n.retries_left))
            .collect();
        assert_eq!(due, [(1, 4), (3, 3), (5, 2), (7, 1)]);
        assert_eq!(next_retry(&[], 0, t0), None);
    }

    #[test]
    fn only_the_first_failure_and_the_last_retry_are_told() {
        let retry = |retry| Failed {
            channel: Channel::OffSession,
            soft: true,
            retry,
        };
        assert!(told(retry(0), 2));
        assert!(!told(retry(1), 2));
        assert!(told(retry(2), 2));
        assert!(told(
            Failed {
                soft: false,
                ..retry(1)
            },
            2
        ));
        assert!(told(
            Failed {
                channel: Channel::Checkout,
                ..retry(1)
            },
            2
        ));
    }
}
