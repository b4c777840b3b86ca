//! The ports: what the runtime asks of the host that embeds it, as small
//! traits. `serve` implements them over its SQLite/PostgreSQL store, its
//! metrics and its HTTP log; a billing host brings its own (see
//! `examples/embed.rs`). Who may use them: the runtime's imports only; the
//! plugin reaches none of them except through a checked import.

use crate::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
pub use crate::keys::KeyStore;
use crate::keys::MerchantKeys;
use serde_json::Value;
use std::time::Duration;

/// A storage failure, saying whether trying again can help.
#[derive(Debug)]
pub enum StoreError {
    /// Busy, locked, a lost connection, a serialization conflict: retry.
    Unavailable(String),
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "storage unavailable: {m}"),
            StoreError::Failed(m) => write!(f, "storage failed: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// One email for the outbox.
pub struct OutgoingEmail<'a> {
    pub ns: &'a str,
    pub dedupe_key: &'a str,
    pub recipients: String,
    pub cc: String,
    pub subject: &'a str,
    pub text_body: &'a str,
    pub html_body: Option<&'a str>,
    pub created_ms: i64,
    /// Whether a relay sends it: then its delivery is queued with it, in
    /// the same transaction.
    pub deliver: bool,
}

/// The plugin's kv, namespaced by merchant (`ns`).
pub trait KvStore: Send + Sync {
    /// The live value of `key` at `now_ms` (an expired one is absent).
    fn kv_get(&self, ns: &str, key: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>>;
    fn kv_set(&self, ns: &str, key: &str, value: &[u8], expires_ms: Option<i64>)
    -> StoreResult<()>;
    fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()>;
    /// Writes `new` if the live value is `expected` (None: absent or
    /// expired), atomically against every other writer.
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Removes entries expired at `now_ms` (called now and then).
    fn kv_purge_expired(&self, now_ms: i64) -> StoreResult<()>;
    /// Returns once every write made so far is on disk. The runtime calls
    /// it before a request leaves for Stripe, so that what led to the
    /// request (an attempt's marker, a lease) survives a power loss. A
    /// store whose every commit is durable when it returns (PostgreSQL with
    /// `synchronous_commit = on`) has nothing to do; one that commits
    /// lazily and syncs for many writers at once (serve's SQLite, group
    /// commit) syncs here.
    fn make_durable(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// The outbox behind `email`, and whom a merchant may email.
pub trait EmailStore: Send + Sync {
    /// Keeps `email` unless one with its merchant and dedupe key is kept
    /// already; true when it was new.
    fn outbox_insert(&self, email: &OutgoingEmail) -> StoreResult<bool>;
    /// Whether `address` is one of the merchant's customers on record.
    fn customer_has_address(&self, ns: &str, address: &str) -> StoreResult<bool>;
}

/// The store behind `kv` and `email`: what the runtime's imports use.
pub trait HostStore: KvStore + EmailStore {}

impl<T: KvStore + EmailStore + ?Sized> HostStore for T {}

/// When a Stripe request of an account may leave (the host keeping Stripe's
/// rate on its own side).
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// After this wait.
    After(Duration),
    /// Not soon enough: the plugin gets a 429 with this Retry-After.
    Refused { retry_after: Duration },
}

/// Paces Stripe requests per connected account, across every worker.
pub trait Pacer: Send + Sync {
    fn turn(&self, account: &str, now_ms: i64) -> StoreResult<Turn>;
}

/// What the runtime reports as it works: metrics, an HTTP log. Every method
/// does nothing unless implemented.
pub trait Observer: Send + Sync {
    /// A handler call ended (whatever its outcome), after `took`.
    fn handler_call(&self, _handler: &str, _took: Duration) {}
    /// A call went over one of its caps (`Cap::name`).
    fn cap_exceeded(&self, _cap: &str) {}
    /// The gate refused something the plugin asked (`denied`, `email-recipient`).
    fn gate_refusal(&self, _reason: &str) {}
    /// An email was kept (`true`) or was a duplicate.
    fn email(&self, _kept: bool) {}
    /// A Stripe request was held back by pacing.
    fn stripe_held_back(&self) {}
    /// A Stripe request and what came of it (the request as sent, without
    /// its `Authorization`).
    fn stripe_exchange(&self, _req: &Request, _result: &Result<Response, HttpError>) {}
}

/// No observation at all.
pub struct Unobserved;

impl Observer for Unobserved {}

/// Several observers, each told everything, in order.
pub struct Observers(pub Vec<std::sync::Arc<dyn Observer>>);

impl Observer for Observers {
    fn handler_call(&self, handler: &str, took: Duration) {
        self.0.iter().for_each(|o| o.handler_call(handler, took));
    }
    fn cap_exceeded(&self, cap: &str) {
        self.0.iter().for_each(|o| o.cap_exceeded(cap));
    }
    fn gate_refusal(&self, reason: &str) {
        self.0.iter().for_each(|o| o.gate_refusal(reason));
    }
    fn email(&self, kept: bool) {
        self.0.iter().for_each(|o| o.email(kept));
    }
    fn stripe_held_back(&self) {
        self.0.iter().for_each(|o| o.stripe_held_back());
    }
    fn stripe_exchange(&self, req: &Request, result: &Result<Response, HttpError>) {
        self.0.iter().for_each(|o| o.stripe_exchange(req, result));
    }
}

/// The host's time: what the `clock` import answers, and when kv entries
/// expire. `imports::Clock` is the system clock, or a fixed one for tests.
pub trait TimeSource: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// Records calls as they are made, for a replay elsewhere (the portable
/// scenarios of the tests): arguments in serde's form, and every HTTP answer.
pub trait CallTap: Send + Sync {
    fn call(
        &self,
        handler: &str,
        now_ms: u64,
        namespace: &str,
        keys: &dyn Fn() -> MerchantKeys,
        args: &[Value],
    );
    /// The outcome of the call just made (`None`: it trapped or hit a limit).
    fn outcome(&self, outcome: Option<Value>);
    fn answer(&self, req: &Request, result: &Result<Response, HttpError>);
}
