//! Each handler's output on a deterministic host (fixed clock, Stripe answered
//! in-process by the emulator): the exact Stripe requests, the transitions,
//! the records. Snapshots live in tests/snapshots and are reviewed like code.

use e2e_tests::*;
use host_runtime::bindings::{PaymentOption, PluginError, Transition};
use serde_json::Value;

#[test]
fn finalizing_links_the_customer_and_attaches_a_checkout_link() {
    let h = Harness::new();
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap();
    insta::assert_json_snapshot!("finalize_requests", h.requests());
    insta::assert_json_snapshot!("finalize_transitions", result);

    // The invoice id is in the metadata of both the session and its payment intent.
    let sessions = h.emulator.objects("checkout.session");
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0]["metadata"]["billing_stripe_plugin_invoice"],
        "inv_01"
    );
    assert_eq!(
        sessions[0]["_payment_intent_data"]["metadata"]["billing_stripe_plugin_invoice"],
        "inv_01"
    );
    assert_eq!(sessions[0]["amount_total"], 120000);
}

#[test]
fn finalizing_twice_reuses_the_link_and_the_customer() {
    let h = Harness::new();
    let first = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap()
        .unwrap();
    let second = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap()
        .unwrap();
    let link = |ts: &[Transition]| link_in(ts).map(|l| l.session().to_string());
    assert_eq!(
        link(&first),
        link(&second),
        "a retried finalize must not open a second session"
    );
    assert_eq!(h.emulator.objects("checkout.session").len(), 1);
    assert_eq!(
        h.emulator.objects("customer").len(),
        1,
        "the customer is created once"
    );
}

#[test]
fn invoices_without_stripe_or_with_bad_amounts_send_nothing() {
    let h = Harness::new();
    let mut bank_only = invoice();
    bank_only.payment_options = vec![PaymentOption::BankTransfer];
    assert_eq!(
        h.runtime
            .on_invoice_finalized(TENANT, &h.merchant, &bank_only)
            .unwrap()
            .unwrap()
            .len(),
        0
    );

    for (currency, amount) in [
        ("GBP", "1e3"),
        ("GBP", "-1"),
        ("USD", "10.001"),
        ("XYZ", "10.00"),
    ] {
        let mut bad = invoice();
        bad.currency = currency.into();
        bad.amount_due = amount.into();
        let result = h
            .runtime
            .on_invoice_finalized(TENANT, &h.merchant, &bad)
            .unwrap();
        assert!(
            matches!(result, Err(PluginError::InvalidInput(_))),
            "{currency} {amount}: {result:?}"
        );
    }
    assert!(
        h.requests().is_empty(),
        "nothing reaches Stripe for these invoices"
    );
}

#[test]
fn hidden_payment_links_still_link_the_customer() {
    let mut h = Harness::new();
    h.merchant.show_payment_link = false;
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap()
        .unwrap();
    assert!(
        matches!(result.as_slice(), [Transition::CustomerLinked(_)]),
        "{result:?}"
    );
    assert!(h.emulator.objects("checkout.session").is_empty());
}

/// Pays the invoice's session in the emulator and returns the events Stripe emitted.
fn pay_session(h: &Harness) -> Vec<Value> {
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap()
        .unwrap();
    let link = last_link(&result);
    let reply = h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{}/complete", link.session()),
        &[],
        b"card=4242424242424242",
    );
    assert_eq!(reply.status, 200);
    h.requests();
    h.emulator.events()
}

fn event_of(events: &[Value], kind: &str) -> Vec<u8> {
    let e = events.iter().find(|e| e["type"] == kind).expect(kind);
    serde_json::to_vec_pretty(e).unwrap()
}

#[test]
fn a_signed_paid_checkout_marks_the_invoice_paid() {
    let h = Harness::new();
    let events = pay_session(&h);
    let body = event_of(&events, "checkout.session.completed");
    let outcome = h
        .runtime
        .on_webhook(TENANT, &h.merchant, &h.delivery(&body, SECRET))
        .unwrap();
    insta::assert_json_snapshot!("webhook_session_completed", outcome);
    assert!(
        h.requests().is_empty(),
        "reconciling a webhook needs no Stripe call"
    );
}

#[test]
fn webhooks_that_stripe_did_not_sign_for_this_merchant_change_nothing() {
    let h = Harness::new();
    let events = pay_session(&h);
    let body = event_of(&events, "checkout.session.completed");
    let check = |req, status: u16, reason: &str| {
        let o = h
            .runtime
            .on_webhook(TENANT, &h.merchant, &req)
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.status, o.reason.as_str(), o.transitions.len()),
            (status, reason, 0)
        );
    };
    check(
        h.delivery(&body, "whsec_someone_else"),
        400,
        "no valid signature for this payload",
    );
    let mut unsigned = h.delivery(&body, SECRET);
    unsigned.headers.retain(|(k, _)| k != "Stripe-Signature");
    check(unsigned, 400, "no Stripe-Signature header");
    let mut tampered = h.delivery(&body, SECRET);
    tampered.body[10] ^= 1;
    check(tampered, 400, "no valid signature for this payload");
    let stale = h.delivery(&body, SECRET);
    h.clock.advance_ms(301_000);
    check(
        stale,
        400,
        "signature timestamp outside the tolerance (too old)",
    );

    let mut foreign: Value = serde_json::from_slice(&body).unwrap();
    foreign["account"] = "acct_SomeoneElse".into();
    let foreign = serde_json::to_vec(&foreign).unwrap();
    check(
        h.delivery(&foreign, SECRET),
        200,
        "event for another account; ignored",
    );
}

#[test]
fn customer_updates_push_changes_and_skip_no_ops() {
    let h = Harness::new();
    // Not linked yet: nothing to push (the customer is created with its first payment link).
    assert_eq!(
        h.runtime
            .on_customer_updated(TENANT, &h.merchant, &customer("c1"), None)
            .unwrap()
            .unwrap()
            .len(),
        0
    );
    assert!(h.requests().is_empty());

    h.runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap()
        .unwrap();
    h.requests();
    let before = customer("c1");
    let mut after = before.clone();
    after.legal_name = Some("John Doe Ltd".into());
    after.telephone = None;
    h.runtime
        .on_customer_updated(TENANT, &h.merchant, &after, Some(&before))
        .unwrap()
        .unwrap();
    insta::assert_json_snapshot!("customer_update_requests", h.requests());

    h.runtime
        .on_customer_updated(TENANT, &h.merchant, &after, Some(&after))
        .unwrap()
        .unwrap();
    assert!(
        h.requests().is_empty(),
        "no call when nothing Stripe keeps changed"
    );
}

#[test]
fn the_stripe_external_id_links_relinks_and_unlinks() {
    let h = Harness::new();
    let existing = h.stripe_customer("Self Serve Ltd");
    let linked = customer_linked_to("c1", &existing);
    let result = h
        .runtime
        .on_customer_updated(TENANT, &h.merchant, &linked, None)
        .unwrap();
    insta::assert_json_snapshot!("customer_link_requests", h.requests());
    insta::assert_json_snapshot!("customer_link_transitions", result);

    let missing = customer_linked_to("c1", "cus_DoesNotExist");
    let refused = h
        .runtime
        .on_customer_updated(TENANT, &h.merchant, &missing, Some(&linked))
        .unwrap();
    let Err(PluginError::InvalidInput(message)) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        message.contains("cus_DoesNotExist does not exist"),
        "{message}"
    );

    let other = h.stripe_customer("Other Ltd");
    let relinked = h
        .runtime
        .on_customer_updated(
            TENANT,
            &h.merchant,
            &customer_linked_to("c1", &other),
            Some(&linked),
        )
        .unwrap()
        .unwrap();
    assert!(
        matches!(&relinked[..], [Transition::CustomerLinked(l)] if l.stripe_customer_id == other),
        "{relinked:?}"
    );

    let unlinked = h
        .runtime
        .on_customer_updated(
            TENANT,
            &h.merchant,
            &customer("c1"),
            Some(&customer_linked_to("c1", &other)),
        )
        .unwrap()
        .unwrap();
    assert!(
        matches!(&unlinked[..], [Transition::CustomerUnlinked(id)] if id == "c1"),
        "{unlinked:?}"
    );
    assert_eq!(
        h.emulator.objects("customer").len(),
        2,
        "unlinking deletes nothing in Stripe"
    );
}

#[test]
fn a_customer_in_another_account_cannot_be_linked() {
    let h = Harness::new();
    let theirs = h.stripe_customer("Theirs");
    let mut m = h.merchant.clone();
    m.account_id = "acct_OtherMerchant".into();
    h.emulator.connect_existing(&m.account_id, "Other Merchant");
    let result = h
        .runtime
        .on_customer_updated(TENANT, &m, &customer_linked_to("c1", &theirs), None)
        .unwrap();
    assert!(
        matches!(result, Err(PluginError::InvalidInput(_))),
        "{result:?}"
    );
}
