//! The emulator's state and its front door: one `Emulator`, cloned freely,
//! every clone sharing one store, clock, idempotency keys and webhook
//! endpoints; `handle` answers one request as Stripe would.

use crate::{Clock, Reply, WebhookTarget, faults, idempotency, rate_limit, store, webhooks};
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub(crate) struct State {
    pub(crate) store: store::Store,
    pub(crate) idempotency: idempotency::Keys,
}

/// The emulator; clone it freely, all clones share one state.
#[derive(Clone)]
pub struct Emulator {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) clock: Clock,
    /// Base of the URLs it hands out (Checkout pages, onboarding).
    pub(crate) public_base: Arc<Mutex<String>>,
    /// Webhook endpoints, each for one account's events or (None) for all.
    pub(crate) webhooks: Arc<Mutex<Vec<(Option<String>, WebhookTarget)>>>,
    /// One request at a time: a check and its change are atomic, as racing a
    /// Checkout payment against an expiry must be.
    pub(crate) op: Arc<Mutex<()>>,
    pub(crate) faults: Arc<Mutex<faults::Plan>>,
    pub(crate) deliveries: Arc<Mutex<webhooks::Deliveries>>,
    pub(crate) rate: Arc<Mutex<rate_limit::Limiter>>,
}

impl Emulator {
    pub fn new(clock: Clock) -> Self {
        Self {
            state: Arc::default(),
            clock,
            public_base: Arc::new(Mutex::new("http://127.0.0.1".into())),
            webhooks: Arc::default(),
            op: Arc::default(),
            faults: Arc::default(),
            deliveries: Arc::default(),
            rate: Arc::default(),
        }
    }

    /// Limits each account to `per_second` API requests (Stripe's sandbox
    /// allows 25), answering 429 `rate_limit` beyond; None: no limit.
    pub fn limit_rate(&self, per_second: Option<u32>) {
        lock(&self.rate).set(per_second);
    }

    /// API requests refused by the rate limit so far.
    pub fn rate_limited(&self) -> u64 {
        lock(&self.rate).refused
    }

    pub fn set_public_base(&self, base: &str) {
        *lock(&self.public_base) = base.trim_end_matches('/').to_string();
    }

    pub(crate) fn public_base(&self) -> String {
        lock(&self.public_base).clone()
    }

    /// The one endpoint for every account's events (none: no delivery).
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        *lock(&self.webhooks) = target.into_iter().map(|t| (None, t)).collect();
    }

    /// An endpoint for the events of `account` only ("" is the platform).
    pub fn add_webhook_for(&self, account: &str, target: WebhookTarget) {
        lock(&self.webhooks).push((Some(account.to_string()), target));
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn store(&self) -> MappedStore<'_> {
        MappedStore(self.state())
    }

    pub(crate) fn next_id(&self, prefix: &str) -> String {
        let seq = self.state().store.next_id_number();
        format!("{prefix}_emu{seq:010}")
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    /// Every event emitted so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.objects("event")
    }

    pub fn event(&self, id: &str) -> Option<Value> {
        self.owner_of(id)
            .map(|(_, e)| e)
            .filter(|e| e["object"] == "event")
    }

    /// Objects of one kind (`"customer"`, `"checkout.session"` ...) across
    /// accounts, oldest first, as stored (private fields included).
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        self.state().store.everywhere(kind)
    }

    /// Handles one request: `target` is path plus optional query.
    pub fn handle(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        self.exchange(method, target, headers, body).into_reply()
    }
}

/// The store inside the state's lock.
pub(crate) struct MappedStore<'a>(MutexGuard<'a, State>);

impl std::ops::Deref for MappedStore<'_> {
    type Target = store::Store;
    fn deref(&self) -> &store::Store {
        &self.0.store
    }
}

impl std::ops::DerefMut for MappedStore<'_> {
    fn deref_mut(&mut self) -> &mut store::Store {
        &mut self.0.store
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
