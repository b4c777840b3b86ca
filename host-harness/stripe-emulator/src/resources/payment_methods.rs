//! Payment methods: cards (Stripe's test numbers and `pm_card_*` tokens)
//! and SEPA Debit (Stripe's test IBANs).
//! https://docs.stripe.com/api/payment_methods

use super::{public, retrieve};
use crate::error::{Kind, invalid, missing, param_missing, stripe_error};
use crate::limits::check_metadata;
use crate::list::Filter;
use crate::params::{str_of, unknown_param};
use crate::test_cards::{self, Behaviour, TestCard};
use crate::{Emulator, Reply, sepa_debit_succeeds, shapes};
use serde_json::{Value, json};

const PARAMS: &[&str] = &[
    "type",
    "card",
    "sepa_debit",
    "billing_details",
    "metadata",
    "expand",
];

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str, params: &Value) -> Reply {
    match (method, rest) {
        ("POST", []) => create(emu, account, params),
        ("GET", []) => emu.list(
            account,
            "payment_method",
            "/v1/payment_methods",
            params,
            &[Filter::Equals("customer"), Filter::Equals("type")],
            public,
        ),
        ("GET", [id]) => retrieve(emu, account, "payment_method", id, public),
        ("POST", [id, "attach"]) => attach(emu, account, id, params),
        ("POST", [id, "detach"]) => detach(emu, account, id),
        _ => crate::error::unrecognized(method, &format!("/v1/payment_methods/{}", rest.join("/"))),
    }
}

/// Stripe's answer to a number that is not a test card.
fn incorrect_number(param: &str) -> Reply {
    stripe_error(
        402,
        Kind::Card,
        Some("incorrect_number"),
        "Your card number is incorrect.",
        Some(param),
    )
}

/// A card payment method, stored; returns it as stored.
pub fn new_card(emu: &Emulator, account: &str, card: &TestCard) -> Value {
    let id = emu.next_id("pm");
    let mut pm = shapes::payment_method(&id, "card", emu.now());
    let last4 = &card.number[card.number.len() - 4..];
    pm["card"] = shapes::card_details(card.brand, last4, card.funding);
    pm["_number"] = card.number.into();
    emu.put(account, pm.clone());
    pm
}

/// The payment method a request names: a stored one, or a fresh card made
/// from a `pm_card_*` token (as Stripe does for each use of a token).
pub fn resolve(emu: &Emulator, account: &str, id: &str) -> Option<Value> {
    match test_cards::by_token(id) {
        Some(card) => Some(new_card(emu, account, &card)),
        None => emu.get(account, "payment_method", id),
    }
}

/// Declines Stripe documents as ones a later try may pass (its "soft"
/// declines), with the messages Stripe gives them.
/// https://docs.stripe.com/declines/codes
const SCRIPTABLE: [(&str, &str); 4] = [
    ("insufficient_funds", "Your card has insufficient funds."),
    (
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    (
        "try_again_later",
        "Your card was declined. Try again later.",
    ),
    (
        "issuer_not_available",
        "Your card was declined. The issuer could not be reached.",
    ),
];

/// A test control, not a Stripe route: the next `times` charges of this
/// card are declined with `decline_code`, then it behaves as its number
/// says. No Stripe test card declines and later succeeds (a customer's
/// account refilled); dunning's tests need one.
pub fn script_declines(emu: &Emulator, account: &str, mut pm: Value, params: &Value) -> Reply {
    let code = params["decline_code"]
        .as_str()
        .unwrap_or("insufficient_funds");
    if !SCRIPTABLE.iter().any(|(c, _)| *c == code) {
        return invalid(
            None,
            &format!("not a scriptable decline: {code}"),
            Some("decline_code"),
        );
    }
    let times = params["times"]
        .as_str()
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(1);
    pm["_declines"] = vec![Value::from(code); times.min(10)].into();
    emu.put(account, pm.clone());
    Reply::json(200, &public(pm))
}

/// Stripe's card account updater: the network reissued the card (a new
/// number and expiry), and Stripe updates the saved PaymentMethod in
/// place, same id, same customer, with `payment_method.automatically_updated`.
/// Here the new card is 4242 4242 4242 4242, expiring three years later.
/// https://docs.stripe.com/api/events/types#event_types-payment_method.automatically_updated
/// https://docs.stripe.com/saved-payment-methods#card-updates
pub fn automatically_update(emu: &Emulator, account: &str, mut pm: Value) -> Reply {
    if pm["type"] != "card" {
        return invalid(None, "only cards are updated by the network", None);
    }
    let reissued = "4242424242424242";
    pm["_number"] = reissued.into();
    pm["card"]["last4"] = reissued[12..].into();
    let year = pm["card"]["exp_year"].as_i64().unwrap_or(2034);
    pm["card"]["exp_year"] = (year + 3).into();
    emu.put(account, pm.clone());
    let pm = public(pm);
    emu.emit(account, "payment_method.automatically_updated", pm.clone());
    Reply::json(200, &pm)
}

/// The next scripted decline of `pm`, taken off its list (stored).
pub fn take_scripted_decline(
    emu: &Emulator,
    account: &str,
    pm: &Value,
) -> Option<(String, &'static str)> {
    let mut stored = emu.get(account, "payment_method", pm["id"].as_str()?)?;
    let list = stored["_declines"].as_array_mut()?;
    if list.is_empty() {
        return None;
    }
    let code = list.remove(0).as_str()?.to_string();
    emu.put(account, stored);
    let message = SCRIPTABLE
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, m)| *m)?;
    Some((code, message))
}

/// The test card behind a stored card payment method.
pub fn test_card(pm: &Value) -> Option<TestCard> {
    pm["_number"].as_str().and_then(test_cards::by_number)
}

fn create(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, PARAMS) {
        return e;
    }
    if let Err(e) = check_metadata(&params["metadata"], "metadata") {
        return e;
    }
    let mut pm = match params["type"].as_str() {
        Some("card") => {
            let number = params["card"]["number"].as_str().unwrap_or_default();
            match test_cards::by_number(number) {
                Some(card) => new_card(emu, account, &card),
                None => return incorrect_number("card[number]"),
            }
        }
        Some("sepa_debit") => match new_sepa_debit(emu, account, params) {
            Ok(pm) => pm,
            Err(e) => return e,
        },
        Some(_) => {
            return invalid(
                Some("parameter_invalid"),
                "Only type=card and type=sepa_debit are emulated.",
                Some("type"),
            );
        }
        None => return param_missing("type"),
    };
    super::merge_metadata(&mut pm, params);
    emu.put(account, pm.clone());
    Reply::json(200, &public(pm))
}

/// A SEPA Debit payment method from an IBAN (Stripe's test IBANs only).
fn new_sepa_debit(emu: &Emulator, account: &str, params: &Value) -> Result<Value, Reply> {
    let iban = params["sepa_debit"]["iban"]
        .as_str()
        .unwrap_or_default()
        .replace(' ', "");
    if sepa_debit_succeeds(&iban).is_none() {
        return Err(invalid(
            Some("invalid_bank_account_iban"),
            "The IBAN you provided is invalid (the emulator knows Stripe's test IBANs).",
            Some("sepa_debit[iban]"),
        ));
    }
    let mut pm = shapes::payment_method(&emu.next_id("pm"), "sepa_debit", emu.now());
    pm["sepa_debit"] = json!({"bank_code": "19043", "branch_code": null, "country": &iban[..2],
        "fingerprint": format!("emu{}", &iban[iban.len() - 6..]), "generated_from": null,
        "last4": &iban[iban.len() - 4..]});
    pm["_iban"] = iban.into();
    emu.put(account, pm.clone());
    Ok(pm)
}

/// Saving a card checks it with the bank: a card that declines cannot be
/// saved (https://docs.stripe.com/testing#declined-payments: only
/// 4000 0000 0000 0341 attaches and then declines).
fn attach(emu: &Emulator, account: &str, id: &str, params: &Value) -> Reply {
    let Some(customer) = str_of(&params["customer"]) else {
        return param_missing("customer");
    };
    let Some(mut pm) = resolve(emu, account, id) else {
        return missing("payment_method", id);
    };
    if !emu.live_customer(account, customer) {
        return missing("customer", customer);
    }
    if let Some(Behaviour::Declines(d)) = test_card(&pm).map(|c| c.behaviour) {
        let mut reply = stripe_error(402, Kind::Card, Some(d.code), d.message, None);
        let mut body = reply.json_body();
        body["error"]["decline_code"] = d.decline_code.into();
        reply.body = serde_json::to_vec_pretty(&body).unwrap_or_default();
        return reply;
    }
    pm["customer"] = customer.into();
    emu.put(account, pm.clone());
    emu.emit(account, "payment_method.attached", public(pm.clone()));
    Reply::json(200, &public(pm))
}

fn detach(emu: &Emulator, account: &str, id: &str) -> Reply {
    let Some(mut pm) = emu.get(account, "payment_method", id) else {
        return missing("payment_method", id);
    };
    let Some(customer) = pm["customer"].as_str().map(str::to_string) else {
        return invalid(
            Some("payment_method_unexpected_state"),
            "The payment method you provided is not attached to a customer so detachment is impossible.",
            None,
        );
    };
    pm["customer"] = Value::Null;
    emu.put(account, pm.clone());
    if let Some(mut c) = emu.get(account, "customer", &customer)
        && c["invoice_settings"]["default_payment_method"] == id
    {
        c["invoice_settings"]["default_payment_method"] = Value::Null;
        emu.put(account, c);
    }
    emu.emit_with_previous(
        account,
        "payment_method.detached",
        public(pm.clone()),
        json!({"customer": customer}),
    );
    Reply::json(200, &public(pm))
}
