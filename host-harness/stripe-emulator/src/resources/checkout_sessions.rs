//! Checkout Sessions in payment mode, and what the customer does on the
//! hosted page: pay, be declined and try again, authenticate with 3-D
//! Secure, or pay by bank debit whose outcome comes later. In setup mode
//! the customer saves a card without paying, through a SetupIntent.
//! https://docs.stripe.com/api/checkout/sessions
//! https://docs.stripe.com/payments/checkout/how-checkout-works
//! https://docs.stripe.com/payments/save-and-reuse?platform=checkout

use super::payment_intents::{decline_error, fail, new_intent, require_action, succeed};
use super::payment_methods::new_card;
use super::setup_intents;
use super::{public, retrieve};
use crate::error::{Kind, invalid, missing, param_missing, stripe_error};
use crate::limits::{check_amount, check_metadata};
use crate::list::Filter;
use crate::params::{int_param, str_of, unknown_param};
use crate::test_cards::{self, AUTHENTICATION_FAILED, Behaviour, Session, TestCard};
use crate::{Emulator, Reply, shapes};
use serde_json::{Value, json};

const PARAMS: &[&str] = &[
    "adaptive_pricing",
    "mode",
    "customer",
    "client_reference_id",
    "line_items",
    "success_url",
    "cancel_url",
    "metadata",
    "payment_intent_data",
    "setup_intent_data",
    "expires_at",
    "payment_method_types",
    "customer_email",
    "expand",
    "currency",
    "locale",
    "submit_type",
    "allow_promotion_codes",
    "customer_update",
    "invoice_creation",
];

pub fn route(emu: &Emulator, method: &str, rest: &[&str], account: &str, params: &Value) -> Reply {
    match (method, rest) {
        ("POST", []) => create(emu, account, params),
        ("GET", []) => emu.list(
            account,
            "checkout.session",
            "/v1/checkout/sessions",
            params,
            &[
                Filter::Equals("customer"),
                Filter::Equals("payment_intent"),
                Filter::Equals("status"),
                Filter::Created,
            ],
            public,
        ),
        ("GET", [id]) => retrieve(emu, account, "checkout.session", id, public),
        ("POST", [id, "expire"]) => match emu.get(account, "checkout.session", id) {
            Some(s) => expire(emu, account, s),
            None => missing("checkout.session", id),
        },
        _ => {
            crate::error::unrecognized(method, &format!("/v1/checkout/sessions/{}", rest.join("/")))
        }
    }
}

/// The line items' total and currency.
fn total(items: &[Value]) -> Result<(i64, String), Reply> {
    let (mut sum, mut currency) = (0i64, None::<String>);
    for (i, item) in items.iter().enumerate() {
        let price = &item["price_data"];
        let (Ok(Some(unit)), Ok(Some(qty))) =
            (int_param(price, "unit_amount"), int_param(item, "quantity"))
        else {
            return Err(invalid(
                Some("parameter_invalid"),
                "line_items need price_data[unit_amount] and quantity",
                Some(&format!("line_items[{i}]")),
            ));
        };
        if unit < 0 || qty < 1 || str_of(&price["product_data"]["name"]).is_none() {
            return Err(invalid(
                Some("parameter_invalid"),
                "invalid line item",
                Some(&format!("line_items[{i}]")),
            ));
        }
        let param = format!("line_items[{i}][price_data][currency]");
        let cur = str_of(&price["currency"]).ok_or_else(|| param_missing(&param))?;
        if currency.as_deref().is_some_and(|c| c != cur) {
            return Err(invalid(
                Some("parameter_invalid"),
                "All line items must use the same currency",
                Some(&param),
            ));
        }
        currency = Some(cur.to_ascii_lowercase());
        sum += unit * qty;
    }
    Ok((sum, currency.unwrap_or_default()))
}

fn validate(emu: &Emulator, account: &str, params: &Value) -> Result<(i64, String, i64), Reply> {
    if let Some(e) = unknown_param(params, PARAMS) {
        return Err(e);
    }
    check_metadata(&params["metadata"], "metadata")?;
    check_metadata(
        &params["payment_intent_data"]["metadata"],
        "payment_intent_data[metadata]",
    )?;
    check_metadata(
        &params["setup_intent_data"]["metadata"],
        "setup_intent_data[metadata]",
    )?;
    let mode = Mode::of(&params["mode"])?;
    if str_of(&params["success_url"]).is_none() {
        return Err(param_missing("success_url"));
    }
    if let Some(c) = str_of(&params["customer"])
        && !emu.live_customer(account, c)
    {
        return Err(missing("customer", c));
    }
    let (sum, currency) = match mode {
        Mode::Payment => {
            let Some(items) = params["line_items"].as_array().filter(|i| !i.is_empty()) else {
                return Err(param_missing("line_items"));
            };
            let (sum, currency) = total(items)?;
            check_amount(sum, &currency, "line_items")?;
            (sum, currency)
        }
        Mode::Setup => setup_currency(params)?,
    };
    // A session is open for 30 minutes to 24 hours (default 24 hours).
    // https://docs.stripe.com/api/checkout/sessions/create#create_checkout_session-expires_at
    let now = emu.now();
    let expires_at = match int_param(params, "expires_at")? {
        Some(t) if t < now + 30 * 60 || t > now + 24 * 3600 => {
            return Err(invalid(
                Some("parameter_invalid"),
                "expires_at must be between 30 minutes and 24 hours from now",
                Some("expires_at"),
            ));
        }
        t => t.unwrap_or(now + 24 * 3600),
    };
    Ok((sum, currency, expires_at))
}

/// What a session is for. Subscriptions are not emulated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Payment,
    Setup,
}

impl Mode {
    fn of(given: &Value) -> Result<Mode, Reply> {
        match given.as_str() {
            Some("payment") => Ok(Mode::Payment),
            Some("setup") => Ok(Mode::Setup),
            _ => Err(invalid(
                Some("parameter_invalid"),
                "mode must be payment or setup here (subscription is not emulated)",
                Some("mode"),
            )),
        }
    }
}

/// Setup mode charges nothing, so it takes no line items; with Checkout's
/// dynamic payment methods (no `payment_method_types`) it needs the
/// currency. https://docs.stripe.com/payments/save-and-reuse?platform=checkout
fn setup_currency(params: &Value) -> Result<(i64, String), Reply> {
    if !params["line_items"].is_null() {
        return Err(invalid(
            Some("parameter_invalid"),
            "line_items cannot be given in setup mode",
            Some("line_items"),
        ));
    }
    match str_of(&params["currency"]) {
        Some(c) => Ok((0, c.to_ascii_lowercase())),
        None if params["payment_method_types"].is_array() => Ok((0, String::new())),
        None => Err(param_missing("currency")),
    }
}

fn create(emu: &Emulator, account: &str, params: &Value) -> Reply {
    let (sum, currency, expires_at) = match validate(emu, account, params) {
        Ok(v) => v,
        Err(e) => return e,
    };
    // A setup-mode session has no amount and nothing to pay; its
    // SetupIntent is made when the customer confirms, as a payment
    // session's PaymentIntent is.
    let by_mode = if params["mode"] == "setup" {
        json!({
            "mode": "setup", "payment_status": "no_payment_required",
            "currency": (!currency.is_empty()).then_some(currency),
            "_setup_intent_data": params["setup_intent_data"],
        })
    } else {
        json!({
            "amount_total": sum, "amount_subtotal": sum, "currency": currency,
            "_payment_intent_data": params["payment_intent_data"],
        })
    };
    let id = emu.next_id("cs_test");
    let session = shapes::with(
        shapes::checkout_session(&id, emu.now()),
        json!({
            "customer": params["customer"], "client_reference_id": params["client_reference_id"],
            "success_url": params["success_url"], "cancel_url": params["cancel_url"],
            "expires_at": expires_at, "url": format!("{}/checkout/{id}", emu.public_base()),
        }),
    );
    let mut session = shapes::with(session, by_mode);
    if let Some(types) = params["payment_method_types"].as_array() {
        session["payment_method_types"] = types.clone().into();
    }
    super::merge_metadata(&mut session, params);
    emu.put(account, session.clone());
    emu.store().expires(expires_at, &id);
    Reply::json(200, &public(session))
}

/// Closes an open session; any other status cannot be expired, as in Stripe.
fn expire(emu: &Emulator, account: &str, mut session: Value) -> Reply {
    if session["status"] != "open" {
        return invalid(
            None,
            &format!(
                "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".",
                session["status"].as_str().unwrap_or("")
            ),
            None,
        );
    }
    session["status"] = "expired".into();
    emu.put(account, session.clone());
    let session = public(session);
    emu.emit(account, "checkout.session.expired", session.clone());
    Reply::json(200, &session)
}

impl Emulator {
    /// Sessions whose time is up expire, on the emulator's clock, with
    /// `checkout.session.expired`, as Stripe expires them.
    pub(crate) fn expire_due_sessions(&self) {
        let due = self.store().due(self.now());
        for id in due {
            if let Some((account, s)) = self.owner_of(&id)
                && s["status"] == "open"
            {
                let _ = expire(self, &account, s);
            }
        }
    }
}

/// An open session by id, with its account (for the customer's page).
pub fn open_session(emu: &Emulator, id: &str) -> Result<(String, Value), Reply> {
    let Some((account, session)) = emu
        .owner_of(id)
        .filter(|(_, s)| s["object"] == "checkout.session")
    else {
        return Err(missing("checkout.session", id));
    };
    if session["status"] != "open" {
        return Err(invalid(
            Some("checkout_session_not_open"),
            "This Checkout Session is no longer open.",
            None,
        ));
    }
    Ok((account, session))
}

/// The session's one PaymentIntent: made at the customer's first try and kept
/// across declines and retries, with the session's `payment_intent_data`.
fn session_intent(emu: &Emulator, account: &str, session: &mut Value) -> Value {
    let existing = session["payment_intent"]
        .as_str()
        .and_then(|id| emu.get(account, "payment_intent", id));
    existing.unwrap_or_else(|| {
        let pi_data = &session["_payment_intent_data"];
        let pi = new_intent(
            emu,
            account,
            &json!({
                "amount": session["amount_total"], "currency": session["currency"], "customer": session["customer"],
                "metadata": pi_data["metadata"].as_object().cloned().unwrap_or_default(),
                "setup_future_usage": pi_data["setup_future_usage"], "receipt_email": pi_data["receipt_email"],
                "payment_method_types": session["payment_method_types"],
            }),
            "requires_payment_method",
        );
        session["payment_intent"] = pi["id"].clone();
        emu.put(account, session.clone());
        pi
    })
}

/// The customer pays the session with a card, as on Stripe's hosted page.
/// A decline leaves the session open on the same PaymentIntent, now
/// requires_payment_method, with `payment_intent.payment_failed`; the next
/// try confirms that PaymentIntent again. A card that asks for 3-D Secure
/// leaves the PaymentIntent requires_action until the customer authenticates
/// (`authenticate`). `async=1` plays a bank debit: the session completes
/// unpaid and the money comes later (`async_result`).
/// https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-payment_intent
pub fn complete(emu: &Emulator, id: &str, params: &Value) -> Reply {
    let (account, mut session) = match open_session(emu, id) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let number = params["card"].as_str().unwrap_or("4242424242424242");
    let Some(card) = test_cards::by_number(number) else {
        return stripe_error(
            402,
            Kind::Card,
            Some("incorrect_number"),
            "Your card number is incorrect.",
            Some("number"),
        );
    };
    if session["mode"] == "setup" {
        return complete_setup(emu, &account, session, &card);
    }
    let pm = new_card(emu, &account, &card);
    let mut intent = session_intent(emu, &account, &mut session);
    intent["payment_method"] = pm["id"].clone();
    if let Some(d) = test_cards::charge_decline(&card, Session::On) {
        return fail(emu, &account, intent, decline_error(&d, &pm));
    }
    if matches!(card.behaviour, Behaviour::RequiresAuthentication) {
        let intent = require_action(emu, &account, intent);
        return Reply::json(
            202,
            &json!({"requires_action": true, "payment_intent": public(intent)}),
        );
    }
    if params["async"] == "1" {
        intent["status"] = "processing".into();
        emu.put(&account, intent.clone());
        keep_card(emu, &account, &session, &intent);
        emu.emit(&account, "payment_intent.processing", public(intent));
        return finish(emu, &account, session, "unpaid");
    }
    let intent = succeed(emu, &account, intent);
    keep_card(emu, &account, &session, &intent);
    finish(emu, &account, session, "paid")
}

/// The customer saves `card` in a setup session: its SetupIntent (made at
/// the first try, kept across declines) succeeds and the session
/// completes; a declined card leaves both open for another.
fn complete_setup(emu: &Emulator, account: &str, mut session: Value, card: &TestCard) -> Reply {
    if matches!(card.behaviour, Behaviour::RequiresAuthentication) {
        return invalid(None, "3-D Secure while saving a card is not emulated", None);
    }
    let pm = new_card(emu, account, card);
    let existing = session["setup_intent"]
        .as_str()
        .and_then(|id| emu.get(account, "setup_intent", id));
    let intent = existing.unwrap_or_else(|| {
        let data = &session["_setup_intent_data"];
        let intent = setup_intents::create(emu, account, &session["customer"], &data["metadata"]);
        session["setup_intent"] = intent["id"].clone();
        emu.put(account, session.clone());
        intent
    });
    if test_cards::setup_decline(card).is_some() {
        return setup_intents::fail(emu, account, intent, &pm, card);
    }
    setup_intents::succeed(emu, account, intent, pm);
    finish(emu, account, session, "no_payment_required")
}

/// The customer completes or fails the 3-D Secure challenge.
pub fn authenticate(emu: &Emulator, id: &str, passed: bool) -> Reply {
    let (account, session) = match open_session(emu, id) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Some(intent) = session["payment_intent"]
        .as_str()
        .and_then(|pi| emu.get(&account, "payment_intent", pi))
        .filter(|pi| pi["status"] == "requires_action")
    else {
        return invalid(
            None,
            "This Checkout Session is not waiting for authentication.",
            None,
        );
    };
    if !passed {
        let pm = intent["payment_method"]
            .as_str()
            .and_then(|p| emu.get(&account, "payment_method", p))
            .unwrap_or_default();
        return fail(
            emu,
            &account,
            intent,
            decline_error(&AUTHENTICATION_FAILED, &pm),
        );
    }
    let intent = succeed(emu, &account, intent);
    keep_card(emu, &account, &session, &intent);
    finish(emu, &account, session, "paid")
}

/// With `setup_future_usage`, the payment method is saved to the customer
/// once the PaymentIntent is confirmed and the customer's part is done (a
/// debit still processing included), never on a decline.
/// https://docs.stripe.com/api/payment_intents/create#create_payment_intent-setup_future_usage
fn keep_card(emu: &Emulator, account: &str, session: &Value, intent: &Value) {
    let off_session = session["_payment_intent_data"]["setup_future_usage"] == "off_session";
    if let (true, Some(customer), Some(pm)) = (
        off_session,
        session["customer"].as_str(),
        intent["payment_method"].as_str(),
    ) && let Some(mut saved) = emu.get(account, "payment_method", pm)
    {
        saved["customer"] = customer.into();
        emu.put(account, saved);
    }
}

fn finish(emu: &Emulator, account: &str, mut session: Value, payment_status: &str) -> Reply {
    session["status"] = "complete".into();
    session["payment_status"] = payment_status.into();
    emu.put(account, session.clone());
    let session = public(session);
    emu.emit(account, "checkout.session.completed", session.clone());
    Reply::json(200, &session)
}

/// The bank debit behind a completed, unpaid session succeeds or fails.
/// https://docs.stripe.com/payments/checkout/fulfill-orders#delayed-notification
pub fn async_result(emu: &Emulator, id: &str, succeeded: bool) -> Reply {
    let Some((account, mut session)) = emu.owner_of(id) else {
        return missing("checkout.session", id);
    };
    let pi_id = session["payment_intent"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(pi) = emu
        .get(&account, "payment_intent", &pi_id)
        .filter(|pi| pi["status"] == "processing")
    else {
        return invalid(
            None,
            "This Checkout Session has no bank debit processing.",
            None,
        );
    };
    if succeeded {
        succeed(emu, &account, pi);
        session["payment_status"] = "paid".into();
        emu.put(&account, session.clone());
        emu.emit(
            &account,
            "checkout.session.async_payment_succeeded",
            public(session),
        );
    } else {
        let error = json!({"type": "card_error", "code": "payment_method_provider_decline",
            "message": "The bank debit was declined."});
        let _ = fail(emu, &account, pi, error);
        emu.emit(
            &account,
            "checkout.session.async_payment_failed",
            public(session),
        );
    }
    Reply::json(200, &json!({"ok": true}))
}
