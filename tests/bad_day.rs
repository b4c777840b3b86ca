//! The plugin on a bad day at Stripe (issue 9, part 3), through the
//! emulator's fault plan: retries with the same idempotency key inside a
//! bounded budget, Stripe-Should-Retry and Retry-After honoured, a retryable
//! error at the end (never a guess), and no key replayed after Stripe's 24 h.

use e2e_tests::*;
use host_harness::runtime::{PluginError, StripeError, Transition};
use stripe_emulator::faults::{Fault, Rule, When};

fn charge_fault(fault: Fault, when: When, times: u32) -> Rule {
    Rule {
        method: Some("POST".into()),
        path: "/v1/payment_intents".into(),
        fault,
        when,
        times,
    }
}

fn paid_in(ts: &[Transition]) -> bool {
    ts.iter().any(|t| matches!(t, Transition::InvoicePaid(_)))
}

/// The PaymentIntent POSTs the plugin sent, with their idempotency keys.
fn charge_keys(h: &Harness) -> Vec<String> {
    h.requests()
        .iter()
        .filter(|r| r["request"].as_str().unwrap_or_default().starts_with("POST") && r["request"].as_str().unwrap_or_default().ends_with("/v1/payment_intents"))
        .map(|r| {
            r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|h| h.as_str()?.strip_prefix("Idempotency-Key: ").map(str::to_string))
                .next()
                .unwrap_or_default()
        })
        .collect()
}

fn with_card() -> (Harness, String) {
    let h = Harness::new();
    let cus = h.stripe_customer("Bad Day Ltd");
    h.add_card(&cus, "4242424242424242", true);
    h.requests();
    (h, cus)
}

#[test]
fn a_lost_or_failed_answer_is_retried_at_once_with_the_same_key_and_charges_once() {
    for (fault, when) in [
        (Fault::ServerError, When::AfterWork),
        (Fault::Timeout, When::AfterWork),
        (Fault::Reset, When::BeforeWork),
        (Fault::LockTimeout, When::BeforeWork),
    ] {
        let (h, cus) = with_card();
        h.emulator.inject(charge_fault(fault, when, 1));
        let ts = h.finalize(&h.merchant, &h.invoice_for(&cus));
        assert!(paid_in(&ts), "{fault:?}: {ts:?}");
        let keys = charge_keys(&h);
        assert_eq!(keys.len(), 2, "{fault:?}: one retry");
        assert_eq!(keys[0], keys[1], "{fault:?}: the same key");
        assert_eq!(h.intents("succeeded"), 1, "{fault:?}: one charge");
    }
}

/// Finalizes with every charge meeting `fault`; returns Stripe's error.
fn finalize_refused(fault: Fault, when: When) -> (Harness, StripeError) {
    let (h, cus) = with_card();
    h.emulator.inject(charge_fault(fault, when, 10));
    let result = h
        .runtime
        .on_invoice_finalized(&h.merchant, &h.invoice_for(&cus))
        .unwrap();
    let Err(PluginError::Stripe(e)) = result else {
        panic!("{result:?}")
    };
    (h, e)
}

#[test]
fn the_retry_budget_ends_in_a_retryable_error_and_no_link_beside_an_unknown_charge() {
    let (h, e) = finalize_refused(Fault::ServerError, When::AfterWork);
    assert!(e.retryable, "{e:?}");
    assert_eq!(charge_keys(&h).len(), 3, "a bounded budget: three tries");
    assert_eq!(h.sessions("open"), 0, "no pay link beside a charge of unknown outcome");
}

#[test]
fn a_rate_limit_is_not_hammered_and_says_when_to_come_back() {
    let (h, e) = finalize_refused(Fault::RateLimited, When::BeforeWork);
    assert!(e.retryable);
    assert_eq!(e.retry_after_ms, Some(1000), "Stripe's Retry-After, passed on");
    assert_eq!(charge_keys(&h).len(), 1, "no retry before Retry-After");
}

/// A charge whose answer was lost, finalized again more than 24 hours later:
/// Stripe has forgotten the key, so sending it again would charge twice. The
/// plugin asks Stripe what the earlier attempt did first.
#[test]
fn after_24_hours_the_old_key_is_not_replayed_the_earlier_charge_is_looked_up() {
    for (when, what) in [(When::AfterWork, "the lost charge is adopted"), (When::BeforeWork, "nothing was taken: a new attempt")] {
        let (h, cus) = with_card();
        h.emulator.inject(charge_fault(Fault::Timeout, when, 3));
        let inv = h.invoice_for(&cus);
        let first = h.runtime.on_invoice_finalized(&h.merchant, &inv).unwrap();
        assert!(first.is_err(), "{what}: {first:?}");
        h.clock.advance_ms(25 * 3600 * 1000);
        let ts = h.finalize(&h.merchant, &inv);
        assert!(paid_in(&ts), "{what}: {ts:?}");
        assert_eq!(h.intents("succeeded"), 1, "{what}: charged once");
        let keys = charge_keys(&h);
        let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
        match when {
            When::AfterWork => assert_eq!(distinct.len(), 1, "{what}: no new key: {keys:?}"),
            When::BeforeWork => assert_eq!(distinct.len(), 2, "{what}: a new key: {keys:?}"),
        }
    }
}
