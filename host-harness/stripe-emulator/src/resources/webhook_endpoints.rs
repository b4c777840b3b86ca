//! Webhook endpoints, registered through the API, and what they are sent.
//! https://docs.stripe.com/api/webhook_endpoints
//!
//! - `url` and `enabled_events` are required on create; `secret` is shown
//!   only in the create's answer.
//!   https://docs.stripe.com/api/webhook_endpoints/create
//! - `api_version` and `connect` are set at creation only: an update takes
//!   neither. https://docs.stripe.com/api/webhook_endpoints/update
//! - A `connect` endpoint receives the events of connected accounts; an
//!   account endpoint, those of the platform's own account.
//!   https://docs.stripe.com/connect/webhooks
//! - A disabled endpoint receives nothing, and `*` enables every type.
//!   https://docs.stripe.com/api/webhook_endpoints/object
//!
//! Endpoints belong to the platform: the Stripe-Account header plays no part.

use super::{merge_metadata, public, retrieve};
use crate::error::{invalid, missing, param_missing};
use crate::limits::check_metadata;
use crate::params::{str_of, unknown_param};
use crate::{Delivery, Emulator, Reply, WebhookTarget};
use serde_json::{Value, json};

const CREATE_PARAMS: &[&str] = &[
    "url",
    "enabled_events",
    "api_version",
    "connect",
    "description",
    "metadata",
    "expand",
];
const UPDATE_PARAMS: &[&str] = &[
    "url",
    "enabled_events",
    "description",
    "disabled",
    "metadata",
    "expand",
];
const KIND: &str = "webhook_endpoint";
/// Where the platform's own objects are kept.
const PLATFORM: &str = "";

pub fn route(emu: &Emulator, method: &str, rest: &[&str], params: &Value) -> Reply {
    match (method, rest) {
        ("POST", []) => create(emu, params),
        ("GET", []) => emu.list(PLATFORM, KIND, "/v1/webhook_endpoints", params, &[], public),
        ("GET", [id]) => retrieve(emu, PLATFORM, KIND, id, public),
        ("POST", [id]) => update(emu, id, params),
        ("DELETE", [id]) => delete(emu, id),
        _ => {
            crate::error::unrecognized(method, &format!("/v1/webhook_endpoints/{}", rest.join("/")))
        }
    }
}

fn create(emu: &Emulator, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, CREATE_PARAMS) {
        return e;
    }
    if let Err(e) = check_metadata(&params["metadata"], "metadata") {
        return e;
    }
    let Some(url) = str_of(&params["url"]) else {
        return param_missing("url");
    };
    if let Err(e) = check_url(url) {
        return e;
    }
    let events = match enabled_events(&params["enabled_events"]) {
        Ok(Some(events)) => events,
        Ok(None) => return param_missing("enabled_events"),
        Err(e) => return e,
    };
    let connect = match params["connect"].as_str() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return invalid(None, &format!("Invalid boolean: {other}"), Some("connect"));
        }
    };
    let id = emu.next_id("we");
    let secret = format!("whsec_{}", emu.next_id("emulated"));
    let mut endpoint = json!({
        "id": id, "object": KIND,
        "api_version": str_of(&params["api_version"]),
        "application": null,
        "created": emu.now(),
        "description": str_of(&params["description"]),
        "enabled_events": events,
        "livemode": false,
        "metadata": {},
        "status": "enabled",
        "url": url,
        "_connect": connect,
        "_secret": secret,
    });
    merge_metadata(&mut endpoint, params);
    emu.put(PLATFORM, endpoint.clone());
    let mut shown = public(endpoint);
    shown["secret"] = secret.into();
    Reply::json(200, &shown)
}

fn update(emu: &Emulator, id: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, UPDATE_PARAMS) {
        return e;
    }
    if let Err(e) = check_metadata(&params["metadata"], "metadata") {
        return e;
    }
    let Some(mut endpoint) = emu.get(PLATFORM, KIND, id).filter(|e| e["deleted"] != true) else {
        return missing(KIND, id);
    };
    if let Some(url) = str_of(&params["url"]) {
        if let Err(e) = check_url(url) {
            return e;
        }
        endpoint["url"] = url.into();
    }
    match enabled_events(&params["enabled_events"]) {
        Ok(Some(events)) => endpoint["enabled_events"] = events.into(),
        Ok(None) => {}
        Err(e) => return e,
    }
    match params["disabled"].as_str() {
        Some("true") => endpoint["status"] = "disabled".into(),
        Some("false") => endpoint["status"] = "enabled".into(),
        _ => {}
    }
    if let Some(d) = params["description"].as_str() {
        endpoint["description"] = if d.is_empty() { Value::Null } else { d.into() };
    }
    merge_metadata(&mut endpoint, params);
    emu.put(PLATFORM, endpoint.clone());
    Reply::json(200, &public(endpoint))
}

fn delete(emu: &Emulator, id: &str) -> Reply {
    if emu
        .get(PLATFORM, KIND, id)
        .is_none_or(|e| e["deleted"] == true)
    {
        return missing(KIND, id);
    }
    let tombstone = json!({"id": id, "object": KIND, "deleted": true});
    emu.put(PLATFORM, tombstone.clone());
    Reply::json(200, &tombstone)
}

/// Stripe refuses a URL that is not http(s).
fn check_url(url: &str) -> Result<(), Reply> {
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    Err(invalid(
        Some("url_invalid"),
        &format!("Invalid URL: {url}"),
        Some("url"),
    ))
}

/// `enabled_events[]`: none given, or a non-empty list of event types.
fn enabled_events(given: &Value) -> Result<Option<Vec<String>>, Reply> {
    let list: Vec<&Value> = match given {
        Value::Null => return Ok(None),
        Value::Array(items) => items.iter().collect(),
        // `enabled_events[0]=…`: in the order of the indexes, not of the
        // keys as text ("10" before "2").
        Value::Object(items) => {
            let mut indexed: Vec<(u64, &Value)> = items
                .iter()
                .map(|(k, v)| (k.parse().unwrap_or(u64::MAX), v))
                .collect();
            indexed.sort_by_key(|(i, _)| *i);
            indexed.into_iter().map(|(_, v)| v).collect()
        }
        one => vec![one],
    };
    let types: Vec<String> = list
        .into_iter()
        .filter_map(|v| v.as_str())
        .map(str::to_string)
        .collect();
    if types.is_empty() {
        return Err(param_missing("enabled_events"));
    }
    if let Some(bad) = types.iter().find(|t| !plausible_type(t)) {
        return Err(invalid(
            None,
            &format!("Invalid enabled_events: {bad}"),
            Some("enabled_events"),
        ));
    }
    Ok(Some(types))
}

fn plausible_type(t: &str) -> bool {
    t == "*"
        || (t.contains('.')
            && t.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            }))
}

impl Emulator {
    /// The registered endpoints that take `event`: enabled, enabled for its
    /// type, and Connect endpoints for a connected account's event, the
    /// others for the platform's own.
    pub(crate) fn registered_targets(&self, event: &Value) -> Vec<WebhookTarget> {
        let from_connected = event["account"].as_str().is_some_and(|a| !a.is_empty());
        let kind = event["type"].as_str().unwrap_or_default();
        self.objects(KIND)
            .into_iter()
            .filter(|e| e["deleted"] != true && e["status"] == "enabled")
            .filter(|e| e["_connect"] == from_connected)
            .filter(|e| {
                e["enabled_events"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "*" || t == kind))
            })
            .map(|e| WebhookTarget {
                url: e["url"].as_str().unwrap_or_default().to_string(),
                secrets: vec![e["_secret"].as_str().unwrap_or_default().to_string()],
                delivery: Delivery::Automatic,
            })
            .collect()
    }
}
