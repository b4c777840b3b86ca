//! Money where features meet (the queue, on-invoice-updated, on-sync, lost
//! answers, disputes): each defect of the second money review reproduced
//! through the real component, or through `serve` where the host is involved.

use e2e_tests::*;
use host_runtime::bindings::{
    InvoiceChange, InvoiceUpdate, Merchant, PayPage, PluginError, Transition,
};
use serde_json::{Value, json};
use stripe_emulator::faults::{Fault, Rule, When};

fn fault(method: &str, path: &str, fault: Fault, when: When, times: u32) -> Rule {
    Rule {
        method: Some(method.into()),
        account: None,
        path: path.into(),
        fault,
        when,
        times,
    }
}

/// Sends `cus`'s invoice as `m` and stores what the plugin decided.
fn send_and_store(h: &Harness, m: &Merchant, cus: &str) -> Vec<Transition> {
    let ts = h.finalize(m, &h.invoice_for(cus));
    h.records().apply(&ts).unwrap();
    ts
}

/// The overpayment emails sent so far.
fn overpaid_emails(h: &Harness) -> Vec<Value> {
    h.emails()
        .into_iter()
        .filter(|e| {
            e["dedupeKey"]
                .as_str()
                .unwrap_or_default()
                .starts_with("overpaid:")
        })
        .collect()
}

/// Whether `ts` reports an overpayment of `excess`.
fn excess_in(ts: &[Transition], excess: &str) -> bool {
    ts.iter()
        .any(|t| matches!(t, Transition::Overpaid(o) if o.excess.decimal == excess))
}

fn update(h: &Harness, m: &Merchant, change: InvoiceChange, amount: &str) -> Vec<Transition> {
    let u = InvoiceUpdate {
        invoice_id: "inv_01".into(),
        change,
        amount_due: amount.into(),
        refund: None,
    };
    match h.runtime.on_invoice_updated(TENANT, m, &u) {
        Ok(Ok(ts)) => {
            h.records().apply(&ts).unwrap();
            ts
        }
        other => panic!("updating inv_01 failed: {other:?}"),
    }
}

fn update_result(
    h: &Harness,
    m: &Merchant,
    change: InvoiceChange,
    amount: &str,
) -> Result<Vec<Transition>, PluginError> {
    let u = InvoiceUpdate {
        invoice_id: "inv_01".into(),
        change,
        amount_due: amount.into(),
        refund: None,
    };
    h.runtime
        .on_invoice_updated(TENANT, m, &u)
        .expect("no trap")
}

/// PaymentIntents of inv_01 that took money.
fn charged(h: &Harness) -> usize {
    h.emulator
        .objects("payment_intent")
        .iter()
        .filter(|p| p["metadata"][INVOICE_KEY] == "inv_01" && p["status"] == "succeeded")
        .count()
}

/// A customer with a default card, the invoice drafted at the host.
fn with_card() -> (Harness, String) {
    let h = Harness::new();
    let cus = h.stripe_customer("Seams Ltd");
    h.add_card(&cus, "4242424242424242", true);
    h.records()
        .insert_draft(&json!({"id": "inv_01"}), "inv_01")
        .unwrap();
    (h, cus)
}

/// Finalizing meets a charge whose answer is lost on every try: Stripe took
/// the money, the plugin does not know it.
fn charge_of_unknown_outcome() -> (Harness, String) {
    let (h, cus) = with_card();
    h.emulator.inject(fault(
        "POST",
        "/v1/payment_intents",
        Fault::Timeout,
        When::AfterWork,
        3,
    ));
    let first = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap();
    assert!(first.is_err(), "{first:?}");
    assert_eq!(charged(&h), 1, "Stripe took the money");
    (h, cus)
}

/// Review 2, finding 2a: a re-price or a credit after a charge of unknown
/// outcome must not open a new attempt (a new key) and charge again.
#[test]
fn a_charge_of_unknown_outcome_is_resolved_before_a_reprice_or_a_credit() {
    let (h, cus) = charge_of_unknown_outcome();
    let mut inv = h.invoice_for(&cus);
    inv.amount_due = "1000.00".into();
    let _ = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &inv)
        .unwrap();
    assert_eq!(charged(&h), 1, "re-priced: still one charge");

    let (h, cus) = charge_of_unknown_outcome();
    let _ = update_result(&h, &h.merchant, InvoiceChange::Open, "1000.00");
    let _ = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap();
    assert_eq!(
        charged(&h),
        1,
        "credited, then sent again: still one charge"
    );
}

/// Review 2, finding 2b and 2c: a changed default card (the retry's key
/// meets `idempotency_error`) or auto-charge switched off must never put a
/// pay link beside a charge of unknown outcome.
#[test]
fn a_charge_of_unknown_outcome_never_gets_a_link_beside_it() {
    let (h, cus) = charge_of_unknown_outcome();
    h.add_card(&cus, "5555555555554444", true);
    let _ = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap();
    assert_eq!(
        h.sessions("open"),
        0,
        "new default card: no link beside the charge"
    );
    assert_eq!(charged(&h), 1);

    let (h, cus) = charge_of_unknown_outcome();
    let mut inv = h.invoice_for(&cus);
    inv.auto_charge = false;
    let _ = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &inv)
        .unwrap();
    assert_eq!(
        h.sessions("open"),
        0,
        "auto-charge off: no link beside the charge"
    );
    assert_eq!(charged(&h), 1);
}

/// Found by the generated histories (review 2, finding 8's kind): the card
/// declines, then opening the link meets a 429, so the call fails after the
/// record moved. The retried finalize still tells the host the status.
#[test]
fn a_retried_finalize_tells_the_host_what_the_failed_try_changed() {
    let (h, cus) = with_card();
    h.add_card(&cus, "4000000000000341", true);
    h.emulator.inject(fault(
        "POST",
        "/v1/checkout/sessions",
        Fault::RateLimited,
        When::BeforeWork,
        1,
    ));
    let first = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap();
    assert!(first.is_err(), "{first:?}");
    let ts = h.finalize(&h.merchant, &h.invoice_for(&cus));
    h.records().apply(&ts).unwrap();
    assert_eq!(host_view(&h)["status"], "PAYMENT_FAILED", "{ts:?}");
}

/// Found by the generated histories: a charge refused with a 429 was never
/// executed (Stripe saves no result for it), so it is not a charge of unknown
/// outcome: a credit right after it is not held back.
#[test]
fn a_charge_refused_with_a_429_is_known_not_to_have_happened() {
    let (h, cus) = with_card();
    h.emulator.inject(fault(
        "POST",
        "/v1/payment_intents",
        Fault::RateLimited,
        When::BeforeWork,
        1,
    ));
    let first = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap();
    assert!(first.is_err(), "{first:?}");
    let credited = update_result(&h, &h.merchant, InvoiceChange::Open, "1000.00");
    assert!(credited.is_ok(), "{credited:?}");
}

/// Found by the generated histories: a reopen that fails part-way (here the
/// invoice is busy) leaves the stop in place, as the host still shows it.
#[test]
fn a_reopen_that_fails_leaves_the_invoice_stopped() {
    let (h, cus) = with_card();
    h.emulator.inject(fault(
        "POST",
        "/v1/payment_intents",
        Fault::Timeout,
        When::BeforeWork,
        3,
    ));
    let first = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap();
    assert!(first.is_err(), "{first:?}");
    update(&h, &h.merchant, InvoiceChange::Void, "0");
    let reopened = update_result(&h, &h.merchant, InvoiceChange::Open, "1000.00");
    assert!(
        matches!(reopened, Err(PluginError::NotReady(_))),
        "{reopened:?}"
    );
    let again = h.finalize(&h.merchant, &h.invoice_for(&cus));
    assert_eq!(charged(&h), 0, "still voided: {again:?}");
}

/// Found by the generated histories: a void whose session could not be
/// expired (a 429) failed, so the platform has no void: the plugin must not
/// count itself stopped, and the customer's payment is a plain payment.
#[test]
fn a_stop_that_fails_leaves_collection_as_it_was() {
    let (h, m) = sent_invoice();
    let session = h.first_session();
    h.emulator.inject(fault(
        "POST",
        "/v1/checkout/sessions",
        Fault::RateLimited,
        When::BeforeWork,
        1,
    ));
    let voided = update_result(&h, &m, InvoiceChange::Void, "0");
    assert!(voided.is_err(), "{voided:?}");
    h.complete(&session, "card=4242424242424242");
    deliver_all(&h, &m);
    let view = host_view(&h);
    assert_eq!(
        (view["status"].as_str(), &view["overpaid"]),
        (Some("PAID"), &Value::Null),
        "{view}"
    );
}

/// Review 2, finding 1 (plugin half): a void or a payment made elsewhere is
/// never undone by sending the invoice again; only an explicit OPEN reopens.
#[test]
fn sending_again_never_reopens_an_invoice_voided_or_paid_elsewhere() {
    for stop in [
        InvoiceChange::Void,
        InvoiceChange::PaidOutsideStripe,
        InvoiceChange::Uncollectible,
    ] {
        let (h, m) = sent_invoice();
        let token = h.token(&h.finalize(&m, &invoice()));
        update(&h, &m, stop, "0");
        let again = h.finalize(&m, &invoice());
        assert!(
            !again
                .iter()
                .any(|t| matches!(t, Transition::CollectionResumed(_))),
            "{stop:?}: {again:?}"
        );
        assert_eq!(
            h.sessions("open"),
            0,
            "{stop:?}: no session after a re-send"
        );
        let view = h.records().invoice_view("inv_01").unwrap().unwrap();
        assert!(view["collectionStopped"].is_string(), "{stop:?}: {view}");
        // An explicit OPEN with an amount reopens it.
        update(&h, &m, InvoiceChange::Open, "1200.00");
        assert!(
            matches!(h.open(&m, &token), PayPage::Redirect(_)),
            "{stop:?}: reopened"
        );
    }
}

/// Review 2, finding 1: a void that arrives before the plugin has a record
/// of the invoice (its first finalize failed early) is remembered, and a
/// retried finalize then charges nothing.
#[test]
fn a_void_before_the_first_finalize_finished_is_remembered() {
    let (h, cus) = with_card();
    h.emulator.inject(fault(
        "GET",
        "/v1/customers",
        Fault::ServerError,
        When::BeforeWork,
        3,
    ));
    let first = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap();
    assert!(first.is_err(), "{first:?}");
    update(&h, &h.merchant, InvoiceChange::Void, "0");
    let again = h.finalize(&h.merchant, &h.invoice_for(&cus));
    assert_eq!(charged(&h), 0, "voided: never charged: {again:?}");
    assert_eq!(h.sessions("open"), 0);
}

/// Review 2, finding 5: money that arrives after collection stopped (a debit
/// in flight when the merchant recorded a bank transfer) is an overpayment:
/// flagged, and the merchant emailed once.
#[test]
fn money_after_collection_stopped_is_an_overpayment_and_the_merchant_is_told() {
    let (h, m) = sent_invoice();
    let mut processing = payment_of("pi_sepa", 120000);
    processing["status"] = "processing".into();
    processing["amount_received"] = 0.into();
    deliver_event(&h, &m, "evt_p", "payment_intent.processing", processing);
    update(&h, &m, InvoiceChange::PaidOutsideStripe, "0");
    let late = deliver_event(
        &h,
        &m,
        "evt_s",
        "payment_intent.succeeded",
        payment_of("pi_sepa", 120000),
    );
    assert!(excess_in(&late.transitions, "1200.00"), "{late:?}");
    assert_eq!(overpaid_emails(&h).len(), 1);
}

/// Found by the generated histories: paid through Stripe, then the merchant
/// records a bank transfer too (or voids it): all of the Stripe payment is
/// to be refunded, shown and emailed at once.
#[test]
fn stopping_a_paid_invoice_reports_what_is_to_be_refunded() {
    let (h, m) = sent_invoice();
    deliver_event(
        &h,
        &m,
        "evt_1",
        "payment_intent.succeeded",
        payment_of("pi_1", 120000),
    );
    let ts = update(&h, &m, InvoiceChange::PaidOutsideStripe, "0");
    assert!(excess_in(&ts, "1200.00"), "{ts:?}");
    assert_eq!(overpaid_emails(&h).len(), 1);
}

/// Found by the generated histories and the bad-day simulation: paid by
/// Checkout, voided before the payment's webhook came; the webhook then
/// must not tell the merchant about the same excess a second time.
#[test]
fn an_overpayment_is_told_once_whichever_way_it_was_heard() {
    let (h, m) = sent_invoice();
    let session = h.first_session();
    h.complete(&session, "card=4242424242424242");
    update(&h, &m, InvoiceChange::Void, "0");
    deliver_all(&h, &m);
    let told: Vec<Value> = h
        .emails()
        .into_iter()
        .filter(|e| e["dedupeKey"].as_str().unwrap().starts_with("overpaid:"))
        .collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert_eq!(host_view(&h)["overpaid"], "1200.00");
}

/// Review 2, finding 5 (credit variant): a credit note sent just after a
/// Checkout payment the plugin had not heard of yet leaves more paid than
/// due: reported as an overpayment.
#[test]
fn a_credit_after_an_unseen_checkout_payment_reports_the_overpayment() {
    let (h, m) = sent_invoice();
    let session = h.first_session();
    h.complete(&session, "card=4242424242424242");
    let ts = update(&h, &m, InvoiceChange::Open, "1000.00");
    assert!(excess_in(&ts, "200.00"), "{ts:?}");
}

/// Review 2, finding 6: the duplicate of two payments is disputed and lost;
/// the first payment still covers the invoice, so it stays PAID and the
/// overpayment the merchant was told to refund is cleared.
#[test]
fn a_lost_dispute_of_the_duplicate_payment_leaves_the_invoice_paid() {
    let (h, m) = sent_invoice();
    deliver_event(
        &h,
        &m,
        "evt_1",
        "payment_intent.succeeded",
        payment_of("pi_first", 120000),
    );
    deliver_event(
        &h,
        &m,
        "evt_2",
        "payment_intent.succeeded",
        payment_of("pi_second", 120000),
    );
    assert_eq!(host_view(&h)["overpaid"], "1200.00");
    deliver_event(
        &h,
        &m,
        "evt_3",
        "charge.dispute.created",
        dispute_of("dp_1", "pi_second", "needs_response", 120000),
    );
    deliver_event(
        &h,
        &m,
        "evt_4",
        "charge.dispute.closed",
        dispute_of("dp_1", "pi_second", "lost", 120000),
    );
    let view = host_view(&h);
    assert_eq!(view["status"], "PAID", "{view}");
    assert!(view["overpaid"].is_null(), "nothing left to refund: {view}");
}

/// Review 2 (host): "paid on" is stamped by the host's clock, not the wall clock.
#[test]
fn the_host_stamps_paid_on_with_its_own_clock() {
    let (h, m) = sent_invoice();
    deliver_event(
        &h,
        &m,
        "evt_1",
        "payment_intent.succeeded",
        payment_of("pi_1", 120000),
    );
    assert_eq!(host_view(&h)["paidAtMs"], NOW_MS, "{}", host_view(&h));
}

/// Review 2, finding 7: reopening a paid invoice for 200.00 more collects
/// 200.00; reopening one with refunds or disputes is refused, clearly.
#[test]
fn reopening_a_settled_invoice_collects_the_rest_or_is_refused() {
    let (h, m) = sent_invoice();
    let token = h.token(&h.finalize(&m, &invoice()));
    deliver_event(
        &h,
        &m,
        "evt_1",
        "payment_intent.succeeded",
        payment_of("pi_1", 120000),
    );
    let ts = update(&h, &m, InvoiceChange::Open, "200.00");
    assert!(
        ts.iter().any(
            |t| matches!(t, Transition::StatusChanged(s) if s.status.name() == "PARTIALLY_PAID")
        ),
        "{ts:?}"
    );
    let PayPage::Redirect(_) = h.open(&m, &token) else {
        panic!("the rest is collected by link")
    };
    let open: Vec<Value> = h
        .emulator
        .objects("checkout.session")
        .into_iter()
        .filter(|s| s["status"] == "open")
        .collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["amount_total"], 20000, "{}", open[0]);

    let (h, m) = sent_invoice();
    let session = h.first_session();
    h.complete(&session, "card=4242424242424242");
    let pi = h.emulator.objects("payment_intent")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.stripe(
        "POST",
        "/v1/refunds",
        &format!("payment_intent={pi}&amount=50000"),
    );
    deliver_all(&h, &m);
    assert_eq!(
        host_view(&h)["status"],
        "PARTIALLY_REFUNDED",
        "{}",
        host_view(&h)
    );
    let refused = update_result(&h, &m, InvoiceChange::Open, "200.00");
    assert!(
        matches!(refused, Err(PluginError::InvalidInput(_))),
        "{refused:?}"
    );
}

/// Found by the generated histories: the customer fails 3-D Secure on
/// Checkout; delivered newest first, the stale `requires_action` must not
/// move the failed invoice back to "action required".
#[test]
fn a_stale_request_for_action_after_a_failure_changes_nothing() {
    let (h, m) = sent_invoice();
    let session = h.first_session();
    h.complete(&session, "card=4000002760003184");
    h.stripe(
        "POST",
        &format!("/_test/checkout/sessions/{session}/authenticate"),
        "result=failed",
    );
    deliver_newest_first(&h, &m);
    assert_eq!(
        host_view(&h)["status"],
        "PAYMENT_FAILED",
        "{}",
        host_view(&h)
    );
}

/// Found by the generated histories: the card on file needs authentication
/// (attempt 1), then the customer is declined on Checkout (attempt 2).
/// Delivered newest first, attempt 1's late failure must not override
/// attempt 2's.
#[test]
fn a_late_failure_of_an_older_attempt_does_not_override_the_newer_one() {
    let (h, cus) = with_card();
    h.add_card(&cus, "4000002760003184", true);
    let mut m = h.merchant.clone();
    m.auto_charge = true;
    send_and_store(&h, &m, &cus);
    let session = h.first_session();
    h.complete(&session, "card=4000000000000002");
    deliver_newest_first(&h, &m);
    assert_eq!(
        host_view(&h)["status"],
        "PAYMENT_FAILED",
        "{}",
        host_view(&h)
    );
}

/// Found by the generated histories: declined on Checkout (attempt 1), then
/// the card on file needs authentication (attempt 2). Delivered newest
/// first, attempt 1's late decline must not override attempt 2's request.
#[test]
fn a_late_checkout_decline_does_not_override_a_newer_attempt() {
    let (h, cus) = with_card();
    let mut m = h.merchant.clone();
    m.auto_charge = false;
    send_and_store(&h, &m, &cus);
    let session = h.first_session();
    h.complete(&session, "card=4000000000000002");
    h.add_card(&cus, "4000002760003184", true);
    m.auto_charge = true;
    let ts = send_and_store(&h, &m, &cus);
    assert_eq!(host_view(&h)["status"], "ACTION_REQUIRED", "{ts:?}");
    deliver_newest_first(&h, &m);
    assert_eq!(
        host_view(&h)["status"],
        "ACTION_REQUIRED",
        "{}",
        host_view(&h)
    );
}

/// Found by the soak of generated histories: a Checkout debit fails, then the
/// card on file needs authentication. Redelivered newest first, the debit's
/// old failure (a session event, which names no attempt) must not override
/// the newer outcome.
#[test]
fn a_failure_already_applied_never_overrides_a_newer_outcome() {
    let (h, cus) = with_card();
    let mut m = h.merchant.clone();
    m.auto_charge = false;
    send_and_store(&h, &m, &cus);
    let session = h.first_session();
    h.complete(&session, "async=1");
    h.stripe(
        "POST",
        &format!("/_test/checkout/sessions/{session}/async"),
        "result=failed",
    );
    deliver_all(&h, &m);
    h.add_card(&cus, "4000002760003184", true);
    m.auto_charge = true;
    let ts = send_and_store(&h, &m, &cus);
    assert_eq!(host_view(&h)["status"], "ACTION_REQUIRED", "{ts:?}");
    deliver_newest_first(&h, &m);
    assert_eq!(
        host_view(&h)["status"],
        "ACTION_REQUIRED",
        "{}",
        host_view(&h)
    );
}

/// Review 2, finding 3: a refund listed before its payment (the usual order
/// after an outage: newest first) must not stall the whole sync.
#[test]
fn a_refund_listed_before_its_payment_does_not_stall_the_sync() {
    let (h, m) = sent_invoice();
    let session = h.first_session();
    h.complete(&session, "card=4242424242424242");
    // More than a page (100) of the merchant's own events after the
    // payment, then a refund: newest first, the refund is read a page
    // before its payment.
    for _ in 0..150 {
        let s = h.stripe("POST", "/v1/checkout/sessions", "mode=payment&success_url=https://x.example&line_items[0][price_data][currency]=gbp&line_items[0][price_data][unit_amount]=100&line_items[0][price_data][product_data][name]=x&line_items[0][quantity]=1");
        h.stripe(
            "POST",
            &format!("/v1/checkout/sessions/{}/expire", s["id"].as_str().unwrap()),
            "",
        );
    }
    let pi = h
        .emulator
        .objects("payment_intent")
        .into_iter()
        .find(|p| p["status"] == "succeeded")
        .unwrap();
    h.stripe(
        "POST",
        "/v1/refunds",
        &format!("payment_intent={}&amount=20000", pi["id"].as_str().unwrap()),
    );
    let mut cursor: Option<String> = None;
    for _ in 0..6 {
        let out = match h.runtime.on_sync(TENANT, &m, cursor.as_deref()).unwrap() {
            Ok(out) => out,
            Err(e) => panic!("the sync stalled: {e:?}"),
        };
        h.records().apply(&out.transitions).unwrap();
        cursor = Some(out.next_cursor);
    }
    assert_eq!(
        host_view(&h)["status"],
        "PARTIALLY_REFUNDED",
        "{}",
        host_view(&h)
    );
}

/// Review 2, finding 4: an event with a negative amount (a credit line) must
/// neither make the sync's page unreadable nor be answered 400.
#[test]
fn an_event_with_a_negative_amount_neither_poisons_the_sync_nor_gets_a_400() {
    let (h, s) = Harness::scripted();
    let mut m = h.merchant.clone();
    m.auto_charge = false;
    h.records()
        .insert_draft(&json!({"id": "inv_01"}), "inv_01")
        .unwrap();
    h.finalize(&m, &invoice());
    let credit = json!({"id": "ii_1", "object": "invoiceitem", "amount": -500, "currency": "gbp"});
    let at = NOW_MS / 1000;
    let page = json!({"object": "list", "has_more": false, "url": "/v1/events", "data": [
        {"id": "evt_ii", "object": "event", "type": "invoiceitem.created", "account": ACCOUNT,
         "livemode": false, "created": at, "data": {"object": credit.clone()}},
        {"id": "evt_pi", "object": "event", "type": "payment_intent.succeeded", "account": ACCOUNT,
         "livemode": false, "created": at, "data": {"object": payment_of("pi_1", 120000)}},
    ]});
    s.refuse("GET", "/v1/events", 200, page, 5);
    let out = h
        .runtime
        .on_sync(TENANT, &m, None)
        .unwrap()
        .expect("the sync reads the page");
    h.records().apply(&out.transitions).unwrap();
    assert_eq!(host_view(&h)["status"], "PAID");
    let outcome = deliver_event(&h, &m, "evt_ii2", "invoiceitem.created", credit);
    assert_eq!(outcome.status, 200, "{outcome:?}");
}

mod through_serve {
    //! The host's half: the durable queue and PATCH.

    use host_server::config::Flags;
    use host_tools::demo::Offline;
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};

    fn succeeded_for(off: &Offline, invoice: &str) -> usize {
        off.emulator
            .emulator
            .objects("payment_intent")
            .iter()
            .filter(|p| p["metadata"][super::INVOICE_KEY] == invoice && p["status"] == "succeeded")
            .count()
    }

    /// Runs every job the queue has, waiting out their backoff, until none is left.
    fn drain_queue(off: &Offline) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(6) {
            if !off.app.run_next_job().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// An invoice for c1, whose default card is on file, whose finalize met a 429 and was queued.
    fn queued_with_a_card(off: &Offline) {
        let (status, _) = off.send_invoice(json!({"id": "inv_00"})).unwrap();
        assert_eq!(status, 200);
        off.save_default_card("c1", "4242424242424242").unwrap();
        let fault = "path=/v1/payment_intents&method=POST&fault=rate_limit&times=1";
        assert_eq!(
            off.stripe("POST", "/_test/faults", Some(fault)).unwrap().0,
            200
        );
        let (status, body) = off
            .send_invoice(json!({"id": "inv_02", "invoiceNumber": "INV-2"}))
            .unwrap();
        assert_eq!((status, &body["queued"]), (503, &json!(true)), "{body}");
    }

    /// Review 2, finding 1, as a new user met it: a finalize queued after a
    /// 429, then the merchant voids the invoice (or records a bank
    /// transfer): the queue must not charge it.
    #[test]
    fn a_queued_finalize_never_charges_an_invoice_stopped_meanwhile() {
        for change in ["VOID", "PAID_OUTSIDE_STRIPE"] {
            let off = Offline::start(&Flags::default()).unwrap();
            queued_with_a_card(&off);
            let (status, body) = off
                .host(
                    "PATCH",
                    "/invoices/inv_02",
                    Some(&json!({"change": change}).to_string()),
                )
                .unwrap();
            assert_eq!(status, 200, "{body}");
            drain_queue(&off);
            assert_eq!(
                succeeded_for(&off, "inv_02"),
                0,
                "{change}: charged after a stop"
            );
            let (_, inv): (u16, Value) = off.host("GET", "/invoices/inv_02", None).unwrap();
            assert_ne!(inv["status"], "PAID", "{change}: {inv}");
            assert_eq!(inv["collectionStopped"], change, "{change}: {inv}");
        }
    }

    /// Review 2, the host's half: a job that fails for good is kept where an
    /// operator can list it and try it again, and counted.
    #[test]
    fn a_job_that_fails_for_good_is_kept_as_a_dead_letter_and_can_be_retried() {
        let off = Offline::start(&Flags::default()).unwrap();
        let fault = "path=/v1/checkout/sessions&method=POST&fault=rate_limit&times=1";
        assert_eq!(
            off.stripe("POST", "/_test/faults", Some(fault)).unwrap().0,
            200
        );
        let (status, _) = off.send_invoice(json!({"id": "inv_03"})).unwrap();
        assert_eq!(status, 503);
        // The invoice is refused when the queue tries it: a bad amount now.
        off.app
            .db
            .set_amount_due(&off.app.platform.default_merchant, "inv_03", "12.345")
            .unwrap();
        drain_queue(&off);
        let (status, dead) = off.host("GET", "/dead-letters", None).unwrap();
        assert_eq!(status, 200, "{dead}");
        let rows = dead["data"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{dead}");
        assert_eq!(rows[0]["subject"], "inv_03");
        assert!(
            rows[0]["error"].as_str().unwrap().contains("12.345"),
            "{dead}"
        );
        let metrics = off.host("GET", "/metrics", None).unwrap().1;
        let text = metrics.as_str().unwrap_or_default().to_string();
        assert!(text.contains("stripe_plugin_dead_letters 1"), "{text}");
        // Fixed, and retried by the operator: done.
        off.app
            .db
            .set_amount_due(&off.app.platform.default_merchant, "inv_03", "1200.00")
            .unwrap();
        let id = rows[0]["id"].as_i64().unwrap();
        let (status, body) = off
            .host("POST", &format!("/dead-letters/{id}/retry"), None)
            .unwrap();
        assert_eq!(status, 200, "{body}");
        drain_queue(&off);
        let (_, inv) = off.host("GET", "/invoices/inv_03", None).unwrap();
        assert!(inv["paymentLink"].is_string(), "{inv}");
        let (_, dead) = off.host("GET", "/dead-letters", None).unwrap();
        assert_eq!(dead["data"].as_array().unwrap().len(), 0, "{dead}");
    }
}
