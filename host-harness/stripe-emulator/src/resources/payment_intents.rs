//! PaymentIntents, confirmed at creation (off session, as a billing system
//! charges a saved method) or left for the customer.
//! https://docs.stripe.com/api/payment_intents
//! https://docs.stripe.com/payments/paymentintents/lifecycle

use super::charges::new_charge;
use super::payment_methods::{resolve, test_card};
use super::{public, retrieve};
use crate::error::{Kind, invalid, missing, param_missing, stripe_error};
use crate::limits::{check_amount, check_metadata};
use crate::list::Filter;
use crate::params::{int_param, str_of, unknown_param};
use crate::test_cards::{self, Decline, Session};
use crate::{Emulator, Reply, sepa_debit_succeeds, shapes};
use serde_json::{Value, json};

const PARAMS: &[&str] = &[
    "amount",
    "currency",
    "customer",
    "payment_method",
    "off_session",
    "confirm",
    "metadata",
    "receipt_email",
    "description",
    "setup_future_usage",
    "payment_method_types",
    "capture_method",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "expand",
    "error_on_requires_action",
    "automatic_payment_methods",
    "return_url",
];

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str, params: &Value) -> Reply {
    match (method, rest) {
        ("POST", []) => create(emu, account, params),
        ("GET", []) => emu.list(
            account,
            "payment_intent",
            "/v1/payment_intents",
            params,
            &[Filter::Equals("customer"), Filter::Created],
            public,
        ),
        ("GET", [id]) => retrieve(emu, account, "payment_intent", id, public),
        _ => crate::error::unrecognized(method, &format!("/v1/payment_intents/{}", rest.join("/"))),
    }
}

/// A PaymentIntent in `status`, stored; a succeeded one gets its charge.
pub fn new_intent(emu: &Emulator, account: &str, fields: &Value, status: &str) -> Value {
    let id = emu.next_id("pi");
    let mut pi = shapes::with(
        shapes::payment_intent(&id, emu.now()),
        json!({
            "amount": fields["amount"].as_i64().unwrap_or(0), "currency": fields["currency"],
            "customer": fields["customer"], "payment_method": fields["payment_method"], "status": status,
            "metadata": fields["metadata"].as_object().cloned().unwrap_or_default(),
            "receipt_email": fields["receipt_email"], "setup_future_usage": fields["setup_future_usage"],
            "description": fields["description"],
        }),
    );
    if let Some(types) = fields["payment_method_types"].as_array() {
        pi["payment_method_types"] = types.clone().into();
    }
    if status == "succeeded" {
        pi["amount_received"] = pi["amount"].clone();
        pi["latest_charge"] = new_charge(emu, account, &pi).into();
    }
    emu.put(account, pi.clone());
    pi
}

/// Marks `pi` succeeded with its charge, stores it and says so.
pub fn succeed(emu: &Emulator, account: &str, mut pi: Value) -> Value {
    pi["status"] = "succeeded".into();
    pi["amount_received"] = pi["amount"].clone();
    pi["last_payment_error"] = Value::Null;
    pi["next_action"] = Value::Null;
    pi["latest_charge"] = new_charge(emu, account, &pi).into();
    emu.put(account, pi.clone());
    emu.emit(account, "payment_intent.succeeded", public(pi.clone()));
    pi
}

/// The error object of a declined payment.
pub fn decline_error(d: &Decline, pm: &Value) -> Value {
    json!({
        "type": "card_error", "code": d.code, "decline_code": d.decline_code, "message": d.message,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", d.code.replace('_', "-")),
        "payment_method": public(pm.clone()),
    })
}

/// Marks `pi` failed (back to requires_payment_method), stores it, says so,
/// and returns the 402 a confirming client sees.
pub fn fail(emu: &Emulator, account: &str, mut pi: Value, error: Value) -> Reply {
    pi["status"] = "requires_payment_method".into();
    pi["last_payment_error"] = error.clone();
    pi["next_action"] = Value::Null;
    emu.put(account, pi.clone());
    emu.emit(account, "payment_intent.payment_failed", public(pi.clone()));
    let mut error = error;
    error["payment_intent"] = public(pi);
    Reply::json(402, &json!({ "error": error }))
}

/// A card that asks for 3-D Secure: the PaymentIntent waits for the customer.
pub fn require_action(emu: &Emulator, account: &str, mut pi: Value) -> Value {
    pi["status"] = "requires_action".into();
    pi["next_action"] =
        json!({"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}});
    emu.put(account, pi.clone());
    emu.emit(
        account,
        "payment_intent.requires_action",
        public(pi.clone()),
    );
    pi
}

/// A bank debit's outcome arrives: per Stripe's test IBANs, the processing
/// PaymentIntent succeeds (with its charge) or fails (requires_payment_method).
pub fn settle_debit(emu: &Emulator, account: &str, pi: Value) -> Reply {
    let iban = pi["payment_method"]
        .as_str()
        .and_then(|pm| emu.get(account, "payment_method", pm))
        .and_then(|pm| pm["_iban"].as_str().map(str::to_string))
        .unwrap_or_default();
    if pi["status"] != "processing" {
        return invalid(None, "Only a processing debit settles.", None);
    }
    if sepa_debit_succeeds(&iban) == Some(true) {
        return Reply::json(200, &public(succeed(emu, account, pi)));
    }
    let id = pi["id"].as_str().unwrap_or_default().to_string();
    let error = json!({"type": "card_error", "code": "payment_method_provider_decline",
        "message": "The bank debit was declined (insufficient funds)."});
    let _ = fail(emu, account, pi, error);
    retrieve(emu, account, "payment_intent", &id, public)
}

fn validated_amount(params: &Value) -> Result<(i64, String), Reply> {
    let amount = int_param(params, "amount")?.ok_or_else(|| param_missing("amount"))?;
    let currency = str_of(&params["currency"])
        .ok_or_else(|| param_missing("currency"))?
        .to_ascii_lowercase();
    check_amount(amount, &currency, "amount")?;
    Ok((amount, currency))
}

fn create(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, PARAMS) {
        return e;
    }
    if let Err(e) = check_metadata(&params["metadata"], "metadata") {
        return e;
    }
    let (amount, currency) = match validated_amount(params) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let customer = str_of(&params["customer"]);
    if let Some(c) = customer
        && !emu.live_customer(account, c)
    {
        return missing("customer", c);
    }
    let off_session = params["off_session"] == "true";
    if off_session && params["confirm"] != "true" {
        return invalid(
            None,
            "off_session can only be used when confirm=true.",
            Some("off_session"),
        );
    }
    let mut fields = params.clone();
    fields["amount"] = amount.into();
    fields["currency"] = currency.into();
    let pm = match str_of(&params["payment_method"]) {
        Some(id) => match resolve(emu, account, id) {
            Some(pm) => Some(pm),
            None => return missing("payment_method", id),
        },
        None => None,
    };
    if let Some(pm) = &pm {
        fields["payment_method"] = pm["id"].clone();
        // A saved method is charged off session only for its own customer.
        if off_session && customer.is_some_and(|c| pm["customer"] != c) {
            return invalid(
                None,
                "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, or was detached from a Customer, and may not be used again.",
                Some("payment_method"),
            );
        }
    }
    let Some(pm) = pm.filter(|_| params["confirm"] == "true") else {
        let status = if fields["payment_method"].is_string() {
            "requires_confirmation"
        } else {
            "requires_payment_method"
        };
        return Reply::json(200, &public(new_intent(emu, account, &fields, status)));
    };
    if let Err(e) = redirects_ruled_out(params).and_then(|_| allowed_type(params, &pm)) {
        return e;
    }
    let session = if off_session {
        Session::Off
    } else {
        Session::On
    };
    confirm(emu, account, &fields, &pm, session)
}

/// Since API 2023-08-16 a PaymentIntent accepts the payment methods of the
/// dashboard (automatic_payment_methods on by default), and some of those
/// redirect: confirming needs a return_url unless redirects are ruled out
/// (allow_redirects=never) or the types are named (payment_method_types).
/// https://docs.stripe.com/api/payment_intents/create#create_payment_intent-automatic_payment_methods-allow_redirects
/// https://docs.stripe.com/upgrades#2023-08-16
fn redirects_ruled_out(params: &Value) -> Result<(), Reply> {
    let ruled_out = params["automatic_payment_methods"]["allow_redirects"] == "never"
        || params["payment_method_types"].is_array()
        || str_of(&params["return_url"]).is_some();
    if ruled_out {
        return Ok(());
    }
    Err(invalid(
        None,
        "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your page, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.",
        Some("return_url"),
    ))
}

/// A payment method of a type the PaymentIntent does not allow is refused.
/// https://docs.stripe.com/api/payment_intents/create#create_payment_intent-payment_method_types
fn allowed_type(params: &Value, pm: &Value) -> Result<(), Reply> {
    let pm_type = pm["type"].as_str().unwrap_or("card");
    match params["payment_method_types"].as_array() {
        Some(types) if !types.iter().any(|t| t == pm_type) => Err(invalid(
            Some("payment_intent_incompatible_payment_method"),
            &format!(
                "The PaymentMethod provided ({pm_type}) is not allowed for this PaymentIntent."
            ),
            Some("payment_method"),
        )),
        _ => Ok(()),
    }
}

/// Confirms a new PaymentIntent with `pm`: a bank debit processes for days;
/// a card succeeds, declines, or (on session) asks for authentication.
fn confirm(emu: &Emulator, account: &str, fields: &Value, pm: &Value, session: Session) -> Reply {
    if pm["type"] == "sepa_debit" {
        // The outcome comes later (here on demand: /_test/payment_intents/{id}/settle).
        let pi = new_intent(emu, account, fields, "processing");
        emu.emit(account, "payment_intent.processing", public(pi.clone()));
        return Reply::json(200, &public(pi));
    }
    let Some(card) = test_card(pm) else {
        return stripe_error(
            402,
            Kind::Card,
            Some("incorrect_number"),
            "Your card number is incorrect.",
            None,
        );
    };
    let pi = new_intent(emu, account, fields, "requires_confirmation");
    if let Some((code, message)) = super::payment_methods::take_scripted_decline(emu, account, pm) {
        let d = test_cards::Decline {
            code: "card_declined",
            decline_code: None,
            message,
        };
        let mut error = decline_error(&d, pm);
        error["decline_code"] = code.into();
        return fail(emu, account, pi, error);
    }
    if let Some(d) = test_cards::charge_decline(&card, session) {
        return fail(emu, account, pi, decline_error(&d, pm));
    }
    if matches!(
        card.behaviour,
        test_cards::Behaviour::RequiresAuthentication
    ) {
        return Reply::json(200, &public(require_action(emu, account, pi)));
    }
    Reply::json(200, &public(succeed(emu, account, pi)))
}
