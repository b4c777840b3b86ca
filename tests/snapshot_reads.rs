//! One call's kv reads between two of its compare-and-swaps (or Stripe
//! requests) see one snapshot: a key is read from the store once there, and
//! a compare-and-swap or a request makes the next read go to the store.

use e2e_tests::*;
use host_tools::offline_stripe::InProcess;
use std::sync::{Arc, Mutex};

/// A redelivered payment (the hot path of a busy endpoint) reads the
/// invoice's record from the store once, however many of the plugin's
/// decisions look at it; the outcome is the first delivery's.
#[test]
fn a_redelivered_payment_reads_the_invoice_record_from_the_store_once() {
    let reads = Arc::new(Mutex::new(Vec::<String>::new()));
    let (h, _, _) = Harness::with_store(
        |inner| {
            let reads = reads.clone();
            Watched::new(inner, move |seen| {
                if let StoreEvent::Read(key) = seen {
                    reads.lock().unwrap().push(key.to_string());
                }
            })
        },
        InProcess,
    );
    let reads_of = |key: &str| reads.lock().unwrap().iter().filter(|k| *k == key).count();
    let m = send_invoice_01(&h);
    let pay = |id: &str| {
        deliver_event(
            &h,
            &m,
            id,
            "payment_intent.succeeded",
            payment_of("pi_1", 120000),
        )
    };
    // The first delivery also closes the link's session; the second is
    // what every later one does.
    pay("evt_1");
    let second = pay("evt_2");
    reads.lock().unwrap().clear();
    let third = pay("evt_3");
    assert_eq!(
        format!("{:?}", third.transitions),
        format!("{:?}", second.transitions)
    );
    assert_eq!(
        reads_of("invoice:inv_01"),
        1,
        "reads: {:?}",
        reads.lock().unwrap()
    );
    assert_eq!(host_view(&h)["status"], "PAID");
}
