//! The host imports, wrapped so that their failures become `PluginError`s and
//! Stripe calls become typed results.

use crate::contract::{Merchant, PluginError};
use crate::events::EventPage;
use crate::host::mac::{self, KeyPurpose, MacError};
use crate::host::{
    clock, email,
    http::{self, HttpError},
    kv,
};
use crate::signature::{Keys, Verified};
use crate::stripe::objects::{self, Obj};
use crate::stripe::{error, request::StripeRequest};

pub fn kv_failure(e: kv::KvError) -> PluginError {
    match e {
        kv::KvError::Unavailable(m) | kv::KvError::Other(m) => {
            PluginError::HostUnavailable(format!("kv: {m}"))
        }
    }
}

pub fn kv_get_string(key: &str) -> Result<Option<String>, PluginError> {
    let value = kv::get(key).map_err(kv_failure)?;
    Ok(value.and_then(|v| String::from_utf8(v).ok()))
}

/// How long the plugin keeps a kv entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Records, links, counters: for as long as the merchant uses the plugin.
    Always,
    /// For Stripe's event window: Stripe keeps events 30 days and redelivers
    /// for up to 3 (https://docs.stripe.com/webhooks#retries).
    StripesEventWindow,
    /// A short while (a lease).
    Millis(u64),
}

impl Keep {
    pub fn ttl_ms(self) -> Option<u64> {
        match self {
            Keep::Always => None,
            Keep::StripesEventWindow => Some(30 * 24 * 3600 * 1000),
            Keep::Millis(ms) => Some(ms),
        }
    }
}

pub fn kv_set(key: &str, value: &str, keep: Keep) -> Result<(), PluginError> {
    kv::set(key, value.as_bytes(), keep.ttl_ms()).map_err(kv_failure)
}

pub fn kv_delete(key: &str) -> Result<(), PluginError> {
    kv::delete(key).map_err(kv_failure)
}

pub fn now_ms() -> u64 {
    clock::now_ms()
}

pub fn now_secs() -> i64 {
    i64::try_from(clock::now_ms() / 1000).unwrap_or(i64::MAX)
}

/// Why a Stripe call failed: Stripe refused it, or it never got an answer.
pub enum CallError {
    Stripe(error::Failure),
    Host(PluginError),
}

impl From<CallError> for PluginError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Stripe(f) => PluginError::Stripe(f.error),
            CallError::Host(e) => e,
        }
    }
}

/// Sends `req` to Stripe for `merchant` and reads the answer as `T`.
pub fn stripe(merchant: &Merchant, req: &StripeRequest) -> Result<Obj, PluginError> {
    call(merchant, req).map_err(PluginError::from)
}

/// At most this many tries of one request: the first and two retries.
/// https://docs.stripe.com/error-low-level#idempotency (Stripe's SDKs retry
/// twice by default, with the same key)
const TRIES: u32 = 3;

/// As `stripe`, keeping Stripe's whole refusal (decline details) for the
/// caller. A request that is safe to repeat (a read, or a POST under an
/// idempotency key) is tried again at once when its answer was lost or
/// Stripe says a retry can help and asks for no wait; at the end the last
/// error is returned, retryable or not, never a guess.
pub fn call(merchant: &Merchant, req: &StripeRequest) -> Result<Obj, CallError> {
    let body = call_raw(merchant, req)?;
    objects::parse(&body).map_err(|_| unreadable(req))
}

/// A page of events from `/v1/events`, read as events.
pub fn events(merchant: &Merchant, req: &StripeRequest) -> Result<EventPage, PluginError> {
    let body = call_raw(merchant, req)?;
    Ok(EventPage::parse(&body).ok_or_else(|| unreadable(req))?)
}

/// The raw body of Stripe's 2xx answer to `req` (for callers that parse it
/// their own way), after the retries `call` describes.
pub fn call_raw_public(merchant: &Merchant, req: &StripeRequest) -> Result<Vec<u8>, CallError> {
    call_raw(merchant, req)
}

fn unreadable(req: &StripeRequest) -> CallError {
    CallError::Host(PluginError::HostUnavailable(format!(
        "{} {}: unreadable Stripe response",
        req.method, req.path
    )))
}

/// The body of Stripe's 2xx answer, after the retries `call` describes.
fn call_raw(merchant: &Merchant, req: &StripeRequest) -> Result<Vec<u8>, CallError> {
    let mut tries = 1;
    loop {
        match call_once(merchant, req) {
            Err(e) if tries < TRIES && req.safe_to_repeat() && e.worth_repeating_now() => {
                tries += 1;
            }
            other => return other,
        }
    }
}

impl CallError {
    fn worth_repeating_now(&self) -> bool {
        match self {
            CallError::Stripe(f) => {
                f.error.retryable && !f.is_card_error() && f.error.retry_after_ms.unwrap_or(0) == 0
            }
            CallError::Host(e) => matches!(e, PluginError::HostUnavailable(_)),
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn call_once(merchant: &Merchant, req: &StripeRequest) -> Result<Vec<u8>, CallError> {
    let body = if req.method == "POST" {
        req.encoded_params().into_bytes()
    } else {
        Vec::new()
    };
    let method = match req.method {
        "POST" => http::Method::Post,
        "DELETE" => http::Method::Delete,
        _ => http::Method::Get,
    };
    let http_req = http::Request {
        method,
        url: req.url(&merchant.stripe_api_base),
        headers: req.headers(&merchant.account_id),
        body,
    };
    let what = || format!("{} {}", req.method, req.path);
    let resp = http::fetch(&http_req).map_err(|e| {
        CallError::Host(match e {
            HttpError::Timeout => PluginError::HostUnavailable(format!("{}: timed out", what())),
            HttpError::Connection(m) => PluginError::HostUnavailable(format!("{}: {m}", what())),
            HttpError::Denied(m) => {
                PluginError::InvalidInput(format!("host denied {}: {m}", what()))
            }
            HttpError::Other(m) => PluginError::HostUnavailable(format!("{}: {m}", what())),
        })
    })?;
    if !(200..300).contains(&resp.status) {
        let mut failure = error::from_response(
            resp.status,
            header(&resp.headers, "stripe-should-retry"),
            &resp.body,
        );
        // Retry-After in seconds (the only form Stripe sends).
        failure.error.retry_after_ms = header(&resp.headers, "retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| secs.saturating_mul(1000));
        return Err(CallError::Stripe(failure));
    }
    Ok(resp.body)
}

/// The merchant's keys of one purpose, held by the host: the plugin asks for
/// MACs and never sees a secret.
pub struct HostKeys(pub KeyPurpose);

impl Keys for HostKeys {
    fn count(&self) -> u32 {
        mac::key_count(self.0)
    }

    fn verify(&self, message: &[u8], tags: &[[u8; 32]]) -> Verified {
        let tags: Vec<Vec<u8>> = tags.iter().map(|t| t.to_vec()).collect();
        match mac::verify_hmac_sha256(self.0, message, &tags) {
            Ok(true) => Verified::Valid,
            Ok(false) | Err(MacError::NoSuchKey | MacError::VerifyOnly) => Verified::Invalid,
            Err(MacError::Unavailable(_)) => Verified::Unavailable,
        }
    }
}

/// The pay-link key's MAC of `message` (key 0: the newest makes new links).
pub fn pay_link_mac(message: &[u8]) -> Result<[u8; 32], PluginError> {
    let missing =
        || PluginError::InvalidInput("no pay-link key is configured for this merchant".into());
    match mac::hmac_sha256(KeyPurpose::PayLink, 0, message) {
        Ok(tag) => tag.try_into().map_err(|_| missing()),
        Err(MacError::NoSuchKey | MacError::VerifyOnly) => Err(missing()),
        Err(MacError::Unavailable(_)) => Err(PluginError::HostUnavailable(
            "the host's keys are unavailable".into(),
        )),
    }
}

/// Queues an email; a duplicate (same dedupe key) is not an error.
pub fn send_email(msg: &email::Message) -> Result<(), PluginError> {
    match email::send(msg) {
        Ok(_) => Ok(()),
        Err(email::EmailError::Unavailable(m)) => {
            Err(PluginError::HostUnavailable(format!("email: {m}")))
        }
        // A message that can never be sent (no recipient) must not block the payment flow.
        Err(email::EmailError::Rejected(_)) => Ok(()),
    }
}

/// Adds 1 to a counter (ignored event types, for the merchant's dashboard),
/// shared by every worker. Each lost race means another worker's increment
/// landed; after `COUNT_ROUNDS` of them the call is `not-ready`, so the
/// delivery is retried and counted then: never dropped, never reported done.
pub fn count(key: &str) -> Result<(), PluginError> {
    for _ in 0..COUNT_ROUNDS {
        let old = kv::get(key).map_err(kv_failure)?;
        let n: u64 = old
            .as_deref()
            .and_then(|v| core::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if kv::compare_and_swap(key, old.as_deref(), (n + 1).to_string().as_bytes(), None)
            .map_err(kv_failure)?
        {
            return Ok(());
        }
    }
    Err(PluginError::NotReady(format!(
        "counter {key} is contended; retry"
    )))
}

const COUNT_ROUNDS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::billing::stripe_plugin as wit;
    use crate::host::memory::MemoryHost;
    use crate::host::native::{self, Host};

    /// A kv shared with writers that always change the key first: every
    /// compare-and-swap this plugin makes loses.
    struct AlwaysBeaten(MemoryHost);

    impl Host for AlwaysBeaten {
        fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, wit::kv::KvError> {
            self.0.kv_get(key)
        }
        fn kv_set(&mut self, k: &str, v: &[u8], ttl: Option<u64>) -> Result<(), wit::kv::KvError> {
            self.0.kv_set(k, v, ttl)
        }
        fn kv_delete(&mut self, key: &str) -> Result<(), wit::kv::KvError> {
            self.0.kv_delete(key)
        }
        fn kv_compare_and_swap(
            &mut self,
            _: &str,
            _: Option<&[u8]>,
            _: &[u8],
            _: Option<u64>,
        ) -> Result<bool, wit::kv::KvError> {
            Ok(false)
        }
        fn now_ms(&mut self) -> u64 {
            self.0.now_ms()
        }
        fn fetch(
            &mut self,
            req: &wit::http::Request,
        ) -> Result<wit::http::Response, wit::http::HttpError> {
            self.0.fetch(req)
        }
        fn key_count(&mut self, purpose: wit::mac::KeyPurpose) -> u32 {
            self.0.key_count(purpose)
        }
        fn hmac_sha256(
            &mut self,
            purpose: wit::mac::KeyPurpose,
            index: u32,
            message: &[u8],
        ) -> Result<Vec<u8>, wit::mac::MacError> {
            self.0.hmac_sha256(purpose, index, message)
        }
        fn verify_hmac_sha256(
            &mut self,
            purpose: wit::mac::KeyPurpose,
            message: &[u8],
            tags: &[Vec<u8>],
        ) -> Result<bool, wit::mac::MacError> {
            self.0.verify_hmac_sha256(purpose, message, tags)
        }
        fn send_email(
            &mut self,
            msg: &wit::email::Message,
        ) -> Result<wit::email::Delivery, wit::email::EmailError> {
            self.0.send_email(msg)
        }
    }

    #[test]
    fn a_count_that_keeps_losing_the_race_asks_for_a_retry_instead_of_dropping_it() {
        native::install(Box::new(AlwaysBeaten(MemoryHost::default())));
        let counted = count("not-ours-events");
        assert!(
            matches!(counted, Err(PluginError::NotReady(_))),
            "an increment never stored must not be reported done"
        );
        native::install(Box::new(MemoryHost::default()));
        assert!(count("not-ours-events").is_ok());
        assert!(count("not-ours-events").is_ok());
        assert_eq!(
            kv::get("not-ours-events").ok().flatten().as_deref(),
            Some(&b"2"[..])
        );
    }
}
