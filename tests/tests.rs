//! The suite through the real component, as one test binary (wasmtime is
//! linked once). Each module says what it proves; `tests/run` runs them all.

// Connect account health: a restricted account pauses collection, emails the merchant once; restored, it resumes.
mod account_health;
// Stripe failing (faults, 429s, Retry-After): bounded retries, one key, a retryable error at the end.
mod bad_day;
// The customer's card page: listed invoices, "Replace your card" (setup-mode Checkout), failed invoices charged to the new or reissued card.
mod card_page;
// Finalizing collects: link, auto-charge, declines, authentication, onboarding; exact requests as snapshots.
mod collections;
// Dunning: soft declines retried on the merchant's schedule as queued jobs; paid by link cancels; hard ones never.
mod dunning;
// Write-ahead: nothing leaves for Stripe before what led to it is durable (group commit).
mod durability;
// The whole story through `serve` and the emulator over loopback, as a platform and a customer drive it.
mod end_to_end;
// What the internet may do: the public listener's three routes; the platform's token, Host and JSON checks.
mod exposure;
// Each handler's exact Stripe requests, transitions and records on a deterministic host (snapshots).
mod handlers;
// Money invariants over generated histories (proptest, shrinking, printed seeds) against serve's core.
mod histories;
// A plugin that traps, loops or grabs memory costs one call, never the host; it reaches only Stripe.
mod limits;
// Many merchants on one host: merchants are data, events route by account, nothing crosses between them.
mod merchants;
// Money defects of the first review, each reproduced and seen failing before its fix.
mod money;
// What a platform team watches: Prometheus metrics and one structured log line per call.
mod observability;
// Refunds the platform starts: once per refund id, never more than paid, refused during a dispute, failures reconciled.
mod refunds;
// Every handled event makes its transition; repeated, shuffled and late deliveries converge.
mod reconciliation;
// One call's kv reads between compare-and-swaps and Stripe requests: one snapshot, one store read per key.
mod snapshot_reads;
// One command from test mode to live: webhook endpoints registered once, their secrets kept privately.
mod setup;
// Money where features meet (queue, updates, sync, lost answers, disputes): second review's defects.
mod seams;
