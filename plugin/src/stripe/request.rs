//! Stripe API requests as plain data: method, path, form parameters in Stripe's
//! bracket notation, and an idempotency key derived from the host's records.

use crate::contract::{Customer, OnboardingRequest};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// Metadata keys of the plugin's own, on every object it creates.
pub const INVOICE_KEY: &str = "billing_stripe_plugin_invoice";
pub const CHANNEL_KEY: &str = "billing_stripe_plugin_channel";
pub const ATTEMPT_KEY: &str = "billing_stripe_plugin_attempt";
/// The channel of a card saved on the customer's card page.
pub const CARD_PAGE: &str = "card_page";
/// The platform's id of a refund it asked for.
pub const REFUND_KEY: &str = "billing_stripe_plugin_refund";
/// Dunning: the retry an off-session charge is (1 for the first retry).
pub const RETRY_KEY: &str = "billing_stripe_plugin_retry";

/// The API version every request pins, so that response shapes cannot drift under us.
pub const API_VERSION: &str = "2024-06-20";

/// Characters kept as they are in a path segment (Stripe ids are `[A-Za-z0-9_]`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-');

/// One call to Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeRequest {
    pub method: &'static str,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
}

impl StripeRequest {
    /// A read, or a write under an idempotency key: sending it again cannot
    /// do the work twice (within Stripe's 24 hours for the key).
    pub fn safe_to_repeat(&self) -> bool {
        self.method == "GET" || self.idempotency_key.is_some()
    }

    fn get(path: String) -> Self {
        Self {
            method: "GET",
            path,
            params: Vec::new(),
            idempotency_key: None,
        }
    }

    fn post(path: String, params: Vec<(String, String)>, idempotency_key: String) -> Self {
        Self {
            method: "POST",
            path,
            params,
            idempotency_key: Some(idempotency_key),
        }
    }

    /// The form-encoded body (POST) or query string (GET).
    pub fn encoded_params(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            form.append_pair(k, v);
        }
        form.finish()
    }

    /// Absolute URL under `api_base`.
    pub fn url(&self, api_base: &str) -> String {
        let base = api_base.trim_end_matches('/');
        if self.method == "GET" && !self.params.is_empty() {
            format!("{base}{}?{}", self.path, self.encoded_params())
        } else {
            format!("{base}{}", self.path)
        }
    }

    /// Headers every call carries; `Authorization` is added by the host, never here.
    pub fn headers(&self, account_id: &str) -> Vec<(String, String)> {
        let mut headers = vec![("Stripe-Version".to_string(), API_VERSION.to_string())];
        if !account_id.is_empty() {
            headers.push(("Stripe-Account".to_string(), account_id.to_string()));
        }
        if let Some(key) = &self.idempotency_key {
            headers.push(("Idempotency-Key".to_string(), key.clone()));
        }
        if self.method == "POST" {
            headers.push((
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ));
        }
        headers
    }
}

fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// A short stable digest, so that a key changes exactly when the parameters do.
fn digest(params: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    for (k, v) in params {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// The customer fields Stripe keeps, as form parameters, in a fixed order.
/// Two customers with equal lists need no update call.
pub fn customer_params(c: &Customer) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            p.push((k.to_string(), v.to_string()));
        }
    };
    put(
        "name",
        c.legal_name
            .as_deref()
            .or(c.label.as_deref())
            .or(c.contact_name.as_deref()),
    );
    put(
        "email",
        c.email
            .as_deref()
            .or(c.billing_emails.first().map(String::as_str)),
    );
    put("phone", c.telephone.as_deref());
    if let Some(a) = &c.address {
        put("address[line1]", a.line1.as_deref());
        put("address[line2]", a.line2.as_deref());
        put("address[city]", a.town.as_deref());
        put("address[postal_code]", a.postcode.as_deref());
        put("address[country]", a.country.as_deref());
    }
    let billing = c.billing_emails.join(",");
    put("metadata[billing_emails]", Some(&billing));
    put("metadata[contact_name]", c.contact_name.as_deref());
    put("metadata[platform_customer_id]", Some(&c.id));
    p
}

pub fn create_customer(c: &Customer) -> StripeRequest {
    StripeRequest::post(
        "/v1/customers".into(),
        customer_params(c),
        format!("customer-create:{}", c.id),
    )
}

/// Pushes `current`; fields that `previous` had and `current` lost are cleared
/// (Stripe unsets a field given an empty string). `None` when nothing Stripe keeps changed.
/// `seq` numbers this customer's pushes: A, then B, then A again within
/// Stripe's 24 hours gets three keys, so Stripe never replays the first A
/// instead of applying the second (a retry of one push reuses its number).
pub fn update_customer(
    stripe_id: &str,
    current: &Customer,
    previous: Option<&Customer>,
    seq: u64,
) -> Option<StripeRequest> {
    let now = customer_params(current);
    let before = previous.map(customer_params);
    if before.as_ref() == Some(&now) {
        return None;
    }
    let mut params = now;
    for (k, _) in before.iter().flatten() {
        if !params.iter().any(|(n, _)| n == k) {
            params.push((k.clone(), String::new()));
        }
    }
    let key = format!("customer-update:{}:{seq}:{}", current.id, digest(&params));
    Some(StripeRequest::post(
        format!("/v1/customers/{}", segment(stripe_id)),
        params,
        key,
    ))
}

/// Makes `payment_method` the customer's default, so that the next invoice
/// is charged with it (the card a Checkout payment saved).
pub fn set_default_payment_method(stripe_customer: &str, payment_method: &str) -> StripeRequest {
    StripeRequest::post(
        format!("/v1/customers/{}", segment(stripe_customer)),
        vec![(
            "invoice_settings[default_payment_method]".into(),
            payment_method.into(),
        )],
        format!("default-method:{stripe_customer}:{payment_method}"),
    )
}

pub fn retrieve_payment_intent(id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/payment_intents/{}", segment(id)))
}

pub fn retrieve_charge(id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/charges/{}", segment(id)))
}

pub fn retrieve_customer(stripe_id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/customers/{}", segment(stripe_id)))
}

/// What a Checkout Session is for.
pub struct SessionSpec<'a> {
    pub invoice_id: &'a str,
    pub invoice_number: &'a str,
    pub currency: &'a str,
    pub amount_minor: u64,
    /// None after the customer was unlinked: Checkout then collects as a
    /// guest and saves no card.
    pub stripe_customer: Option<&'a str>,
    pub success_url: &'a str,
    /// Where Stripe sends the receipt (the merchant's "Stripe receipts" switch).
    pub receipt_email: Option<&'a str>,
    pub attempt: u32,
}

/// A Checkout Session for what is due. The invoice id goes into the metadata
/// of both the session and its payment intent, so either event settles it, and
/// the card is kept for later off-session charges.
pub fn create_checkout_session(c: &SessionSpec) -> StripeRequest {
    let s = |v: &str| v.to_string();
    // Adaptive Pricing could show and charge the customer's own currency;
    // an invoice is paid in its currency, so it is off for these sessions.
    // https://docs.stripe.com/payments/checkout/adaptive-pricing
    let mut params = vec![
        (s("mode"), s("payment")),
        (s("adaptive_pricing[enabled]"), s("false")),
    ];
    if let Some(customer) = c.stripe_customer {
        params.push((s("customer"), s(customer)));
    }
    params.extend([
        (s("client_reference_id"), s(c.invoice_id)),
        (s("line_items[0][quantity]"), s("1")),
        (
            s("line_items[0][price_data][currency]"),
            c.currency.to_ascii_lowercase(),
        ),
        (
            s("line_items[0][price_data][unit_amount]"),
            c.amount_minor.to_string(),
        ),
        (
            s("line_items[0][price_data][product_data][name]"),
            format!("Invoice {}", c.invoice_number),
        ),
        (s("success_url"), s(c.success_url)),
        (format!("metadata[{INVOICE_KEY}]"), s(c.invoice_id)),
        (s("metadata[invoice_number]"), s(c.invoice_number)),
        (
            format!("payment_intent_data[metadata][{INVOICE_KEY}]"),
            s(c.invoice_id),
        ),
        (
            format!("payment_intent_data[metadata][{CHANNEL_KEY}]"),
            s("checkout"),
        ),
        // The attempt the session belongs to: a late failure of an earlier
        // attempt's payment is then known to be stale.
        (
            format!("payment_intent_data[metadata][{ATTEMPT_KEY}]"),
            c.attempt.to_string(),
        ),
        (
            s("payment_intent_data[metadata][invoice_number]"),
            s(c.invoice_number),
        ),
    ]);
    if c.stripe_customer.is_some() {
        params.push((
            s("payment_intent_data[setup_future_usage]"),
            s("off_session"),
        ));
    }
    if let Some(email) = c.receipt_email {
        params.push((s("payment_intent_data[receipt_email]"), s(email)));
    }
    let key = format!("checkout-session:{}:{}", c.invoice_id, c.attempt);
    StripeRequest::post("/v1/checkout/sessions".into(), params, key)
}

/// A Checkout Session in `setup` mode: the customer saves a card for later
/// charges and pays nothing now. Its SetupIntent carries the plugin's mark,
/// so that `setup_intent.succeeded` makes that card the default. One per
/// click (`at_ms`, the key's): a retry of the request makes no second one.
/// https://docs.stripe.com/payments/save-and-reuse?platform=checkout
pub fn create_card_setup_session(
    stripe_customer: &str,
    back_url: &str,
    at_ms: u64,
) -> StripeRequest {
    let s = |v: &str| v.to_string();
    StripeRequest::post(
        "/v1/checkout/sessions".into(),
        vec![
            (s("mode"), s("setup")),
            (s("customer"), s(stripe_customer)),
            (s("payment_method_types[0]"), s("card")),
            (s("success_url"), s(back_url)),
            (s("cancel_url"), s(back_url)),
            (
                format!("setup_intent_data[metadata][{CHANNEL_KEY}]"),
                s(CARD_PAGE),
            ),
        ],
        format!("card-setup:{stripe_customer}:{at_ms}"),
    )
}

pub fn retrieve_checkout_session(id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/checkout/sessions/{}", segment(id)))
}

/// Closes an open session, so that it can no longer take money.
pub fn expire_checkout_session(id: &str) -> StripeRequest {
    StripeRequest::post(
        format!("/v1/checkout/sessions/{}/expire", segment(id)),
        Vec::new(),
        format!("expire:{id}"),
    )
}

/// The customer's payment methods of `kind` (`None`: of every type), two at
/// most: the only one is used when no default is set.
pub fn list_payment_methods(stripe_customer: &str, kind: Option<&str>) -> StripeRequest {
    let mut params = vec![("customer".into(), stripe_customer.into())];
    if let Some(k) = kind {
        params.push(("type".into(), k.into()));
    }
    params.push(("limit".into(), "2".into()));
    StripeRequest {
        params,
        ..StripeRequest::get("/v1/payment_methods".into())
    }
}

/// A customer's PaymentIntents made since `since` (Unix seconds), newest
/// first, a page of 100 after `starting_after`.
pub fn list_payment_intents(
    stripe_customer: &str,
    since: i64,
    starting_after: Option<&str>,
) -> StripeRequest {
    let mut params = vec![
        ("customer".into(), stripe_customer.into()),
        ("created[gte]".into(), since.to_string()),
        ("limit".into(), "100".into()),
    ];
    if let Some(after) = starting_after {
        params.push(("starting_after".into(), after.into()));
    }
    StripeRequest {
        params,
        ..StripeRequest::get("/v1/payment_intents".into())
    }
}

/// The refunds of one PaymentIntent (at most 100: a payment refunded in
/// more parts than that is beyond what the plugin looks through).
pub fn list_refunds(payment_intent: &str) -> StripeRequest {
    StripeRequest {
        params: vec![
            ("payment_intent".into(), payment_intent.into()),
            ("limit".into(), "100".into()),
        ],
        ..StripeRequest::get("/v1/refunds".into())
    }
}

/// Events of the types the plugin handles, made within `[since, until]`
/// (Unix seconds), newest first, a page of 100 after `starting_after`.
/// https://docs.stripe.com/api/events/list (`types`: up to 20)
pub fn list_events(since: u64, until: Option<u64>, starting_after: Option<&str>) -> StripeRequest {
    let mut params = vec![
        ("created[gte]".into(), since.to_string()),
        ("limit".into(), "100".into()),
    ];
    // Indexed, as Stripe's SDKs encode a list (`types[0]=…`).
    params.extend(
        crate::events::HANDLED
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("types[{i}]"), t.to_string())),
    );
    if let Some(t) = until {
        params.push(("created[lte]".into(), t.to_string()));
    }
    if let Some(after) = starting_after {
        params.push(("starting_after".into(), after.into()));
    }
    StripeRequest {
        params,
        ..StripeRequest::get("/v1/events".into())
    }
}

/// One event, read again (a sync's event that had to wait for another).
pub fn retrieve_event(id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/events/{}", segment(id)))
}

pub fn retrieve_payment_method(id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/payment_methods/{}", segment(id)))
}

/// What an off-session charge needs to know.
pub struct OffSessionCharge<'a> {
    pub invoice_id: &'a str,
    pub invoice_number: &'a str,
    pub currency: &'a str,
    pub amount_minor: u64,
    pub stripe_customer: &'a str,
    pub payment_method: &'a str,
    /// Its type (`card`, `sepa_debit` ...), named so that no redirect is possible.
    pub method_type: &'a str,
    pub receipt_email: Option<&'a str>,
    pub attempt: u32,
    /// Dunning: which retry this charge is (none for the first charge).
    pub retry: Option<u32>,
}

/// An off-session PaymentIntent, confirmed at once (auto-charge).
pub fn create_off_session_payment(c: &OffSessionCharge) -> StripeRequest {
    let s = |v: &str| v.to_string();
    let mut params = vec![
        (s("amount"), c.amount_minor.to_string()),
        (s("currency"), c.currency.to_ascii_lowercase()),
        (s("customer"), s(c.stripe_customer)),
        (s("payment_method"), s(c.payment_method)),
        (s("off_session"), s("true")),
        (s("confirm"), s("true")),
        // Off-session there is no page to come back to: the payment method's
        // type is named, so redirect-based methods are ruled out and Stripe
        // never asks for a return_url.
        (s("payment_method_types[0]"), s(c.method_type)),
        (format!("metadata[{INVOICE_KEY}]"), s(c.invoice_id)),
        (format!("metadata[{CHANNEL_KEY}]"), s("auto_charge")),
        (format!("metadata[{ATTEMPT_KEY}]"), c.attempt.to_string()),
        (s("metadata[invoice_number]"), s(c.invoice_number)),
    ];
    if let Some(email) = c.receipt_email {
        params.push((s("receipt_email"), s(email)));
    }
    if let Some(n) = c.retry {
        params.push((format!("metadata[{RETRY_KEY}]"), n.to_string()));
    }
    let key = format!("payment-intent:{}:{}", c.invoice_id, c.attempt);
    StripeRequest::post("/v1/payment_intents".into(), params, key)
}

/// A refund of part of one payment, asked for by the platform. The first
/// payment's key is `refund:{invoice}:{refund id}`; a refund spread over
/// more payments numbers the others (`…:2`, `…:3`).
pub fn create_refund(
    invoice_id: &str,
    refund_id: &str,
    nth: usize,
    payment_intent: &str,
    amount_minor: u64,
    reason: &str,
) -> StripeRequest {
    let s = |v: &str| v.to_string();
    let params = vec![
        (s("payment_intent"), s(payment_intent)),
        (s("amount"), amount_minor.to_string()),
        (s("reason"), s(reason)),
        (format!("metadata[{INVOICE_KEY}]"), s(invoice_id)),
        (format!("metadata[{REFUND_KEY}]"), s(refund_id)),
    ];
    let mut key = format!("refund:{invoice_id}:{refund_id}");
    if nth > 0 {
        key.push(':');
        key.push_str(&(nth + 1).to_string());
    }
    StripeRequest::post("/v1/refunds".into(), params, key)
}

/// A connected account for a merchant (made on the platform, no Stripe-Account).
pub fn create_account(r: &OnboardingRequest) -> StripeRequest {
    let s = |v: &str| v.to_string();
    let params = vec![
        (s("type"), s("express")),
        (s("country"), r.country.to_ascii_uppercase()),
        (s("email"), r.email.clone()),
        (s("capabilities[card_payments][requested]"), s("true")),
        (s("capabilities[transfers][requested]"), s("true")),
        (s("metadata[merchant_ref]"), r.merchant_ref.clone()),
    ];
    StripeRequest::post(
        "/v1/accounts".into(),
        params,
        format!("account-create:{}", r.merchant_ref),
    )
}

/// An Account Link to finish onboarding; links are single-use, so the key is per minute.
pub fn create_account_link(account: &str, r: &OnboardingRequest, minute: i64) -> StripeRequest {
    let s = |v: &str| v.to_string();
    let params = vec![
        (s("account"), s(account)),
        (s("type"), s("account_onboarding")),
        (s("refresh_url"), r.refresh_url.clone()),
        (s("return_url"), r.return_url.clone()),
    ];
    StripeRequest::post(
        "/v1/account_links".into(),
        params,
        format!("account-link:{account}:{minute}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        let r = retrieve_customer("cus_1/../../v1/charges?x=1");
        assert_eq!(
            r.path,
            "/v1/customers/cus_1%2F%2E%2E%2F%2E%2E%2Fv1%2Fcharges%3Fx%3D1"
        );
    }

    #[test]
    fn form_uses_stripes_bracket_notation() {
        let r = StripeRequest::post(
            "/v1/x".into(),
            vec![("a[b][c]".into(), "x y&z".into())],
            "k".into(),
        );
        assert_eq!(r.encoded_params(), "a%5Bb%5D%5Bc%5D=x+y%26z");
        assert_eq!(r.url("http://127.0.0.1:1/"), "http://127.0.0.1:1/v1/x");
    }
}
