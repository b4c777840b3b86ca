//! Events: what happened, kept for 30 days, listable by type and time, and
//! sent to the webhook endpoint.
//! https://docs.stripe.com/api/events

use super::{public, retrieve};
use crate::list::Filter;
use crate::{Emulator, Reply, shapes};
use serde_json::Value;

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str, params: &Value) -> Reply {
    match (method, rest) {
        ("GET", []) => {
            if let Some(refused) = types_refused(params) {
                return refused;
            }
            let mut filters = vec![
                Filter::Equals("type"),
                Filter::Created,
                Filter::OneOf("type", "types"),
            ];
            if params["type"].as_str().is_some_and(|t| t.contains('*')) {
                filters[0] = Filter::Prefix("type");
            }
            emu.list(account, "event", "/v1/events", params, &filters, public)
        }
        ("GET", [id]) => retrieve(emu, account, "event", id, public),
        _ => crate::error::unrecognized(method, &format!("/v1/events/{}", rest.join("/"))),
    }
}

/// `types`: "An array of up to 20 strings containing specific event names
/// ... You may pass either type or types, but not both."
/// https://docs.stripe.com/api/events/list#list_events-types
fn types_refused(params: &Value) -> Option<Reply> {
    let types = &params["types"];
    if types.is_null() {
        return None;
    }
    if !params["type"].is_null() {
        return Some(crate::error::invalid(
            None,
            "You may pass either type or types, but not both.",
            Some("types"),
        ));
    }
    match types.as_array() {
        Some(list) if list.len() <= 20 && list.iter().all(Value::is_string) => None,
        _ => Some(crate::error::invalid(
            None,
            "Invalid array: types must be an array of at most 20 event types.",
            Some("types"),
        )),
    }
}

impl Emulator {
    /// Records an event for `object` and sends it if a webhook is set.
    pub fn emit(&self, account: &str, kind: &str, object: Value) -> Value {
        self.emit_with_previous(account, kind, object, Value::Null)
    }

    /// As `emit`, with `data.previous_attributes` (what an update changed).
    pub fn emit_with_previous(
        &self,
        account: &str,
        kind: &str,
        object: Value,
        previous: Value,
    ) -> Value {
        let mut event = shapes::event(&self.next_id("evt"), self.now(), kind, object);
        if !account.is_empty() {
            event["account"] = account.into();
        }
        if !previous.is_null() {
            event["data"]["previous_attributes"] = previous;
        }
        self.put(account, event.clone());
        self.send(&event);
        event
    }
}
