//! One file per Stripe resource: its parameters, its rules, its objects.

pub mod accounts;
pub mod charges;
pub mod checkout_sessions;
pub mod customers;
pub mod disputes;
pub mod events;
pub mod payment_intents;
pub mod payment_methods;
pub mod refunds;
pub mod setup_intents;
pub mod webhook_endpoints;

use crate::error::missing;
use crate::{Emulator, Reply};
use serde_json::Value;

/// GET of one object of `account`, shown through `show`.
pub fn retrieve(
    emu: &Emulator,
    account: &str,
    kind: &str,
    id: &str,
    show: impl Fn(Value) -> Value,
) -> Reply {
    match emu.get(account, kind, id) {
        Some(o) => Reply::json(200, &show(o)),
        None => missing(kind, id),
    }
}

/// Fields whose names start with `_` are the emulator's own (a card's
/// number, a session's payment_intent_data): never shown.
pub fn public(mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.retain(|k, _| !k.starts_with('_'));
    }
    o
}

/// Stripe merges metadata keys; an empty value removes a key.
pub fn merge_metadata(target: &mut Value, params: &Value) {
    if !target["metadata"].is_object() {
        target["metadata"] = serde_json::json!({});
    }
    if let (Some(meta), Some(given)) = (
        target["metadata"].as_object_mut(),
        params["metadata"].as_object(),
    ) {
        for (k, v) in given {
            if v == "" {
                meta.remove(k);
            } else {
                meta.insert(k.clone(), v.clone());
            }
        }
    }
}
