//! The Stripe plugin's runtime, for a billing host to embed: the contract's
//! bindings, a wasmtime runtime with per-call limits and quotas, the five
//! imports (the Stripe gate among them) over small traits the host
//! implements (`ports`), and the contract's host-side rules as pure
//! functions (`transitions`). No HTTP server, no database, no environment
//! variables: the embedder supplies those. See `examples/embed.rs`.
//!
//! The surface, in the order a host meets it:
//! - `runtime::{Runtime, Limits, Reuse, Profiling, PLUGIN_WASM}`: load the
//!   component and call its handlers;
//! - `imports::{HostEnv, StripeGate, HttpBackend, UreqBackend, Clock,
//!   KeyRing, MerchantKeys, MailDelivery}`: what every call shares (the
//!   imports themselves and a call's state are private), and
//!   `imports::{hmac_sha256, signs, verify}`: the `mac` import's rules, for
//!   a host that replays calls;
//! - `ports::{HostStore (KvStore + EmailStore), KeyStore, TimeSource, Observer,
//!   Pacer, CallTap}`:
//!   what the host brings (`keys::KeyRing` and `imports::Clock` are ready-made
//!   key and time sources);
//! - `transitions::{apply, invoice_of, InvoiceState}`: what a call's
//!   transitions do to the host's view of an invoice;
//! - `bindings`: the contract's types;
//! - `escape::escape_controls`: text made safe for one log line.

pub mod bindings;
mod component_cache;
pub mod escape;
pub mod imports;
pub mod keys;
mod mac_tags;
pub mod ports;
pub mod runtime;
pub mod times;
pub mod transitions;
