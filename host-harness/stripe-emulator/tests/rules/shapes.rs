//! Every object the emulator returns carries every top-level key of Stripe's
//! own sample of that resource (`tests/stripe-fixtures/fixtures3.json`,
//! vendored from stripe/openapi), with the same JSON type or null.

use crate::support::*;
use serde_json::Value;

fn samples() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/stripe-fixtures/fixtures3.json"
    );
    let text = std::fs::read_to_string(path).expect("the vendored fixtures");
    serde_json::from_str::<Value>(&text).unwrap()["resources"].take()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The differences between `ours` and Stripe's sample of `resource`.
fn differences(samples: &Value, resource: &str, ours: &Value) -> Vec<String> {
    let sample = samples[resource]
        .as_object()
        .unwrap_or_else(|| panic!("no sample of {resource}"));
    let mut out = Vec::new();
    for (key, theirs) in sample {
        match ours.get(key) {
            None => out.push(format!("{resource}.{key} is missing")),
            Some(v) if !v.is_null() && !theirs.is_null() && kind(v) != kind(theirs) => {
                out.push(format!(
                    "{resource}.{key} is a {} where Stripe has a {}",
                    kind(v),
                    kind(theirs)
                ))
            }
            Some(_) => {}
        }
    }
    out
}

/// One of each resource, made through the API and the test routes.
fn one_of_each(s: &Stripe) -> Vec<(&'static str, Value)> {
    let cus = s.customer();
    let card = s.saved_card(&cus, "4242424242424242");
    let (_, pi) = s.off_session_charge(&cus, &card, "");
    let charge = s
        .call(
            "GET",
            &format!("/v1/charges/{}", pi["latest_charge"].as_str().unwrap()),
            "",
        )
        .1;
    let refund = s.ok(
        "/v1/refunds",
        &format!("payment_intent={}&amount=100", id(&pi)),
    );
    let dispute = s
        .test_route("/_test/disputes", &format!("payment_intent={}", id(&pi)))
        .json_body();
    let session = s.session("");
    let setup = s.ok(
        "/v1/checkout/sessions",
        &format!("mode=setup&customer={cus}&currency=gbp&success_url=https://x.test/ok"),
    );
    let setup_id = id(&setup);
    s.test_route(
        &format!("/_test/checkout/sessions/{setup_id}/complete"),
        "card=4242424242424242",
    );
    let seti = s.emu.objects("setup_intent").pop().unwrap();
    let setup_intent = s
        .call("GET", &format!("/v1/setup_intents/{}", id(&seti)), "")
        .1;
    let event = s.emu.events().pop().unwrap();
    let mut platform = Stripe::new();
    platform.emu = s.emu.clone();
    platform.account = String::new();
    let account = platform.ok("/v1/accounts", "type=express");
    let link = platform.ok(
        "/v1/account_links",
        &format!("account={}&type=account_onboarding&refresh_url=https://x.test/r&return_url=https://x.test/ok", id(&account)),
    );
    vec![
        (
            "customer",
            s.call("GET", &format!("/v1/customers/{cus}"), "").1,
        ),
        (
            "payment_method",
            s.call("GET", &format!("/v1/payment_methods/{card}"), "").1,
        ),
        ("payment_intent", pi),
        ("charge", charge),
        ("refund", refund),
        ("dispute", dispute),
        ("checkout.session", session),
        ("checkout.session", setup),
        ("setup_intent", setup_intent),
        ("event", event),
        ("account", account),
        ("account_link", link),
    ]
}

#[test]
fn every_object_carries_every_top_level_key_of_stripes_sample() {
    let samples = samples();
    let s = Stripe::new();
    let mut problems = Vec::new();
    for (resource, ours) in one_of_each(&s) {
        problems.extend(differences(&samples, resource, &ours));
        let private: Vec<&String> = ours
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with('_'))
            .collect();
        assert!(
            private.is_empty(),
            "{resource} shows the emulator's own fields {private:?}"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_itself_catches_a_missing_key_and_a_wrong_type() {
    let samples = samples();
    let mut ours = samples["refund"].clone();
    ours.as_object_mut().unwrap().remove("reason");
    ours["amount"] = "100".into();
    assert_eq!(
        differences(&samples, "refund", &ours),
        [
            "refund.amount is a string where Stripe has a number",
            "refund.reason is missing"
        ]
    );
}
