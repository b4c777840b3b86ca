//! Refunds started by the platform, through `serve`'s core and the emulator:
//! `POST /invoices/{id}/refunds` refunds from the invoice's payments, once
//! per refund id (a timeout retried gives one refund); too much, or a
//! dispute open, is a 422 before any request; a failed refund is reconciled.

use e2e_tests::{INVOICE_KEY, Served};
use host_server::config::Flags;
use host_tools::offline_stripe::InProcess;
use serde_json::{Value, json};
use std::sync::Arc;
use stripe_emulator::faults::{Fault, Rule, When};

fn served() -> Served {
    Served::start(Flags::default(), |emu| Arc::new(InProcess(emu.clone())))
}

/// The example invoice `id`, sent and paid at once by the card on file.
fn paid(s: &Served, id: &str) -> Value {
    s.send(id);
    let (_, view) = s.call("GET", &format!("/invoices/{id}"), "");
    assert_eq!(view["status"], "PAID", "{view}");
    view
}

fn refund(s: &Served, id: &str, refund_id: &str, amount: &str) -> (u16, Value) {
    let body = json!({"refundId": refund_id, "amount": amount, "reason": "requested_by_customer"});
    s.call(
        "POST",
        &format!("/invoices/{id}/refunds"),
        &body.to_string(),
    )
}

fn refunds_of(s: &Served, refund_id: &str) -> Vec<Value> {
    s.emulator
        .objects("refund")
        .into_iter()
        .filter(|r| r["metadata"]["billing_stripe_plugin_refund"] == refund_id)
        .collect()
}

#[test]
fn a_refund_is_made_once_per_id_and_never_more_than_was_paid() {
    let s = served();
    s.customer_with_card("4242424242424242");
    let before = paid(&s, "inv_01");

    let (status, view) = refund(&s, "inv_01", "r1", "200.00");
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "PARTIALLY_REFUNDED", "{view}");
    assert_eq!(view["amountRefunded"], "200.00");
    assert!(view["statusRevision"].as_u64() > before["statusRevision"].as_u64());
    let made = refunds_of(&s, "r1");
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["metadata"][INVOICE_KEY], "inv_01");
    assert_eq!(made[0]["reason"], "requested_by_customer");

    // The same refund again: nothing more.
    assert_eq!(refund(&s, "inv_01", "r1", "200.00").0, 200);
    assert_eq!(refunds_of(&s, "r1").len(), 1);
    // Another amount under the same id, or more than is left: refused first.
    let (status, err) = refund(&s, "inv_01", "r1", "300.00");
    assert_eq!(status, 422, "{err}");
    let refunds = s.emulator.objects("refund").len();
    let (status, err) = refund(&s, "inv_01", "r2", "1000.01");
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("more than is left"),
        "{err}"
    );
    assert_eq!(
        s.emulator.objects("refund").len(),
        refunds,
        "no request was sent"
    );

    // Stripe makes the refund but its answer is lost: the retry gets it back.
    s.emulator.inject(Rule {
        method: Some("POST".into()),
        account: None,
        path: "/v1/refunds".into(),
        fault: Fault::Timeout,
        when: When::AfterWork,
        times: 10,
    });
    let (status, _) = refund(&s, "inv_01", "r3", "100.00");
    assert!(
        status >= 500,
        "answers lost on every try are retryable: {status}"
    );
    assert_eq!(refunds_of(&s, "r3").len(), 1, "Stripe made it, once");
    s.emulator.heal();
    let (status, view) = refund(&s, "inv_01", "r3", "100.00");
    assert_eq!(status, 200, "{view}");
    assert_eq!(refunds_of(&s, "r3").len(), 1, "one refund, not two");
    assert_eq!(view["amountRefunded"], "300.00", "{view}");

    // The bank fails refund r1: Stripe's events put the money back.
    let r1 = refunds_of(&s, "r1")[0]["id"].as_str().unwrap().to_string();
    s.stripe_test(&format!("/_test/refunds/{r1}/fail"), "");
    assert!(s.deliver().iter().all(|st| *st == 200));
    let (_, view) = s.call("GET", "/invoices/inv_01", "");
    assert_eq!(view["amountRefunded"], "100.00", "{view}");
    assert_eq!(view["status"], "PARTIALLY_REFUNDED");

    // The rest: refunded in full.
    let (status, view) = refund(&s, "inv_01", "r4", "1100.00");
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "REFUNDED", "{view}");
}

#[test]
fn a_refund_while_a_dispute_is_open_is_refused() {
    let s = served();
    s.customer_with_card("4242424242424242");
    let view = paid(&s, "inv_01");
    let pi = view["payments"][0]["stripeRef"]
        .as_str()
        .unwrap()
        .to_string();
    s.stripe_test("/_test/disputes", &format!("payment_intent={pi}"));
    assert!(s.deliver().iter().all(|st| *st == 200));
    let (status, err) = refund(&s, "inv_01", "r1", "100.00");
    assert_eq!(status, 422, "{err}");
    assert!(s.emulator.objects("refund").is_empty());
    let (status, err) = refund(&s, "inv_missing", "r1", "100.00");
    assert_eq!(status, 404, "{err}");
    let bad = json!({"refundId": "r1", "amount": "1.00", "reason": "because"}).to_string();
    assert_eq!(s.call("POST", "/invoices/inv_01/refunds", &bad).0, 400);
}

/// Found by the generated histories (seed 904): Stripe keeps an idempotency
/// key 24 hours, so the same refund asked again a day later made a second
/// refund. The payment's refunds are now looked through first.
#[test]
fn the_same_refund_asked_again_a_day_later_refunds_nothing_more() {
    let s = served();
    s.customer_with_card("4242424242424242");
    paid(&s, "inv_01");
    assert_eq!(refund(&s, "inv_01", "r1", "300.00").0, 200);
    s.clock.advance_ms(25 * 3_600_000);
    let (status, view) = refund(&s, "inv_01", "r1", "300.00");
    assert_eq!(status, 200, "{view}");
    assert_eq!(refunds_of(&s, "r1").len(), 1, "one refund, not two");
    assert_eq!(view["amountRefunded"], "300.00", "{view}");
}
