//! Stripe API requests as plain data: method, path, form parameters in Stripe's
//! bracket notation, and an idempotency key derived from the host's records.

use crate::bindings::billing::stripe_plugin::types::{Customer, Invoice};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

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
    fn get(path: String) -> Self {
        Self { method: "GET", path, params: Vec::new(), idempotency_key: None }
    }

    fn post(path: String, params: Vec<(String, String)>, idempotency_key: String) -> Self {
        Self { method: "POST", path, params, idempotency_key: Some(idempotency_key) }
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
            headers.push(("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string()));
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
    put("name", c.legal_name.as_deref().or(c.label.as_deref()).or(c.contact_name.as_deref()));
    put("email", c.email.as_deref().or(c.billing_emails.first().map(String::as_str)));
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
    StripeRequest::post("/v1/customers".into(), customer_params(c), format!("customer-create:{}", c.id))
}

/// Pushes `current`; fields that `previous` had and `current` lost are cleared
/// (Stripe unsets a field given an empty string). `None` when nothing Stripe keeps changed.
pub fn update_customer(stripe_id: &str, current: &Customer, previous: Option<&Customer>) -> Option<StripeRequest> {
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
    let key = format!("customer-update:{}:{}", current.id, digest(&params));
    Some(StripeRequest::post(format!("/v1/customers/{}", segment(stripe_id)), params, key))
}

pub fn retrieve_customer(stripe_id: &str) -> StripeRequest {
    StripeRequest::get(format!("/v1/customers/{}", segment(stripe_id)))
}

/// A Checkout Session for the amount due. The invoice id goes into the metadata
/// of both the session and its payment intent, so either event settles it.
pub fn create_checkout_session(
    invoice: &Invoice,
    stripe_customer: &str,
    amount_minor: u64,
    success_url: &str,
    attempt: u32,
) -> StripeRequest {
    let s = |v: &str| v.to_string();
    let params = vec![
        (s("mode"), s("payment")),
        (s("customer"), s(stripe_customer)),
        (s("client_reference_id"), invoice.id.clone()),
        (s("line_items[0][quantity]"), s("1")),
        (s("line_items[0][price_data][currency]"), invoice.currency.to_ascii_lowercase()),
        (s("line_items[0][price_data][unit_amount]"), amount_minor.to_string()),
        (s("line_items[0][price_data][product_data][name]"), format!("Invoice {}", invoice.number)),
        (s("success_url"), s(success_url)),
        (s("metadata[invoice_id]"), invoice.id.clone()),
        (s("metadata[invoice_number]"), invoice.number.clone()),
        (s("payment_intent_data[metadata][invoice_id]"), invoice.id.clone()),
        (s("payment_intent_data[metadata][invoice_number]"), invoice.number.clone()),
        (s("payment_intent_data[setup_future_usage]"), s("off_session")),
    ];
    let key = format!("checkout-session:{}:{attempt}", invoice.id);
    StripeRequest::post("/v1/checkout/sessions".into(), params, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        let r = retrieve_customer("cus_1/../../v1/charges?x=1");
        assert_eq!(r.path, "/v1/customers/cus_1%2F%2E%2E%2F%2E%2E%2Fv1%2Fcharges%3Fx%3D1");
    }

    #[test]
    fn form_uses_stripes_bracket_notation() {
        let r = StripeRequest::post("/v1/x".into(), vec![("a[b][c]".into(), "x y&z".into())], "k".into());
        assert_eq!(r.encoded_params(), "a%5Bb%5D%5Bc%5D=x+y%26z");
        assert_eq!(r.url("http://127.0.0.1:1/"), "http://127.0.0.1:1/v1/x");
    }
}
