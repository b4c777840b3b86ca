//! The emulator's resources: customers and Checkout Sessions, plus the
//! test-only route that pays a session as a customer would.

use super::{Emulator, Reply, Stored, stripe_error};
use serde_json::{Value, json};

/// Top-level parameters Stripe accepts on each create/update call; anything
/// else is refused as Stripe does ("Received unknown parameter").
const CUSTOMER_PARAMS: &[&str] = &[
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
const SESSION_PARAMS: &[&str] = &[
    "adaptive_pricing",
    "mode",
    "customer",
    "client_reference_id",
    "line_items",
    "success_url",
    "cancel_url",
    "metadata",
    "payment_intent_data",
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

pub(super) fn unknown_param(params: &Value, allowed: &[&str]) -> Option<Reply> {
    let bad = params
        .as_object()?
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))?;
    Some(stripe_error(
        400,
        "invalid_request_error",
        Some("parameter_unknown"),
        &format!("Received unknown parameter: {bad}"),
        Some(bad),
    ))
}

pub(super) fn missing(kind: &str, id: &str) -> Reply {
    stripe_error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some("id"),
    )
}

pub(super) fn str_of(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

pub(super) fn int_param(params: &Value, name: &str) -> Result<Option<i64>, Reply> {
    match &params[name] {
        Value::Null => Ok(None),
        Value::String(s) => s.parse().map(Some).map_err(|_| {
            stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                &format!("Invalid integer: {s}"),
                Some(name),
            )
        }),
        _ => Err(stripe_error(
            400,
            "invalid_request_error",
            None,
            &format!("Invalid {name}"),
            Some(name),
        )),
    }
}

pub fn route(emu: &Emulator, method: &str, path: &str, account: &str, params: &Value) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["v1", "customers"]) => create_customer(emu, account, params),
        ("GET", ["v1", "customers"]) => list(emu, account, "customer", "/v1/customers", params),
        ("GET", ["v1", "customers", id]) => retrieve(emu, account, "customer", id),
        ("POST", ["v1", "customers", id]) => update_customer(emu, account, id, params),
        ("DELETE", ["v1", "customers", id]) => delete_customer(emu, account, id),
        ("POST", ["v1", "checkout", "sessions"]) => create_session(emu, account, params),
        ("GET", ["v1", "checkout", "sessions"]) => list(
            emu,
            account,
            "checkout.session",
            "/v1/checkout/sessions",
            params,
        ),
        ("GET", ["v1", "checkout", "sessions", id]) => {
            retrieve(emu, account, "checkout.session", id)
        }
        ("POST", ["v1", "checkout", "sessions", id, "expire"]) => expire_session(emu, account, id),
        ("GET", ["v1", "events", id]) => retrieve(emu, account, "event", id),
        ("GET", ["v1", "events"]) => list(emu, account, "event", "/v1/events", params),
        (
            _,
            ["v1", "payment_methods", ..]
            | ["v1", "payment_intents", ..]
            | ["v1", "charges", ..]
            | ["v1", "refunds", ..],
        )
        | (_, ["v1", "customers", _, "payment_methods"]) => {
            super::payments::route(emu, method, &segments, account, params)
        }
        (_, ["v1", "accounts", ..] | ["v1", "account_links"]) => {
            super::connect::route(emu, method, &segments, params)
        }
        _ => stripe_error(
            404,
            "invalid_request_error",
            None,
            &format!("Unrecognized request URL ({method}: {path})."),
            None,
        ),
    }
}

/// Routes outside /v1: the test-only ones.
pub fn route_public(emu: &Emulator, method: &str, path: &str, params: &Value) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["_test", "checkout", "sessions", id, "complete"]) => {
            complete_session(emu, id, params)
        }
        ("GET", ["checkout", id]) => super::checkout_page::show(emu, id),
        ("POST", ["checkout", id, "pay"]) => super::checkout_page::pay(emu, id, params),
        _ => super::testing::route(emu, method, &segments, params),
    }
}

pub(super) fn get(emu: &Emulator, account: &str, kind: &str, id: &str) -> Option<Value> {
    let st = emu.state();
    st.objects
        .get(id)
        .filter(|s| s.account == account && s.object["object"] == kind)
        .map(|s| s.object.clone())
}

/// Whether `id` is a customer of `account` that has not been deleted.
pub(super) fn live_customer(emu: &Emulator, account: &str, id: &str) -> bool {
    get(emu, account, "customer", id).is_some_and(|c| c["deleted"] != true)
}

pub(super) fn put(emu: &Emulator, account: &str, object: Value) {
    let id = object["id"].as_str().unwrap_or_default().to_string();
    emu.state().objects.insert(
        id,
        Stored {
            account: account.to_string(),
            object,
        },
    );
}

pub(super) fn retrieve(emu: &Emulator, account: &str, kind: &str, id: &str) -> Reply {
    match get(emu, account, kind, id) {
        Some(o) => Reply::json(200, &o),
        None => missing(kind, id),
    }
}

pub(super) fn list(emu: &Emulator, account: &str, kind: &str, url: &str, params: &Value) -> Reply {
    let limit = match int_param(params, "limit") {
        Ok(l) => l.unwrap_or(10).clamp(1, 100) as usize,
        Err(e) => return e,
    };
    let customer = params["customer"].as_str();
    let st = emu.state();
    let mut data: Vec<Value> = st
        .objects
        .values()
        .filter(|s| {
            s.account == account && s.object["object"] == kind && s.object["deleted"] != true
        })
        .filter(|s| customer.is_none_or(|c| s.object["customer"] == c))
        // Payment methods are listed by `type` when it is given.
        .filter(|s| {
            params["type"]
                .as_str()
                .is_none_or(|t| s.object["type"] == t)
        })
        .map(|s| s.object.clone())
        .collect();
    data.reverse(); // newest first, as Stripe lists
    let has_more = data.len() > limit;
    data.truncate(limit);
    Reply::json(
        200,
        &json!({"object": "list", "url": url, "has_more": has_more, "data": data}),
    )
}

fn customer_fields(target: &mut Value, params: &Value) {
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

/// Stripe merges metadata keys; an empty value removes a key.
fn merge_metadata(target: &mut Value, params: &Value) {
    if !target["metadata"].is_object() {
        target["metadata"] = json!({});
    }
    if let (Some(meta), Some(given)) = (
        target["metadata"].as_object_mut(),
        params["metadata"].as_object(),
    ) {
        for (k, v) in given {
            if v == "" {
                meta.remove(k);
            } else {
                meta.insert(k.clone(), v.clone());
            }
        }
    }
}

fn create_customer(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, CUSTOMER_PARAMS) {
        return e;
    }
    let mut c = json!({
        "id": emu.next_id("cus"), "object": "customer", "address": null, "created": emu.clock.now_secs(),
        "description": null, "email": null, "name": null, "phone": null, "livemode": false, "metadata": {},
        "invoice_settings": {"default_payment_method": null},
    });
    customer_fields(&mut c, params);
    put(emu, account, c.clone());
    Reply::json(200, &c)
}

fn update_customer(emu: &Emulator, account: &str, id: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, CUSTOMER_PARAMS) {
        return e;
    }
    let Some(mut c) = get(emu, account, "customer", id).filter(|c| c["deleted"] != true) else {
        return missing("customer", id);
    };
    if let Some(pm) = str_of(&params["invoice_settings"]["default_payment_method"])
        && get(emu, account, "payment_method", pm).is_none_or(|p| p["customer"] != id)
    {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!(
                "The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."
            ),
            Some("invoice_settings[default_payment_method]"),
        );
    }
    customer_fields(&mut c, params);
    put(emu, account, c.clone());
    Reply::json(200, &c)
}

fn delete_customer(emu: &Emulator, account: &str, id: &str) -> Reply {
    if get(emu, account, "customer", id).is_none() {
        return missing("customer", id);
    }
    let tombstone = json!({"id": id, "object": "customer", "deleted": true});
    put(emu, account, tombstone.clone());
    Reply::json(200, &tombstone)
}

fn create_session(emu: &Emulator, account: &str, params: &Value) -> Reply {
    if let Some(e) = unknown_param(params, SESSION_PARAMS) {
        return e;
    }
    let invalid = |msg: &str, param: &str| {
        stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_invalid"),
            msg,
            Some(param),
        )
    };
    if params["mode"] != "payment" {
        return invalid(
            "mode must be payment here (setup and subscription are not emulated)",
            "mode",
        );
    }
    if str_of(&params["success_url"]).is_none() {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            "Missing required param: success_url.",
            Some("success_url"),
        );
    }
    let Some(items) = params["line_items"].as_array().filter(|i| !i.is_empty()) else {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            "Missing required param: line_items.",
            Some("line_items"),
        );
    };
    let customer = str_of(&params["customer"]);
    if let Some(c) = customer
        && !live_customer(emu, account, c)
    {
        return missing("customer", c);
    }
    let (mut total, mut currency) = (0i64, None::<String>);
    for (i, item) in items.iter().enumerate() {
        let price = &item["price_data"];
        let unit = int_param(price, "unit_amount");
        let qty = int_param(item, "quantity");
        let (Ok(Some(unit)), Ok(Some(qty))) = (unit, qty) else {
            return invalid(
                "line_items need price_data[unit_amount] and quantity",
                &format!("line_items[{i}]"),
            );
        };
        if unit < 0 || qty < 1 || str_of(&price["product_data"]["name"]).is_none() {
            return invalid("invalid line item", &format!("line_items[{i}]"));
        }
        let Some(cur) = str_of(&price["currency"]) else {
            return invalid(
                "Missing currency",
                &format!("line_items[{i}][price_data][currency]"),
            );
        };
        if currency.as_deref().is_some_and(|c| c != cur) {
            return invalid(
                "All line items must use the same currency",
                &format!("line_items[{i}][price_data][currency]"),
            );
        }
        currency = Some(cur.to_string());
        total += unit * qty;
    }
    let now = emu.clock.now_secs();
    let expires_at = match int_param(params, "expires_at") {
        Ok(Some(t)) if t < now + 30 * 60 || t > now + 24 * 3600 => {
            return invalid(
                "expires_at must be between 30 minutes and 24 hours from now",
                "expires_at",
            );
        }
        Ok(t) => t.unwrap_or(now + 24 * 3600),
        Err(e) => return e,
    };
    let id = emu.next_id("cs_test");
    let url = format!("{}/checkout/{id}", super::lock(&emu.public_base));
    let session = json!({
        "id": id, "object": "checkout.session", "mode": "payment", "status": "open", "payment_status": "unpaid",
        "amount_total": total, "amount_subtotal": total, "currency": currency, "customer": customer,
        "client_reference_id": params["client_reference_id"], "success_url": params["success_url"],
        "cancel_url": params["cancel_url"], "metadata": params["metadata"].as_object().cloned().unwrap_or_default(),
        "payment_intent": null, "url": url, "created": now, "expires_at": expires_at, "livemode": false,
        "payment_intent_data": params["payment_intent_data"],
    });
    put(emu, account, session.clone());
    Reply::json(200, &without_private(session))
}

/// `payment_intent_data` is kept to build the intent, but Stripe never shows it.
pub(super) fn without_private(mut session: Value) -> Value {
    if let Some(o) = session.as_object_mut() {
        o.remove("payment_intent_data");
    }
    session
}

/// Closes an open session; any other status cannot be expired, as in Stripe.
fn expire_session(emu: &Emulator, account: &str, id: &str) -> Reply {
    let Some(mut session) = get(emu, account, "checkout.session", id) else {
        return missing("checkout.session", id);
    };
    if session["status"] != "open" {
        return stripe_error(
            400,
            "invalid_request_error",
            None,
            &format!(
                "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".",
                session["status"].as_str().unwrap_or("")
            ),
            None,
        );
    }
    session["status"] = "expired".into();
    put(emu, account, session.clone());
    let session = without_private(session);
    emu.emit(account, "checkout.session.expired", session.clone());
    Reply::json(200, &session)
}

/// The session's one PaymentIntent: made at the customer's first try and kept
/// across declines and retries, with the session's `payment_intent_data`.
fn session_intent(emu: &Emulator, account: &str, session: &mut Value, pi_data: &Value) -> Value {
    let existing = session["payment_intent"]
        .as_str()
        .and_then(|id| get(emu, account, "payment_intent", id));
    existing.unwrap_or_else(|| {
        let pi = super::payments::new_intent(
            emu,
            account,
            &json!({
                "amount": session["amount_total"], "currency": session["currency"], "customer": session["customer"],
                "metadata": pi_data["metadata"].as_object().cloned().unwrap_or_default(),
                "setup_future_usage": pi_data["setup_future_usage"],
            }),
            "requires_payment_method",
        );
        session["payment_intent"] = pi["id"].clone();
        pi
    })
}

/// The customer pays the session with a card, as on Stripe's hosted page.
/// `async=1` plays a bank debit: the session completes unpaid and the money
/// comes later (`/_test/checkout/sessions/{id}/async`).
pub(super) fn complete_session(emu: &Emulator, id: &str, params: &Value) -> Reply {
    let Some(stored) = emu.state().objects.get(id).cloned() else {
        return missing("checkout.session", id);
    };
    let (account, mut session) = (stored.account, stored.object);
    if session["status"] != "open" {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("checkout_session_not_open"),
            "This Checkout Session is no longer open.",
            None,
        );
    }
    let card = params["card"]
        .as_str()
        .unwrap_or("4242424242424242")
        .replace(' ', "");
    let bank_debit = params["async"] == "1";
    let Some(outcome) = super::payments::card_outcome(&card) else {
        return stripe_error(
            402,
            "card_error",
            Some("incorrect_number"),
            "Your card number is incorrect.",
            Some("number"),
        );
    };
    let pi_data = session["payment_intent_data"].clone();
    let customer = session["customer"].as_str().map(str::to_string);
    // Saved to the customer only when the payment succeeds (setup_future_usage).
    let pm = super::payments::new_card(emu, &account, &card, None);
    let mut intent = session_intent(emu, &account, &mut session, &pi_data);
    intent["payment_method"] = pm.clone().into();
    // On-session: the customer authenticates, so only outright declines fail.
    // A decline leaves the session open on the same PaymentIntent, now
    // requires_payment_method, and Stripe sends payment_intent.payment_failed;
    // the customer's next try confirms that PaymentIntent again.
    // https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-payment_intent
    // https://docs.stripe.com/payments/paymentintents/lifecycle
    if let Some(decline) = outcome
        .decline
        .filter(|d| d.code != "authentication_required")
    {
        intent["status"] = "requires_payment_method".into();
        intent["last_payment_error"] = json!({"type": "card_error", "code": decline.code,
            "decline_code": decline.decline_code, "message": decline.message, "payment_method": {"id": pm}});
        put(emu, &account, intent.clone());
        put(emu, &account, session);
        emu.emit(&account, "payment_intent.payment_failed", intent.clone());
        let mut reply = stripe_error(402, "card_error", Some(decline.code), decline.message, None);
        if let Ok(mut body) = serde_json::from_slice::<Value>(&reply.body) {
            body["error"]["decline_code"] = decline.decline_code.into();
            body["error"]["payment_intent"] = intent;
            reply.body = serde_json::to_vec_pretty(&body).unwrap_or_default();
        }
        return reply;
    }
    let status = if bank_debit {
        "processing"
    } else {
        "succeeded"
    };
    if let Some(c) = customer.filter(|_| pi_data["setup_future_usage"] == "off_session")
        && let Some(mut saved) = get(emu, &account, "payment_method", &pm)
    {
        saved["customer"] = c.into();
        put(emu, &account, saved);
    }
    intent["status"] = status.into();
    intent["last_payment_error"] = Value::Null;
    if !bank_debit {
        intent["amount_received"] = intent["amount"].clone();
        intent["latest_charge"] = super::payments::new_charge(emu, &account, &intent).into();
    }
    put(emu, &account, intent.clone());
    session["status"] = "complete".into();
    session["payment_status"] = if bank_debit { "unpaid" } else { "paid" }.into();
    put(emu, &account, session.clone());
    let session = without_private(session);
    emu.emit(
        &account,
        if bank_debit {
            "payment_intent.processing"
        } else {
            "payment_intent.succeeded"
        },
        intent,
    );
    emu.emit(&account, "checkout.session.completed", session.clone());
    Reply::json(200, &session)
}
