//! An offline Stripe test-mode emulator whose job is to fail where Stripe
//! fails: Stripe's paths, form bodies, objects (every top-level key of
//! Stripe's own samples), error shape, idempotency, `Stripe-Account` scoping,
//! signed webhooks, and a seeded plan of faults on request. Each rule cites
//! Stripe's documentation where it is made.
//!
//! It knows nothing of the product that tests against it: it is an HTTP
//! service (in-process through [`Emulator::handle`], or on a loopback port
//! through [`server::RunningEmulator`]).

#![recursion_limit = "256"]

mod auth;
mod checkout_page;
mod clock;
mod emulator;
mod error;
pub mod faults;
pub mod form;
mod idempotency;
mod limits;
mod list;
mod params;
mod rate_limit;
mod reply;
mod resources;
mod router;
pub mod server;
mod shapes;
pub mod standalone;
mod store;
mod test_cards;
mod testing;
mod webhooks;

pub use clock::Clock;
pub use reply::Reply;
pub use test_cards::sepa_debit_succeeds;
pub use webhooks::{Delivery, DeliveryPlan, WebhookTarget, signature_header};

/// The API version the emulator's objects and events follow.
pub const API_VERSION: &str = "2026-10-28.clover";

pub use emulator::Emulator;
pub(crate) use emulator::lock;
