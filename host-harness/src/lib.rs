//! The billing host in a box: a wasmtime runtime for the Stripe plugin, host
//! imports backed by SQLite and ureq, the platform's invoices and customers,
//! an HTTP server (`serve`), and an offline Stripe emulator.

pub mod access;
pub mod bench;
pub mod bench_serve;
pub mod bindings;
pub mod component_cache;
pub mod config;
pub mod db;
pub mod demo;
pub mod escape;
pub mod http_server;
pub mod imports;
pub mod jobs;
pub mod logging;
pub mod mailer;
pub mod merchants;
pub mod metrics;
pub mod offline_stripe;
pub mod pacing;
pub mod pages;
pub mod platform;
pub mod portable;
pub mod ports;
pub mod queue;
pub mod record;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod state;
pub mod tokens;
pub mod transitions;
