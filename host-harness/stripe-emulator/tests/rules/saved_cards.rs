//! Cards saved without a payment: Checkout in `setup` mode and its
//! SetupIntent, and the card account updater.
//! https://docs.stripe.com/payments/save-and-reuse?platform=checkout
//! https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-setup_intent
//! https://docs.stripe.com/api/setup_intents/object
//! https://docs.stripe.com/api/events/types#event_types-payment_method.automatically_updated

use crate::support::*;
use serde_json::Value;

fn setup_session(s: &Stripe, customer: &str) -> Value {
    s.ok(
        "/v1/checkout/sessions",
        &format!(
            "mode=setup&customer={customer}&payment_method_types[0]=card\
&success_url=https://x.test/ok&setup_intent_data[metadata][k]=v"
        ),
    )
}

fn complete(s: &Stripe, session: &str, card: &str) -> u16 {
    s.test_route(
        &format!("/_test/checkout/sessions/{session}/complete"),
        &format!("card={card}"),
    )
    .status
}

#[test]
fn a_setup_session_saves_the_card_to_its_customer_through_a_setup_intent() {
    let s = Stripe::new();
    let cus = s.customer();
    let session = setup_session(&s, &cus);
    assert_eq!(session["mode"], "setup");
    assert_eq!(session["payment_status"], "no_payment_required");
    assert_eq!(session["amount_total"], Value::Null);
    // Made when the customer confirms, as a payment mode's PaymentIntent is.
    assert_eq!(session["setup_intent"], Value::Null);
    let cs = id(&session);

    assert_eq!(complete(&s, &cs, "4242424242424242"), 200);
    let done = s.call("GET", &format!("/v1/checkout/sessions/{cs}"), "").1;
    assert_eq!(done["status"], "complete");
    let seti = done["setup_intent"]
        .as_str()
        .expect("a SetupIntent")
        .to_string();
    let (status, intent) = s.call("GET", &format!("/v1/setup_intents/{seti}"), "");
    assert_eq!(status, 200, "{intent}");
    assert_eq!(intent["status"], "succeeded");
    assert_eq!(intent["usage"], "off_session");
    assert_eq!(intent["customer"], cus.as_str());
    assert_eq!(intent["metadata"]["k"], "v");
    let pm = intent["payment_method"].as_str().unwrap();
    let method = s.call("GET", &format!("/v1/payment_methods/{pm}"), "").1;
    assert_eq!(method["customer"], cus.as_str());
    assert_eq!(method["card"]["last4"], "4242");
    let types = s.event_types();
    let succeeded = types.iter().position(|t| t == "setup_intent.succeeded");
    let completed = types.iter().position(|t| t == "checkout.session.completed");
    assert!(succeeded.is_some() && succeeded < completed, "{types:?}");
    assert!(
        !types.iter().any(|t| t.starts_with("payment_intent.")),
        "{types:?}"
    );
}

#[test]
fn a_declined_card_leaves_the_setup_session_open_with_the_error_on_its_intent() {
    let s = Stripe::new();
    let cus = s.customer();
    let cs = id(&setup_session(&s, &cus));
    assert_eq!(complete(&s, &cs, "4000000000000002"), 402);
    let open = s.call("GET", &format!("/v1/checkout/sessions/{cs}"), "").1;
    assert_eq!(open["status"], "open");
    let failed = s.emu.events().pop().unwrap();
    assert_eq!(failed["type"], "setup_intent.setup_failed");
    let intent = &failed["data"]["object"];
    assert_eq!(intent["status"], "requires_payment_method");
    assert_eq!(
        intent["last_setup_error"]["decline_code"],
        "generic_decline"
    );
    // The next try confirms the same SetupIntent.
    assert_eq!(complete(&s, &cs, "4242424242424242"), 200);
    assert_eq!(s.emu.objects("setup_intent").len(), 1);
    assert_eq!(s.emu.objects("setup_intent")[0]["status"], "succeeded");
}

#[test]
fn a_setup_session_wants_a_currency_or_payment_method_types_and_no_line_items() {
    let s = Stripe::new();
    let cus = s.customer();
    let base = format!("mode=setup&customer={cus}&success_url=https://x.test/ok");
    // Checkout's dynamic payment methods need the currency in setup mode.
    let (status, e) = s.call("POST", "/v1/checkout/sessions", &base);
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["param"], "currency");
    s.ok("/v1/checkout/sessions", &format!("{base}&currency=gbp"));
    let with_items = format!(
        "{base}&currency=gbp&line_items[0][quantity]=1&line_items[0][price_data][currency]=gbp\
&line_items[0][price_data][unit_amount]=1000&line_items[0][price_data][product_data][name]=X"
    );
    let (status, e) = s.call("POST", "/v1/checkout/sessions", &with_items);
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["param"], "line_items");
}

#[test]
fn the_card_updater_changes_a_saved_card_in_place_with_its_event() {
    let s = Stripe::new();
    let cus = s.customer();
    // Saved, then every charge declined: the bank has reissued the card.
    let pm = s.saved_card(&cus, "4000000000000341");
    let (status, declined) = s.off_session_charge(&cus, &pm, "");
    assert_eq!(status, 402, "{declined}");
    assert_eq!(declined["error"]["code"], "card_declined");

    let updated = s
        .test_route(
            &format!("/_test/payment_methods/{pm}/automatically_update"),
            "",
        )
        .json_body();
    assert_eq!(updated["id"], pm.as_str(), "the same PaymentMethod");
    assert_eq!(updated["customer"], cus.as_str());
    let event = s.emu.events().pop().unwrap();
    assert_eq!(event["type"], "payment_method.automatically_updated");
    assert_eq!(event["data"]["object"]["id"], pm.as_str());
    assert!(
        event["data"]["object"]["card"]["exp_year"].as_i64() > Some(2034),
        "{event}"
    );
    let (status, paid) = s.off_session_charge(&cus, &pm, "");
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["status"], "succeeded");
}

#[test]
fn the_hosted_page_of_a_setup_session_saves_a_card_and_charges_nothing() {
    let s = Stripe::new();
    let cus = s.customer();
    let cs = id(&setup_session(&s, &cus));
    let page = s.emu.handle("GET", &format!("/checkout/{cs}"), &[], b"");
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("Save a card for Merchant Ltd"), "{html}");
    assert!(
        html.contains("Save card") && !html.contains("Pay "),
        "{html}"
    );
    let saved = s.emu.handle(
        "POST",
        &format!("/checkout/{cs}/pay"),
        &[(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        b"card=4242+4242+4242+4242",
    );
    assert_eq!(
        saved.status,
        303,
        "{}",
        String::from_utf8_lossy(&saved.body)
    );
    assert_eq!(s.emu.objects("setup_intent")[0]["status"], "succeeded");
    assert!(s.emu.objects("payment_intent").is_empty());
}
