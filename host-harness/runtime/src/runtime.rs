//! The wasmtime runtime: one Engine, Component, Linker and InstancePre built at
//! start-up, and limits on every call (an epoch deadline for the guest's own
//! time, a memory cap). An instance serves one merchant only: by default it is
//! kept after a call that returned and reused for that merchant's next call
//! (`Reuse`); one that trapped or hit a limit is dropped, so a trap or a
//! limit hit is an error for that call only. Epochs rather than fuel: fuel metering slowed
//! the webhook hot path by about a third. The deadline excludes time spent in
//! host imports, so a slow Stripe never traps a call after money moved.

use crate::imports::{HostEnv, HostState, PlatformCalls, Quotas};
use crate::ports::CallTap;
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
    UpdateDeadline,
};

use crate::bindings::*;

/// The component built by `build.rs` from `plugin/`, embedded in the binary.
pub const PLUGIN_WASM: &[u8] = include_bytes!(env!("PLUGIN_WASM"));

/// Per-call limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time one call may run in wasm, in milliseconds (checked every 10 ms).
    /// Time spent in host imports (waiting on Stripe, storage, email) does
    /// not count: a slow Stripe must never trap a call after it has charged.
    pub deadline_ms: u64,
    /// Linear memory one call may grow to.
    pub memory_bytes: usize,
    /// Time one call may take in all, waiting on imports included: the
    /// bound on a plugin that only ever waits on the host.
    pub wall_ms: u64,
    /// Stripe requests one call may send.
    pub max_stripe_requests: u32,
    /// kv operations one call may make.
    pub max_kv_operations: u32,
    /// Emails one call may queue.
    pub max_emails: u32,
    /// The largest kv value one call may write.
    pub max_kv_value_bytes: usize,
}

impl Default for Limits {
    /// Far above what the plugin's busiest call uses, far below what would
    /// hurt the host. Measured 2026-12-03 by running the suite with lower
    /// caps: no call but `on-sync` went over 150 kv operations, 12 Stripe
    /// requests or 3 emails; an `on-sync` call (5 pages of 100 events) went
    /// over 1,500 kv operations.
    fn default() -> Self {
        Self {
            deadline_ms: 2_000,
            memory_bytes: 64 << 20,
            wall_ms: 120_000,
            max_stripe_requests: 100,
            max_kv_operations: 10_000,
            max_emails: 8,
            max_kv_value_bytes: 256 << 10,
        }
    }
}

/// Whether the JIT's code is named for a profiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profiling {
    #[default]
    Off,
    /// For `perf record`: wasm functions named in /tmp/perf-PID.map.
    PerfMap,
}

/// Whether an instance serves more than one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// A fresh instance for every call.
    Never,
    /// An instance that returned normally is kept for the same merchant's
    /// next call; the plugin keeps nothing between calls (no statics), so a
    /// call sees only its arguments and the imports. One that trapped or hit
    /// a limit is dropped.
    PerMerchant,
}

/// Instances kept idle, by merchant namespace.
const MAX_IDLE: usize = 32;
const MAX_IDLE_PER_MERCHANT: usize = 4;

/// An instance between calls, with its Store.
struct Idle {
    store: Store<HostState>,
    plugin: Plugin,
}

/// A loaded plugin, ready to serve calls from many threads.
pub struct Runtime {
    reuse: Reuse,
    idle: std::sync::Mutex<(usize, std::collections::HashMap<String, Vec<Idle>>)>,
    engine: Engine,
    component: Component,
    pre: PluginPre<HostState>,
    env: Arc<HostEnv>,
    limits: Limits,
    /// Records the calls, for a replay elsewhere (the tests' portable scenarios).
    tap: Option<Arc<dyn CallTap>>,
}

impl Runtime {
    /// Loads `wasm`, reusing a precompiled copy from `cache_dir` when one matches.
    pub fn new(
        wasm: &[u8],
        env: Arc<HostEnv>,
        limits: Limits,
        cache_dir: Option<&Path>,
    ) -> Result<Self> {
        Self::profiled(wasm, env, limits, cache_dir, Profiling::Off)
    }

    /// As `new`, with the JIT's code named for a profiler.
    pub fn profiled(
        wasm: &[u8],
        env: Arc<HostEnv>,
        limits: Limits,
        cache_dir: Option<&Path>,
        profiling: Profiling,
    ) -> Result<Self> {
        let mut config = Config::new();
        config.concurrency_support(false);
        config.epoch_interruption(true);
        if profiling == Profiling::PerfMap {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(64)
            .total_core_instances(256)
            .total_memories(64)
            .total_tables(256)
            .max_memory_size(limits.memory_bytes)
            // Reused slots keep their first pages mapped: no page faults per call.
            .linear_memory_keep_resident(512 << 10)
            .table_keep_resident(64 << 10)
            // Reset only the pages a call dirtied (Linux 6.7+, PAGEMAP_SCAN),
            // not all 512 KiB: the memset was ~11% of a fresh instance.
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        start_epoch_ticker(&engine);
        let component = load_component(&engine, wasm, cache_dir)?;
        let mut linker = Linker::<HostState>::new(&engine);
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        let pre = PluginPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Self {
            reuse: Reuse::PerMerchant,
            idle: Default::default(),
            engine,
            component,
            pre,
            env,
            limits,
            tap: None,
        })
    }

    /// Records every call from now on through `tap`.
    pub fn set_tap(&mut self, tap: Arc<dyn CallTap>) {
        self.tap = Some(tap);
    }

    /// Chooses whether instances serve more than one call.
    pub fn set_reuse(&mut self, reuse: Reuse) {
        self.reuse = reuse;
        self.idle_instances().1.clear();
    }

    fn idle_instances(
        &self,
    ) -> std::sync::MutexGuard<'_, (usize, std::collections::HashMap<String, Vec<Idle>>)> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine and component the runtime made (a tap reads the handlers' types).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn component(&self) -> &Component {
        &self.component
    }

    pub fn env(&self) -> &Arc<HostEnv> {
        &self.env
    }

    /// Runs `f` on an instance of the merchant's (kept from its last call, or new).
    /// `tenant` is the merchant's id: its kv, emails, keys and instances are
    /// its own, whichever account it has (security review S6); `account`
    /// is the connected account its Stripe requests are pinned to ("" for
    /// the platform's own).
    fn call<T: serde::Serialize>(
        &self,
        caller: Caller<'_>,
        (handler, args): (&str, impl FnOnce() -> Vec<serde_json::Value>),
        f: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T> {
        let namespace = caller.tenant;
        if let Some(tap) = &self.tap {
            tap.call(
                handler,
                self.env.clock.now_ms(),
                namespace,
                &|| crate::keys::read(&*self.env.keys, namespace, |k| k.clone()),
                &args(),
            );
        }
        let Idle { mut store, plugin } = match self.take_idle(namespace) {
            Some(idle) => idle,
            None => self.instantiate(namespace, quotas(&self.limits))?,
        };
        store.data_mut().begin_call(
            self.tap.clone(),
            PlatformCalls::of(handler),
            caller.account,
            caller.addresses(),
        );
        store.data_mut().refundable = caller.refundable.to_vec();
        store.set_epoch_deadline(ticks(Duration::from_millis(self.limits.deadline_ms)));
        let started = std::time::Instant::now();
        let mut result = f(&plugin, &mut store);
        // An idle instance keeps none of the call's kv values.
        store.data_mut().snapshot = Default::default();
        self.env.observer.handler_call(handler, started.elapsed());
        if let Some(cap) = store.data().exceeded {
            // Whatever the plugin made of the refusals, the call failed as
            // a whole: nothing it returned is applied.
            self.env.observer.cap_exceeded(cap.name());
            tracing::error!(
                handler,
                cap = cap.name(),
                "a plugin call went over its cap; it failed"
            );
            result = Err(wasmtime::Error::msg(format!(
                "the call went over its cap of {}",
                cap.name()
            )));
        }
        if let Some(tap) = &self.tap {
            tap.outcome(result.as_ref().ok().map(json));
        }
        // A trap or a limit hit leaves the instance unusable: it is dropped.
        if result.is_ok() {
            self.keep_idle(namespace, Idle { store, plugin });
        }
        result.map_err(|e| anyhow::anyhow!("plugin call failed: {e:#}"))
    }

    fn take_idle(&self, namespace: &str) -> Option<Idle> {
        if self.reuse == Reuse::Never {
            return None;
        }
        let mut guard = self.idle_instances();
        let (count, by_merchant) = &mut *guard;
        let idle = by_merchant.get_mut(namespace)?.pop()?;
        *count -= 1;
        Some(idle)
    }

    fn keep_idle(&self, namespace: &str, idle: Idle) {
        if self.reuse == Reuse::Never {
            return;
        }
        let mut guard = self.idle_instances();
        let (count, by_merchant) = &mut *guard;
        let list = by_merchant.entry(namespace.to_string()).or_default();
        if *count < MAX_IDLE && list.len() < MAX_IDLE_PER_MERCHANT {
            list.push(idle);
            *count += 1;
        }
    }

    /// A new instance for the merchant, in its own Store with the call limits.
    fn instantiate(&self, namespace: &str, quotas: Quotas) -> Result<Idle> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(16)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState::new(self.env.clone(), namespace, limits, quotas),
        );
        store.limiter(|s| &mut s.limits);
        let budget = Duration::from_millis(self.limits.deadline_ms);
        // At each tick past the deadline: time spent waiting on the host
        // (Stripe, storage) is given back; only the guest's own time counts,
        // up to the call's wall-time cap, which counts everything.
        store.epoch_deadline_callback(move |mut ctx| {
            let used = ctx.data().guest_time();
            if ctx.data_mut().past_wall_time() {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(if used >= budget {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(ticks(budget - used))
            })
        });
        let plugin = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| anyhow::anyhow!("instantiating the plugin: {e:#}"))?;
        Ok(Idle { store, plugin })
    }

    pub fn on_invoice_finalized(
        &self,
        tenant: &str,
        m: &Merchant,
        inv: &Invoice,
    ) -> Result<Result<Vec<Transition>, PluginError>> {
        self.call(
            Caller::new(tenant, m).writing_to(&inv.customer),
            ("on-invoice-finalized", || vec![json(&m), json(&inv)]),
            |p, s| {
                p.billing_stripe_plugin_handlers()
                    .call_on_invoice_finalized(s, m, inv)
            },
        )
    }

    pub fn on_invoice_updated(
        &self,
        tenant: &str,
        m: &Merchant,
        u: &InvoiceUpdate,
    ) -> Result<Result<Vec<Transition>, PluginError>> {
        self.call(
            Caller::new(tenant, m),
            ("on-invoice-updated", || vec![json(&m), json(&u)]),
            |p, s| {
                p.billing_stripe_plugin_handlers()
                    .call_on_invoice_updated(s, m, u)
            },
        )
    }

    pub fn on_webhook(
        &self,
        tenant: &str,
        m: &Merchant,
        req: &WebhookRequest,
    ) -> Result<Result<WebhookOutcome, PluginError>> {
        self.call(
            Caller::new(tenant, m),
            ("on-webhook", || vec![json(&m), json(&req)]),
            |p, s| {
                p.billing_stripe_plugin_handlers()
                    .call_on_webhook(s, m, req)
            },
        )
    }

    pub fn on_sync(
        &self,
        tenant: &str,
        m: &Merchant,
        cursor: Option<&str>,
    ) -> Result<Result<SyncOutcome, PluginError>> {
        self.call(
            Caller::new(tenant, m),
            ("on-sync", || vec![json(&m), json(&cursor)]),
            |p, s| {
                p.billing_stripe_plugin_handlers()
                    .call_on_sync(s, m, cursor)
            },
        )
    }

    pub fn on_pay_link_opened(
        &self,
        tenant: &str,
        m: &Merchant,
        token: &str,
    ) -> Result<Result<PayLinkOutcome, PluginError>> {
        self.call(
            Caller::new(tenant, m),
            ("on-pay-link-opened", || vec![json(&m), json(&token)]),
            |p, s| {
                p.billing_stripe_plugin_handlers()
                    .call_on_pay_link_opened(s, m, token)
            },
        )
    }

    pub fn start_onboarding(
        &self,
        tenant: &str,
        m: &Merchant,
        r: &OnboardingRequest,
    ) -> Result<Result<Onboarding, PluginError>> {
        self.call(
            Caller::new(tenant, m),
            ("start-onboarding", || vec![json(&m), json(&r)]),
            |p, s| {
                p.billing_stripe_plugin_handlers()
                    .call_start_onboarding(s, m, r)
            },
        )
    }

    pub fn on_customer_updated(
        &self,
        tenant: &str,
        m: &Merchant,
        c: &Customer,
        previous: Option<&Customer>,
    ) -> Result<Result<Vec<Transition>, PluginError>> {
        self.call(
            Caller::new(tenant, m).writing_to(c),
            ("on-customer-updated", || {
                vec![json(&m), json(&c), json(&previous)]
            }),
            |p, s| {
                p.billing_stripe_plugin_handlers()
                    .call_on_customer_updated(s, m, c, previous)
            },
        )
    }

    /// A time a `collection-scheduled` asked for has come (a retry, or an
    /// account restored): `on-invoice-updated` with `collection-due`.
    pub fn on_collection_due(
        &self,
        tenant: &str,
        m: &Merchant,
        invoice_id: &str,
    ) -> Result<Result<Vec<Transition>, PluginError>> {
        let due = InvoiceUpdate {
            invoice_id: invoice_id.to_string(),
            change: InvoiceChange::CollectionDue,
            amount_due: String::new(),
            refund: None,
        };
        self.on_invoice_updated(tenant, m, &due)
    }

    /// The platform refunds money paid through Stripe for an invoice
    /// (`on-invoice-updated` with `refund`): the call may refund only
    /// `payments`, the invoice's PaymentIntents as the host knows them.
    pub fn refund(
        &self,
        tenant: &str,
        m: &Merchant,
        u: &InvoiceUpdate,
        payments: &[String],
    ) -> Result<Result<Vec<Transition>, PluginError>> {
        let caller = Caller {
            refundable: payments,
            ..Caller::new(tenant, m)
        };
        self.call(
            caller,
            ("on-invoice-updated", || vec![json(&m), json(&u)]),
            |p, s| {
                p.billing_stripe_plugin_handlers()
                    .call_on_invoice_updated(s, m, u)
            },
        )
    }

    /// What the plugin needs from Stripe (its pinned API version, the event
    /// types it handles), asked of a fresh instance that belongs to no
    /// merchant and may call nothing: its quotas of Stripe requests, kv
    /// operations and emails are zero, so any such call fails the call.
    pub fn describe(&self) -> Result<PluginDescription> {
        let nothing = Quotas {
            stripe_requests: 0,
            kv_operations: 0,
            emails: 0,
            ..quotas(&self.limits)
        };
        let Idle { mut store, plugin } = self.instantiate(NO_MERCHANT, nothing)?;
        store
            .data_mut()
            .begin_call(None, PlatformCalls::Denied, "", Vec::new());
        store.set_epoch_deadline(ticks(Duration::from_millis(self.limits.deadline_ms)));
        let answer = plugin
            .billing_stripe_plugin_handlers()
            .call_describe(&mut store);
        if let Some(cap) = store.data().exceeded {
            anyhow::bail!("describe called the host (over its cap of {})", cap.name());
        }
        answer.map_err(|e| anyhow::anyhow!("plugin call failed: {e:#}"))
    }
}

/// The namespace of a call made for no merchant: no merchant id is empty.
const NO_MERCHANT: &str = "";

/// Who a call is made for: the merchant (its id: kv, emails, keys and
/// instances are its own), the connected account its Stripe requests are
/// pinned to ("" for the platform's), and the addresses its emails may go
/// to besides the merchant's customers on record.
struct Caller<'a> {
    tenant: &'a str,
    account: &'a str,
    notification_email: &'a str,
    customer: Option<&'a Customer>,
    /// The PaymentIntents the call may refund (a platform's refund only).
    refundable: &'a [String],
}

impl<'a> Caller<'a> {
    fn new(tenant: &'a str, m: &'a Merchant) -> Self {
        Self {
            tenant,
            account: &m.account_id,
            notification_email: &m.notification_email,
            customer: None,
            refundable: &[],
        }
    }

    /// The call is about this customer, whose addresses it may write to.
    fn writing_to(self, c: &'a Customer) -> Self {
        Self {
            customer: Some(c),
            ..self
        }
    }

    fn addresses(&self) -> Vec<String> {
        let mut out = vec![self.notification_email.to_string()];
        if let Some(c) = self.customer {
            out.extend(c.email.iter().cloned());
            out.extend(c.billing_emails.iter().cloned());
        }
        out.retain(|a| !a.is_empty());
        out
    }
}

/// What one call may ask of the host, from the runtime's limits.
fn quotas(limits: &Limits) -> Quotas {
    Quotas {
        wall: Duration::from_millis(limits.wall_ms),
        stripe_requests: limits.max_stripe_requests,
        kv_operations: limits.max_kv_operations,
        emails: limits.max_emails,
        kv_value_bytes: limits.max_kv_value_bytes,
    }
}

const EPOCH_TICK_MS: u64 = 10;

/// Epoch ticks covering `d`, at least one.
fn ticks(d: Duration) -> u64 {
    (d.as_millis() as u64).div_ceil(EPOCH_TICK_MS).max(1)
}

/// Advances the engine's epoch every tick while the engine lives.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(std::time::Duration::from_millis(EPOCH_TICK_MS));
        }
    });
}

/// Compiling takes 50-270 ms; loading a cached artifact a few ms. The
/// cache file is named by the wasm's hash and the engine's compatibility
/// hash, and is used only from a private directory, when its own hash
/// matches (`component_cache`); anything else is compiled again.
fn load_component(engine: &Engine, wasm: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    use crate::component_cache::{self as cache, DirTrust};
    let Some(dir) = cache_dir else {
        return Ok(Component::new(engine, wasm)?);
    };
    let trust = cache::prepare(dir);
    if trust != DirTrust::Private {
        tracing::warn!(
            dir = %dir.display(),
            trust = trust.name(),
            "the component cache directory was open to other users or is not ours: its files are not loaded"
        );
    }
    let mut h = Sha256::new();
    h.update(wasm);
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut engine_hash);
    let name = format!(
        "{}-{:016x}.cwasm",
        hex::encode(&h.finalize()[..16]),
        std::hash::Hasher::finish(&engine_hash)
    );
    let path: PathBuf = dir.join(name);
    if trust == DirTrust::Private
        && let Some(bytes) = cache::read_verified(&path)
    {
        // SAFETY: the bytes are those `precompile_component` of an engine
        // with the same compatibility hash wrote, checked against the
        // SHA-256 kept beside them, in a directory only this user can write.
        if let Ok(c) = unsafe { Component::deserialize(engine, &bytes) } {
            return Ok(c);
        }
    }
    let bytes = engine.precompile_component(wasm)?;
    if trust != DirTrust::Refused
        && let Err(e) = cache::write(&path, &bytes)
    {
        tracing::warn!(error = %format!("{e:#}"), "could not cache the compiled component");
    }
    // SAFETY: made just now by this engine.
    Ok(unsafe { Component::deserialize(engine, &bytes) }?)
}

/// A value as serde sees it, for the scenario tap.
fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
