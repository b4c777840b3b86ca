//! Stripe's test cards. https://docs.stripe.com/testing#declined-payments

use crate::support::*;

#[test]
fn cards_that_decline_cannot_be_saved_to_a_customer() {
    let s = Stripe::new();
    let cus = s.customer();
    for (number, decline) in [
        ("4000000000000002", "generic_decline"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
    ] {
        let pm = id(&s.ok(
            "/v1/payment_methods",
            &format!("type=card&card[number]={number}"),
        ));
        let (status, err) = s.call(
            "POST",
            &format!("/v1/payment_methods/{pm}/attach"),
            &format!("customer={cus}"),
        );
        assert_eq!(status, 402, "{number}");
        assert_eq!(err["error"]["decline_code"], decline, "{number}");
        assert!(
            err["error"]["advice_code"].is_null(),
            "Stripe documents no advice code for test cards"
        );
    }
    let (_, list) = s.call("GET", &format!("/v1/customers/{cus}/payment_methods"), "");
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[test]
fn card_0341_attaches_then_declines_when_charged() {
    let s = Stripe::new();
    let cus = s.customer();
    let pm = s.saved_card(&cus, "4000000000000341");
    let (status, err) = s.off_session_charge(&cus, &pm, "");
    assert_eq!(status, 402);
    assert_eq!(err["error"]["code"], "card_declined");
    assert_eq!(
        err["error"]["payment_intent"]["status"],
        "requires_payment_method"
    );
    assert_eq!(
        s.event_types().last().unwrap(),
        "payment_intent.payment_failed"
    );
}

#[test]
fn card_3184_asks_for_authentication_off_session_it_declines() {
    let s = Stripe::new();
    let cus = s.customer();
    let pm = s.saved_card(&cus, "4000002760003184");
    let (status, err) = s.off_session_charge(&cus, &pm, "");
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (402, Some("authentication_required"))
    );
    let (status, pi) = s.call(
        "POST",
        "/v1/payment_intents",
        &format!("amount=1000&currency=gbp&customer={cus}&payment_method={pm}&confirm=true&payment_method_types[0]=card"),
    );
    assert_eq!(
        (status, pi["status"].as_str()),
        (200, Some("requires_action"))
    );
    assert_eq!(
        s.event_types().last().unwrap(),
        "payment_intent.requires_action"
    );
}

#[test]
fn pm_card_tokens_make_a_fresh_card_each_time() {
    let s = Stripe::new();
    let (status, pi) = s.call(
        "POST",
        "/v1/payment_intents",
        "amount=1000&currency=gbp&payment_method=pm_card_visa&confirm=true&payment_method_types[0]=card",
    );
    assert_eq!(
        (status, pi["status"].as_str()),
        (200, Some("succeeded")),
        "{pi}"
    );
    assert!(pi["payment_method"].as_str().unwrap().starts_with("pm_emu"));
    let (status, err) = s.call(
        "POST",
        "/v1/payment_intents",
        "amount=1000&currency=gbp&payment_method=pm_card_chargeDeclinedInsufficientFunds&confirm=true&payment_method_types[0]=card",
    );
    assert_eq!(
        (status, err["error"]["decline_code"].as_str()),
        (402, Some("insufficient_funds"))
    );
    let (status, _) = s.call(
        "POST",
        "/v1/payment_intents",
        "amount=1000&currency=gbp&payment_method=pm_card_nonsense&confirm=true&payment_method_types[0]=card",
    );
    assert_eq!(status, 404);
}

#[test]
fn a_decline_says_not_to_retry_and_a_conflict_says_to() {
    let s = Stripe::new();
    let cus = s.customer();
    let pm = s.saved_card(&cus, "4000000000000341");
    let declined = s.raw(
        "POST",
        "/v1/payment_intents",
        &format!("amount=1000&currency=gbp&customer={cus}&payment_method={pm}&off_session=true&confirm=true&payment_method_types[0]=card"),
        None,
    );
    assert_eq!(
        (declined.status, declined.header("Stripe-Should-Retry")),
        (402, Some("false"))
    );
    let ok = s.raw("GET", "/v1/customers", "", None);
    assert_eq!(ok.header("Stripe-Should-Retry"), None);
}

/// A test control, not Stripe's: a card's next charges declined with a
/// soft decline code, then it behaves as its number says (dunning's tests
/// need a card that declines and later succeeds; Stripe has no such card).
/// The codes and messages are Stripe's: https://docs.stripe.com/declines/codes
#[test]
fn scripted_soft_declines_come_first_then_the_card_succeeds() {
    let s = Stripe::new();
    let cus = s.customer();
    let pm = s.saved_card(&cus, "4242424242424242");
    let r = s.test_route(
        &format!("/_test/payment_methods/{pm}/declines"),
        "decline_code=insufficient_funds&times=2",
    );
    assert_eq!(r.status, 200);
    for _ in 0..2 {
        let (status, err) = s.off_session_charge(&cus, &pm, "");
        assert_eq!(status, 402, "{err}");
        assert_eq!(err["error"]["code"], "card_declined");
        assert_eq!(err["error"]["decline_code"], "insufficient_funds");
        assert_eq!(err["error"]["message"], "Your card has insufficient funds.");
    }
    let (status, pi) = s.off_session_charge(&cus, &pm, "");
    assert_eq!(
        (status, pi["status"].as_str()),
        (200, Some("succeeded")),
        "{pi}"
    );
    let r = s.test_route(
        &format!("/_test/payment_methods/{pm}/declines"),
        "decline_code=stolen_card",
    );
    assert_eq!(r.status, 400, "only soft declines are scripted");
}
