//! Refunds, of card payments and bank debits alike.
//! https://docs.stripe.com/api/refunds
//! https://docs.stripe.com/refunds#failed-refunds

use super::{public, retrieve};
use crate::error::{invalid, missing};
use crate::limits::check_metadata;
use crate::list::Filter;
use crate::params::{int_param, str_of, unknown_param};
use crate::{Emulator, Reply, shapes};
use serde_json::{Value, json};

const PARAMS: &[&str] = &[
    "payment_intent",
    "charge",
    "amount",
    "reason",
    "metadata",
    "expand",
];

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str, params: &Value) -> Reply {
    match (method, rest) {
        ("POST", []) => create(emu, account, params),
        ("GET", []) => emu.list(
            account,
            "refund",
            "/v1/refunds",
            params,
            &[
                Filter::Equals("charge"),
                Filter::Equals("payment_intent"),
                Filter::Created,
            ],
            public,
        ),
        ("GET", [id]) => retrieve(emu, account, "refund", id, public),
        _ => crate::error::unrecognized(method, &format!("/v1/refunds/{}", rest.join("/"))),
    }
}

fn charge_of(emu: &Emulator, account: &str, params: &Value) -> Result<String, Reply> {
    match (str_of(&params["charge"]), str_of(&params["payment_intent"])) {
        (Some(c), _) => Ok(c.to_string()),
        (None, Some(pi)) => match emu.get(account, "payment_intent", pi) {
            Some(p) => p["latest_charge"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    invalid(
                        Some("charge_not_refundable"),
                        &format!(
                            "This PaymentIntent ({pi}) does not have a successful charge to refund."
                        ),
                        Some("payment_intent"),
                    )
                }),
            None => Err(missing("payment_intent", pi)),
        },
        _ => Err(invalid(
            Some("parameter_missing"),
            "One of charge or payment_intent is required.",
            None,
        )),
    }
}

fn create(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, PARAMS) {
        return e;
    }
    if let Err(e) = check_metadata(&params["metadata"], "metadata") {
        return e;
    }
    let charge_id = match charge_of(emu, account, params) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(mut charge) = emu.get(account, "charge", &charge_id) else {
        return missing("charge", &charge_id);
    };
    let captured = charge["amount"].as_i64().unwrap_or(0);
    let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
    let amount = match int_param(params, "amount") {
        Ok(a) => a.unwrap_or(captured - refunded),
        Err(e) => return e,
    };
    if amount < 1 || refunded + amount > captured {
        return invalid(
            Some("amount_too_large"),
            "Refund amount is greater than unrefunded amount on charge.",
            Some("amount"),
        );
    }
    let mut refund = shapes::with(
        shapes::refund(&emu.next_id("re"), emu.now()),
        json!({
            "amount": amount, "charge": charge_id, "currency": charge["currency"], "customer": charge["customer"],
            "payment_intent": charge["payment_intent"], "payment_method": charge["payment_method"],
            "reason": params["reason"],
        }),
    );
    super::merge_metadata(&mut refund, params);
    emu.put(account, refund.clone());
    charge["amount_refunded"] = (refunded + amount).into();
    charge["refunded"] = (refunded + amount == captured).into();
    emu.put(account, charge.clone());
    emu.emit(account, "refund.created", refund.clone());
    emu.emit(account, "charge.refunded", public(charge));
    Reply::json(200, &refund)
}

/// The bank could not return the money: the refund fails and the charge is
/// no longer refunded by that amount (`refund.failed`, `charge.refund.updated`).
pub fn fail(emu: &Emulator, account: &str, mut refund: Value) -> Reply {
    refund["status"] = "failed".into();
    refund["failure_reason"] = "lost_or_stolen_card".into();
    emu.put(account, refund.clone());
    let charge_id = refund["charge"].as_str().unwrap_or_default().to_string();
    if let Some(mut charge) = emu.get(account, "charge", &charge_id) {
        let back = charge["amount_refunded"].as_i64().unwrap_or(0)
            - refund["amount"].as_i64().unwrap_or(0);
        charge["amount_refunded"] = back.max(0).into();
        charge["refunded"] = false.into();
        emu.put(account, charge);
    }
    emu.emit(account, "refund.failed", refund.clone());
    emu.emit(account, "charge.refund.updated", refund.clone());
    Reply::json(200, &refund)
}
