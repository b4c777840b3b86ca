//! The plugin on a bad day at Stripe (issue 9, part 3), through the
//! emulator's fault plan: retries with the same idempotency key inside a
//! bounded budget, Stripe-Should-Retry and Retry-After honoured, a retryable
//! error at the end (never a guess), and no key replayed after Stripe's 24 h.

use e2e_tests::*;
use host_runtime::bindings::{PluginError, StripeError, Transition};
use host_tools::demo::INVOICE_JSON;
use stripe_emulator::faults::{Fault, Rule, When};

fn charge_fault(fault: Fault, when: When, times: u32) -> Rule {
    Rule {
        method: Some("POST".into()),
        account: None,
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
        .filter(|r| {
            r["request"]
                .as_str()
                .unwrap_or_default()
                .starts_with("POST")
                && r["request"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("/v1/payment_intents")
        })
        .map(|r| {
            r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|h| {
                    h.as_str()?
                        .strip_prefix("Idempotency-Key: ")
                        .map(str::to_string)
                })
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
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
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
    assert_eq!(
        h.sessions("open"),
        0,
        "no pay link beside a charge of unknown outcome"
    );
}

#[test]
fn a_rate_limit_is_not_hammered_and_says_when_to_come_back() {
    let (h, e) = finalize_refused(Fault::RateLimited, When::BeforeWork);
    assert!(e.retryable);
    assert_eq!(
        e.retry_after_ms,
        Some(1000),
        "Stripe's Retry-After, passed on"
    );
    assert_eq!(charge_keys(&h).len(), 1, "no retry before Retry-After");
}

/// A charge whose answer was lost, finalized again more than 24 hours later:
/// Stripe has forgotten the key, so sending it again would charge twice. The
/// plugin asks Stripe what the earlier attempt did first.
#[test]
fn after_24_hours_the_old_key_is_not_replayed_the_earlier_charge_is_looked_up() {
    for (when, what) in [
        (When::AfterWork, "the lost charge is adopted"),
        (When::BeforeWork, "nothing was taken: a new attempt"),
    ] {
        let (h, cus) = with_card();
        h.emulator.inject(charge_fault(Fault::Timeout, when, 3));
        let inv = h.invoice_for(&cus);
        let first = h
            .runtime
            .on_invoice_finalized(TENANT, &h.merchant, &inv)
            .unwrap();
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

/// Stripe stops retrying after three days and disables an endpoint that
/// keeps failing: here no webhook arrives for a day. A sync reads what was
/// missed from /v1/events and every invoice converges; the late deliveries
/// then change nothing and email no one twice.
#[test]
fn webhooks_missed_for_a_day_are_recovered_by_sync() {
    let h = Harness::new();
    let mut m = h.merchant.clone();
    m.auto_charge = false;
    let mut sessions = Vec::new();
    for n in 1..=4 {
        let id = format!("inv_sync_{n}");
        let mut doc: serde_json::Value = serde_json::from_str(INVOICE_JSON).unwrap();
        doc["id"] = id.clone().into();
        h.records().insert_draft(&doc, &id).unwrap();
        let mut inv = invoice();
        inv.id = id.clone();
        inv.number = format!("INV-S{n}");
        let link = last_link(&h.finalize(&m, &inv)).clone();
        sessions.push((id, link.session().to_string()));
    }
    // Three are paid on Checkout's page, one of them after a decline; the
    // fourth is left unpaid. No webhook reaches the host.
    for (n, (_, cs)) in sessions.iter().enumerate().take(3) {
        let pay = |card: &str| {
            h.emulator.handle(
                "POST",
                &format!("/_test/checkout/sessions/{cs}/complete"),
                &[],
                format!("card={card}").as_bytes(),
            )
        };
        if n == 1 {
            assert_eq!(pay("4000000000000002").status, 402);
        }
        assert_eq!(pay("4242424242424242").status, 200);
    }
    h.clock.advance_ms(24 * 3600 * 1000);
    let emails_before = h.emails().len();
    let (mut cursor, mut calls) = (None, 0);
    loop {
        calls += 1;
        let out = h
            .runtime
            .on_sync(TENANT, &m, cursor.as_deref())
            .unwrap()
            .unwrap_or_else(|e| panic!("sync failed: {e:?}"));
        h.records().apply(&out.transitions).unwrap();
        cursor = Some(out.next_cursor.clone());
        if !out.more {
            break;
        }
        assert!(calls < 10);
    }
    let status = |id: &str| h.records().invoice_view(id).unwrap().unwrap()["status"].clone();
    for (id, _) in &sessions[..3] {
        assert_eq!(status(id), "PAID", "{id}");
    }
    assert_ne!(
        status(&sessions[3].0),
        "PAID",
        "the unpaid one stays unpaid"
    );
    let emails_after_sync = h.emails().len();
    assert!(
        emails_after_sync >= emails_before,
        "receipts and notices of the missed events go out once"
    );
    // Stripe's own late deliveries, then another sync: nothing changes.
    for e in h.emulator.events() {
        let body = serde_json::to_vec(&e).unwrap();
        let o = h
            .runtime
            .on_webhook(TENANT, &m, &h.delivery(&body, SECRET))
            .unwrap()
            .unwrap();
        assert_eq!(o.status, 200);
        h.records().apply(&o.transitions).unwrap();
    }
    let again = h
        .runtime
        .on_sync(TENANT, &m, cursor.as_deref())
        .unwrap()
        .unwrap();
    assert_eq!(again.applied, 0, "{again:?}");
    for (id, _) in &sessions[..3] {
        assert_eq!(status(id), "PAID", "{id}");
    }
    assert_eq!(h.emails().len(), emails_after_sync, "no email twice");
}

/// More missed events than one sync call reads (five pages of 100): the
/// first call says `more`, the next goes on below where it stopped, and the
/// oldest event, a payment, is applied too.
#[test]
fn a_sync_longer_than_one_call_goes_on_where_it_stopped() {
    let h = Harness::new();
    let mut m = h.merchant.clone();
    m.auto_charge = false;
    let mut doc: serde_json::Value = serde_json::from_str(INVOICE_JSON).unwrap();
    doc["id"] = "inv_01".into();
    h.records().insert_draft(&doc, "inv_01").unwrap();
    let link = last_link(&h.finalize(&m, &invoice())).clone();
    let path = format!("/_test/checkout/sessions/{}/complete", link.session());
    assert_eq!(
        h.emulator
            .handle("POST", &path, &[], b"card=4242424242424242")
            .status,
        200
    );
    // Then 600 other events of the account, a second apart: payments of
    // another integration's (a type the sync lists, of no invoice of ours).
    for n in 0..600 {
        h.clock.advance_ms(1000);
        h.emulator.emit(
            ACCOUNT,
            "payment_intent.canceled",
            serde_json::json!({"id": format!("pi_noise_{n}"), "object": "payment_intent", "metadata": {}}),
        );
    }
    let total = h.emulator.events().len() as u32;
    let (mut cursor, mut calls, mut read, mut applied) = (None, 0, 0, 0);
    loop {
        calls += 1;
        let out = h
            .runtime
            .on_sync(TENANT, &m, cursor.as_deref())
            .unwrap()
            .unwrap();
        h.records().apply(&out.transitions).unwrap();
        (read, applied) = (read + out.read, applied + out.applied);
        cursor = Some(out.next_cursor);
        if !out.more {
            break;
        }
        assert!(calls < 5, "it ends");
    }
    assert!(calls >= 2, "one call cannot read {total} events");
    assert_eq!(applied, total, "every event applied once (read {read})");
    let view = h.records().invoice_view("inv_01").unwrap().unwrap();
    assert_eq!(view["status"], "PAID");
}
