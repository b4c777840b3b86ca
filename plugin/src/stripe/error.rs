//! Stripe's error object, read defensively: some servers answer errors with
//! plain text, so JSON is never assumed.

use crate::bindings::billing::stripe_plugin::types::StripeError;
use serde::Deserialize;

#[derive(Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

/// Turns a non-2xx answer into a typed error that says whether a retry can help.
pub fn from_response(status: u16, should_retry: Option<&str>, body: &[u8]) -> StripeError {
    let parsed = serde_json::from_slice::<Envelope>(body).ok().map(|e| e.error);
    let text = || {
        let t = String::from_utf8_lossy(body);
        let t = t.trim();
        if t.is_empty() { format!("HTTP {status}") } else { t.chars().take(300).collect() }
    };
    // Stripe-Should-Retry is Stripe's own word; otherwise only conflicts,
    // rate limits and server errors are worth repeating.
    let retryable = match should_retry {
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        _ => status == 409 || status == 429 || status >= 500,
    };
    match parsed {
        Some(b) => StripeError {
            status,
            error_type: b.kind.unwrap_or_else(|| "api_error".into()),
            code: b.code,
            decline_code: b.decline_code,
            message: b.message.unwrap_or_else(text),
            retryable,
        },
        None => StripeError {
            status,
            error_type: "api_error".into(),
            code: None,
            decline_code: None,
            message: text(),
            retryable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stripes_error_object() {
        let body = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#;
        let e = from_response(402, None, body);
        assert_eq!((e.error_type.as_str(), e.code.as_deref(), e.decline_code.as_deref()), ("card_error", Some("card_declined"), Some("insufficient_funds")));
        assert!(!e.retryable);
    }

    #[test]
    fn copes_with_plain_text_and_honours_should_retry() {
        let e = from_response(500, None, b"Internal Server Error");
        assert_eq!((e.error_type.as_str(), e.message.as_str(), e.retryable), ("api_error", "Internal Server Error", true));
        assert!(!from_response(500, Some("false"), b"").retryable);
        assert!(from_response(400, Some("true"), b"").retryable);
    }
}
