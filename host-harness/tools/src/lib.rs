//! Developer tools around the host: the offline demo (`demo`, and
//! `demo::Offline`, the tests' serve-over-loopback fixture), the benchmarks,
//! the in-process Stripe emulator backend, and the portable scenarios (the
//! tap that records them, the `replay` runner).

// The runtime's and serve's modules by their old names, for this crate's own paths.
use host_runtime::{bindings, imports, ports, runtime};
use host_server::{access, app, config, db, http_server, metrics, platform, record, tokens};

pub mod bench;
pub mod bench_serve;
pub mod demo;
pub mod offline_stripe;
pub mod portable;
