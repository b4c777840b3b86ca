//! Checkout's hosted page: declines, retries and 3-D Secure.
//! https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-payment_intent

use crate::support::*;
use serde_json::Value;

fn session_now(s: &Stripe, id: &str) -> Value {
    s.call("GET", &format!("/v1/checkout/sessions/{id}"), "").1
}

#[test]
fn a_decline_keeps_the_session_open_on_one_payment_intent() {
    let s = Stripe::new();
    let session = s.session("&payment_intent_data[metadata][k]=v");
    let cs = id(&session);
    let pay = |card: &str| {
        s.test_route(
            &format!("/_test/checkout/sessions/{cs}/complete"),
            &format!("card={card}"),
        )
    };
    assert_eq!(pay("4000000000000002").status, 402);
    let open = session_now(&s, &cs);
    assert_eq!(open["status"], "open");
    let pi = open["payment_intent"].as_str().unwrap().to_string();
    let failed = s.emu.events().pop().unwrap();
    assert_eq!(failed["type"], "payment_intent.payment_failed");
    assert_eq!(failed["data"]["object"]["id"], pi.as_str());
    assert_eq!(failed["data"]["object"]["metadata"]["k"], "v");
    assert_eq!(
        failed["data"]["object"]["status"],
        "requires_payment_method"
    );
    assert_eq!(pay("4242424242424242").status, 200);
    let intents = s.emu.objects("payment_intent");
    assert_eq!(intents.len(), 1, "the retry used the same PaymentIntent");
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(session_now(&s, &cs)["payment_status"], "paid");
}

#[test]
fn card_3184_on_the_page_asks_for_authentication_which_can_fail_or_pass() {
    let s = Stripe::new();
    let cs = id(&s.session(""));
    let page = s.test_route(&format!("/checkout/{cs}/pay"), "card=4000+0027+6000+3184");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("Complete authentication"));
    assert_eq!(
        s.event_types().last().unwrap(),
        "payment_intent.requires_action"
    );
    let failed = s.test_route(&format!("/checkout/{cs}/authenticate"), "result=failed");
    assert_eq!(failed.status, 402);
    assert_eq!(
        s.event_types().last().unwrap(),
        "payment_intent.payment_failed"
    );
    assert_eq!(session_now(&s, &cs)["status"], "open");
    s.test_route(&format!("/checkout/{cs}/pay"), "card=4000002760003184");
    let passed = s.test_route(&format!("/checkout/{cs}/authenticate"), "result=complete");
    assert_eq!(passed.status, 303, "back to the success URL");
    let events = s.event_types();
    assert_eq!(
        &events[events.len() - 2..],
        ["payment_intent.succeeded", "checkout.session.completed"]
    );
    assert_eq!(s.emu.objects("payment_intent").len(), 1);
}

#[test]
fn a_session_expires_by_the_clock_with_its_event() {
    let s = Stripe::new();
    let cs = id(&s.session(""));
    s.advance_secs(24 * 3600 - 1);
    assert_eq!(session_now(&s, &cs)["status"], "open");
    s.advance_secs(1);
    assert_eq!(session_now(&s, &cs)["status"], "expired");
    assert_eq!(s.event_types().last().unwrap(), "checkout.session.expired");
    let late = s.test_route(
        &format!("/_test/checkout/sessions/{cs}/complete"),
        "card=4242424242424242",
    );
    assert_eq!(late.status, 400, "an expired session cannot be paid");
}

#[test]
fn the_page_shows_the_business_name_not_the_account_id() {
    let s = Stripe::new();
    let cs = id(&s.session(""));
    let page = s.emu.handle("GET", &format!("/checkout/{cs}"), &[], b"");
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("Merchant Ltd"), "{html}");
    assert!(!html.contains(ACCOUNT));
}
