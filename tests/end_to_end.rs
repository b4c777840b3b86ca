//! The whole story through `serve` and the emulator over loopback HTTP, as a
//! billing platform and its customer would drive it.

use host_harness::config::Flags;
use host_harness::demo::{CUSTOMER_JSON, INVOICE_JSON, Offline};
use serde_json::{Value, json};
use std::time::Duration;

fn offline() -> Offline {
    Offline::start(&Flags::default()).expect("offline host")
}

/// Creates a customer directly in the merchant's Stripe account (self-serve onboarding).
fn stripe_customer(off: &Offline) -> String {
    let account = &off.app.merchant.account_id;
    let reply = off.emulator.emulator.handle(
        "POST",
        "/v1/customers",
        &[("Authorization".into(), "Bearer sk_test_e2e".into()), ("Stripe-Account".into(), account.clone())],
        b"name=John+Doe",
    );
    serde_json::from_slice::<Value>(&reply.body).unwrap()["id"].as_str().unwrap().to_string()
}

fn with_stripe_id(cus: &str) -> String {
    let mut c: Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
    c["externalIds"][1]["value"] = cus.into();
    c.to_string()
}

#[test]
fn an_invoice_is_paid_by_link_and_reconciled_by_webhook() {
    let off = offline();
    let (status, _) = off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    assert_eq!(status, 201);
    let (status, inv) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    assert_eq!((status, inv["status"].as_str()), (200, Some("FINAL")), "{inv}");
    let link = inv["paymentLink"].as_str().expect("payment link");
    assert!(link.starts_with(&format!("{}/pay/", off.server.base_url)), "the stable link, not a raw Checkout URL: {link}");

    let session = inv["checkoutSessionId"].as_str().unwrap();
    let (status, _) = off.stripe("POST", &format!("/_test/checkout/sessions/{session}/complete"), Some("card=4242424242424242")).unwrap();
    assert_eq!(status, 200);
    let inv = off.wait_for_status("inv_01", "PAID", Duration::from_secs(20)).unwrap();
    assert_eq!(inv["amountPaid"], "1200.00");
    assert_eq!(inv["payments"][0]["status"], "succeeded");
    // Unknown fields of the platform's invoice are kept.
    assert_eq!(inv["billingScheduleId"], "bs_01");
}

#[test]
fn the_platforms_customer_json_is_accepted_verbatim_and_links_unlinks() {
    let off = offline();
    let cus = stripe_customer(&off);
    let (status, body) = off.host("PUT", "/customers/c1", Some(&with_stripe_id(&cus))).unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, got) = off.host("GET", "/customers/c1", None).unwrap();
    assert_eq!(got["stripeCustomerId"], cus.as_str());
    let sent: Value = serde_json::from_str(&with_stripe_id(&cus)).unwrap();
    for (k, v) in sent.as_object().unwrap() {
        assert_eq!(&got[k], v, "field {k} is kept as sent");
    }

    // An unknown cus_... is refused with a clear error, and nothing changes.
    let (status, body) = off.host("PUT", "/customers/c1", Some(CUSTOMER_JSON)).unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("cus_OCtCxqQDgu1uX9 does not exist"), "{body}");
    let (_, got) = off.host("GET", "/customers/c1", None).unwrap();
    assert_eq!(got["stripeCustomerId"], cus.as_str());

    // Without the Stripe external id, the customer is unlinked.
    let mut unlinked: Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
    unlinked["externalIds"] = json!([{"key": "Xero", "value": "123456789"}]);
    let (status, got) = off.host("PUT", "/customers/c1", Some(&unlinked.to_string())).unwrap();
    assert_eq!((status, &got["stripeCustomerId"]), (200, &Value::Null), "{got}");
}

#[test]
fn unsigned_or_forged_webhooks_are_refused_and_change_nothing() {
    let off = offline();
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    let forged = json!({"id": "evt_forged", "object": "event", "type": "checkout.session.completed",
        "account": off.app.merchant.account_id, "livemode": false,
        "data": {"object": {"id": "cs_x", "object": "checkout.session", "payment_status": "paid",
        "amount_total": 120000, "currency": "gbp", "metadata": {"invoice_id": "inv_01"}}}});
    let (status, body) = off.host("POST", "/webhooks/stripe", Some(&forged.to_string())).unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["reason"], "no Stripe-Signature header");
    let (_, inv) = off.host("GET", "/invoices/inv_01", None).unwrap();
    assert_eq!(inv["status"], "FINAL");
}
