//! Collections through the real component on a deterministic host: every
//! branch of finalizing (link, auto-charge, declines, authentication), the
//! stable pay link, idempotency under lost answers, a link-vs-charge race,
//! and Connect onboarding. Snapshots hold the exact requests, transitions, emails.

use e2e_tests::*;
use host_runtime::bindings::{OnboardingRequest, PayPage, PluginError, Transition};
use serde_json::{Value, json};

/// A customer in the merchant's Stripe account with `card` as its default.
fn customer_with_card(h: &Harness, card: &str) -> String {
    let cus = h.stripe_customer("Card On File Ltd");
    h.add_card(&cus, card, true);
    cus
}

/// A fresh host whose customer has `card` as default, after finalizing the example invoice.
fn finalized_with_card(card: &str) -> (Harness, Result<Vec<Transition>, PluginError>) {
    let h = Harness::new();
    let cus = customer_with_card(&h, card);
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap();
    (h, result)
}

/// What one call did, for a snapshot: requests, result, emails.
/// What a call did, as data: the requests it sent, its result, the emails.
fn story(h: &Harness, result: impl serde::Serialize) -> Value {
    json!({"requests": h.requests(), "result": result, "emails": h.emails()})
}

#[test]
fn a_card_on_file_is_charged_off_session_and_no_link_is_needed() {
    let (h, result) = finalized_with_card("4242424242424242");
    insta::assert_json_snapshot!("charge_succeeds", story(&h, &result));
    assert_eq!(h.intents("succeeded"), 1);
    assert!(
        h.emulator.objects("checkout.session").is_empty(),
        "paid: no payment link needed"
    );
}

#[test]
fn the_only_attached_card_is_used_when_there_is_no_default_and_receipts_are_asked_for() {
    let mut h = Harness::new();
    h.merchant.stripe_receipts = true;
    let cus = h.stripe_customer("One Card Ltd");
    h.add_card(&cus, "4242424242424242", false);
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap()
        .unwrap();
    assert!(
        result
            .iter()
            .any(|t| matches!(t, Transition::InvoicePaid(_))),
        "{result:?}"
    );
    let pi = &h.emulator.objects("payment_intent")[0];
    assert_eq!(pi["receipt_email"], "exampleCorpInvoices@example.com");
}

#[test]
fn auto_charge_can_be_switched_off_by_the_merchant_or_the_invoice() {
    for (merchant_on, invoice_on) in [(false, true), (true, false)] {
        let mut h = Harness::new();
        h.merchant.auto_charge = merchant_on;
        let cus = customer_with_card(&h, "4242424242424242");
        let mut inv = h.invoice_for(&cus);
        inv.auto_charge = invoice_on;
        let result = h
            .runtime
            .on_invoice_finalized(TENANT, &h.merchant, &inv)
            .unwrap()
            .unwrap();
        assert!(
            matches!(result.last(), Some(Transition::PaymentLinkAttached(_))),
            "{result:?}"
        );
        assert_eq!(
            h.emulator.objects("payment_intent").len(),
            0,
            "merchant {merchant_on}, invoice {invoice_on}"
        );
    }
}

#[test]
fn a_declined_card_fails_emails_both_parties_and_leaves_a_link() {
    let (h, result) = finalized_with_card("4000000000000341");
    insta::assert_json_snapshot!("charge_declined", story(&h, &result));
}

/// Stripe's test cards that decline cannot be saved to a customer (only 0341
/// attaches, then declines), so live-mode declines of a saved card, with
/// their decline and advice codes, are played by a scripted answer of the
/// shape Stripe documents: https://docs.stripe.com/declines/codes
#[test]
fn declines_carry_stripes_codes_and_whether_a_retry_can_help() {
    for (code, decline, advice, retryable) in [
        (
            "card_declined",
            "insufficient_funds",
            Some("try_again_later"),
            true,
        ),
        (
            "expired_card",
            "expired_card",
            Some("do_not_try_again"),
            false,
        ),
        ("card_declined", "generic_decline", None, false),
    ] {
        let (h, stripe) = Harness::scripted();
        let cus = customer_with_card(&h, "4242424242424242");
        stripe.refuse(
            "POST",
            "/v1/payment_intents",
            402,
            serde_json::json!({"error": {"type": "card_error", "code": code, "decline_code": decline,
                "advice_code": advice, "message": "Your card was declined.",
                "payment_intent": {"id": "pi_live_declined", "object": "payment_intent", "status": "requires_payment_method",
                    "amount": 120000, "currency": "gbp", "metadata": {"billing_stripe_plugin_invoice": "inv_01"}}}}),
            1,
        );
        let result = h
            .runtime
            .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
            .unwrap()
            .unwrap();
        let f = result.iter().find_map(|t| match t {
            Transition::PaymentFailed(f) => Some(f.clone()),
            _ => None,
        });
        let f = f.unwrap_or_else(|| panic!("{decline}: {result:?}"));
        assert_eq!(
            (
                f.code.as_deref(),
                f.decline_code.as_deref(),
                f.advice_code.as_deref(),
                f.retryable
            ),
            (Some(code), Some(decline), advice, retryable),
            "{decline}"
        );
        assert_eq!(
            h.emails().len(),
            2,
            "{decline}: one email to the merchant, one to the customer"
        );
    }
}

/// As Stripe's test cards behave: a card that declines cannot be saved.
#[test]
fn a_test_card_that_declines_cannot_be_saved_to_a_customer() {
    let h = Harness::new();
    let cus = h.stripe_customer("Declined Ltd");
    let pm = h.stripe(
        "POST",
        "/v1/payment_methods",
        "type=card&card[number]=4000000000009995",
    );
    let attach = h.stripe_reply(
        "POST",
        &format!("/v1/payment_methods/{}/attach", pm["id"].as_str().unwrap()),
        &format!("customer={cus}"),
    );
    assert_eq!(attach.0, 402, "{}", attach.1);
    assert_eq!(attach.1["error"]["decline_code"], "insufficient_funds");
}

#[test]
fn authentication_required_asks_the_customer_to_pay_on_session() {
    let (h, result) = finalized_with_card("4000002760003184");
    insta::assert_json_snapshot!("charge_needs_authentication", story(&h, &result));
}

#[test]
fn a_zero_decimal_currency_is_charged_in_whole_units() {
    let h = Harness::new();
    let cus = customer_with_card(&h, "4242424242424242");
    let mut inv = h.invoice_for(&cus);
    inv.currency = "JPY".into();
    inv.amount_due = "500".into();
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &inv)
        .unwrap()
        .unwrap();
    let pi = &h.emulator.objects("payment_intent")[0];
    assert_eq!(
        (pi["amount"].as_i64(), pi["currency"].as_str()),
        (Some(500), Some("jpy"))
    );
    let Some(p) = result.iter().find_map(|t| match t {
        Transition::InvoicePaid(p) => Some(p),
        _ => None,
    }) else {
        panic!("{result:?}")
    };
    assert_eq!(
        (p.amount.decimal.as_str(), p.amount.currency.as_str()),
        ("500", "JPY")
    );
}

#[test]
fn finalizing_again_or_retrying_after_a_lost_answer_charges_once() {
    let h = Harness::new();
    let cus = customer_with_card(&h, "4242424242424242");
    let inv = h.invoice_for(&cus);
    // Every try within the plugin's retry budget (three) times out after
    // Stripe charged: the answers are lost, as on a real network.
    h.emulator.inject(stripe_emulator::faults::Rule {
        method: Some("POST".into()),
        account: None,
        path: "/v1/payment_intents".into(),
        fault: stripe_emulator::faults::Fault::Timeout,
        when: stripe_emulator::faults::When::AfterWork,
        times: 3,
    });
    let first = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &inv)
        .unwrap();
    assert!(
        matches!(&first, Err(e) if e.retryable()),
        "a lost answer is a retryable error: {first:?}"
    );
    assert_eq!(
        h.intents("succeeded"),
        1,
        "Stripe did charge, the answer was lost"
    );
    let retry = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &inv)
        .unwrap()
        .unwrap();
    assert!(
        retry
            .iter()
            .any(|t| matches!(t, Transition::InvoicePaid(_))),
        "{retry:?}"
    );
    let again = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &inv)
        .unwrap()
        .unwrap();
    assert!(
        !again.iter().any(|t| matches!(
            t,
            Transition::InvoicePaid(_) | Transition::PaymentProcessing(_)
        )),
        "finalizing a paid invoice again reports no new payment"
    );
    assert_eq!(
        h.intents("succeeded"),
        1,
        "the retry replayed the same PaymentIntent"
    );
    let keys: Vec<String> = h
        .requests()
        .iter()
        .filter(|r| r["request"].as_str().unwrap().contains("payment_intents"))
        .map(|r| r["headers"].to_string())
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.contains("Idempotency-Key: payment-intent:inv_01:1")),
        "{keys:?}"
    );
}

#[test]
fn a_link_paid_while_an_auto_charge_starts_takes_the_money_once() {
    for round in 0..12 {
        let h = std::sync::Arc::new(Harness::new());
        let cus = h.stripe_customer("Race Ltd");
        let inv = h.invoice_for(&cus);
        // Sent without a card: the customer gets a payment link...
        let first = h
            .runtime
            .on_invoice_finalized(TENANT, &h.merchant, &inv)
            .unwrap()
            .unwrap();
        let link = last_link(&first);
        // ...then a card appears, and the customer pays the link while a retry auto-charges.
        h.add_card(&cus, "4242424242424242", true);
        let payer = {
            let (h, session) = (h.clone(), link.session().to_string());
            std::thread::spawn(move || {
                if round % 2 == 0 {
                    std::thread::yield_now();
                }
                h.emulator.handle(
                    "POST",
                    &format!("/_test/checkout/sessions/{session}/complete"),
                    &[],
                    b"card=4242424242424242",
                )
            })
        };
        let charged = h
            .runtime
            .on_invoice_finalized(TENANT, &h.merchant, &inv)
            .unwrap();
        payer.join().unwrap();
        assert!(charged.is_ok(), "{charged:?}");
        assert_eq!(
            h.intents("succeeded"),
            1,
            "round {round}: one payment, never two"
        );
    }
}

#[test]
fn the_stable_pay_link_outlives_its_checkout_sessions() {
    let h = Harness::new();
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap()
        .unwrap();
    let link = last_link(&result);
    let token = link.url.rsplit('/').next().unwrap().to_string();
    assert_eq!(token.len(), 32);
    let open = |t: &str| {
        h.runtime
            .on_pay_link_opened(TENANT, &h.merchant, t)
            .unwrap()
            .unwrap()
    };

    let PayPage::Redirect(first) = open(&token).page else {
        panic!()
    };
    assert!(
        first.ends_with(link.session()),
        "an open session is reused: {first}"
    );

    h.stripe(
        "POST",
        &format!("/v1/checkout/sessions/{}/expire", link.session()),
        "",
    );
    let reopened = open(&token);
    let PayPage::Redirect(second) = &reopened.page else {
        panic!("{reopened:?}")
    };
    assert_ne!(
        second, &first,
        "an expired session is replaced by a fresh one"
    );
    assert_eq!(h.emulator.objects("checkout.session").len(), 2);

    let session = second.rsplit('/').next().unwrap();
    h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{session}/complete"),
        &[],
        b"",
    );
    let paid = open(&token);
    assert!(
        matches!(&paid.page, PayPage::Paid(p) if p.total_paid.decimal == "1200.00"),
        "{paid:?}"
    );
    assert_eq!(
        h.emulator.objects("checkout.session").len(),
        2,
        "no new session for a paid invoice"
    );
    assert_eq!(h.intents("succeeded"), 1);

    assert!(matches!(
        open("0123456789abcdef0123456789abcdef").page,
        PayPage::NotFound
    ));
    assert!(matches!(
        open("../../invoice:inv_01").page,
        PayPage::NotFound
    ));
}

#[test]
fn opening_the_link_charges_a_card_added_since_the_invoice_was_sent() {
    let h = Harness::new();
    let cus = h.stripe_customer("Later Card Ltd");
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &h.invoice_for(&cus))
        .unwrap()
        .unwrap();
    let link = last_link(&result);
    h.add_card(&cus, "4242424242424242", true);
    let token = link.url.rsplit('/').next().unwrap();
    let opened = h
        .runtime
        .on_pay_link_opened(TENANT, &h.merchant, token)
        .unwrap()
        .unwrap();
    assert!(matches!(opened.page, PayPage::Paid(_)), "{opened:?}");
    assert!(
        opened
            .transitions
            .iter()
            .any(|t| matches!(t, Transition::InvoicePaid(_)))
    );
    let sessions = h.emulator.objects("checkout.session");
    assert_eq!(
        sessions[0]["status"], "expired",
        "the open session was closed before charging"
    );
}

#[test]
fn onboarding_creates_a_connected_account_and_an_account_link() {
    let mut h = Harness::new();
    h.merchant.account_id = String::new();
    let req = OnboardingRequest {
        merchant_ref: "merchant-42".into(),
        email: "owner@merchant.example".into(),
        country: "gb".into(),
        refresh_url: "https://billing.example.com/onboarding/refresh".into(),
        return_url: "https://billing.example.com/onboarding/done".into(),
    };
    let result = h
        .runtime
        .start_onboarding(TENANT, &h.merchant, &req)
        .unwrap();
    insta::assert_json_snapshot!("onboarding", story(&h, &result));
    let bad = OnboardingRequest {
        country: "Britain".into(),
        ..req
    };
    assert!(matches!(
        h.runtime
            .start_onboarding(TENANT, &h.merchant, &bad)
            .unwrap(),
        Err(PluginError::InvalidInput(_))
    ));
}

#[test]
fn what_the_pay_link_shows_at_each_stage() {
    let h = Harness::new();
    let result = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap()
        .unwrap();
    let link = last_link(&result);
    let token = link.url.rsplit('/').next().unwrap().to_string();
    h.requests();
    let mut stages = Vec::new();
    let mut open = |stage: &str| {
        let outcome = h
            .runtime
            .on_pay_link_opened(TENANT, &h.merchant, &token)
            .unwrap();
        stages.push(json!({"stage": stage, "outcome": outcome, "requests": h.requests()}));
    };
    open("open session");
    h.stripe(
        "POST",
        &format!("/v1/checkout/sessions/{}/expire", link.session()),
        "",
    );
    open("after the session expired");
    let sessions = h.emulator.objects("checkout.session");
    let fresh = sessions.iter().find(|s| s["status"] == "open").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{fresh}/complete"),
        &[],
        b"",
    );
    open("after the customer paid");
    insta::assert_json_snapshot!("pay_link_stages", stages);
}

#[test]
fn an_invoice_sent_again_for_another_amount_is_collected_at_the_new_amount() {
    let h = Harness::new();
    let first = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice())
        .unwrap()
        .unwrap();
    let old = last_link(&first);
    let mut changed = invoice();
    changed.amount_due = "1000.00".into();
    let again = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &changed)
        .unwrap()
        .unwrap();
    let new = last_link(&again);
    assert_eq!(new.url, old.url, "the stable link stays the same");
    let sessions = h.emulator.objects("checkout.session");
    let by_id = |id: &str| sessions.iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(
        by_id(old.session())["status"],
        "expired",
        "the old amount can no longer be paid"
    );
    assert_eq!(by_id(new.session())["amount_total"], 100000);

    // Once money has moved, the amount is fixed.
    let s = new.session();
    h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{s}/complete"),
        &[],
        b"",
    );
    let paid = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &changed)
        .unwrap()
        .unwrap();
    assert!(
        paid.iter().any(|t| matches!(t, Transition::InvoicePaid(_))),
        "{paid:?}"
    );
    let mut third = invoice();
    third.amount_due = "900.00".into();
    let refused = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &third)
        .unwrap();
    assert!(
        matches!(refused, Err(PluginError::InvalidInput(_))),
        "{refused:?}"
    );
}
