//! https://docs.stripe.com/api/idempotent_requests

use crate::support::*;

#[test]
fn a_key_replays_its_first_answer_and_refuses_other_parameters_per_account() {
    let s = Stripe::new();
    let first = s.raw("POST", "/v1/customers", "name=A", Some("k1"));
    let replay = s.raw("POST", "/v1/customers", "name=A", Some("k1"));
    assert_eq!(first.body, replay.body);
    assert_eq!(replay.header("Idempotent-Replayed"), Some("true"));
    let clash = s.raw("POST", "/v1/customers", "name=B", Some("k1"));
    assert_eq!(clash.status, 400);
    assert_eq!(clash.json_body()["error"]["type"], "idempotency_error");
    let mut other = Stripe::new();
    other.emu = s.emu.clone();
    other.emu.connect_existing("acct_other", "Other");
    other.account = "acct_other".into();
    assert_eq!(
        other
            .raw("POST", "/v1/customers", "name=B", Some("k1"))
            .status,
        200
    );
    assert_eq!(s.emu.objects("customer").len(), 2);
}

#[test]
fn keys_longer_than_255_characters_are_refused() {
    let s = Stripe::new();
    let long = "k".repeat(256);
    assert_eq!(
        s.raw("POST", "/v1/customers", "name=A", Some(&long)).status,
        400
    );
    assert_eq!(
        s.raw("POST", "/v1/customers", "name=A", Some(&long[..255]))
            .status,
        200
    );
    assert_eq!(s.emu.objects("customer").len(), 1);
}

#[test]
fn a_key_is_a_new_request_after_24_hours() {
    let s = Stripe::new();
    let first = s
        .raw("POST", "/v1/customers", "name=A", Some("day"))
        .json_body();
    s.advance_secs(24 * 3600 - 1);
    let same = s
        .raw("POST", "/v1/customers", "name=A", Some("day"))
        .json_body();
    assert_eq!(first["id"], same["id"], "still replayed within 24 hours");
    s.advance_secs(1);
    let later = s
        .raw("POST", "/v1/customers", "name=A", Some("day"))
        .json_body();
    assert_ne!(first["id"], later["id"], "a new request after 24 hours");
}

#[test]
fn a_request_that_failed_validation_is_not_saved() {
    let s = Stripe::new();
    let bad = s.raw("POST", "/v1/customers", "nonsense=1", Some("v"));
    assert_eq!(bad.status, 400);
    let good = s.raw("POST", "/v1/customers", "name=A", Some("v"));
    assert_eq!(
        good.status, 200,
        "the key was not kept for the refused request"
    );
    assert_eq!(good.header("Idempotent-Replayed"), None);
}

#[test]
fn a_declined_charge_is_saved_and_replayed() {
    let s = Stripe::new();
    let cus = s.customer();
    let pm = s.saved_card(&cus, "4000000000000341");
    let form = format!(
        "amount=1000&currency=gbp&customer={cus}&payment_method={pm}&off_session=true&confirm=true&payment_method_types[0]=card"
    );
    let first = s.raw("POST", "/v1/payment_intents", &form, Some("charge-1"));
    let again = s.raw("POST", "/v1/payment_intents", &form, Some("charge-1"));
    assert_eq!((first.status, again.status), (402, 402));
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(s.emu.objects("payment_intent").len(), 1);
}

#[test]
fn the_same_key_used_concurrently_gets_409() {
    let s = Stripe::new();
    // The first request is still running (its answer is slow): a second
    // one with the same key arrives meanwhile.
    s.emu
        .slow_down("/v1/customers", std::time::Duration::from_millis(300), 1);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| s.raw("POST", "/v1/customers", "name=A", Some("busy")));
        std::thread::sleep(std::time::Duration::from_millis(100));
        let second = s.raw("POST", "/v1/customers", "name=A", Some("busy"));
        assert_eq!(second.status, 409, "{}", second.json_body());
        assert_eq!(
            second.json_body()["error"]["code"],
            "idempotency_key_in_use"
        );
        assert_eq!(second.header("Stripe-Should-Retry"), Some("true"));
        assert_eq!(first.join().unwrap().status, 200);
    });
    assert_eq!(s.emu.objects("customer").len(), 1);
}
