//! The emulator alone, rule by rule: each test shows one place where Stripe
//! refuses, answers or sends events, and the emulator does the same.

#[path = "rules/support.rs"]
mod support;

#[path = "rules/accounts.rs"]
mod accounts;
#[path = "rules/cards.rs"]
mod cards;
#[path = "rules/checkout.rs"]
mod checkout;
#[path = "rules/faults.rs"]
mod faults;
#[path = "rules/idempotency.rs"]
mod idempotency;
#[path = "rules/limits.rs"]
mod limits;
#[path = "rules/lists.rs"]
mod lists;
#[path = "rules/related.rs"]
mod related;
#[path = "rules/shapes.rs"]
mod shapes;
#[path = "rules/webhooks.rs"]
mod webhooks;
