//! Write-ahead: what a call wrote is durable before a request leaves for
//! Stripe (the store's group commit; `KvStore::make_durable`), so that a
//! power loss never leaves Stripe holding a charge the host has no trace of.

use e2e_tests::*;
use host_runtime::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
use host_runtime::imports::HttpBackend;
use host_tools::offline_stripe::InProcess;
use std::sync::{Arc, Mutex};
use stripe_emulator::Emulator;

/// What happened, in order: a write to the store, a sync, a request sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Write,
    Durable,
    Send,
}

type Log = Arc<Mutex<Vec<Step>>>;

fn note(log: &Log, step: Step) {
    log.lock().unwrap().push(step);
}

/// The emulator, with each request logged as it leaves.
struct Sent {
    emulator: Emulator,
    log: Log,
}

impl HttpBackend for Sent {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        note(&self.log, Step::Send);
        InProcess(self.emulator.clone()).send(req)
    }
}

#[test]
fn no_request_leaves_for_stripe_before_the_writes_that_led_to_it_are_durable() {
    let log = Log::default();
    let (h, _, _) = Harness::with_store(
        |inner| {
            let log = log.clone();
            Watched::new(inner, move |seen| match seen {
                StoreEvent::Write(_) => note(&log, Step::Write),
                StoreEvent::Durable => note(&log, Step::Durable),
                StoreEvent::Read(_) => {}
            })
        },
        |emulator| Sent {
            emulator,
            log: log.clone(),
        },
    );
    // An auto-charge: customer, lease, attempt marker, PaymentIntent.
    let cus = h.stripe_customer("Card On File Ltd");
    h.add_card(&cus, "4242424242424242", true);
    log.lock().unwrap().clear();
    h.finalize(&h.merchant, &h.invoice_for(&cus));
    let steps = log.lock().unwrap().clone();
    let mut written_since_sync = false;
    let mut sends_after_writes = 0;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Write => written_since_sync = true,
            Step::Durable => {
                if written_since_sync {
                    sends_after_writes += 1;
                }
                written_since_sync = false;
            }
            Step::Send => assert!(
                !written_since_sync,
                "request {i} left with writes not yet durable: {steps:?}"
            ),
        }
    }
    assert!(
        sends_after_writes > 0,
        "no request followed a write; the test proves nothing: {steps:?}"
    );
}
