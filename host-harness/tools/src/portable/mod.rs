//! Portable scenarios: the same calls replayed by any runtime that hosts the
//! component (wasmtime here, jco under Node.js in `tests/portability/`), each
//! printing the same canonical JSON, so that two runtimes can be compared
//! byte for byte. The format is documented in `tests/portability/README.md`.

pub mod canonical;
pub mod replay;
pub mod tap;

use crate::imports::MerchantKeys;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The format's name and version, first in every file.
pub const FORMAT: &str = "billing-stripe-plugin-scenario/1";

/// One scenario: where every import starts, and the calls to make.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Scenario {
    pub format: String,
    pub name: String,
    /// Each merchant's keys, by namespace (the merchant's `account-id`).
    #[serde(default)]
    pub keys: BTreeMap<String, MerchantKeys>,
    /// The kv at the start, by namespace, then key.
    #[serde(default)]
    pub kv: BTreeMap<String, BTreeMap<String, KvEntry>>,
    /// Canned answers by `"METHOD /path?query"` (or `"METHOD /path"` for any
    /// query), taken in order; the last one repeats.
    #[serde(default)]
    pub http: BTreeMap<String, Vec<Answer>>,
    pub calls: Vec<Call>,
}

/// One stored kv value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct KvEntry {
    /// The bytes: their text when UTF-8, otherwise `{"hex": ..}`.
    pub value: Value,
    /// When the entry expires (clock milliseconds), if ever.
    pub expires_ms: Option<u64>,
}

/// A canned answer: a response, or the portable form of an `http-error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Answer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: String,
    /// `{"tag": "timeout"}`, `{"tag": "connection", "val": ".."}` ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// One call of an export of `handlers`, its arguments in portable form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Call {
    /// `on-webhook`, `on-invoice-finalized` ...
    pub handler: String,
    /// The clock during the call.
    pub now_ms: u64,
    pub args: Vec<Value>,
    /// The merchant whose kv, emails and keys the call uses (its id); when
    /// absent (scenarios written before merchants were namespaced by id),
    /// the merchant's `account-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The outcome the recorded run saw, in portable form, when known; the
    /// runners ignore it, and `tests/portability/run` checks each replay
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Value>,
}

/// The key of a canned answer for a request to `url`, with and without its query.
pub fn answer_keys(method: &str, url: &str) -> (String, String) {
    let path = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("/", |j| &url[i + 3 + j..]),
        None => url,
    };
    let bare = path.split('?').next().unwrap_or(path);
    (format!("{method} {path}"), format!("{method} {bare}"))
}
