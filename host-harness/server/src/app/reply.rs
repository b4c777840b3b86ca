//! What a route answers: JSON, an error in the one shape, or a page.

use super::*;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec_pretty(v).unwrap_or_default(),
        }
    }

    pub fn html(status: u16, html: String) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: html.into_bytes(),
        }
    }

    pub fn error(status: u16, message: &str, retryable: bool) -> Self {
        Self::json(
            status,
            &json!({"error": {"message": message, "retryable": retryable}}),
        )
    }

    pub(crate) fn plugin_error(e: &PluginError) -> Self {
        let status = match e {
            PluginError::InvalidInput(_) => 422,
            PluginError::Stripe(s) if !s.retryable => 422,
            _ => 503,
        };
        let mut reply = Self::error(status, &e.message(), e.retryable());
        // Stripe asked to wait: whoever retries this call should, too.
        if let PluginError::Stripe(s) = e
            && let Some(ms) = s.retry_after_ms
        {
            reply
                .headers
                .push(("Retry-After".into(), ms.div_ceil(1000).to_string()));
        }
        reply
    }
}

/// A customer's page as an HTTP answer; a redirect carries its `Location`.
/// The pages are public and carry a bearer token in their URL: no script,
/// no framing, no form, no referrer, never cached, never sniffed.
pub(crate) const PAGE_HEADERS: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store, private"),
];

pub(crate) fn page(rendered: Rendered, location: Option<String>) -> Reply {
    let mut reply = Reply::html(rendered.status, rendered.html);
    reply.headers.extend(
        PAGE_HEADERS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    if let Some(url) = location {
        reply.headers.push(("Location".into(), url));
    }
    reply
}

pub(crate) fn found(v: Option<Value>, what: &str) -> Reply {
    match v {
        Some(v) => Reply::json(200, &v),
        None => Reply::error(404, &format!("no such {what}"), false),
    }
}
