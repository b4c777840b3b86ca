//! Reconciliation through the real component: every handled event type and
//! the transition it makes, deliveries repeated and shuffled converging to
//! the state of one clean delivery, late and early events, and the webhook's
//! refusals. Events come from the emulator doing what Stripe does.

use e2e_tests::*;
use host_runtime::bindings::{PluginError, Transition, WebhookOutcome};
use host_tools::demo::INVOICE_JSON;
use serde_json::{Value, json};

/// A host that knows invoices inv_01 to inv_03 (finalized).
fn host() -> Harness {
    let h = Harness::new();
    for id in ["inv_01", "inv_02", "inv_03"] {
        let mut doc: Value = serde_json::from_str(INVOICE_JSON).unwrap();
        doc["id"] = id.into();
        h.records().insert_draft(&doc, id).unwrap();
        h.records().set_status_if(id, "DRAFT", "FINAL").unwrap();
    }
    h
}

fn invoice_no(h: &Harness, id: &str, cus: &str) -> host_runtime::bindings::Invoice {
    let mut inv = h.invoice_for(cus);
    inv.id = id.into();
    inv.number = format!("INV-{id}");
    inv
}

/// Delivers `event` as Stripe would and applies the outcome as `serve` does.
/// Returns the HTTP status the host would answer with, and the outcome.
fn deliver(h: &Harness, event: &Value) -> (u16, Result<WebhookOutcome, PluginError>) {
    let body = serde_json::to_vec(event).unwrap();
    let result = h
        .runtime
        .on_webhook(TENANT, &h.merchant, &h.delivery(&body, SECRET))
        .unwrap();
    let status = match &result {
        Ok(o) if (200..300).contains(&o.status) => match h.records().apply(&o.transitions) {
            Ok(()) => o.status,
            Err(_) => 503,
        },
        Ok(o) => o.status,
        Err(e) if e.retryable() => 503,
        Err(_) => 400,
    };
    (status, result)
}

fn summary(event: &Value, status: u16, result: &Result<WebhookOutcome, PluginError>) -> String {
    let what = match result {
        Ok(o) => {
            let ts: Vec<String> = o.transitions.iter().map(ToString::to_string).collect();
            format!("{} [{}]", o.reason, ts.join("; "))
        }
        Err(e) => format!("error: {}", e.message()),
    };
    format!(
        "{:<40} {status} {what}",
        event["type"].as_str().unwrap_or("")
    )
}

/// Runs a scenario that touches every handled event type; returns the events.
fn every_event(h: &Harness) -> Vec<Value> {
    let cus = h.stripe_customer("Every Event Ltd");
    // inv_01: paid by link, partly refunded, a refund fails, disputed and won.
    let r = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice_no(h, "inv_01", &cus))
        .unwrap()
        .unwrap();
    let link = last_link(&r);
    let expired = h.stripe(
        "POST",
        &format!("/v1/checkout/sessions/{}/expire", link.session()),
        "",
    );
    assert_eq!(expired["status"], "expired");
    let token = link.url.rsplit('/').next().unwrap().to_string();
    let opened = h
        .runtime
        .on_pay_link_opened(TENANT, &h.merchant, &token)
        .unwrap()
        .unwrap();
    let host_runtime::bindings::PayPage::Redirect(url) = opened.page else {
        panic!("{opened:?}")
    };
    let session = url.rsplit('/').next().unwrap().to_string();
    let paid = h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{session}/complete"),
        &[],
        b"",
    );
    let pi = serde_json::from_slice::<Value>(&paid.body).unwrap()["payment_intent"]
        .as_str()
        .unwrap()
        .to_string();
    let refund = h.stripe(
        "POST",
        "/v1/refunds",
        &format!("payment_intent={pi}&amount=20000"),
    );
    h.emulator.handle(
        "POST",
        &format!("/_test/refunds/{}/fail", refund["id"].as_str().unwrap()),
        &[],
        b"",
    );
    h.stripe(
        "POST",
        "/v1/refunds",
        &format!("payment_intent={pi}&amount=30000"),
    );
    let dispute = serde_json::from_slice::<Value>(
        &h.emulator
            .handle(
                "POST",
                "/_test/disputes",
                &[],
                format!("payment_intent={pi}").as_bytes(),
            )
            .body,
    )
    .unwrap();
    h.emulator.handle(
        "POST",
        &format!("/_test/disputes/{}/close", dispute["id"].as_str().unwrap()),
        &[],
        b"status=won",
    );
    // inv_02: a bank debit fails, then the card on file is declined, then it is paid in full by bank debit.
    // (Sent without auto-charge: the 4242 card saved by inv_01's checkout stays unused.)
    let mut inv2 = invoice_no(h, "inv_02", &cus);
    inv2.auto_charge = false;
    let r = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &inv2)
        .unwrap()
        .unwrap();
    let link2 = last_link(&r);
    let s2 = link2.session().to_string();
    h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{s2}/complete"),
        &[],
        b"async=1",
    );
    h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{s2}/async"),
        &[],
        b"result=failed",
    );
    // A default card that is declined, then removed.
    let pm = h.add_card(&cus, "4000000000000341", true);
    let declined = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice_no(h, "inv_02", &cus))
        .unwrap()
        .unwrap();
    assert!(
        declined
            .iter()
            .any(|t| matches!(t, Transition::PaymentFailed(_))),
        "{declined:?}"
    );
    h.stripe("POST", &format!("/v1/payment_methods/{pm}/detach"), "");
    let r = h
        .runtime
        .on_pay_link_opened(TENANT, &h.merchant, &token_of(&declined))
        .unwrap()
        .unwrap();
    let host_runtime::bindings::PayPage::Redirect(url2) = r.page else {
        panic!("{r:?}")
    };
    let s3 = url2.rsplit('/').next().unwrap().to_string();
    h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{s3}/complete"),
        &[],
        b"async=1",
    );
    h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{s3}/async"),
        &[],
        b"result=succeeded",
    );
    h.requests();
    h.emulator.events()
}

fn token_of(ts: &[Transition]) -> String {
    let link = link_in(ts).expect("a link");
    link.url.rsplit('/').next().unwrap().to_string()
}

/// Events the emulator does not emulate, shaped as Stripe sends them.
fn synthetic(h: &Harness, pi_for: &str) -> Vec<Value> {
    let event = |id: &str, kind: &str, object: Value| {
        json!({"id": id, "object": "event", "type": kind, "account": ACCOUNT, "livemode": false,
               "created": NOW_MS / 1000, "data": {"object": object}})
    };
    let _ = h;
    vec![
        event(
            "evt_syn_1",
            "payment_intent.requires_action",
            json!({"id": "pi_syn_1", "object": "payment_intent", "status": "requires_action", "amount": 120000, "currency": "gbp", "metadata": {"billing_stripe_plugin_invoice": pi_for}}),
        ),
        event(
            "evt_syn_2",
            "payment_intent.canceled",
            json!({"id": "pi_syn_1", "object": "payment_intent", "status": "canceled", "amount": 120000, "currency": "gbp", "metadata": {"billing_stripe_plugin_invoice": pi_for}}),
        ),
        event(
            "evt_syn_3",
            "setup_intent.succeeded",
            json!({"id": "seti_1", "object": "setup_intent", "status": "succeeded", "customer": "cus_emu0000000001", "payment_method": "pm_syn_1"}),
        ),
        event(
            "evt_syn_4",
            "customer.created",
            json!({"id": "cus_x", "object": "customer"}),
        ),
    ]
}

#[test]
fn every_handled_event_reaches_its_transition() {
    let h = host();
    let mut lines = Vec::new();
    for e in every_event(&h) {
        let (status, result) = deliver(&h, &e);
        lines.push(summary(&e, status, &result));
    }
    // Account events are the merchant's own account's.
    let acct = h.emulator.handle(
        "POST",
        "/v1/accounts",
        &[("Authorization".into(), "Bearer sk_test_x".into())],
        b"type=express&country=GB",
    );
    let acct = serde_json::from_slice::<Value>(&acct.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.emulator.handle(
        "POST",
        &format!("/_test/accounts/{acct}/activate"),
        &[],
        b"",
    );
    h.emulator.handle(
        "POST",
        &format!("/_test/accounts/{acct}/deauthorize"),
        &[],
        b"",
    );
    let mut connected = h.merchant.clone();
    connected.account_id = acct.clone();
    for e in h
        .emulator
        .events()
        .iter()
        .filter(|e| e["account"] == acct.as_str())
    {
        let body = serde_json::to_vec(e).unwrap();
        let o = h
            .runtime
            .on_webhook(TENANT, &connected, &h.delivery(&body, SECRET))
            .unwrap();
        lines.push(summary(e, 200, &o));
    }
    let mut inv3 = invoice_no(&h, "inv_03", "cus_emu0000000001");
    inv3.auto_charge = false;
    h.runtime
        .on_invoice_finalized(TENANT, &h.merchant, &inv3)
        .unwrap()
        .unwrap();
    for e in synthetic(&h, "inv_03") {
        let (status, result) = deliver(&h, &e);
        lines.push(summary(&e, status, &result));
    }
    insta::assert_snapshot!("every_event", lines.join("\n"));
    let inv1 = h.records().invoice_view("inv_01").unwrap().unwrap();
    let inv2 = h.records().invoice_view("inv_02").unwrap().unwrap();
    assert_eq!(
        (inv1["status"].as_str(), inv1["amountRefunded"].as_str()),
        (Some("PARTIALLY_REFUNDED"), Some("300.00")),
        "a won dispute returns to the refunded state"
    );
    assert_eq!(inv2["status"], "PAID");
}

/// Delivers every event three times in a seeded shuffle; a delivery answered
/// with anything but 2xx is retried later, as Stripe does.
fn deliver_shuffled(h: &Harness, events: &[Value], seed: u64) {
    let mut queue: Vec<Value> = events
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.clone(), 3))
        .collect();
    let mut x = seed;
    for i in (1..queue.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        queue.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut sent = 0;
    while let Some(e) = queue.pop() {
        sent += 1;
        assert!(sent < 2000, "deliveries never converged");
        if deliver(h, &e).0 >= 300 {
            queue.insert(0, e);
        }
    }
}

/// What a merchant's finance team reads off an invoice. (`lastFailure` is a
/// log of the latest failure seen, so it is left out: it depends on order.)
fn final_state(h: &Harness) -> Value {
    let view = |id: &str| {
        let v = h.records().invoice_view(id).unwrap().unwrap();
        json!({"status": v["status"], "amountPaid": v["amountPaid"], "amountRefunded": v["amountRefunded"], "payments": v["payments"]})
    };
    json!({"inv_01": view("inv_01"), "inv_02": view("inv_02")})
}

/// Dedupe keys of the emails sent; each at most once.
fn email_keys(h: &Harness) -> Vec<String> {
    let keys: Vec<String> = h
        .emails()
        .iter()
        .map(|e| e["dedupeKey"].as_str().unwrap().to_string())
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        keys.len(),
        "an email went out twice: {keys:?}"
    );
    unique
}

#[test]
fn three_shuffled_deliveries_end_where_one_clean_delivery_ends() {
    let clean = host();
    let events = every_event(&clean);
    for e in &events {
        let answer = deliver(&clean, e);
        assert!(
            answer.0 < 300,
            "clean delivery of {}: {answer:?}",
            e["type"]
        );
    }
    let expected = final_state(&clean);
    let clean_emails = email_keys(&clean);
    // The declined card's two emails. inv_02's failed debit is delivered
    // after inv_02 was paid by a later debit, which the plugin finds in Stripe
    // before believing the failure: a paid invoice gets no failure emails.
    assert_eq!(
        clean_emails.len(),
        2,
        "two emails for the declined card, none for the stale debit failure"
    );
    for seed in [7, 42, 1234, 99999, 31337] {
        let shuffled = host();
        let same_events = every_event(&shuffled);
        assert_eq!(same_events.len(), events.len());
        deliver_shuffled(&shuffled, &same_events, seed);
        assert_eq!(final_state(&shuffled), expected, "seed {seed}");
        // A failure that arrives after the invoice was paid by another attempt
        // is stale and sends nothing; any email sent is one of the clean run's.
        let sent = email_keys(&shuffled);
        assert!(
            sent.iter().all(|k| clean_emails.contains(k)),
            "seed {seed}: {sent:?}"
        );
    }
}

#[test]
fn a_late_failure_never_unpays_an_invoice() {
    let h = host();
    let cus = h.stripe_customer("Late Ltd");
    h.add_card(&cus, "4000000000000341", true);
    h.runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice_no(&h, "inv_01", &cus))
        .unwrap()
        .unwrap();
    let failed = h
        .emulator
        .events()
        .into_iter()
        .find(|e| e["type"] == "payment_intent.payment_failed")
        .unwrap();
    let r = h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice_no(&h, "inv_01", &cus))
        .unwrap()
        .unwrap();
    let session = link_in(&r).unwrap().session().to_string();
    h.emulator.handle(
        "POST",
        &format!("/_test/checkout/sessions/{session}/complete"),
        &[],
        b"",
    );
    for e in h
        .emulator
        .events()
        .iter()
        .filter(|e| e["type"] == "checkout.session.completed")
    {
        let _ = deliver(&h, e);
    }
    let emails_before = h.emails().len();
    let (status, result) = deliver(&h, &failed);
    assert_eq!(status, 200);
    let o = result.unwrap();
    assert!(
        o.transitions.is_empty() && o.reason.starts_with("ignored"),
        "{o:?}"
    );
    assert_eq!(
        h.records().invoice_view("inv_01").unwrap().unwrap()["status"],
        "PAID"
    );
    assert_eq!(
        h.emails().len(),
        emails_before,
        "no email for a stale failure"
    );
}

#[test]
fn money_in_another_currency_or_short_is_not_paid() {
    let h = host();
    let cus = h.stripe_customer("Short Ltd");
    h.runtime
        .on_invoice_finalized(TENANT, &h.merchant, &invoice_no(&h, "inv_01", &cus))
        .unwrap()
        .unwrap();
    let pay = |id: &str, amount: u64, currency: &str| {
        json!({"id": id, "object": "event", "type": "payment_intent.succeeded",
        "account": ACCOUNT, "livemode": false, "data": {"object": {"id": format!("pi_{id}"), "object": "payment_intent",
        "amount": amount, "amount_received": amount, "currency": currency, "status": "succeeded", "metadata": {"billing_stripe_plugin_invoice": "inv_01"}}}})
    };
    let (_, usd) = deliver(&h, &pay("evt_usd", 120000, "usd"));
    assert!(matches!(
        usd.unwrap().transitions.as_slice(),
        [Transition::PaymentFlagged(_)]
    ));
    assert_eq!(
        h.records().invoice_view("inv_01").unwrap().unwrap()["status"],
        "FINAL"
    );
    let _ = deliver(&h, &pay("evt_short", 100000, "gbp"));
    let inv = h.records().invoice_view("inv_01").unwrap().unwrap();
    assert_eq!(
        (inv["status"].as_str(), inv["amountPaid"].as_str()),
        (Some("PARTIALLY_PAID"), Some("1000.00"))
    );
    let _ = deliver(&h, &pay("evt_rest", 20000, "gbp"));
    let inv = h.records().invoice_view("inv_01").unwrap().unwrap();
    assert_eq!(
        (inv["status"].as_str(), inv["amountPaid"].as_str()),
        (Some("PAID"), Some("1200.00"))
    );
}

#[test]
fn the_webhook_refuses_what_is_not_stripes_for_this_merchant() {
    let mut h = host();
    h.set_keys(&["whsec_old_one", SECRET]);
    let e = json!({"id": "evt_other", "object": "event", "type": "customer.created", "account": ACCOUNT, "livemode": false,
        "data": {"object": {"id": "cus_1", "object": "customer"}}});
    let body = serde_json::to_vec(&e).unwrap();
    let o = h
        .runtime
        .on_webhook(TENANT, &h.merchant, &h.delivery(&body, SECRET))
        .unwrap()
        .unwrap();
    assert_eq!(
        (o.status, o.reason.as_str()),
        (200, "customer.created is not handled; ignored"),
        "the second secret verifies"
    );
    let mut live = e.clone();
    live["livemode"] = true.into();
    let o = h
        .runtime
        .on_webhook(
            TENANT,
            &h.merchant,
            &h.delivery(&serde_json::to_vec(&live).unwrap(), SECRET),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        (o.status, o.reason.as_str()),
        (200, "event for the other mode (live/test); ignored")
    );
    let huge = vec![b' '; 256 * 1024 + 1];
    let o = h
        .runtime
        .on_webhook(TENANT, &h.merchant, &h.delivery(&huge, SECRET))
        .unwrap()
        .unwrap();
    assert_eq!(o.status, 413);
    let garbage = h
        .runtime
        .on_webhook(TENANT, &h.merchant, &h.delivery(b"{not json", SECRET))
        .unwrap()
        .unwrap();
    assert_eq!(
        (garbage.status, garbage.reason.as_str()),
        (400, "body is not a Stripe event")
    );
}
