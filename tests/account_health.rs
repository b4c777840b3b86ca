//! Connect account health through `serve`'s core and the emulator: when
//! Stripe restricts the merchant's account, auto-charge and dunning pause,
//! the merchant is emailed once with a fresh Account Link, and the pay link
//! says payment is unavailable without opening Checkout; when charges are
//! enabled again, what waited is collected, and no one is emailed.

use e2e_tests::{ACCOUNT, MERCHANT_EMAIL, Served, token_of};
use host_server::config::Flags;
use host_tools::demo::INVOICE_JSON;
use serde_json::Value;

fn restriction_emails(s: &Served) -> Vec<Value> {
    s.outbox()
        .into_iter()
        .filter(|e| {
            e["dedupeKey"]
                .as_str()
                .is_some_and(|k| k.starts_with("account-restricted:"))
        })
        .collect()
}

#[test]
fn a_restricted_account_pauses_collection_and_its_restoration_resumes_it() {
    let s = Served::notifying(Flags::default());
    s.customer_with_card("4242424242424242");

    s.stripe_test(
        &format!("/_test/accounts/{ACCOUNT}/restrict"),
        "past_due[]=external_account",
    );
    assert!(s.deliver().iter().all(|st| *st == 200));
    let emails = restriction_emails(&s);
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert_eq!(emails[0]["to"], MERCHANT_EMAIL);
    let text = emails[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("external_account"), "{text}");
    assert!(
        text.contains(&format!("/connect/onboarding/{ACCOUNT}")),
        "a fresh Account Link: {text}"
    );
    let (_, account) = s.call("GET", &format!("/accounts/{ACCOUNT}"), "");
    assert_eq!(account["restricted"], true, "{account}");

    // Stripe says so again (a redelivery, another update): still one email.
    s.stripe_test(&format!("/_test/accounts/{ACCOUNT}/restrict"), "");
    let last = s.emulator.events().last().cloned().unwrap();
    assert!(s.deliver().iter().all(|st| *st == 200));
    assert_eq!(s.deliver_one(&last), 200);
    assert_eq!(restriction_emails(&s).len(), 1);

    // An invoice sent now is not charged, and its link opens no Checkout.
    assert_eq!(s.call("POST", "/invoices", INVOICE_JSON).0, 201);
    let (status, sent) = s.call("POST", "/invoices/inv_01/finalize", "");
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["status"], "FINAL", "{sent}");
    assert_eq!(s.intents_of("inv_01").len(), 0);
    let token = token_of(&sent);
    let page = s.app.handle("GET", &format!("/pay/{token}"), &[], b"");
    assert_eq!(page.status, 503);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(html.contains("not available right now"), "{html}");
    assert!(s.emulator.objects("checkout.session").is_empty());
    assert_eq!(
        s.run_due_jobs(),
        0,
        "nothing runs while the account is restricted"
    );

    // Restored: what waited is collected at once, and no one is emailed.
    let before = s.outbox().len();
    s.stripe_test(&format!("/_test/accounts/{ACCOUNT}/activate"), "");
    assert!(s.deliver().iter().all(|st| *st == 200));
    let (_, account) = s.call("GET", &format!("/accounts/{ACCOUNT}"), "");
    assert_eq!(account["restricted"], false, "{account}");
    assert_eq!(s.run_due_jobs(), 1);
    let (_, paid) = s.call("GET", "/invoices/inv_01", "");
    assert_eq!(paid["status"], "PAID", "{paid}");
    assert_eq!(s.intents_of("inv_01").len(), 1);
    assert_eq!(
        s.outbox().len(),
        before,
        "restored: nothing more is emailed"
    );
    assert_eq!(
        s.app
            .handle("GET", &format!("/pay/{token}"), &[], b"")
            .status,
        200
    );
}

#[test]
fn a_retry_due_while_the_account_is_restricted_waits_for_its_restoration() {
    let s = Served::notifying(Flags::default());
    let pm = s.customer_with_card("4242424242424242");
    s.declines(&pm, "insufficient_funds", 1);
    assert_eq!(s.call("POST", "/invoices", INVOICE_JSON).0, 201);
    let (_, sent) = s.call("POST", "/invoices/inv_01/finalize", "");
    assert_eq!(sent["status"], "PAYMENT_FAILED", "{sent}");
    s.stripe_test(&format!("/_test/accounts/{ACCOUNT}/restrict"), "");
    assert!(s.deliver().iter().all(|st| *st == 200));
    s.clock.advance_ms(2 * 86_400_000);
    assert_eq!(s.run_due_jobs(), 1, "the retry wakes, and waits");
    assert_eq!(
        s.intents_of("inv_01").len(),
        1,
        "no charge while restricted"
    );
    s.stripe_test(&format!("/_test/accounts/{ACCOUNT}/activate"), "");
    assert!(s.deliver().iter().all(|st| *st == 200));
    assert_eq!(s.run_due_jobs(), 1);
    let (_, paid) = s.call("GET", "/invoices/inv_01", "");
    assert_eq!(paid["status"], "PAID", "{paid}");
    assert_eq!(s.intents_of("inv_01").len(), 2);
}
