//! Stripe Connect: connected accounts (made on the platform) and Account Links.

use super::api::{get, put, retrieve, str_of, unknown_param};
use super::{Emulator, Reply, stripe_error};
use serde_json::{Value, json};

const ACCOUNT_PARAMS: &[&str] = &[
    "type",
    "country",
    "email",
    "capabilities",
    "metadata",
    "business_type",
    "controller",
    "business_profile",
    "expand",
];
const LINK_PARAMS: &[&str] = &[
    "account",
    "type",
    "refresh_url",
    "return_url",
    "collect",
    "collection_options",
    "expand",
];

pub fn route(emu: &Emulator, method: &str, segments: &[&str], params: &Value) -> Reply {
    // Accounts belong to the platform: the Stripe-Account header plays no part.
    match (method, segments) {
        ("POST", ["v1", "accounts"]) => create_account(emu, params),
        ("GET", ["v1", "accounts", id]) => retrieve(emu, "", "account", id),
        ("POST", ["v1", "account_links"]) => create_link(emu, params),
        _ => stripe_error(
            404,
            "invalid_request_error",
            None,
            "Unrecognized request URL.",
            None,
        ),
    }
}

fn create_account(emu: &Emulator, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, ACCOUNT_PARAMS) {
        return e;
    }
    let account = json!({
        "id": emu.next_id("acct"), "object": "account", "type": params["type"].as_str().unwrap_or("express"),
        "country": params["country"], "email": params["email"], "charges_enabled": false, "payouts_enabled": false,
        "details_submitted": false, "created": emu.clock.now_secs(),
        "metadata": params["metadata"].as_object().cloned().unwrap_or_default(),
    });
    put(emu, "", account.clone());
    Reply::json(200, &account)
}

fn create_link(emu: &Emulator, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, LINK_PARAMS) {
        return e;
    }
    for required in ["account", "type", "refresh_url", "return_url"] {
        if str_of(&params[required]).is_none() {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_missing"),
                &format!("Missing required param: {required}."),
                Some(required),
            );
        }
    }
    let account = params["account"].as_str().unwrap_or_default();
    if get(emu, "", "account", account).is_none() {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("account_invalid"),
            &format!("No such account: '{account}'"),
            Some("account"),
        );
    }
    let now = emu.clock.now_secs();
    let base = super::lock(&emu.public_base).clone();
    Reply::json(
        200,
        &json!({
            "object": "account_link", "created": now, "expires_at": now + 300,
            "url": format!("{base}/connect/onboarding/{account}"),
        }),
    )
}

/// Finishes onboarding as the merchant would: charges become enabled.
pub fn activate(emu: &Emulator, id: &str) -> Reply {
    let Some(mut account) = get(emu, "", "account", id) else {
        return super::api::missing("account", id);
    };
    account["charges_enabled"] = true.into();
    account["payouts_enabled"] = true.into();
    account["details_submitted"] = true.into();
    put(emu, "", account.clone());
    emu.emit(id, "account.updated", account.clone());
    Reply::json(200, &account)
}
