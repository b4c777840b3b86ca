//! The emulator alone, rule by rule: each test shows one place where Stripe
//! refuses, answers or sends events, and the emulator does the same.

// What every rule test shares: an emulator, requests, assertions.
#[path = "rules/support.rs"]
mod support;

// Authentication and Connect: keys, Stripe-Account, connected accounts, Account Links.
#[path = "rules/accounts.rs"]
mod accounts;
// Stripe's test cards: each decline, 3-D Secure and success as Stripe documents it.
#[path = "rules/cards.rs"]
mod cards;
// Checkout's hosted page: declines, retries and 3-D Secure on the page.
#[path = "rules/checkout.rs"]
mod checkout;
// The fault plan: 500s, 429s, lock timeouts, timeouts and resets, before or after the work.
#[path = "rules/faults.rs"]
mod faults;
// Idempotency keys: the same answer for the same request, a 400 for another body, 24 h.
#[path = "rules/idempotency.rs"]
mod idempotency;
// Amounts and metadata: minimum and maximum charges, metadata keys and values.
#[path = "rules/limits.rs"]
mod limits;
// Lists and their filters: pagination, created ranges, types.
#[path = "rules/lists.rs"]
mod lists;
// Objects that follow from others: charges, refunds and disputes of payments.
#[path = "rules/related.rs"]
mod related;
// Cards saved without a payment: Checkout in setup mode, and the card updater.
#[path = "rules/saved_cards.rs"]
mod saved_cards;
// Every object carries every top-level key of Stripe's own sample (fixtures3.json).
#[path = "rules/shapes.rs"]
mod shapes;
// Webhook delivery: signed, per endpoint, late, twice, or retried when the plan says so.
#[path = "rules/webhooks.rs"]
mod webhooks;
