//! The host imports, wrapped so that their failures become `PluginError`s and
//! Stripe calls become typed results.

use crate::bindings::billing::stripe_plugin::{
    clock,
    http::{self, HttpError},
    kv,
    types::{Merchant, PluginError},
};
use crate::stripe::{error, request::StripeRequest};
use serde::de::DeserializeOwned;

fn kv_failure(e: kv::KvError) -> PluginError {
    match e {
        kv::KvError::Unavailable(m) | kv::KvError::Other(m) => PluginError::HostUnavailable(format!("kv: {m}")),
    }
}

pub fn kv_get_string(key: &str) -> Result<Option<String>, PluginError> {
    let value = kv::get(key).map_err(kv_failure)?;
    Ok(value.and_then(|v| String::from_utf8(v).ok()))
}

pub fn kv_set(key: &str, value: &str) -> Result<(), PluginError> {
    kv::set(key, value.as_bytes()).map_err(kv_failure)
}

pub fn kv_delete(key: &str) -> Result<(), PluginError> {
    kv::delete(key).map_err(kv_failure)
}

pub fn now_secs() -> i64 {
    i64::try_from(clock::now_ms() / 1000).unwrap_or(i64::MAX)
}

/// Sends `req` to Stripe for `merchant` and reads the answer as `T`.
pub fn stripe<T: DeserializeOwned>(merchant: &Merchant, req: &StripeRequest) -> Result<T, PluginError> {
    let body = if req.method == "POST" { req.encoded_params().into_bytes() } else { Vec::new() };
    let http_req = http::Request {
        method: req.method.to_string(),
        url: req.url(&merchant.stripe_api_base),
        headers: req.headers(&merchant.account_id),
        body,
    };
    let resp = http::fetch(&http_req).map_err(|e| match e {
        HttpError::Timeout => PluginError::HostUnavailable(format!("{} {}: timed out", req.method, req.path)),
        HttpError::Connection(m) => PluginError::HostUnavailable(format!("{} {}: {m}", req.method, req.path)),
        HttpError::Denied(m) => PluginError::InvalidInput(format!("host denied {} {}: {m}", req.method, req.path)),
        HttpError::Other(m) => PluginError::HostUnavailable(format!("{} {}: {m}", req.method, req.path)),
    })?;
    if !(200..300).contains(&resp.status) {
        let should_retry = resp
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("stripe-should-retry"))
            .map(|(_, v)| v.as_str());
        return Err(PluginError::Stripe(error::from_response(resp.status, should_retry, &resp.body)));
    }
    serde_json::from_slice(&resp.body).map_err(|e| {
        PluginError::HostUnavailable(format!("{} {}: unreadable Stripe response: {e}", req.method, req.path))
    })
}
