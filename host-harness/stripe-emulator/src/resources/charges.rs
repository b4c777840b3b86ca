//! Charges: made by a PaymentIntent that succeeds, card or bank debit.
//! https://docs.stripe.com/api/charges

use super::{public, retrieve};
use crate::list::Filter;
use crate::{Emulator, Reply, shapes};
use serde_json::{Value, json};

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str, params: &Value) -> Reply {
    match (method, rest) {
        ("GET", []) => emu.list(
            account,
            "charge",
            "/v1/charges",
            params,
            &[
                Filter::Equals("customer"),
                Filter::Equals("payment_intent"),
                Filter::Created,
            ],
            public,
        ),
        ("GET", [id]) => retrieve(emu, account, "charge", id, public),
        _ => crate::error::unrecognized(method, &format!("/v1/charges/{}", rest.join("/"))),
    }
}

/// The charge of a PaymentIntent that succeeded. The PaymentIntent's
/// metadata and receipt address are copied to it, as Stripe copies them
/// (https://docs.stripe.com/payments/payment-intents#storing-information-in-metadata).
pub fn new_charge(emu: &Emulator, account: &str, pi: &Value) -> String {
    let id = emu.next_id("ch");
    let pm = pi["payment_method"]
        .as_str()
        .and_then(|p| emu.get(account, "payment_method", p));
    let details = pm.as_ref().map(|pm| {
        let kind = pm["type"].as_str().unwrap_or("card");
        json!({"type": kind, kind: pm[kind].clone()})
    });
    let charge = shapes::with(
        shapes::charge(&id, emu.now()),
        json!({
            "amount": pi["amount"], "amount_captured": pi["amount"], "currency": pi["currency"],
            "customer": pi["customer"], "description": pi["description"], "metadata": pi["metadata"],
            "payment_intent": pi["id"], "payment_method": pi["payment_method"],
            "payment_method_details": details, "receipt_email": pi["receipt_email"],
        }),
    );
    emu.put(account, charge);
    id
}
