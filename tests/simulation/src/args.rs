//! What a bad day is run with: the seed, the load, the faults, the crashes.

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "A seeded bad day for the Stripe plugin: faults, untidy webhooks, crashes; money invariants checked"
)]
pub struct Args {
    /// The host-harness binary (its `serve` is what is tested).
    #[arg(long, default_value = "target/debug/host-harness")]
    pub host_harness: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 2)]
    pub merchants: usize,
    /// Invoices per merchant.
    #[arg(long, default_value_t = 16)]
    pub invoices: usize,
    /// SIGKILLs of a `serve`, spread over the run.
    #[arg(long, default_value_t = 2)]
    pub crashes: usize,
    /// Share of Stripe requests that fail, per thousand.
    #[arg(long, default_value_t = 50)]
    pub fault_per_mille: u32,
    /// Share of webhooks delivered twice, and never delivered, per thousand.
    #[arg(long, default_value_t = 100)]
    pub duplicate_per_mille: u32,
    #[arg(long, default_value_t = 50)]
    pub drop_per_mille: u32,
    /// serve's sync of missed webhooks, in seconds (0: off, to see the
    /// invariants fail without it).
    #[arg(long, default_value_t = 2)]
    pub sync_every_secs: u64,
    /// How long the end waits for every invoice to converge.
    #[arg(long, default_value_t = 90)]
    pub settle_secs: u64,
}
