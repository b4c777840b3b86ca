//! Customers. https://docs.stripe.com/api/customers

use super::{merge_metadata, public, retrieve};
use crate::error::{invalid, missing};
use crate::limits::check_metadata;
use crate::list::Filter;
use crate::params::{str_of, unknown_param};
use crate::{Emulator, Reply, shapes};
use serde_json::{Value, json};

/// Top-level parameters Stripe accepts on create and update.
const PARAMS: &[&str] = &[
    "address",
    "description",
    "email",
    "metadata",
    "name",
    "phone",
    "shipping",
    "invoice_settings",
    "preferred_locales",
    "payment_method",
    "tax_exempt",
    "expand",
    "balance",
    "invoice_prefix",
];

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str, params: &Value) -> Reply {
    match (method, rest) {
        ("POST", []) => create(emu, account, params),
        ("GET", []) => emu.list(
            account,
            "customer",
            "/v1/customers",
            params,
            &[Filter::Equals("email"), Filter::Created],
            public,
        ),
        ("GET", [id]) => retrieve(emu, account, "customer", id, public),
        ("POST", [id]) => update(emu, account, id, params),
        ("DELETE", [id]) => delete(emu, account, id),
        ("GET", [id, "payment_methods"]) => {
            if !emu.live_customer(account, id) {
                return missing("customer", id);
            }
            let mut p = params.clone();
            p["customer"] = (*id).into();
            emu.list(
                account,
                "payment_method",
                &format!("/v1/customers/{id}/payment_methods"),
                &p,
                &[Filter::Equals("customer"), Filter::Equals("type")],
                public,
            )
        }
        _ => crate::error::unrecognized(method, &format!("/v1/customers/{}", rest.join("/"))),
    }
}

fn fields(target: &mut Value, params: &Value) {
    for key in ["name", "email", "phone", "description"] {
        if let Some(v) = params[key].as_str() {
            target[key] = if v.is_empty() { Value::Null } else { v.into() };
        }
    }
    if let Some(addr) = params["address"].as_object() {
        if !target["address"].is_object() {
            target["address"] = json!({"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null});
        }
        for (k, v) in addr {
            target["address"][k] = if v == "" { Value::Null } else { v.clone() };
        }
    }
    merge_metadata(target, params);
    if let Some(pm) = params["invoice_settings"]["default_payment_method"].as_str() {
        target["invoice_settings"]["default_payment_method"] = if pm.is_empty() {
            Value::Null
        } else {
            pm.into()
        };
    }
}

fn create(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, PARAMS) {
        return e;
    }
    if let Err(e) = check_metadata(&params["metadata"], "metadata") {
        return e;
    }
    let mut c = shapes::customer(&emu.next_id("cus"), emu.now());
    fields(&mut c, params);
    emu.put(account, c.clone());
    Reply::json(200, &c)
}

fn update(emu: &Emulator, account: &str, id: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, PARAMS) {
        return e;
    }
    if let Err(e) = check_metadata(&params["metadata"], "metadata") {
        return e;
    }
    let Some(mut c) = emu
        .get(account, "customer", id)
        .filter(|c| c["deleted"] != true)
    else {
        return missing("customer", id);
    };
    if let Some(pm) = str_of(&params["invoice_settings"]["default_payment_method"])
        && emu
            .get(account, "payment_method", pm)
            .is_none_or(|p| p["customer"] != id)
    {
        return invalid(
            Some("resource_missing"),
            &format!(
                "The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."
            ),
            Some("invoice_settings[default_payment_method]"),
        );
    }
    fields(&mut c, params);
    emu.put(account, c.clone());
    Reply::json(200, &c)
}

fn delete(emu: &Emulator, account: &str, id: &str) -> Reply {
    if emu.get(account, "customer", id).is_none() {
        return missing("customer", id);
    }
    let tombstone = json!({"id": id, "object": "customer", "deleted": true});
    emu.put(account, tombstone.clone());
    Reply::json(200, &tombstone)
}
