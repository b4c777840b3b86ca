//! Dunning through `serve`'s core and the emulator, on their shared clock:
//! a soft-declined auto-charge is retried on the merchant's schedule (days
//! 1, 3, 5 and 7 by default), each retry a new attempt and a durable job;
//! paying by the link cancels what is left; a hard decline is never retried.

use e2e_tests::Served;
use host_server::config::Flags;
use serde_json::Value;

const DAY_MS: u64 = 86_400_000;

/// `/metrics`' count of retries and resumed collections waiting.
fn collections_queued(s: &Served) -> u64 {
    let r = s.app.handle("GET", "/metrics", &[], b"");
    let text = String::from_utf8_lossy(&r.body).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("stripe_plugin_collections_queued "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no collections_queued in {text}"))
}

/// The text of the customer's `n`th email.
fn customer_email(s: &Served, n: usize) -> String {
    let emails = s.outbox();
    let to_customer: Vec<&Value> = emails
        .iter()
        .filter(|e| e["to"] != "finance@merchant.example")
        .collect();
    to_customer[n]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn iso(ms: u64) -> String {
    host_runtime::transitions::rfc3339(ms)
}

#[test]
fn insufficient_funds_twice_is_collected_on_the_second_retry_and_told_once() {
    let s = Served::notifying(Flags::default());
    let t0 = s.clock.now_ms();
    let pm = s.customer_with_card("4242424242424242");
    s.declines(&pm, "insufficient_funds", 2);
    let sent = s.send_example();
    assert_eq!(sent["status"], "PAYMENT_FAILED", "{sent}");
    assert_eq!(sent["nextRetryAt"], iso(t0 + DAY_MS).as_str(), "{sent}");
    assert_eq!(sent["retriesLeft"], 4);
    let told = s.outbox().len();
    assert_eq!(
        told, 2,
        "the first failure emails the merchant and the customer"
    );
    let body = customer_email(&s, 0);
    assert!(body.contains("try your card again"), "{body}");

    // Nothing runs before its day.
    s.clock.advance_ms(DAY_MS - 60_000);
    assert_eq!(s.run_due_jobs(), 0);
    s.clock.advance_ms(60_000);
    assert_eq!(s.run_due_jobs(), 1, "the first retry");
    let after_first = s.view("inv_01");
    assert_eq!(after_first["status"], "PAYMENT_FAILED", "{after_first}");
    assert_eq!(after_first["nextRetryAt"], iso(t0 + 3 * DAY_MS).as_str());
    assert_eq!(after_first["retriesLeft"], 3);
    assert_eq!(
        s.outbox().len(),
        told,
        "a retry that fails, not the last, tells no one"
    );

    s.clock.advance_ms(2 * DAY_MS);
    assert_eq!(s.run_due_jobs(), 1, "the second retry");
    let paid = s.view("inv_01");
    assert_eq!(paid["status"], "PAID", "{paid}");
    assert!(paid.get("nextRetryAt").is_none(), "{paid}");
    assert_eq!(
        s.outbox().len(),
        told,
        "a retry that succeeds emails no one"
    );

    // Three attempts, each its own PaymentIntent and idempotency key.
    let intents = s.intents_of("inv_01");
    let attempts: Vec<&str> = intents
        .iter()
        .map(|pi| {
            pi["metadata"]["billing_stripe_plugin_attempt"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(intents.len(), 3, "{attempts:?}");
    let mut distinct = attempts.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{attempts:?}");
    assert_eq!(
        intents
            .iter()
            .filter(|pi| pi["status"] == "succeeded")
            .count(),
        1
    );

    // Nothing is left to run, however long it waits.
    s.clock.advance_ms(10 * DAY_MS);
    assert_eq!(s.run_due_jobs(), 0);
    assert_eq!(s.intents_of("inv_01").len(), 3);
    assert!(s.deliver().iter().all(|st| *st == 200));
    assert_eq!(s.view("inv_01")["status"], "PAID");
    assert_eq!(s.outbox().len(), told, "late webhooks email no one either");
}

#[test]
fn paying_by_the_link_before_a_retry_cancels_the_rest() {
    let s = Served::notifying(Flags::default());
    let pm = s.customer_with_card("4242424242424242");
    s.declines(&pm, "insufficient_funds", 5);
    let sent = s.send_example();
    assert_eq!(sent["status"], "PAYMENT_FAILED");
    assert_eq!(collections_queued(&s), 1);
    let session = sent["checkoutSessionId"]
        .as_str()
        .expect("a session")
        .to_string();
    s.stripe_test(
        &format!("/_test/checkout/sessions/{session}/complete"),
        "card=5555555555554444",
    );
    assert!(s.deliver().iter().all(|st| *st == 200));
    let paid = s.view("inv_01");
    assert_eq!(paid["status"], "PAID", "{paid}");
    assert!(paid.get("nextRetryAt").is_none(), "{paid}");
    assert_eq!(collections_queued(&s), 0, "the retries were dropped");
    let charged = s.intents_of("inv_01").len();
    for _ in 0..8 {
        s.clock.advance_ms(DAY_MS);
        s.run_due_jobs();
    }
    assert_eq!(
        s.intents_of("inv_01").len(),
        charged,
        "no retry after the invoice was paid"
    );
}

#[test]
fn a_hard_decline_is_never_retried_and_the_customer_is_asked_to_use_the_link() {
    let s = Served::notifying(Flags::default());
    s.customer_with_card("4000000000000341");
    let sent = s.send_example();
    assert_eq!(sent["status"], "PAYMENT_FAILED", "{sent}");
    assert!(sent.get("nextRetryAt").is_none(), "{sent}");
    let emails = s.outbox();
    assert_eq!(emails.len(), 2);
    let customer = customer_email(&s, 0);
    assert!(customer.contains("/pay/"), "{customer}");
    for _ in 0..8 {
        s.clock.advance_ms(DAY_MS);
        assert_eq!(s.run_due_jobs(), 0);
    }
    assert_eq!(s.intents_of("inv_01").len(), 1);
}

#[test]
fn the_last_retry_that_fails_tells_both_and_no_more_follow() {
    let s = Served::notifying(Flags {
        retry_days: Some(host_server::config::RetryDays(vec![1, 2])),
        ..Flags::default()
    });
    let pm = s.customer_with_card("4242424242424242");
    s.declines(&pm, "try_again_later", 10);
    s.send_example();
    assert_eq!(s.outbox().len(), 2);
    s.clock.advance_ms(DAY_MS);
    assert_eq!(s.run_due_jobs(), 1);
    assert_eq!(s.outbox().len(), 2, "retry 1 of 2 tells no one");
    s.clock.advance_ms(DAY_MS);
    assert_eq!(s.run_due_jobs(), 1);
    let emails = s.outbox();
    assert_eq!(emails.len(), 4, "the last retry tells both");
    let merchant = emails
        .iter()
        .filter(|e| e["to"] == "finance@merchant.example")
        .nth(1)
        .and_then(|e| e["text"].as_str())
        .unwrap_or_default();
    assert!(merchant.contains("last retry"), "{merchant}");
    let last = s.view("inv_01");
    assert!(last.get("nextRetryAt").is_none(), "{last}");
    s.clock.advance_ms(30 * DAY_MS);
    assert_eq!(s.run_due_jobs(), 0);
    assert_eq!(s.intents_of("inv_01").len(), 3);
}
