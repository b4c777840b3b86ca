//! Payment methods, PaymentIntents (off-session ones included), charges,
//! refunds, and Stripe's test cards with their exact decline shapes.

use super::api::{
    get, int_param, list, live_customer, missing, put, retrieve, str_of, unknown_param,
};
use super::{Emulator, Reply, stripe_error};
use serde_json::{Value, json};

const PM_PARAMS: &[&str] = &[
    "type",
    "card",
    "sepa_debit",
    "billing_details",
    "metadata",
    "expand",
];

/// Stripe's SEPA Debit test IBANs and whether the debit succeeds after
/// processing. https://docs.stripe.com/testing#sepa-direct-debit
pub fn sepa_debit_succeeds(iban: &str) -> Option<bool> {
    match iban {
        "AT611904300234573201" | "DE89370400440532013000" => Some(true),
        "AT861904300235473202" | "DE62370400440532013001" => Some(false),
        _ => None,
    }
}
const PI_PARAMS: &[&str] = &[
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
const REFUND_PARAMS: &[&str] = &[
    "payment_intent",
    "charge",
    "amount",
    "reason",
    "metadata",
    "expand",
];

/// Why a test card is declined.
#[derive(Clone, Copy)]
pub struct Decline {
    pub code: &'static str,
    pub decline_code: &'static str,
    pub message: &'static str,
    pub advice_code: Option<&'static str>,
}

/// What Stripe's test card does when charged.
pub struct CardOutcome {
    pub brand: &'static str,
    pub decline: Option<Decline>,
}

/// Stripe's documented test cards; `None` for a number Stripe would reject.
pub fn card_outcome(number: &str) -> Option<CardOutcome> {
    let decline = |code, decline_code, message, advice_code| {
        Some(Decline {
            code,
            decline_code,
            message,
            advice_code,
        })
    };
    let d = match number {
        "4242424242424242" | "4000056655665556" | "5555555555554444" => None,
        "4000000000000341" => decline(
            "card_declined",
            "generic_decline",
            "Your card was declined.",
            None,
        ),
        "4000000000009995" => decline(
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
            Some("try_again_later"),
        ),
        "4000000000000069" => decline(
            "expired_card",
            "expired_card",
            "Your card has expired.",
            Some("do_not_try_again"),
        ),
        "4000002760003184" => decline(
            "authentication_required",
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
            None,
        ),
        _ => return None,
    };
    Some(CardOutcome {
        brand: if number.starts_with('5') {
            "mastercard"
        } else {
            "visa"
        },
        decline: d,
    })
}

pub fn route(
    emu: &Emulator,
    method: &str,
    segments: &[&str],
    account: &str,
    params: &Value,
) -> Reply {
    match (method, segments) {
        ("POST", ["v1", "payment_methods"]) => create_payment_method(emu, account, params),
        ("GET", ["v1", "payment_methods"]) => list(
            emu,
            account,
            "payment_method",
            "/v1/payment_methods",
            params,
        ),
        ("GET", ["v1", "customers", id, "payment_methods"]) => {
            let mut p = params.clone();
            p["customer"] = (*id).into();
            list(
                emu,
                account,
                "payment_method",
                &format!("/v1/customers/{id}/payment_methods"),
                &p,
            )
        }
        ("GET", ["v1", "payment_methods", id]) => {
            retrieve_public(emu, account, "payment_method", id)
        }
        ("POST", ["v1", "payment_methods", id, "attach"]) => attach(emu, account, id, params),
        ("POST", ["v1", "payment_methods", id, "detach"]) => detach(emu, account, id),
        ("POST", ["v1", "payment_intents"]) => create_intent(emu, account, params),
        ("GET", ["v1", "payment_intents", id]) => retrieve(emu, account, "payment_intent", id),
        ("GET", ["v1", "charges", id]) => retrieve(emu, account, "charge", id),
        ("POST", ["v1", "refunds"]) => create_refund(emu, account, params),
        ("GET", ["v1", "refunds", id]) => retrieve(emu, account, "refund", id),
        _ => stripe_error(
            404,
            "invalid_request_error",
            None,
            &format!(
                "Unrecognized request URL ({method}: /{}).",
                segments.join("/")
            ),
            None,
        ),
    }
}

/// A card payment method (attached to `customer` if given). Returns its id.
pub fn new_card(emu: &Emulator, account: &str, number: &str, customer: Option<&str>) -> String {
    let brand = card_outcome(number).map(|c| c.brand).unwrap_or("visa");
    let pm = json!({
        "id": emu.next_id("pm"), "object": "payment_method", "type": "card", "created": emu.clock.now_secs(),
        "customer": customer, "livemode": false, "metadata": {}, "billing_details": {"email": null, "name": null},
        "card": {"brand": brand, "last4": &number[number.len().saturating_sub(4)..], "exp_month": 12, "exp_year": 2034,
                 "funding": "credit", "country": "US"},
        "_number": number,
    });
    let id = pm["id"].as_str().unwrap_or_default().to_string();
    put(emu, account, pm);
    id
}

fn public(mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.retain(|k, _| !k.starts_with('_'));
    }
    o
}

/// A SEPA Debit payment method from an IBAN (Stripe's test IBANs only).
fn create_sepa_debit(emu: &Emulator, account: &str, params: &Value) -> Reply {
    let iban = params["sepa_debit"]["iban"]
        .as_str()
        .unwrap_or_default()
        .replace(' ', "");
    if sepa_debit_succeeds(&iban).is_none() {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("invalid_bank_account_iban"),
            "The IBAN you provided is invalid (the emulator knows Stripe's test IBANs).",
            Some("sepa_debit[iban]"),
        );
    }
    let pm = json!({
        "id": emu.next_id("pm"), "object": "payment_method", "type": "sepa_debit", "created": emu.clock.now_secs(),
        "customer": null, "livemode": false, "metadata": {}, "billing_details": {"email": null, "name": null},
        "sepa_debit": {"country": &iban[..2], "last4": &iban[iban.len() - 4..], "bank_code": null, "branch_code": null},
        "_iban": iban,
    });
    let id = pm["id"].as_str().unwrap_or_default().to_string();
    put(emu, account, pm);
    retrieve_public(emu, account, "payment_method", &id)
}

fn create_payment_method(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, PM_PARAMS) {
        return e;
    }
    if params["type"] == "sepa_debit" {
        return create_sepa_debit(emu, account, params);
    }
    if params["type"] != "card" {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_invalid"),
            "Only type=card and type=sepa_debit are emulated.",
            Some("type"),
        );
    }
    let number = params["card"]["number"]
        .as_str()
        .unwrap_or_default()
        .replace(' ', "");
    if card_outcome(&number).is_none() {
        return stripe_error(
            402,
            "card_error",
            Some("incorrect_number"),
            "Your card number is incorrect.",
            Some("card[number]"),
        );
    }
    let id = new_card(emu, account, &number, None);
    retrieve_public(emu, account, "payment_method", &id)
}

fn retrieve_public(emu: &Emulator, account: &str, kind: &str, id: &str) -> Reply {
    match get(emu, account, kind, id) {
        Some(o) => Reply::json(200, &public(o)),
        None => missing(kind, id),
    }
}

fn attach(emu: &Emulator, account: &str, id: &str, params: &Value) -> Reply {
    let Some(mut pm) = get(emu, account, "payment_method", id) else {
        return missing("payment_method", id);
    };
    let Some(customer) = str_of(&params["customer"]) else {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            "Missing required param: customer.",
            Some("customer"),
        );
    };
    if !live_customer(emu, account, customer) {
        return missing("customer", customer);
    }
    pm["customer"] = customer.into();
    put(emu, account, pm.clone());
    Reply::json(200, &public(pm))
}

fn detach(emu: &Emulator, account: &str, id: &str) -> Reply {
    let Some(mut pm) = get(emu, account, "payment_method", id) else {
        return missing("payment_method", id);
    };
    let Some(customer) = pm["customer"].as_str().map(str::to_string) else {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("payment_method_unexpected_state"),
            "The payment method you provided is not attached to a customer so detachment is impossible.",
            None,
        );
    };
    pm["customer"] = Value::Null;
    put(emu, account, pm.clone());
    if let Some(mut c) = get(emu, account, "customer", &customer)
        && c["invoice_settings"]["default_payment_method"] == id
    {
        c["invoice_settings"]["default_payment_method"] = Value::Null;
        put(emu, account, c);
    }
    emu.emit_with_previous(
        account,
        "payment_method.detached",
        public(pm.clone()),
        json!({"customer": customer}),
    );
    Reply::json(200, &public(pm))
}

/// A bank debit's outcome arrives: per Stripe's test IBANs, the processing
/// PaymentIntent succeeds (with its charge) or fails (requires_payment_method).
pub fn settle_debit(emu: &Emulator, account: &str, mut pi: Value) -> Reply {
    let iban = pi["payment_method"]
        .as_str()
        .and_then(|pm| get(emu, account, "payment_method", pm))
        .and_then(|pm| pm["_iban"].as_str().map(str::to_string))
        .unwrap_or_default();
    if pi["status"] != "processing" {
        return stripe_error(
            400,
            "invalid_request_error",
            None,
            "Only a processing debit settles.",
            None,
        );
    }
    if sepa_debit_succeeds(&iban) == Some(true) {
        pi["status"] = "succeeded".into();
        pi["amount_received"] = pi["amount"].clone();
        pi["latest_charge"] = new_charge(emu, account, &pi).into();
        put(emu, account, pi.clone());
        emu.emit(account, "payment_intent.succeeded", pi.clone());
    } else {
        pi["status"] = "requires_payment_method".into();
        pi["last_payment_error"] = json!({"type": "card_error", "code": "payment_method_provider_decline",
            "message": "The bank debit was declined (insufficient funds)."});
        put(emu, account, pi.clone());
        emu.emit(account, "payment_intent.payment_failed", pi.clone());
    }
    Reply::json(200, &pi)
}

/// A PaymentIntent in `status`; a succeeded one gets its charge.
pub fn new_intent(emu: &Emulator, account: &str, fields: &Value, status: &str) -> Value {
    let id = emu.next_id("pi");
    let amount = fields["amount"].as_i64().unwrap_or(0);
    let mut pi = json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_received": 0, "currency": fields["currency"],
        "customer": fields["customer"], "payment_method": fields["payment_method"], "status": status,
        "metadata": fields["metadata"].as_object().cloned().unwrap_or_default(), "created": emu.clock.now_secs(),
        "livemode": false, "latest_charge": null, "last_payment_error": null, "receipt_email": fields["receipt_email"],
        "setup_future_usage": fields["setup_future_usage"], "description": fields["description"],
    });
    if status == "succeeded" {
        pi["amount_received"] = amount.into();
        pi["latest_charge"] = new_charge(emu, account, &pi).into();
    }
    put(emu, account, pi.clone());
    pi
}

pub(super) fn new_charge(emu: &Emulator, account: &str, pi: &Value) -> String {
    let charge = json!({
        "id": emu.next_id("ch"), "object": "charge", "amount": pi["amount"], "amount_captured": pi["amount"],
        "amount_refunded": 0, "refunded": false, "currency": pi["currency"], "customer": pi["customer"],
        "payment_intent": pi["id"], "payment_method": pi["payment_method"], "status": "succeeded", "paid": true,
        "created": emu.clock.now_secs(), "livemode": false, "metadata": {}, "disputed": false,
    });
    let id = charge["id"].as_str().unwrap_or_default().to_string();
    put(emu, account, charge);
    id
}

fn create_intent(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, PI_PARAMS) {
        return e;
    }
    let amount = match int_param(params, "amount") {
        Ok(Some(a)) if a >= 1 => a,
        Ok(_) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_missing"),
                "Missing required param: amount.",
                Some("amount"),
            );
        }
        Err(e) => return e,
    };
    if str_of(&params["currency"]).is_none() {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            "Missing required param: currency.",
            Some("currency"),
        );
    }
    let customer = str_of(&params["customer"]);
    if let Some(c) = customer
        && !live_customer(emu, account, c)
    {
        return missing("customer", c);
    }
    let mut fields = params.clone();
    fields["amount"] = amount.into();
    let pm = match str_of(&params["payment_method"]) {
        Some(id) => match get(emu, account, "payment_method", id) {
            Some(pm)
                if params["off_session"] == "true"
                    && customer.is_some()
                    && pm["customer"] != customer.unwrap_or("") =>
            {
                return stripe_error(
                    400,
                    "invalid_request_error",
                    None,
                    "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, or was detached from a Customer, and may not be used again.",
                    Some("payment_method"),
                );
            }
            Some(pm) => Some(pm),
            None => return missing("payment_method", id),
        },
        None => None,
    };
    if params["confirm"] != "true" || pm.is_none() {
        let status = if pm.is_some() {
            "requires_confirmation"
        } else {
            "requires_payment_method"
        };
        return Reply::json(200, &new_intent(emu, account, &fields, status));
    }
    // Since API 2023-08-16 a PaymentIntent accepts the payment methods of the
    // dashboard (automatic_payment_methods on by default), and some of those
    // redirect: confirming needs a return_url unless redirects are ruled out
    // (allow_redirects=never) or the types are named (payment_method_types).
    // https://docs.stripe.com/api/payment_intents/create#create_payment_intent-automatic_payment_methods-allow_redirects
    // https://docs.stripe.com/upgrades#2023-08-16
    let redirects_ruled_out = params["automatic_payment_methods"]["allow_redirects"] == "never"
        || params["payment_method_types"].is_array()
        || str_of(&params["return_url"]).is_some();
    if !redirects_ruled_out {
        return stripe_error(
            400,
            "invalid_request_error",
            None,
            "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your page, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.",
            Some("return_url"),
        );
    }
    // A payment method of a type the PaymentIntent does not allow is refused.
    // https://docs.stripe.com/api/payment_intents/create#create_payment_intent-payment_method_types
    let pm_type = pm
        .as_ref()
        .map_or("card", |p| p["type"].as_str().unwrap_or("card"));
    if let Some(types) = params["payment_method_types"].as_array()
        && !types.iter().any(|t| t == pm_type)
    {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("payment_intent_incompatible_payment_method"),
            &format!(
                "The PaymentMethod provided ({pm_type}) is not allowed for this PaymentIntent."
            ),
            Some("payment_method"),
        );
    }
    // A bank debit is accepted and processes for days; its outcome comes
    // later (here on demand: /_test/payment_intents/{id}/settle).
    if pm_type == "sepa_debit" {
        let pi = new_intent(emu, account, &fields, "processing");
        emu.emit(account, "payment_intent.processing", pi.clone());
        return Reply::json(200, &pi);
    }
    let number = pm
        .as_ref()
        .and_then(|p| p["_number"].as_str())
        .unwrap_or("4242424242424242");
    let decline = card_outcome(number).and_then(|o| o.decline);
    // On-session the customer can authenticate; off-session the bank refuses.
    let decline =
        decline.filter(|d| d.code != "authentication_required" || params["off_session"] == "true");
    let Some(d) = decline else {
        let pi = new_intent(emu, account, &fields, "succeeded");
        emu.emit(account, "payment_intent.succeeded", pi.clone());
        return Reply::json(200, &pi);
    };
    let mut pi = new_intent(emu, account, &fields, "requires_payment_method");
    let mut error = json!({
        "type": "card_error", "code": d.code, "decline_code": d.decline_code, "message": d.message,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", d.code.replace('_', "-")),
        "payment_method": public(pm.clone().unwrap_or_default()),
    });
    if let Some(advice) = d.advice_code {
        error["advice_code"] = advice.into();
    }
    pi["last_payment_error"] = error.clone();
    put(emu, account, pi.clone());
    error["payment_intent"] = pi.clone();
    emu.emit(account, "payment_intent.payment_failed", pi);
    Reply::json(402, &json!({ "error": error }))
}

fn create_refund(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, REFUND_PARAMS) {
        return e;
    }
    let charge_id = match (str_of(&params["charge"]), str_of(&params["payment_intent"])) {
        (Some(c), _) => c.to_string(),
        (None, Some(pi)) => match get(emu, account, "payment_intent", pi) {
            Some(pi) => pi["latest_charge"].as_str().unwrap_or_default().to_string(),
            None => return missing("payment_intent", pi),
        },
        _ => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_missing"),
                "One of charge or payment_intent is required.",
                None,
            );
        }
    };
    let Some(mut charge) = get(emu, account, "charge", &charge_id) else {
        return missing("charge", &charge_id);
    };
    let captured = charge["amount"].as_i64().unwrap_or(0);
    let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
    let amount = match int_param(params, "amount") {
        Ok(a) => a.unwrap_or(captured - refunded),
        Err(e) => return e,
    };
    if amount < 1 || refunded + amount > captured {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("amount_too_large"),
            "Refund amount is greater than unrefunded amount on charge.",
            Some("amount"),
        );
    }
    let refund = json!({
        "id": emu.next_id("re"), "object": "refund", "amount": amount, "charge": charge_id, "currency": charge["currency"],
        "payment_intent": charge["payment_intent"], "status": "succeeded", "created": emu.clock.now_secs(),
        "metadata": {}, "reason": params["reason"],
    });
    put(emu, account, refund.clone());
    charge["amount_refunded"] = (refunded + amount).into();
    charge["refunded"] = (refunded + amount == captured).into();
    put(emu, account, charge.clone());
    emu.emit(account, "charge.refunded", charge);
    Reply::json(200, &refund)
}
