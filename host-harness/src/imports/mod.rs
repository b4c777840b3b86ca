//! The five host imports the plugin sees, each backed by a real part: HTTP by
//! ureq (only to the Stripe API base), kv and email by SQLite, the clock by the
//! system clock or a fixed one for tests.

pub mod clock;
pub mod email;
pub mod http;
pub mod kv;
pub mod mac;

use crate::db::Db;
use crate::record::Recorder;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::StoreLimits;

pub use clock::Clock;
pub use http::{HttpBackend, StripeGate, UreqBackend};
pub use mac::{KeyRing, MerchantKeys};

/// What every call shares: storage, the way out to Stripe, time, the HTTP log.
pub struct HostEnv {
    pub db: Arc<Db>,
    pub stripe: StripeGate,
    pub clock: Clock,
    pub recorder: Recorder,
    /// Each merchant's secrets, which the plugin uses only through `mac`.
    pub keys: KeyRing,
    /// Counters and histograms for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Stripe's rate kept by the host, per account, when set.
    pub pacing: Option<crate::pacing::Pacing>,
}

/// Whether a call may act on the platform itself (create a connected account
/// and its Account Link): only `start-onboarding` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformCalls {
    Allowed,
    Denied,
}

impl PlatformCalls {
    /// What the export named `handler` may do.
    pub fn of(handler: &str) -> Self {
        if handler == "start-onboarding" {
            PlatformCalls::Allowed
        } else {
            PlatformCalls::Denied
        }
    }
}

/// The data of one Store: one call's view of the host.
pub struct HostState {
    pub env: Arc<HostEnv>,
    /// kv and outbox namespace: the merchant's account.
    pub namespace: String,
    /// The connected account every Stripe call of this call is pinned to.
    pub stripe_account: String,
    /// Connected accounts created during this call (onboarding links only those).
    pub created_accounts: Vec<String>,
    /// Whether this call may act on the platform itself.
    pub platform_calls: PlatformCalls,
    pub limits: StoreLimits,
    /// When the call began, and how much of it was spent in host imports
    /// (Stripe, storage, email): the deadline bounds only the rest.
    pub started: Instant,
    pub host_time: Duration,
    /// Records HTTP answers for a portable scenario (tests only).
    pub tap: Option<Arc<crate::portable::tap::Tap>>,
}

impl HostState {
    pub fn new(env: Arc<HostEnv>, namespace: &str, limits: StoreLimits) -> Self {
        Self {
            env,
            namespace: namespace.to_string(),
            stripe_account: namespace.to_string(),
            created_accounts: Vec::new(),
            platform_calls: PlatformCalls::Denied,
            limits,
            started: Instant::now(),
            host_time: Duration::ZERO,
            tap: None,
        }
    }
}

impl HostState {
    /// Starts a call on this Store: nothing of the previous call's host-side
    /// state carries over (its clocks, the accounts it created, its tap).
    pub fn begin_call(
        &mut self,
        tap: Option<Arc<crate::portable::tap::Tap>>,
        platform_calls: PlatformCalls,
    ) {
        self.stripe_account = self.namespace.clone();
        self.created_accounts.clear();
        self.platform_calls = platform_calls;
        self.started = Instant::now();
        self.host_time = Duration::ZERO;
        self.tap = tap;
    }

    /// Runs an import's work off the guest's clock: waiting on Stripe or on
    /// storage never counts against the call's deadline.
    pub fn off_the_clock<T>(&mut self, work: impl FnOnce(&Self) -> T) -> T {
        let start = Instant::now();
        let out = work(self);
        self.host_time += start.elapsed();
        out
    }

    /// Wall time the guest itself has run so far in this call.
    pub fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }
}

impl crate::bindings::billing::stripe_plugin::platform::Host for HostState {}
impl crate::bindings::billing::stripe_plugin::payments::Host for HostState {}
impl crate::bindings::billing::stripe_plugin::errors::Host for HostState {}
impl crate::bindings::billing::stripe_plugin::outcomes::Host for HostState {}
