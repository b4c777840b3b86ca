//! `bad-day`: a seeded, reproducible bad day for the plugin, through `serve`
//! and the Stripe emulator over loopback.
//!
//! - Load: merchants (one `serve` each, on its own connected account and
//!   database), customers and invoices in several currencies; customers pay
//!   by link, are declined, fail 3-D Secure, pay by bank debit that fails or
//!   succeeds, open the link in two tabs, get refunds and disputes; cards on
//!   file are charged when invoices are sent.
//! - Faults: a seeded share of Stripe requests fails (500, 429, lock
//!   timeouts, timeouts, resets, before or after the work); webhooks arrive
//!   late, out of order, twice, or never (recovered by `serve`'s sync).
//! - Crashes: `serve` is killed with SIGKILL at random points and restarted.
//! - Invariants, against the emulator's own ledger (see `invariants.rs`).
//!
//! Prints what it did and what it found; exits 1 on any violation.

mod args;
mod customers;
mod hosts;
mod invariants;
mod rng;

use args::Args;
use clap::Parser;
use std::time::{Duration, Instant};
use stripe_emulator::server::RunningEmulator;
use stripe_emulator::{Clock, DeliveryPlan, Emulator};

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    let emulator = Emulator::new(Clock::system());
    let running = RunningEmulator::start(emulator.clone(), "127.0.0.1:0").expect("emulator");
    // serve gives Stripe 2 s per call; a timeout fault outlasts that.
    running.hold_timeouts_for(Duration::from_millis(2500));
    emulator.set_delivery_plan(DeliveryPlan {
        seed: args.seed ^ 0xD1,
        max_delay: Duration::from_millis(400),
        duplicate_per_mille: args.duplicate_per_mille,
        drop_per_mille: args.drop_per_mille,
    });
    let fleet = hosts::Fleet::start(&args, &running).unwrap_or_else(|e| {
        eprintln!("bad-day: could not start serve: {e}");
        std::process::exit(2)
    });
    emulator.inject_seeded(args.seed, args.fault_per_mille);
    let plan = customers::plan(&args);
    let outcome = customers::run(&fleet, &running, &plan);
    // The bad day ends: Stripe heals; what Stripe never delivered is left to sync.
    emulator.heal();
    let given_up = emulator.give_up_dropped();
    let report = invariants::check(&args, &fleet, &emulator, &plan, &outcome, given_up);
    let faults = emulator.injected();
    println!(
        "bad day, seed {}: {} merchants, {} invoices, {:.1} s",
        args.seed,
        args.merchants,
        plan.len(),
        started.elapsed().as_secs_f64()
    );
    println!("  customers: {}", outcome.summary());
    println!(
        "  Stripe faults injected: {} ({})",
        faults.len(),
        invariants::count_by(faults.iter().map(|f| format!(
            "{} {}",
            f.fault.name(),
            if matches!(f.when, stripe_emulator::faults::When::BeforeWork) {
                "before work"
            } else {
                "after work"
            }
        )))
    );
    println!(
        "  webhooks: {} events, {} delivered twice, {} redelivered after a failed attempt, {} never delivered (left to sync)",
        emulator.events().len(),
        emulator.duplicated(),
        emulator.redeliveries(),
        given_up
    );
    println!(
        "  crashes: {} SIGKILLs of serve, each restarted",
        fleet.crashes()
    );
    println!("  ledger: {}", report.ledger);
    println!(
        "  converged after {:.1} s",
        report.converged_after.as_secs_f64()
    );
    if report.violations.is_empty() {
        println!("  violations: 0");
    } else {
        println!("  violations: {}", report.violations.len());
        for v in &report.violations {
            println!("    - {v}");
        }
    }
    fleet.stop();
    std::process::exit(if report.violations.is_empty() { 0 } else { 1 });
}
