//! Stripe's error object, read defensively: some servers answer errors with
//! plain text, so JSON is never assumed.

use super::objects::{Obj, parse};
use crate::contract::StripeError;

/// A refused request: the contract's error plus what a decline needs.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: StripeError,
    pub advice_code: Option<String>,
    /// The PaymentIntent a card error left behind, if any.
    pub payment_intent: Option<String>,
    /// The failed charge, which names its PaymentIntent when the error does not.
    pub charge: Option<String>,
}

impl Failure {
    /// A card decline (402), whatever `type` the server chose to call it.
    pub fn is_card_error(&self) -> bool {
        self.error.status == 402 || self.error.error_type == "card_error"
    }

    pub fn needs_authentication(&self) -> bool {
        self.error.code.as_deref() == Some("authentication_required")
            || self.error.decline_code.as_deref() == Some("authentication_required")
    }
}

/// Turns a non-2xx answer into a typed error that says whether a retry can help.
pub fn from_response(status: u16, should_retry: Option<&str>, body: &[u8]) -> Failure {
    let b = parse::<Obj>(body)
        .ok()
        .and_then(|o| o.error)
        .unwrap_or_default();
    let text = || {
        let t = String::from_utf8_lossy(body);
        let t = t.trim();
        if t.is_empty() {
            format!("HTTP {status}")
        } else {
            t.chars().take(300).collect()
        }
    };
    // Stripe-Should-Retry is Stripe's own word; otherwise only conflicts,
    // rate limits and server errors are worth repeating.
    let retryable = match should_retry {
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        _ => status == 409 || status == 429 || status >= 500,
    };
    Failure {
        error: StripeError {
            status,
            error_type: b.kind.unwrap_or_else(|| "api_error".into()),
            code: b.code,
            decline_code: b.decline_code,
            message: b.message.unwrap_or_else(text),
            retryable,
            retry_after_ms: None,
        },
        advice_code: b.advice_code,
        payment_intent: b.payment_intent.map(|p| p.0),
        charge: b.charge.map(|c| c.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stripes_error_object() {
        let body = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","advice_code":"try_again_later","message":"Your card has insufficient funds.","payment_intent":{"id":"pi_1","object":"payment_intent"}}}"#;
        let f = from_response(402, None, body);
        let e = &f.error;
        assert_eq!(
            (
                e.error_type.as_str(),
                e.code.as_deref(),
                e.decline_code.as_deref()
            ),
            (
                "card_error",
                Some("card_declined"),
                Some("insufficient_funds")
            )
        );
        assert_eq!(
            (f.advice_code.as_deref(), f.payment_intent.as_deref()),
            (Some("try_again_later"), Some("pi_1"))
        );
        assert!(!e.retryable && f.is_card_error() && !f.needs_authentication());
    }

    #[test]
    fn copes_with_plain_text_and_honours_should_retry() {
        let e = from_response(500, None, b"Internal Server Error").error;
        assert_eq!(
            (e.error_type.as_str(), e.message.as_str(), e.retryable),
            ("api_error", "Internal Server Error", true)
        );
        assert!(!from_response(500, Some("false"), b"").error.retryable);
        assert!(from_response(400, Some("true"), b"").error.retryable);
        // localstripe calls a decline an invalid_request_error; the 402 still makes it a card error.
        assert!(
            from_response(
                402,
                None,
                br#"{"error":{"type":"invalid_request_error","message":"declined"}}"#
            )
            .is_card_error()
        );
    }
}
