//! The parser against Stripe's own sample objects (the vendored
//! `tests/stripe-fixtures/fixtures3.json`, which nobody here wrote): every
//! sample of a resource the plugin handles is read, with its id and kind.

use super::objects::{Obj, parse};
use crate::events::Event;
use miniserde::json::{self, Value};

const FIXTURES: &str = include_str!("../../../tests/stripe-fixtures/fixtures3.json");

/// The resources the plugin reads.
const HANDLED: &[&str] = &[
    "customer",
    "payment_method",
    "payment_intent",
    "charge",
    "refund",
    "checkout.session",
    "dispute",
    "account",
    "account_link",
];

fn sample(name: &str) -> String {
    let Ok(Value::Object(root)) = json::from_str::<Value>(FIXTURES) else {
        panic!("fixtures3.json is not an object");
    };
    let Some(Value::Object(resources)) = root.get("resources") else {
        panic!("no resources in fixtures3.json");
    };
    let Some(object) = resources.get(name) else {
        panic!("no sample of {name}");
    };
    json::to_string(object)
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v {
        Value::Object(m) => match m.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn every_sample_of_a_handled_resource_is_read() {
    for name in HANDLED {
        let raw = sample(name);
        let whole: Value = json::from_str(&raw).unwrap();
        let obj: Obj = parse(raw.as_bytes()).unwrap_or_else(|_| panic!("{name}: not read"));
        assert_eq!(obj.object.as_deref(), Some(*name), "{name}");
        assert_eq!(obj.id.as_deref(), text(&whole, "id"), "{name}");
    }
}

#[test]
fn the_sample_event_is_read_with_its_object() {
    let raw = sample("event");
    let e = Event::parse(raw.as_bytes()).expect("the sample event");
    assert_eq!(e.kind, "plan.created");
    assert_eq!(e.object().object.as_deref(), Some("plan"));
}

#[test]
fn the_sample_payment_intent_gives_its_amounts_and_currency() {
    let pi: Obj = parse(sample("payment_intent").as_bytes()).unwrap();
    assert_eq!(Obj::amount_of(&pi.amount), Some(1099));
    assert_eq!(pi.currency.as_deref(), Some("usd"));
    assert_eq!(pi.status.as_deref(), Some("requires_payment_method"));
}
