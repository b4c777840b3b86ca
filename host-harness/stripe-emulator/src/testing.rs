//! Routes outside `/v1`: the hosted pages a customer sees, and test-only
//! routes (`/_test/...`) for what a customer, a bank or Stripe itself would
//! do, on demand: pay, authenticate, settle a debit, fail a refund, open or
//! close a dispute, onboard or disconnect an account, and (re)deliver events.

use crate::error::{missing, unrecognized};
use crate::resources::{
    accounts, checkout_sessions, disputes, payment_intents, payment_methods, refunds,
};
use crate::{Delivery, Emulator, Reply, WebhookTarget, checkout_page};
use serde_json::{Value, json};

pub fn route_public(emu: &Emulator, method: &str, path: &str, params: &Value) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["checkout", id]) => checkout_page::show(emu, id),
        ("POST", ["checkout", id, "pay"]) => checkout_page::pay(emu, id, params),
        ("POST", ["checkout", id, "authenticate"]) => checkout_page::authenticate(emu, id, params),
        ("POST", ["_test", rest @ ..]) => test_route(emu, rest, params),
        _ => unrecognized(method, path),
    }
}

fn owned(emu: &Emulator, kind: &str, id: &str) -> Result<(String, Value), Reply> {
    emu.owner_of(id)
        .filter(|(_, o)| o["object"] == kind)
        .ok_or_else(|| missing(kind, id))
}

fn test_route(emu: &Emulator, segments: &[&str], params: &Value) -> Reply {
    let result = match segments {
        ["checkout", "sessions", id, "complete"] => {
            Ok(checkout_sessions::complete(emu, id, params))
        }
        ["checkout", "sessions", id, "authenticate"] => Ok(checkout_sessions::authenticate(
            emu,
            id,
            params["result"] != "failed",
        )),
        ["checkout", "sessions", id, "async"] => Ok(checkout_sessions::async_result(
            emu,
            id,
            params["result"] != "failed",
        )),
        ["payment_intents", id, "settle"] => owned(emu, "payment_intent", id)
            .map(|(account, pi)| payment_intents::settle_debit(emu, &account, pi)),
        ["refunds", id, "fail"] => {
            owned(emu, "refund", id).map(|(account, r)| refunds::fail(emu, &account, r))
        }
        ["disputes"] => {
            let pi = params["payment_intent"].as_str().unwrap_or_default();
            owned(emu, "payment_intent", pi).map(|(account, pi)| disputes::open(emu, &account, &pi))
        }
        ["disputes", id, "close"] => owned(emu, "dispute", id)
            .map(|(account, d)| disputes::close(emu, &account, d, params["status"] == "won")),
        ["accounts", id, "connect"] => {
            emu.connect_existing(id, params["business_name"].as_str().unwrap_or_default());
            Ok(Reply::json(200, &json!({"connected": id})))
        }
        ["accounts", id, "activate"] => Ok(accounts::activate(emu, id)),
        ["accounts", id, "restrict"] => Ok(accounts::restrict(emu, id, params)),
        ["payment_methods", id, "declines"] => owned(emu, "payment_method", id)
            .map(|(account, pm)| payment_methods::script_declines(emu, &account, pm, params)),
        ["payment_methods", id, "automatically_update"] => owned(emu, "payment_method", id)
            .map(|(account, pm)| payment_methods::automatically_update(emu, &account, pm)),
        ["accounts", id, "deauthorize"] => Ok(accounts::deauthorize(emu, id)),
        ["events", id, "redeliver"] => emu.event(id).ok_or_else(|| missing("event", id)).map(|e| {
            emu.deliver_now(&e);
            Reply::json(200, &json!({"redelivered": id}))
        }),
        ["events", "deliver"] => Ok(deliver_listed(emu, params)),
        ["webhook"] => Ok(set_webhook(emu, params)),
        ["faults"] => crate::faults::rule_from(params).map(|rule| {
            emu.inject(rule);
            Reply::json(200, &json!({"ok": true}))
        }),
        ["faults", "seeded"] => {
            let number = |k: &str| params[k].as_str().and_then(|v| v.parse::<u64>().ok());
            match (number("seed"), number("per_mille")) {
                (Some(seed), Some(share)) => {
                    emu.inject_seeded(seed, share.min(1000) as u32);
                    Ok(Reply::json(200, &json!({"ok": true})))
                }
                _ => Err(crate::error::invalid(
                    None,
                    "seed and per_mille are required",
                    None,
                )),
            }
        }
        ["faults", "heal"] => {
            emu.heal();
            Ok(Reply::json(200, &json!({"injected": emu.injected().len()})))
        }
        _ => Err(unrecognized(
            "POST",
            &format!("/_test/{}", segments.join("/")),
        )),
    };
    result.unwrap_or_else(|e| e)
}

/// Delivers the listed events once each, in the order given, synchronously.
fn deliver_listed(emu: &Emulator, params: &Value) -> Reply {
    let ids = params["ids"].as_str().unwrap_or_default();
    let mut statuses = Vec::new();
    for id in ids.split(',').filter(|s| !s.is_empty()) {
        let Some(e) = emu.event(id) else {
            return missing("event", id);
        };
        statuses.push(json!({"id": id, "status": emu.deliver_now(&e)}));
    }
    Reply::json(200, &json!({"delivered": statuses}))
}

/// url, secrets (comma-separated), auto=0 to hold events for delivery by hand.
fn set_webhook(emu: &Emulator, params: &Value) -> Reply {
    let secrets = params["secrets"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let url = params["url"].as_str().unwrap_or_default().to_string();
    emu.set_webhook((!url.is_empty()).then_some(WebhookTarget {
        url,
        secrets,
        delivery: if params["auto"] == "0" {
            Delivery::ByHand
        } else {
            Delivery::Automatic
        },
    }));
    Reply::json(200, &json!({"ok": true}))
}
