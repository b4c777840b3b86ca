//! Stripe's global rate limiter, per account, when a test turns it on:
//! "Sandbox: 25 requests per second" per Stripe account, and beyond it
//! `429 Too Many Requests` with the `rate_limit` code
//! (https://docs.stripe.com/rate-limits). Each account (the `Stripe-Account`
//! a request acts for; the platform itself is "") has its own budget, one
//! second at a time.

use std::collections::HashMap;

#[derive(Default)]
pub struct Limiter {
    per_second: Option<u32>,
    /// By account: the second being counted, and the requests in it.
    windows: HashMap<String, (i64, u32)>,
    /// Requests refused so far.
    pub refused: u64,
}

impl Limiter {
    pub fn set(&mut self, per_second: Option<u32>) {
        self.per_second = per_second;
        self.windows.clear();
    }

    /// Counts one request of `account` at `now_ms`; false when it is over
    /// the limit (and so refused).
    pub fn admit(&mut self, account: &str, now_ms: i64) -> bool {
        let Some(limit) = self.per_second else {
            return true;
        };
        let second = now_ms.div_euclid(1000);
        let window = self
            .windows
            .entry(account.to_string())
            .or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 >= limit {
            self.refused += 1;
            return false;
        }
        window.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_gets_its_own_budget_per_second() {
        let mut l = Limiter::default();
        assert!((0..100).all(|_| l.admit("acct_a", 0)), "off by default");
        l.set(Some(25));
        assert!((0..25).all(|_| l.admit("acct_a", 1_000)));
        assert!(!l.admit("acct_a", 1_999));
        assert!(
            l.admit("acct_b", 1_999),
            "another account is not limited by a's requests"
        );
        assert!(l.admit("acct_a", 2_000), "a new second, a new budget");
        assert_eq!(l.refused, 1);
    }
}
