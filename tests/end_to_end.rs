//! The whole story through `serve` and the emulator over loopback HTTP, as a
//! billing platform and its customer would drive it.

use host_server::config::Flags;
use host_tools::demo::{CUSTOMER_JSON, INVOICE_JSON, Offline};
use serde_json::{Value, json};
use std::time::Duration;

fn offline() -> Offline {
    Offline::start(&Flags::default()).expect("offline host")
}

/// Creates a customer directly in the merchant's Stripe account (self-serve onboarding).
fn stripe_customer(off: &Offline) -> String {
    let account = &off.app.merchant().unwrap().account_id.clone();
    let reply = off.emulator.emulator.handle(
        "POST",
        "/v1/customers",
        &[
            ("Authorization".into(), "Bearer sk_test_e2e".into()),
            ("Stripe-Account".into(), account.clone()),
        ],
        b"name=John+Doe",
    );
    serde_json::from_slice::<Value>(&reply.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn with_stripe_id(cus: &str) -> String {
    let mut c: Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
    c["externalIds"][1]["value"] = cus.into();
    c.to_string()
}

/// The customer pays the invoice's Checkout Session with 4242.
fn pay_session(off: &Offline, inv: &Value) {
    let session = inv["checkoutSessionId"].as_str().unwrap();
    assert_eq!(off.pay_session(session, "4242424242424242").unwrap(), 200);
}

#[test]
fn an_invoice_is_paid_by_link_and_reconciled_by_webhook() {
    let off = offline();
    let (status, _) = off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    assert_eq!(status, 201);
    let (status, inv) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    assert_eq!(
        (status, inv["status"].as_str()),
        (200, Some("FINAL")),
        "{inv}"
    );
    let link = inv["paymentLink"].as_str().expect("payment link");
    assert!(
        link.starts_with(&format!("{}/pay/", off.server.base_url)),
        "the stable link, not a raw Checkout URL: {link}"
    );

    pay_session(&off, &inv);
    let inv = off
        .wait_for_status("inv_01", "PAID", Duration::from_secs(20))
        .unwrap();
    assert_eq!(inv["amountPaid"], "1200.00");
    assert_eq!(inv["payments"][0]["status"], "succeeded");
    // Unknown fields of the platform's invoice are kept.
    assert_eq!(inv["billingScheduleId"], "bs_01");
}

#[test]
fn the_platforms_customer_json_is_accepted_verbatim_and_links_unlinks() {
    let off = offline();
    let cus = stripe_customer(&off);
    let (status, body) = off
        .host("PUT", "/customers/c1", Some(&with_stripe_id(&cus)))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, got) = off.host("GET", "/customers/c1", None).unwrap();
    assert_eq!(got["stripeCustomerId"], cus.as_str());
    let sent: Value = serde_json::from_str(&with_stripe_id(&cus)).unwrap();
    for (k, v) in sent.as_object().unwrap() {
        assert_eq!(&got[k], v, "field {k} is kept as sent");
    }

    // An unknown cus_... is refused with a clear error, and nothing changes.
    let (status, body) = off
        .host("PUT", "/customers/c1", Some(CUSTOMER_JSON))
        .unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cus_OCtCxqQDgu1uX9 does not exist"),
        "{body}"
    );
    let (_, got) = off.host("GET", "/customers/c1", None).unwrap();
    assert_eq!(got["stripeCustomerId"], cus.as_str());

    // Without the Stripe external id, the customer is unlinked.
    let mut unlinked: Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
    unlinked["externalIds"] = json!([{"key": "Xero", "value": "123456789"}]);
    let (status, got) = off
        .host("PUT", "/customers/c1", Some(&unlinked.to_string()))
        .unwrap();
    assert_eq!(
        (status, &got["stripeCustomerId"]),
        (200, &Value::Null),
        "{got}"
    );
}

#[test]
fn unsigned_or_forged_webhooks_are_refused_and_change_nothing() {
    let off = offline();
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    let forged = json!({"id": "evt_forged", "object": "event", "type": "checkout.session.completed",
        "account": off.app.merchant().unwrap().account_id, "livemode": false,
        "data": {"object": {"id": "cs_x", "object": "checkout.session", "payment_status": "paid",
        "amount_total": 120000, "currency": "gbp", "metadata": {"billing_stripe_plugin_invoice": "inv_01"}}}});
    let (status, body) = off
        .host("POST", "/webhooks/stripe", Some(&forged.to_string()))
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["reason"], "no Stripe-Signature header");
    let (_, inv) = off.host("GET", "/invoices/inv_01", None).unwrap();
    assert_eq!(inv["status"], "FINAL");
}

fn save_card(off: &Offline, number: &str) {
    off.save_default_card("c1", number).unwrap();
}

fn charges(off: &Offline) -> usize {
    off.emulator
        .emulator
        .objects("payment_intent")
        .iter()
        .filter(|p| p["status"] == "succeeded")
        .count()
}

#[test]
fn finalizing_twice_or_after_a_timeout_charges_at_most_once() {
    let flags = Flags {
        stripe_timeout_secs: Some(1),
        ..Flags::default()
    };
    let off = Offline::start(&flags).unwrap();
    let (status, _) = off
        .host(
            "PUT",
            "/customers/c1",
            Some(&with_stripe_id(&stripe_customer(&off))),
        )
        .unwrap();
    assert_eq!(status, 200);
    save_card(&off, "4242424242424242");
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    // Stripe applies the charge, but its answer comes after the host's timeout.
    off.emulator
        .emulator
        .slow_down("/v1/payment_intents", Duration::from_millis(2500), 1);
    let (status, body) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    assert_eq!(
        (status, &body["error"]["retryable"]),
        (503, &json!(true)),
        "{body}"
    );
    assert_eq!(
        charges(&off),
        1,
        "Stripe took the money; the host did not hear it"
    );
    let (status, inv) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    assert_eq!(
        (status, inv["status"].as_str()),
        (200, Some("PAID")),
        "{inv}"
    );
    let (status, inv) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    assert_eq!((status, inv["status"].as_str()), (200, Some("PAID")));
    assert_eq!(
        charges(&off),
        1,
        "retried and repeated finalizes charged once"
    );
}

/// Stripe keeps events until the test delivers them (`deliver_now`).
pub(crate) fn hold_webhooks(off: &Offline) {
    off.emulator
        .emulator
        .set_webhook(Some(stripe_emulator::WebhookTarget {
            url: format!("{}/webhooks/stripe", off.server.base_url),
            secrets: off.app.webhook_secrets(),
            delivery: stripe_emulator::Delivery::ByHand,
        }));
}

/// Runs a scenario through `serve` with webhooks held, and returns its events.
fn held_scenario(off: &Offline) -> Vec<Value> {
    hold_webhooks(off);
    off.host(
        "PUT",
        "/customers/c1",
        Some(&with_stripe_id(&stripe_customer(off))),
    )
    .unwrap();
    // inv_01: declined card, then paid by link, then partly refunded.
    save_card(off, "4000000000000341");
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    let (_, inv) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    let session = inv["checkoutSessionId"].as_str().unwrap().to_string();
    off.stripe(
        "POST",
        &format!("/_test/checkout/sessions/{session}/complete"),
        Some("card=4242424242424242"),
    )
    .unwrap();
    let (_, inv) = off.host("GET", "/invoices/inv_01", None).unwrap();
    let pi = inv["payments"][0]["stripeRef"].as_str().map(str::to_string);
    let pi = pi.unwrap_or_else(|| {
        let s = off.emulator.emulator.objects("checkout.session");
        s.iter().find(|x| x["id"] == session.as_str()).unwrap()["payment_intent"]
            .as_str()
            .unwrap()
            .to_string()
    });
    off.stripe_api(
        "POST",
        "/v1/refunds",
        &format!("payment_intent={pi}&amount=20000"),
    )
    .unwrap();
    off.emulator.emulator.events()
}

fn state_of(off: &Offline) -> Value {
    let (_, inv) = off.host("GET", "/invoices/inv_01", None).unwrap();
    let (_, outbox) = off.host("GET", "/outbox", None).unwrap();
    let mut keys: Vec<String> = outbox["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["dedupeKey"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    json!({"status": inv["status"], "amountPaid": inv["amountPaid"], "amountRefunded": inv["amountRefunded"],
           "payments": inv["payments"], "emails": keys})
}

#[test]
fn webhooks_delivered_three_times_in_any_order_end_as_one_clean_delivery() {
    let clean = offline();
    for e in held_scenario(&clean) {
        assert_eq!(
            clean.emulator.emulator.deliver_now(&e),
            200,
            "{}",
            e["type"]
        );
    }
    let expected = state_of(&clean);
    assert_eq!(expected["status"], "PARTIALLY_REFUNDED", "{expected}");
    assert_eq!(
        expected["emails"].as_array().unwrap().len(),
        2,
        "one email each for merchant and customer: {expected}"
    );

    for seed in [3u64, 17, 2026] {
        let off = offline();
        let events = held_scenario(&off);
        let mut queue: Vec<Value> = events
            .iter()
            .flat_map(|e| [e.clone(), e.clone(), e.clone()])
            .collect();
        let mut x = seed;
        for i in (1..queue.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            queue.swap(i, ((x >> 33) % (i as u64 + 1)) as usize);
        }
        let mut attempts = 0;
        while let Some(e) = queue.pop() {
            attempts += 1;
            assert!(attempts < 500);
            // Stripe retries anything but a 2xx later.
            if !(200..300).contains(&off.emulator.emulator.deliver_now(&e)) {
                queue.insert(0, e);
            }
        }
        let got = state_of(&off);
        assert_eq!(got["status"], expected["status"], "seed {seed}");
        assert_eq!(
            got["amountRefunded"], expected["amountRefunded"],
            "seed {seed}"
        );
        assert_eq!(got["payments"].as_array().unwrap().len(), 1, "seed {seed}");
        // The failure came before the payment here; it may also be judged stale. Never twice.
        let sent = got["emails"].as_array().unwrap();
        assert!(
            sent.len() <= 2
                && sent
                    .iter()
                    .all(|k| k.as_str().unwrap().starts_with("payment-failed:inv_01:")),
            "seed {seed}: {got}"
        );
    }
}

#[test]
fn an_event_signed_for_another_account_changes_nothing() {
    let off = offline();
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    let event = json!({"id": "evt_foreign", "object": "event", "type": "payment_intent.succeeded", "account": "acct_SomeoneElse",
        "livemode": false, "data": {"object": {"id": "pi_x", "object": "payment_intent", "amount": 120000, "amount_received": 120000,
        "currency": "gbp", "status": "succeeded", "metadata": {"billing_stripe_plugin_invoice": "inv_01"}}}});
    hold_webhooks(&off);
    assert_eq!(
        off.emulator.emulator.deliver_now(&event),
        200,
        "answered, so Stripe stops retrying"
    );
    let (_, inv) = off.host("GET", "/invoices/inv_01", None).unwrap();
    assert_eq!(inv["status"], "FINAL");
}

/// Issue 8, defect 9, through serve: an event naming an invoice this plugin
/// never collected is acknowledged (a 503 would make Stripe retry for days,
/// then disable the endpoint) and changes nothing.
#[test]
fn a_webhook_for_an_invoice_the_plugin_never_collected_is_acknowledged() {
    let off = offline();
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    for metadata in [
        json!({"billing_stripe_plugin_invoice": "inv_elsewhere"}),
        json!({"invoice_id": "ORDER-77 of the merchant's own shop"}),
    ] {
        let event = json!({"id": "evt_foreign", "object": "event", "type": "payment_intent.succeeded", "account": off.app.merchant().unwrap().account_id,
            "livemode": false, "data": {"object": {"id": "pi_foreign", "object": "payment_intent", "amount": 120000, "amount_received": 120000,
            "currency": "gbp", "status": "succeeded", "metadata": metadata}}});
        let (status, body) = off.post_webhook(event.to_string().as_bytes()).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["transitions"], 0, "{body}");
    }
    let (_, inv) = off.host("GET", "/invoices/inv_01", None).unwrap();
    assert_eq!(inv["status"], "FINAL");
}

/// Opens an invoice's pay link as a browser would; returns the Checkout Session it leads to.
fn open_link(off: &Offline, invoice: &str) -> String {
    let (_, inv) = off
        .host("GET", &format!("/invoices/{invoice}"), None)
        .unwrap();
    let link = inv["paymentLink"].as_str().expect("a pay link").to_string();
    let path = link.trim_start_matches(&off.server.base_url).to_string();
    let reply = off.app.handle("GET", &path, &[], b"");
    assert_eq!(reply.status, 303, "the pay link redirects to Checkout");
    let location = &reply
        .headers
        .iter()
        .find(|(k, _)| k == "Location")
        .unwrap()
        .1;
    location.rsplit('/').next().unwrap().to_string()
}

#[test]
fn every_handled_event_type_reaches_its_transition_through_serve() {
    let off = offline();
    hold_webhooks(&off);
    let emu = &off.emulator.emulator;
    let account = off.app.merchant().unwrap().account_id.clone();
    off.host(
        "PUT",
        "/customers/c1",
        Some(&with_stripe_id(&stripe_customer(&off))),
    )
    .unwrap();
    // inv_01: a link whose session expires, paid through a fresh one, refunds (one fails), a dispute won.
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    let (_, inv) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    off.stripe_api(
        "POST",
        &format!(
            "/v1/checkout/sessions/{}/expire",
            inv["checkoutSessionId"].as_str().unwrap()
        ),
        "",
    )
    .unwrap();
    let session = open_link(&off, "inv_01");
    let (_, paid) = off
        .stripe(
            "POST",
            &format!("/_test/checkout/sessions/{session}/complete"),
            Some("card=4242424242424242"),
        )
        .unwrap();
    let pi = paid["payment_intent"].as_str().unwrap().to_string();
    let (_, refund) = off
        .stripe_api(
            "POST",
            "/v1/refunds",
            &format!("payment_intent={pi}&amount=20000"),
        )
        .unwrap();
    off.stripe(
        "POST",
        &format!("/_test/refunds/{}/fail", refund["id"].as_str().unwrap()),
        Some("x=1"),
    )
    .unwrap();
    off.stripe_api(
        "POST",
        "/v1/refunds",
        &format!("payment_intent={pi}&amount=30000"),
    )
    .unwrap();
    let (_, dispute) = off
        .stripe(
            "POST",
            "/_test/disputes",
            Some(&format!("payment_intent={pi}")),
        )
        .unwrap();
    off.stripe(
        "POST",
        &format!("/_test/disputes/{}/close", dispute["id"].as_str().unwrap()),
        Some("status=won"),
    )
    .unwrap();
    // inv_02: a bank debit that fails, then one that succeeds (after a declining card is saved and removed).
    let mut inv2: Value = serde_json::from_str(INVOICE_JSON).unwrap();
    inv2["id"] = "inv_02".into();
    inv2["autoCharge"] = false.into();
    off.host("POST", "/invoices", Some(&inv2.to_string()))
        .unwrap();
    let (_, inv) = off.host("POST", "/invoices/inv_02/finalize", None).unwrap();
    let s2 = inv["checkoutSessionId"].as_str().unwrap().to_string();
    off.stripe(
        "POST",
        &format!("/_test/checkout/sessions/{s2}/complete"),
        Some("async=1"),
    )
    .unwrap();
    off.stripe(
        "POST",
        &format!("/_test/checkout/sessions/{s2}/async"),
        Some("result=failed"),
    )
    .unwrap();
    // Delivered as they happen: the failure is news before inv_02 is paid.
    let mut delivered = std::collections::HashSet::new();
    for e in emu.events() {
        assert_eq!(emu.deliver_now(&e), 200, "{} {}", e["type"], e["id"]);
        delivered.insert(e["id"].clone());
    }
    let mut journal = off.app.drain_journal();
    let declining = off.save_default_card("c1", "4000000000000341").unwrap();
    let (_, c) = off.host("GET", "/customers/c1", None).unwrap();
    let cus = c["stripeCustomerId"].as_str().unwrap().to_string();
    // inv_03 is auto-charged with that card, and declined.
    let mut declined: Value = serde_json::from_str(INVOICE_JSON).unwrap();
    declined["id"] = "inv_03".into();
    off.host("POST", "/invoices", Some(&declined.to_string()))
        .unwrap();
    let (_, inv3) = off.host("POST", "/invoices/inv_03/finalize", None).unwrap();
    assert_eq!(inv3["status"], "PAYMENT_FAILED", "{inv3}");
    off.stripe_api(
        "POST",
        &format!("/v1/payment_methods/{declining}/detach"),
        "",
    )
    .unwrap();
    let s4 = open_link(&off, "inv_02");
    off.stripe(
        "POST",
        &format!("/_test/checkout/sessions/{s4}/complete"),
        Some("async=1"),
    )
    .unwrap();
    off.stripe(
        "POST",
        &format!("/_test/checkout/sessions/{s4}/async"),
        Some("result=succeeded"),
    )
    .unwrap();
    // The merchant's account, a card saved by a SetupIntent, and an intent that asks for action then is canceled.
    emu.emit(&account, "account.updated", json!({"id": account, "object": "account", "charges_enabled": true, "details_submitted": true}));
    emu.emit(&account, "setup_intent.succeeded", json!({"id": "seti_1", "object": "setup_intent", "customer": cus, "payment_method": "pm_saved_by_setup"}));
    let mut inv4: Value = serde_json::from_str(INVOICE_JSON).unwrap();
    inv4["id"] = "inv_04".into();
    inv4["autoCharge"] = false.into();
    off.host("POST", "/invoices", Some(&inv4.to_string()))
        .unwrap();
    off.host("POST", "/invoices/inv_04/finalize", None).unwrap();
    let action = json!({"id": "pi_action", "object": "payment_intent", "status": "requires_action", "amount": 120000,
        "currency": "gbp", "metadata": {"billing_stripe_plugin_invoice": "inv_04"}});
    emu.emit(&account, "payment_intent.requires_action", action.clone());
    let mut canceled = action.clone();
    canceled["status"] = "canceled".into();
    emu.emit(&account, "payment_intent.canceled", canceled);
    let deliver_the_rest = |delivered: &mut std::collections::HashSet<Value>| {
        for e in emu.events() {
            if delivered.insert(e["id"].clone()) {
                assert_eq!(emu.deliver_now(&e), 200, "{} {}", e["type"], e["id"]);
            }
        }
    };
    deliver_the_rest(&mut delivered);
    // Last, the merchant disconnects (after which Stripe refuses the platform
    // any call in that account).
    off.stripe(
        "POST",
        &format!("/_test/accounts/{account}/deauthorize"),
        Some("x=1"),
    )
    .unwrap();
    deliver_the_rest(&mut delivered);
    journal.extend(off.app.drain_journal());
    let journal = journal.join("\n");
    for (kind, expected) in [
        ("checkout.session.completed", "PAID 1200.00 GBP"),
        ("payment_intent.succeeded", "PAID 1200.00 GBP"),
        ("charge.refunded", "refunded 300.00 GBP"),
        ("charge.refund.updated", "refunded 300.00 GBP"),
        ("charge.dispute.created", "dispute opened"),
        ("charge.dispute.closed", "dispute won"),
        ("payment_intent.processing", "payment processing"),
        ("payment_intent.payment_failed", "payment failed"),
        (
            "checkout.session.async_payment_failed",
            "payment failed: the delayed payment (bank debit) failed",
        ),
        (
            "checkout.session.async_payment_succeeded",
            "inv_02: PAID 1200.00 GBP",
        ),
        ("payment_method.detached", ": none"),
        ("setup_intent.succeeded", ": pm_saved_by_setup"),
        ("account.updated", "charges enabled true"),
        ("account.application.deauthorized", "disconnected"),
        ("payment_intent.requires_action", "needs customer action"),
        ("payment_intent.canceled", "the payment was canceled"),
    ] {
        let found = journal
            .lines()
            .any(|l| l.contains(&format!("(webhook {kind})")) && l.contains(expected));
        assert!(
            found,
            "{kind} should record {expected:?}; journal:\n{journal}"
        );
    }
    let status =
        |id: &str| off.host("GET", &format!("/invoices/{id}"), None).unwrap().1["status"].clone();
    assert_eq!(
        status("inv_01"),
        "PARTIALLY_REFUNDED",
        "refunded 300 of 1200, the dispute won"
    );
    assert_eq!(status("inv_02"), "PAID");
    assert_eq!(
        status("inv_04"),
        "FINAL",
        "a canceled attempt leaves the invoice open for payment"
    );
    let (_, acct) = off
        .host("GET", &format!("/accounts/{account}"), None)
        .unwrap();
    assert_eq!(
        (&acct["chargesEnabled"], &acct["disconnected"]),
        (&json!(false), &json!(true)),
        "{acct}"
    );
    let (_, c) = off.host("GET", "/customers/c1", None).unwrap();
    assert_eq!(c["cardOnFile"], "pm_saved_by_setup", "{c}");
}

/// The webhook endpoint hears nothing (Stripe gave up, or it was disabled):
/// `serve`'s sync reads the missed events from Stripe, stores the result
/// with its cursor, and the next sync finds nothing new.
#[test]
fn serve_catches_up_on_missed_webhooks_by_sync() {
    let off = offline();
    hold_webhooks(&off);
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    let (_, inv) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    pay_session(&off, &inv);
    let (_, before) = off.host("GET", "/invoices/inv_01", None).unwrap();
    assert_eq!(before["status"], "FINAL", "no webhook came");
    let (read, applied) = off.app.sync().unwrap();
    assert!(read >= 2 && applied >= 2, "read {read}, applied {applied}");
    let (_, after) = off.host("GET", "/invoices/inv_01", None).unwrap();
    assert_eq!(after["status"], "PAID", "{after}");
    let (_, again) = off.app.sync().unwrap();
    assert_eq!(again, 0, "the stored cursor: nothing applied twice");
}

/// A finalize that meets a Stripe 429 is answered 503 and queued in the
/// store; the queue runs it once it is due, and the invoice gets its link.
#[test]
fn a_finalize_that_met_a_429_is_queued_and_done_by_the_queue() {
    let off = offline();
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    let (status, _) = off
        .stripe(
            "POST",
            "/_test/faults",
            Some("path=/v1/checkout/sessions&method=POST&fault=rate_limit&times=2"),
        )
        .unwrap();
    assert_eq!(status, 200);
    let (status, body) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    assert_eq!((status, &body["queued"]), (503, &json!(true)), "{body}");
    assert!(
        !off.app.run_next_job().unwrap(),
        "not due before Stripe's Retry-After"
    );
    let start = std::time::Instant::now();
    let mut runs = 0;
    loop {
        let (_, inv) = off.host("GET", "/invoices/inv_01", None).unwrap();
        if inv["paymentLink"].is_string() {
            assert_eq!(inv["status"], "FINAL");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the queue finalized it: {inv}"
        );
        runs += usize::from(off.app.run_next_job().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        runs, 2,
        "one try met the second 429 and was put back; the next succeeded"
    );
    assert!(
        !off.app.run_next_job().unwrap(),
        "the job is gone once done"
    );
    let sessions = off.emulator.emulator.objects("checkout.session");
    assert_eq!(sessions.len(), 1, "one Checkout Session in all");
}

mod pay_page_hardening {
    //! The pay link is public: its pages say how a browser may use them, and
    //! it sends the customer only to Stripe Checkout (security review S15).

    use e2e_tests::{INVOICE_KEY, Served};
    use host_runtime::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
    use host_runtime::imports::HttpBackend;
    use host_server::app::Reply;
    use host_server::config::Flags;
    use host_tools::offline_stripe::InProcess;
    use std::sync::Arc;

    /// Stripe, except that Checkout Sessions come back with `url` replaced.
    struct SessionUrl(InProcess, String);

    impl HttpBackend for SessionUrl {
        fn send(&self, req: &Request) -> Result<Response, HttpError> {
            let mut r = self.0.send(req)?;
            if req.url.contains("/v1/checkout/sessions") {
                let mut v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if v["url"].is_string() {
                    v["url"] = self.1.clone().into();
                    r.body = serde_json::to_vec(&v).unwrap();
                }
            }
            Ok(r)
        }
    }

    /// `serve`'s core with its pay link opened once, Checkout's URL being `url`.
    fn open_pay_link(url: &str) -> Reply {
        let flags = Flags {
            auto_charge: Some(false),
            ..Flags::default()
        };
        let served = Served::start(flags, |emu| {
            Arc::new(SessionUrl(InProcess(emu.clone()), url.into()))
        });
        let token = served.send("inv_01");
        let sessions = served.emulator.objects("checkout.session");
        assert!(sessions[0]["metadata"][INVOICE_KEY] == "inv_01");
        served.app.handle("GET", &format!("/pay/{token}"), &[], b"")
    }

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_pay_link_redirects_only_to_stripe_checkout() {
        let fine = open_pay_link("https://checkout.stripe.com/c/pay/cs_test_1");
        assert_eq!(fine.status, 303);
        assert_eq!(
            header(&fine, "Location"),
            Some("https://checkout.stripe.com/c/pay/cs_test_1")
        );
        for bad in [
            "javascript:alert(1)",
            "https://evil.example/c/pay/cs_test_1",
            "http://checkout.stripe.com/c/pay/x",
        ] {
            let r = open_pay_link(bad);
            assert_ne!(r.status, 303, "{bad}");
            assert_eq!(header(&r, "Location"), None, "{bad}");
            let body = String::from_utf8_lossy(&r.body).to_string();
            assert!(!body.contains(bad), "{bad} in the page: {body}");
        }
    }

    #[test]
    fn the_pay_pages_tell_browsers_how_to_treat_them() {
        let r = open_pay_link("https://checkout.stripe.com/c/pay/cs_test_1");
        for (name, value) in [
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-store, private"),
        ] {
            assert_eq!(header(&r, name), Some(value), "{name}");
        }
        let csp = header(&r, "Content-Security-Policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
    }
}
