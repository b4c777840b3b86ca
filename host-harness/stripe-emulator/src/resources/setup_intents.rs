//! SetupIntents, as Checkout makes them in `setup` mode: a card saved for
//! later without a payment. Only reading one is emulated; Checkout's own
//! cannot be confirmed or canceled through the API.
//! https://docs.stripe.com/api/setup_intents/object
//! https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-setup_intent

use super::payment_intents::decline_error;
use super::{public, retrieve};
use crate::test_cards::TestCard;
use crate::{Emulator, Reply, shapes};
use serde_json::{Value, json};

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str) -> Reply {
    match (method, rest) {
        ("GET", [id]) => retrieve(emu, account, "setup_intent", id, public),
        _ => crate::error::unrecognized(method, &format!("/v1/setup_intents/{}", rest.join("/"))),
    }
}

/// A new SetupIntent for `customer`, off-session use, with `metadata`.
pub fn create(emu: &Emulator, account: &str, customer: &Value, metadata: &Value) -> Value {
    let id = emu.next_id("seti");
    let intent = shapes::with(
        shapes::setup_intent(&id, emu.now()),
        json!({
            "customer": customer,
            "metadata": metadata.as_object().cloned().unwrap_or_default(),
        }),
    );
    emu.put(account, intent.clone());
    intent
}

/// The card `pm` (made from `card`) is set up: it joins the intent's
/// customer, and the intent succeeds with `setup_intent.succeeded`.
pub fn succeed(emu: &Emulator, account: &str, mut intent: Value, mut pm: Value) -> Value {
    if let Some(customer) = intent["customer"].as_str() {
        pm["customer"] = customer.into();
        emu.put(account, pm.clone());
    }
    intent["payment_method"] = pm["id"].clone();
    intent["status"] = "succeeded".into();
    intent["last_setup_error"] = Value::Null;
    emu.put(account, intent.clone());
    emu.emit(account, "setup_intent.succeeded", public(intent.clone()));
    intent
}

/// The card was declined: the intent waits for another, with the error,
/// and `setup_intent.setup_failed`; the 402 a confirming client sees.
pub fn fail(
    emu: &Emulator,
    account: &str,
    mut intent: Value,
    pm: &Value,
    card: &TestCard,
) -> Reply {
    let decline = crate::test_cards::setup_decline(card);
    let error = decline.map_or(Value::Null, |d| decline_error(&d, pm));
    intent["status"] = "requires_payment_method".into();
    intent["last_setup_error"] = error.clone();
    emu.put(account, intent.clone());
    emu.emit(account, "setup_intent.setup_failed", public(intent.clone()));
    let mut error = error;
    error["setup_intent"] = public(intent);
    Reply::json(402, &json!({ "error": error }))
}
