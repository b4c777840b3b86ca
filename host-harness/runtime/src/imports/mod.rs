//! The five host imports the plugin sees, over the ports (`crate::ports`):
//! HTTP through the Stripe gate (only to the Stripe API base), kv and email
//! on the embedder's `HostStore`, the clock, and `mac` over the merchant's keys.

mod clock;
mod email;
mod http;
mod kv;
mod mac;

use crate::ports::{CallTap, HostStore, KeyStore, Observer, Pacer, TimeSource, Unobserved};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime::StoreLimits;

pub use crate::keys::{KeyRing, MerchantKeys};
pub use crate::mac_tags::{hmac_sha256, verify};
pub use clock::Clock;
pub use http::{
    Access, HttpBackend, Resource, StripeGate, UreqBackend, restricted_key_permissions,
};
pub use mac::signs;

/// What every call shares: storage, the way out to Stripe, time, keys, and
/// who observes.
pub struct HostEnv {
    pub store: Arc<dyn HostStore>,
    pub stripe: StripeGate,
    pub clock: Arc<dyn TimeSource>,
    /// Each merchant's secrets, which the plugin uses only through `mac`.
    pub keys: Arc<dyn KeyStore>,
    /// Told of calls, refusals, emails and Stripe exchanges.
    pub observer: Arc<dyn Observer>,
    /// Stripe's rate kept by the host, per account, when set.
    pub pacer: Option<Arc<dyn Pacer>>,
    /// Whether the plugin's emails are sent, or only kept in the outbox.
    pub mail: MailDelivery,
    /// Counts kv writes with an expiry, to purge expired entries now and then.
    expiring_writes: AtomicU64,
}

impl HostEnv {
    /// A host over `store`, reaching Stripe through `stripe`, on `clock`,
    /// with the merchants' secrets in `keys`; unobserved, unpaced, emails
    /// kept in the outbox only.
    pub fn new(
        store: Arc<dyn HostStore>,
        stripe: StripeGate,
        clock: impl TimeSource + 'static,
        keys: Arc<dyn KeyStore>,
    ) -> Self {
        Self {
            store,
            stripe,
            clock: Arc::new(clock),
            keys,
            observer: Arc::new(Unobserved),
            pacer: None,
            mail: MailDelivery::default(),
            expiring_writes: AtomicU64::new(0),
        }
    }

    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    pub fn with_pacer(mut self, pacer: Option<Arc<dyn Pacer>>) -> Self {
        self.pacer = pacer;
        self
    }

    pub fn with_mail(mut self, mail: MailDelivery) -> Self {
        self.mail = mail;
        self
    }

    /// One more kv write with an expiry; its running count.
    pub(crate) fn expiring_write(&self) -> u64 {
        self.expiring_writes
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }
}

/// What becomes of the emails the plugin queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailDelivery {
    /// Kept in the outbox for the platform to read; nothing sends them.
    #[default]
    OutboxOnly,
    /// Kept in the outbox and sent by the queue to the SMTP relay.
    Relay,
}

/// Whether a call may act on the platform itself (create a connected account
/// and its Account Link): only `start-onboarding` may; `on-webhook` may
/// make an Account Link for the merchant's own account alone (an
/// `account.updated` that restricts it: the merchant is emailed one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlatformCalls {
    Allowed,
    OwnAccountLinkOnly,
    Denied,
}

impl PlatformCalls {
    /// What the export named `handler` may do.
    pub(crate) fn of(handler: &str) -> Self {
        match handler {
            "start-onboarding" => PlatformCalls::Allowed,
            "on-webhook" => PlatformCalls::OwnAccountLinkOnly,
            _ => PlatformCalls::Denied,
        }
    }
}

/// What one call may ask of the host (security review S7): without caps, a
/// plugin that only waits on imports never meets its deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quotas {
    pub(crate) wall: Duration,
    pub(crate) stripe_requests: u32,
    pub(crate) kv_operations: u32,
    pub(crate) emails: u32,
    pub(crate) kv_value_bytes: usize,
}

/// A cap a call went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    WallTime,
    StripeRequests,
    KvOperations,
    KvValueSize,
    Emails,
}

impl Cap {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cap::WallTime => "wall time",
            Cap::StripeRequests => "Stripe requests",
            Cap::KvOperations => "kv operations",
            Cap::KvValueSize => "kv value size",
            Cap::Emails => "emails",
        }
    }
}

/// One use of the host an import is about to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    StripeRequest,
    KvRead,
    /// A write of a value this long.
    KvWrite(usize),
    Email,
}

/// What a call has used so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Used {
    stripe_requests: u32,
    kv_operations: u32,
    emails: u32,
}

/// The data of one Store: one call's view of the host.
pub(crate) struct HostState {
    pub(crate) env: Arc<HostEnv>,
    /// kv, outbox and key namespace: the merchant's id.
    pub(crate) namespace: String,
    /// The connected account every Stripe call of this call is pinned to.
    pub(crate) stripe_account: String,
    /// Connected accounts created during this call (onboarding links only those).
    pub(crate) created_accounts: Vec<String>,
    /// Whether this call may act on the platform itself.
    pub(crate) platform_calls: PlatformCalls,
    /// The PaymentIntents this call may refund: those of the invoice the
    /// platform asked to refund, in that call only.
    pub(crate) refundable: Vec<String>,
    pub(crate) limits: StoreLimits,
    /// When the call began, and how much of it was spent in host imports
    /// (Stripe, storage, email): the deadline bounds only the rest.
    pub(crate) started: Instant,
    pub(crate) host_time: Duration,
    /// Records HTTP answers for a portable scenario (tests only).
    pub(crate) tap: Option<Arc<dyn CallTap>>,
    pub(crate) quotas: Quotas,
    pub(crate) used: Used,
    /// The first cap this call went over: the call fails, whatever it returns.
    pub(crate) exceeded: Option<Cap>,
    /// Addresses this call may email besides the merchant's customers on
    /// record: the merchant's own, and the customer the call is about.
    pub(crate) addresses: Vec<String>,
    /// What this call read or wrote of each key since its last
    /// compare-and-swap or Stripe request (see `kv`).
    pub(crate) snapshot: std::collections::HashMap<String, Option<Vec<u8>>>,
}

impl HostState {
    pub(crate) fn new(
        env: Arc<HostEnv>,
        namespace: &str,
        limits: StoreLimits,
        quotas: Quotas,
    ) -> Self {
        Self {
            env,
            namespace: namespace.to_string(),
            stripe_account: String::new(),
            created_accounts: Vec::new(),
            platform_calls: PlatformCalls::Denied,
            refundable: Vec::new(),
            limits,
            started: Instant::now(),
            host_time: Duration::ZERO,
            tap: None,
            quotas,
            used: Used::default(),
            exceeded: None,
            snapshot: Default::default(),
            addresses: Vec::new(),
        }
    }
}

impl HostState {
    /// Starts a call on this Store: nothing of the previous call's host-side
    /// state carries over (its clocks, the accounts it created, its tap).
    pub(crate) fn begin_call(
        &mut self,
        tap: Option<Arc<dyn CallTap>>,
        platform_calls: PlatformCalls,
        account: &str,
        addresses: Vec<String>,
    ) {
        self.stripe_account = account.to_string();
        self.addresses = addresses;
        self.created_accounts.clear();
        self.refundable.clear();
        self.platform_calls = platform_calls;
        self.started = Instant::now();
        self.host_time = Duration::ZERO;
        self.tap = tap;
        self.used = Used::default();
        self.exceeded = None;
        self.snapshot.clear();
    }

    /// Counts one use of the host before an import makes it; `Err` (and the
    /// call marked as failed) when it would go over a cap, or when the
    /// call's wall time is spent.
    pub(crate) fn take(&mut self, what: Use) -> Result<(), Cap> {
        if let Some(cap) = self.exceeded {
            return Err(cap);
        }
        if self.past_wall_time() {
            return Err(Cap::WallTime);
        }
        let q = self.quotas;
        let u = &mut self.used;
        let over = match what {
            Use::StripeRequest => bump(
                &mut u.stripe_requests,
                q.stripe_requests,
                Cap::StripeRequests,
            ),
            Use::KvRead => bump(&mut u.kv_operations, q.kv_operations, Cap::KvOperations),
            Use::KvWrite(len) if len > q.kv_value_bytes => Some(Cap::KvValueSize),
            Use::KvWrite(_) => bump(&mut u.kv_operations, q.kv_operations, Cap::KvOperations),
            Use::Email => bump(&mut u.emails, q.emails, Cap::Emails),
        };
        match over {
            Some(cap) => {
                self.exceeded = Some(cap);
                Err(cap)
            }
            None => Ok(()),
        }
    }

    /// Whether the call has run past its wall time (marking it failed if so).
    pub(crate) fn past_wall_time(&mut self) -> bool {
        if self.started.elapsed() < self.quotas.wall {
            return false;
        }
        self.exceeded.get_or_insert(Cap::WallTime);
        true
    }

    /// Runs an import's work off the guest's clock: waiting on Stripe or on
    /// storage never counts against the call's deadline.
    pub(crate) fn off_the_clock<T>(&mut self, work: impl FnOnce(&Self) -> T) -> T {
        let start = Instant::now();
        let out = work(self);
        self.host_time += start.elapsed();
        out
    }

    /// Wall time the guest itself has run so far in this call.
    pub(crate) fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }
}

/// One more use of a quota of `cap`; the cap if that would go over it.
fn bump(count: &mut u32, max: u32, cap: Cap) -> Option<Cap> {
    if *count >= max {
        return Some(cap);
    }
    *count += 1;
    None
}

impl crate::bindings::billing::stripe_plugin::platform::Host for HostState {}
impl crate::bindings::billing::stripe_plugin::payments::Host for HostState {}
impl crate::bindings::billing::stripe_plugin::errors::Host for HostState {}
impl crate::bindings::billing::stripe_plugin::outcomes::Host for HostState {}
