//! The four host imports the plugin sees, each backed by a real part: HTTP by
//! ureq (only to the Stripe API base), kv and email by SQLite, the clock by the
//! system clock or a fixed one for tests.

pub mod clock;
pub mod email;
pub mod http;
pub mod kv;

use crate::db::Db;
use crate::record::Recorder;
use std::sync::Arc;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use clock::Clock;
pub use http::{HttpBackend, StripeGate, UreqBackend};

/// What every call shares: storage, the way out to Stripe, time, the HTTP log.
pub struct HostEnv {
    pub db: Arc<Db>,
    pub stripe: StripeGate,
    pub clock: Clock,
    pub recorder: Recorder,
}

/// The data of one Store: one call's view of the host.
pub struct HostState {
    pub env: Arc<HostEnv>,
    /// kv and outbox namespace: the merchant's account.
    pub namespace: String,
    pub limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    pub fn new(env: Arc<HostEnv>, namespace: &str, limits: StoreLimits) -> Self {
        Self {
            env,
            namespace: namespace.to_string(),
            limits,
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::runtime::billing::stripe_plugin::types::Host for HostState {}
