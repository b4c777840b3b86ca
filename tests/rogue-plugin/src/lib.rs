//! Misbehaves on purpose, chosen by the invoice id: `trap`, `loop`, `grab`
//! (memory), `fetch:<url>`, `stripe:<METHOD> <path> <Stripe-Account or ->`
//! (a call to the merchant's Stripe API base; a query moves to the body
//! unless `keep-query` follows, `body:<form>` sets the body and
//! `header:<Name>:<value>` adds a header; `start-onboarding` makes the same
//! call when its `merchant-ref` is such a spec), `sign:<purpose>` (asks the
//! host for a MAC of a forged event under a key of that purpose),
//! `kvloop` (kv reads for ever, whatever they answer), `mailflood` (fifty
//! emails to a stranger), `stripeloop` (Stripe requests for ever), `count`
//! (remembers, in a
//! static, how many calls this instance has served: what the real plugin
//! must never do, and what shows the host's instance reuse). Anything else
//! returns no transitions.

wit_bindgen::generate!({ world: "plugin", path: "../../wit", generate_all });

use billing::stripe_plugin::http;
use billing::stripe_plugin::outcomes::{
    Onboarding, PayLinkOutcome, PayPage, PluginDescription, SyncOutcome, WebhookOutcome,
};
use billing::stripe_plugin::{errors::*, payments::*, platform::*};
use exports::billing::stripe_plugin::handlers::Guest;

struct Rogue;

impl Guest for Rogue {
    fn on_invoice_finalized(m: Merchant, invoice: Invoice) -> Result<Vec<Transition>, PluginError> {
        if let Some(call) = invoice.id.strip_prefix("stripe:") {
            return Err(stripe_outcome(&m, call));
        }
        if let Some(purpose) = invoice.id.strip_prefix("sign:") {
            return Err(sign_outcome(purpose));
        }
        match invoice.id.as_str() {
            "trap" => panic!("rogue trap"),
            "kvloop" => loop {
                let _ = std::hint::black_box(billing::stripe_plugin::kv::get("x"));
            },
            "mailflood" => {
                for n in 0..50 {
                    let _ = billing::stripe_plugin::email::send(
                        &billing::stripe_plugin::email::Message {
                            to: vec!["x@evil.test".into()],
                            cc: vec![],
                            subject: format!("flood {n}"),
                            text_body: "phish".into(),
                            html_body: None,
                            dedupe_key: format!("flood-{n}"),
                        },
                    );
                }
                Ok(Vec::new())
            }
            "stripeloop" => loop {
                let _ = std::hint::black_box(http::fetch(&http::Request {
                    method: http::Method::Get,
                    url: format!("{}/v1/customers/cus_1", m.stripe_api_base),
                    headers: vec![],
                    body: vec![],
                }));
            },
            "count" => {
                static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                Ok(vec![Transition::CustomerUnlinked(format!(
                    "call {n} of this instance"
                ))])
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grab" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            id => match id.strip_prefix("fetch:") {
                Some(url) => {
                    let req = http::Request {
                        method: http::Method::Get,
                        url: url.into(),
                        headers: vec![],
                        body: vec![],
                    };
                    match http::fetch(&req) {
                        Ok(r) => Err(PluginError::InvalidInput(format!(
                            "reached {url}: {}",
                            r.status
                        ))),
                        Err(e) => Err(PluginError::InvalidInput(format!("{e:?}"))),
                    }
                }
                None => Ok(Vec::new()),
            },
        }
    }

    fn on_invoice_updated(_: Merchant, _: InvoiceUpdate) -> Result<Vec<Transition>, PluginError> {
        Ok(Vec::new())
    }

    fn on_webhook(_: Merchant, _: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        Err(PluginError::InvalidInput("rogue".into()))
    }

    fn on_sync(_: Merchant, _: Option<String>) -> Result<SyncOutcome, PluginError> {
        Err(PluginError::InvalidInput("rogue".into()))
    }

    fn on_pay_link_opened(_: Merchant, _: String) -> Result<PayLinkOutcome, PluginError> {
        Ok(PayLinkOutcome {
            page: PayPage::NotFound,
            transitions: Vec::new(),
        })
    }

    fn start_onboarding(m: Merchant, r: OnboardingRequest) -> Result<Onboarding, PluginError> {
        match r.merchant_ref.strip_prefix("stripe:") {
            Some(call) => Err(stripe_outcome(&m, call)),
            None => Err(PluginError::InvalidInput("rogue".into())),
        }
    }

    fn on_customer_updated(
        _: Merchant,
        _: Customer,
        _: Option<Customer>,
    ) -> Result<Vec<Transition>, PluginError> {
        Ok(Vec::new())
    }

    /// Asks for every event there is: a host must not register that.
    fn describe() -> PluginDescription {
        PluginDescription {
            stripe_api_version: "latest".into(),
            event_types: vec!["*".into()],
        }
    }
}

export!(Rogue);

/// Asks the host to sign a forged event under key 0 of `purpose`.
fn sign_outcome(purpose: &str) -> PluginError {
    use billing::stripe_plugin::mac;
    let purpose = match purpose {
        "webhook-signing" => mac::KeyPurpose::WebhookSigning,
        _ => mac::KeyPurpose::PayLink,
    };
    let forged = br#"1764288000.{"id":"evt_forged","type":"payment_intent.succeeded"}"#;
    PluginError::InvalidInput(match mac::hmac_sha256(purpose, 0, forged) {
        Ok(tag) => format!("signed: {} bytes", tag.len()),
        Err(e) => format!("refused: {e:?}"),
    })
}

/// Asks for `METHOD path account [options]` on the merchant's Stripe API
/// base; the outcome comes back as an invalid-input error, so the test can read it.
fn stripe_outcome(m: &Merchant, call: &str) -> PluginError {
    let mut parts = call.split(' ');
    let (method, path, account) = (
        parts.next().unwrap_or("GET"),
        parts.next().unwrap_or("/"),
        parts.next().unwrap_or("-"),
    );
    let mut headers = vec![];
    if account != "-" {
        headers.push(("Stripe-Account".to_string(), account.to_string()));
    }
    let (mut path, mut body) = path.split_once('?').unwrap_or((path, ""));
    let whole = call.split(' ').nth(1).unwrap_or("/");
    for option in parts {
        if option == "keep-query" {
            (path, body) = (whole, "");
        } else if let Some(form) = option.strip_prefix("body:") {
            body = form;
        } else if let Some((k, v)) = option
            .strip_prefix("header:")
            .and_then(|h| h.split_once(':'))
        {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let method = match method {
        "POST" => http::Method::Post,
        "DELETE" => http::Method::Delete,
        _ => http::Method::Get,
    };
    let req = http::Request {
        method,
        url: format!("{}{path}", m.stripe_api_base),
        headers,
        body: body.as_bytes().to_vec(),
    };
    PluginError::InvalidInput(match http::fetch(&req) {
        Ok(r) => format!("answered {}", r.status),
        Err(http::HttpError::Denied(why)) => format!("denied: {why}"),
        Err(e) => format!("failed: {e:?}"),
    })
}
