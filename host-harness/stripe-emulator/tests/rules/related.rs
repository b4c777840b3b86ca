//! Objects that follow from others: charges of PaymentIntents, refunds and
//! disputes of card payments and bank debits alike.
//! https://docs.stripe.com/payments/payment-intents#storing-information-in-metadata
//! https://docs.stripe.com/disputes/how-disputes-work

use crate::support::*;

#[test]
fn a_payment_intents_metadata_is_copied_to_its_charge() {
    let s = Stripe::new();
    let cus = s.customer();
    let card = s.saved_card(&cus, "4242424242424242");
    let (_, pi) = s.off_session_charge(&cus, &card, "&metadata[order]=42");
    let charge = s
        .call(
            "GET",
            &format!("/v1/charges/{}", pi["latest_charge"].as_str().unwrap()),
            "",
        )
        .1;
    assert_eq!(charge["metadata"]["order"], "42");
    assert_eq!(charge["payment_intent"], pi["id"]);
    assert_eq!(charge["payment_method_details"]["type"], "card");
}

#[test]
fn a_bank_debit_that_succeeds_has_a_charge_that_can_be_refunded_and_disputed() {
    let s = Stripe::new();
    let cus = s.customer();
    let pm = id(&s.ok(
        "/v1/payment_methods",
        "type=sepa_debit&sepa_debit[iban]=AT611904300234573201",
    ));
    s.ok(
        &format!("/v1/payment_methods/{pm}/attach"),
        &format!("customer={cus}"),
    );
    let (status, pi) = s.call(
        "POST",
        "/v1/payment_intents",
        &format!("amount=1000&currency=eur&customer={cus}&payment_method={pm}&off_session=true&confirm=true&payment_method_types[0]=sepa_debit"),
    );
    assert_eq!((status, pi["status"].as_str()), (200, Some("processing")));
    let pi_id = id(&pi);
    assert_eq!(
        s.test_route(&format!("/_test/payment_intents/{pi_id}/settle"), "")
            .status,
        200
    );
    let settled = s.call("GET", &format!("/v1/payment_intents/{pi_id}"), "").1;
    assert_eq!(settled["status"], "succeeded");
    assert!(settled["latest_charge"].is_string());
    let refund = s.ok("/v1/refunds", &format!("payment_intent={pi_id}&amount=300"));
    assert_eq!(refund["status"], "succeeded");
    let dispute = s.test_route("/_test/disputes", &format!("payment_intent={pi_id}"));
    assert_eq!(dispute.status, 200);
    let events = s.event_types();
    for kind in [
        "refund.created",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ] {
        assert!(events.iter().any(|e| e == kind), "{kind} in {events:?}");
    }
}

#[test]
fn refunds_and_disputes_follow_stripes_lifecycle() {
    let s = Stripe::new();
    let cus = s.customer();
    let card = s.saved_card(&cus, "4242424242424242");
    let (_, pi) = s.off_session_charge(&cus, &card, "");
    let pi_id = id(&pi);
    let refund = id(&s.ok("/v1/refunds", &format!("payment_intent={pi_id}&amount=400")));
    s.test_route(&format!("/_test/refunds/{refund}/fail"), "");
    let charge = s
        .call(
            "GET",
            &format!("/v1/charges/{}", pi["latest_charge"].as_str().unwrap()),
            "",
        )
        .1;
    assert_eq!(
        charge["amount_refunded"], 0,
        "a failed refund gives the money back to the charge"
    );
    let dispute = s
        .test_route("/_test/disputes", &format!("payment_intent={pi_id}"))
        .json_body();
    let closed = s.test_route(
        &format!("/_test/disputes/{}/close", id(&dispute)),
        "status=won",
    );
    assert_eq!(closed.json_body()["status"], "won");
    assert_eq!(
        s.test_route(
            &format!("/_test/disputes/{}/close", id(&dispute)),
            "status=lost"
        )
        .status,
        400
    );
    let events = s.event_types();
    let tail: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .skip_while(|e| *e != "refund.created")
        .collect();
    assert_eq!(
        tail,
        [
            "refund.created",
            "charge.refunded",
            "refund.failed",
            "charge.refund.updated",
            "charge.dispute.created",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.closed",
            "charge.dispute.funds_reinstated",
        ]
    );
}
