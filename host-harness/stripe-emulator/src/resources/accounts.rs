//! Stripe Connect: connected accounts (made by the platform, or connected
//! from an existing Stripe account) and Account Links.
//! https://docs.stripe.com/api/accounts
//! https://docs.stripe.com/api/account_links

use super::public;
use crate::error::{invalid, missing};
use crate::limits::check_metadata;
use crate::params::{str_of, unknown_param};
use crate::{Emulator, Reply, shapes};
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

/// Accounts belong to the platform: the Stripe-Account header plays no part.
pub fn route(emu: &Emulator, method: &str, segments: &[&str], params: &Value) -> Reply {
    match (method, segments) {
        ("POST", ["accounts"]) => create_account(emu, params),
        ("GET", ["accounts"]) => emu.list(
            "",
            "account",
            "/v1/accounts",
            params,
            &[crate::list::Filter::Created],
            public,
        ),
        ("GET", ["accounts", id]) => match emu.get("", "account", id) {
            Some(a) if a["_deauthorized"] != true => Reply::json(200, &public(a)),
            _ => missing("account", id),
        },
        ("POST", ["account_links"]) => create_link(emu, params),
        _ => crate::error::unrecognized(method, &format!("/v1/{}", segments.join("/"))),
    }
}

/// A connected account that has not finished onboarding.
pub fn new_account(emu: &Emulator, id: &str, business_name: &str) -> Value {
    let mut account = shapes::account(id, emu.now());
    if !business_name.is_empty() {
        account["business_profile"]["name"] = business_name.into();
        account["settings"]["dashboard"]["display_name"] = business_name.into();
    }
    account
}

fn create_account(emu: &Emulator, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, ACCOUNT_PARAMS) {
        return e;
    }
    if let Err(e) = check_metadata(&params["metadata"], "metadata") {
        return e;
    }
    let name = params["business_profile"]["name"]
        .as_str()
        .unwrap_or_default();
    let mut account = new_account(emu, &emu.next_id("acct"), name);
    for key in ["type", "country", "email"] {
        if let Some(v) = str_of(&params[key]) {
            account[key] = v.into();
        }
    }
    super::merge_metadata(&mut account, params);
    emu.put("", account.clone());
    Reply::json(200, &public(account))
}

fn create_link(emu: &Emulator, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, LINK_PARAMS) {
        return e;
    }
    for required in ["account", "type", "refresh_url", "return_url"] {
        if str_of(&params[required]).is_none() {
            return crate::error::param_missing(required);
        }
    }
    let account = params["account"].as_str().unwrap_or_default();
    if emu
        .get("", "account", account)
        .is_none_or(|a| a["_deauthorized"] == true)
    {
        return invalid(
            Some("account_invalid"),
            &format!("No such account: '{account}'"),
            Some("account"),
        );
    }
    let now = emu.now();
    let url = format!("{}/connect/onboarding/{account}", emu.public_base());
    Reply::json(200, &shapes::account_link(now, now + 300, url))
}

/// Finishes onboarding (or what a restriction asked) as the merchant would:
/// charges become enabled, and nothing is due.
pub fn activate(emu: &Emulator, id: &str) -> Reply {
    let Some(mut account) = emu.get("", "account", id) else {
        return missing("account", id);
    };
    account["charges_enabled"] = true.into();
    account["payouts_enabled"] = true.into();
    account["details_submitted"] = true.into();
    account["capabilities"] = json!({"card_payments": "active", "transfers": "active"});
    account["requirements"]["past_due"] = json!([]);
    account["requirements"]["currently_due"] = json!([]);
    account["requirements"]["disabled_reason"] = Value::Null;
    emu.put("", account.clone());
    emu.emit(id, "account.updated", public(account.clone()));
    Reply::json(200, &public(account))
}

/// Stripe restricts the account, as when requirements fall past due:
/// charges are disabled, `requirements.past_due` lists what is needed
/// (`past_due[]`, default the representative's ID document), and
/// `disabled_reason` says why; `account.updated` is sent.
/// https://docs.stripe.com/connect/handling-api-verification#determine-if-verification-is-needed
/// https://docs.stripe.com/api/accounts/object#account_object-requirements-disabled_reason
pub fn restrict(emu: &Emulator, id: &str, params: &Value) -> Reply {
    let Some(mut account) = emu.get("", "account", id) else {
        return missing("account", id);
    };
    let mut due: Vec<Value> = match &params["past_due"] {
        Value::Array(items) => items.clone(),
        Value::Object(items) => items.values().cloned().collect(),
        Value::String(one) => vec![one.as_str().into()],
        _ => Vec::new(),
    };
    if due.is_empty() {
        due.push("individual.verification.document".into());
    }
    account["charges_enabled"] = false.into();
    account["requirements"]["past_due"] = due.clone().into();
    account["requirements"]["currently_due"] = due.into();
    account["requirements"]["disabled_reason"] = "requirements.past_due".into();
    account["capabilities"]["card_payments"] = "inactive".into();
    emu.put("", account.clone());
    emu.emit(id, "account.updated", public(account.clone()));
    Reply::json(200, &public(account))
}

/// The merchant disconnects the platform: the account's key no longer works
/// for the platform, and `account.application.deauthorized` is sent.
pub fn deauthorize(emu: &Emulator, id: &str) -> Reply {
    let Some(mut account) = emu.get("", "account", id) else {
        return missing("account", id);
    };
    account["_deauthorized"] = true.into();
    emu.put("", account);
    let app =
        json!({"id": "ca_emulated_platform", "object": "application", "name": "Billing platform"});
    Reply::json(200, &emu.emit(id, "account.application.deauthorized", app))
}
