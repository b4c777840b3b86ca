//! `serve`: the reference billing host around the runtime. Two listeners
//! (public: Stripe's webhooks and the pay pages; platform: everything else,
//! to a token), the platform's invoices and customers, merchants as data, a
//! durable queue, SMTP delivery, metrics and logs, on SQLite or PostgreSQL.
//! It links no test double: the Stripe emulator and the developer tools live
//! in `host-tools`.

// The runtime's modules by their old names, for this crate's own paths.
use host_runtime::{bindings, escape, imports, ports, runtime, transitions};

pub mod access;
pub mod app;
pub mod cache_dirs;
pub mod config;
pub mod db;
pub mod http_server;
pub mod jobs;
pub mod logging;
pub mod mailer;
pub mod merchants;
pub mod metrics;
pub mod pacing;
pub mod pages;
pub mod platform;
pub mod queue;
pub mod record;
pub mod secrets;
pub mod state;
pub mod stripe_setup;
pub mod tokens;
