//! One call's kv reads between two of its compare-and-swaps (or Stripe
//! requests) see one snapshot: a key is read from the store once there, and
//! a compare-and-swap or a request makes the next read go to the store.

use e2e_tests::*;
use host_runtime::ports::{EmailStore, HostStore, KvStore, OutgoingEmail, StoreResult};
use host_tools::offline_stripe::InProcess;
use std::sync::{Arc, Mutex};

/// The real store, counting the reads of each key.
struct Counted {
    inner: Arc<dyn HostStore>,
    reads: Mutex<Vec<String>>,
}

impl Counted {
    fn reads_of(&self, key: &str) -> usize {
        self.reads
            .lock()
            .unwrap()
            .iter()
            .filter(|k| *k == key)
            .count()
    }
}

impl KvStore for Counted {
    fn kv_get(&self, ns: &str, key: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>> {
        self.reads.lock().unwrap().push(key.to_string());
        self.inner.kv_get(ns, key, now_ms)
    }
    fn kv_set(&self, ns: &str, key: &str, value: &[u8], exp: Option<i64>) -> StoreResult<()> {
        self.inner.kv_set(ns, key, value, exp)
    }
    fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        self.inner.kv_delete(ns, key)
    }
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        exp: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.inner
            .kv_compare_and_swap(ns, key, expected, new, exp, now_ms)
    }
    fn kv_purge_expired(&self, now_ms: i64) -> StoreResult<()> {
        self.inner.kv_purge_expired(now_ms)
    }
}

impl EmailStore for Counted {
    fn outbox_insert(&self, email: &OutgoingEmail) -> StoreResult<bool> {
        self.inner.outbox_insert(email)
    }
    fn customer_has_address(&self, ns: &str, address: &str) -> StoreResult<bool> {
        self.inner.customer_has_address(ns, address)
    }
}

/// A redelivered payment (the hot path of a busy endpoint) reads the
/// invoice's record from the store once, however many of the plugin's
/// decisions look at it; the outcome is the first delivery's.
#[test]
fn a_redelivered_payment_reads_the_invoice_record_from_the_store_once() {
    let (h, store, _) = Harness::with_store(
        |inner| Counted {
            inner,
            reads: Mutex::default(),
        },
        InProcess,
    );
    let mut m = h.merchant.clone();
    m.auto_charge = false;
    h.records()
        .insert_draft(&serde_json::json!({"id": "inv_01"}), "inv_01")
        .unwrap();
    h.finalize(&m, &invoice());
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
    store.reads.lock().unwrap().clear();
    let third = pay("evt_3");
    assert_eq!(
        format!("{:?}", third.transitions),
        format!("{:?}", second.transitions)
    );
    assert_eq!(
        store.reads_of("invoice:inv_01"),
        1,
        "reads: {:?}",
        store.reads.lock().unwrap()
    );
    assert_eq!(host_view(&h)["status"], "PAID");
}
