//! The customer's card page through `serve`'s core and the emulator: the
//! failure email carries a stable link per customer; its page lists what is
//! still to pay and offers "Replace your card", a Checkout Session in
//! `setup` mode; the card saved there becomes the default, and the invoice
//! whose payment failed, or whose retry waits, is charged to it at once. A
//! card the network reissues (`payment_method.automatically_updated`) stays
//! the default and is charged again.

use e2e_tests::{MERCHANT_EMAIL, Served, token_of};
use host_server::config::Flags;
use serde_json::Value;

const BASE: &str = "https://billing.example.com";

/// The card page's path, from the customer's failure email.
fn card_page_path(s: &Served) -> String {
    let emails = s.outbox();
    let text = emails
        .iter()
        .find(|e| e["to"] != MERCHANT_EMAIL)
        .and_then(|e| e["text"].as_str())
        .expect("the customer's failure email")
        .to_string();
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{BASE}/billing/")))
        .unwrap_or_else(|| panic!("no card page link in: {text}"));
    assert!(text.contains(&format!("{BASE}/pay/")), "{text}");
    url.trim_start_matches(BASE).to_string()
}

fn get(s: &Served, path: &str) -> (u16, String, Option<String>) {
    request(s, "GET", path)
}

/// A browser's `method` on a public path: status, body, `Location`.
fn request(s: &Served, method: &str, path: &str) -> (u16, String, Option<String>) {
    let form = [(
        "Content-Type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let r = s.app.handle(method, path, &form, b"");
    let location = r
        .headers
        .iter()
        .find(|(k, _)| k == "Location")
        .map(|(_, v)| v.clone());
    (
        r.status,
        String::from_utf8_lossy(&r.body).to_string(),
        location,
    )
}

/// Opens the card page, follows "Replace your card" and saves `card` on
/// Stripe's page; Stripe's events are delivered. The new card's id.
fn replace_card(s: &Served, page: &str, card: &str) -> String {
    let (status, _, location) = request(s, "POST", &format!("{page}/replace-card"));
    assert_eq!(status, 303);
    let location = location.expect("on to Checkout");
    let cs = location.rsplit('/').next().unwrap().to_string();
    let session = s.stripe("GET", &format!("/v1/checkout/sessions/{cs}"), "");
    assert_eq!(session["mode"], "setup", "{session}");
    s.stripe_test(
        &format!("/_test/checkout/sessions/{cs}/complete"),
        &format!("card={card}"),
    );
    assert!(s.deliver().iter().all(|st| *st == 200));
    let done = s.stripe("GET", &format!("/v1/checkout/sessions/{cs}"), "");
    let seti = done["setup_intent"].as_str().expect("a SetupIntent");
    let intent = s.stripe("GET", &format!("/v1/setup_intents/{seti}"), "");
    intent["payment_method"].as_str().unwrap().to_string()
}

fn default_card(s: &Served, cus: &str) -> Value {
    s.stripe("GET", &format!("/v1/customers/{cus}"), "")["invoice_settings"]
        ["default_payment_method"]
        .clone()
}

/// `card` is the default of Stripe customer `cus` and the platform's card on
/// file, and the next job charges it: invoice `inv_01`, declined once, paid.
fn default_and_charged_at_once(s: &Served, cus: &str, card: &str) {
    assert_eq!(default_card(s, cus), card, "the card is the default");
    let (_, customer) = s.call("GET", "/customers/c1", "");
    assert_eq!(customer["cardOnFile"], card, "{customer}");
    assert_eq!(s.run_due_jobs(), 1, "collected at once");
    assert_eq!(s.view("inv_01")["status"], "PAID", "{}", s.view("inv_01"));
    let intents = s.intents_of("inv_01");
    assert_eq!(intents.len(), 2);
    assert_eq!(intents[1]["payment_method"], card);
}

#[test]
fn a_failed_invoice_is_charged_to_the_card_saved_on_the_card_page() {
    let s = Served::notifying(Flags::default());
    let old = s.customer_with_card("4000000000000341");
    let sent = s.send_example();
    assert_eq!(sent["status"], "PAYMENT_FAILED", "{sent}");
    let page = card_page_path(&s);
    let cus = page.split('/').nth(2).unwrap().to_string();

    let (status, html, _) = get(&s, &page);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("INV-0001"), "{html}");
    assert!(html.contains("payment failed"), "{html}");
    assert!(
        html.contains("Pay invoice INV-0001"),
        "the invoice's pay link: {html}"
    );
    assert!(html.contains("Replace your card"), "{html}");

    // Another customer's id under this tag, or a tag changed by one digit.
    let mut forged = page.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(get(&s, &forged).0, 404);
    let replace_forged = format!("{forged}/replace-card");
    assert_eq!(request(&s, "POST", &replace_forged).0, 404);
    assert_eq!(get(&s, &page.replace(&cus, "cus_other")).0, 404);

    let new = replace_card(&s, &page, "4242424242424242");
    assert_ne!(new, old);
    default_and_charged_at_once(&s, &cus, &new);

    // Paid: the page lists nothing to pay, and a second save charges nothing.
    let (_, html, _) = get(&s, &page);
    assert!(!html.contains("INV-0001"), "{html}");
    s.clock.advance_ms(60_000);
    replace_card(&s, &page, "5555555555554444");
    assert_eq!(s.run_due_jobs(), 0);
    assert_eq!(s.intents_of("inv_01").len(), 2);
}

#[test]
fn a_waiting_retry_is_replaced_by_a_charge_to_the_new_card_now() {
    let s = Served::notifying(Flags::default());
    let old = s.customer_with_card("4242424242424242");
    s.declines(&old, "insufficient_funds", 5);
    let sent = s.send_example();
    assert_eq!(sent["status"], "PAYMENT_FAILED", "{sent}");
    assert!(sent["nextRetryAt"].is_string(), "a retry waits: {sent}");
    let page = card_page_path(&s);

    // Opening the page charges nothing.
    get(&s, &page);
    assert_eq!(s.intents_of("inv_01").len(), 1);

    let new = replace_card(&s, &page, "4242424242424242");
    assert_eq!(s.run_due_jobs(), 1);
    let paid = s.view("inv_01");
    assert_eq!(paid["status"], "PAID", "{paid}");
    assert!(paid["nextRetryAt"].is_null(), "{paid}");
    let intents = s.intents_of("inv_01");
    assert_eq!(intents.len(), 2);
    assert_eq!(intents[1]["payment_method"], new.as_str());

    // The old card's retry day comes: nothing more is charged.
    s.clock.advance_ms(8 * 86_400_000);
    s.run_due_jobs();
    assert_eq!(s.intents_of("inv_01").len(), 2);
}

#[test]
fn a_card_the_network_reissued_stays_the_default_and_pays_the_failed_invoice() {
    let s = Served::notifying(Flags::default());
    let card = s.customer_with_card("4000000000000341");
    let sent = s.send_example();
    assert_eq!(sent["status"], "PAYMENT_FAILED", "{sent}");
    let cus = s.call("GET", "/customers/c1", "").1["stripeCustomerId"]
        .as_str()
        .unwrap()
        .to_string();
    // Opening the pay link does not charge the declined card again.
    let token = token_of(&sent);
    s.open(&token);
    assert_eq!(s.intents_of("inv_01").len(), 1);

    s.stripe_test(
        &format!("/_test/payment_methods/{card}/automatically_update"),
        "",
    );
    assert!(s.deliver().iter().all(|st| *st == 200));
    default_and_charged_at_once(&s, &cus, &card);
}

#[test]
fn replacing_the_card_is_a_form_post_so_a_link_preview_opens_no_checkout() {
    let s = Served::notifying(Flags::default());
    s.customer_with_card("4000000000000341");
    s.send_example();
    let page = card_page_path(&s);
    let (_, html, _) = get(&s, &page);
    // The template escapes '/' in attributes, as HTML allows.
    let html = html.replace("&#x2f;", "/");
    let tag = page.rsplit('/').next().unwrap();
    let form = format!(r#"<form method="post" action="{tag}/replace-card">"#);
    assert!(html.contains(&form), "a form, not a link: {html}");

    let sessions = || s.emulator.objects("checkout.session").len();
    let before = sessions();
    let (status, _, location) = get(&s, &format!("{page}/replace-card"));
    assert!(location.is_none(), "a GET goes nowhere ({status})");
    assert_eq!(sessions(), before, "a GET opens no Checkout Session");
    let (status, _, location) = request(&s, "POST", &format!("{page}/replace-card"));
    assert_eq!(status, 303);
    assert!(location.is_some_and(|l| l.contains("/checkout/")));
    assert_eq!(sessions(), before + 1);
}

#[test]
fn a_new_card_declined_for_good_ends_the_waiting_retries() {
    let s = Served::notifying(Flags::default());
    let old = s.customer_with_card("4242424242424242");
    s.declines(&old, "insufficient_funds", 5);
    let sent = s.send_example();
    assert!(sent["nextRetryAt"].is_string(), "a retry waits: {sent}");
    let page = card_page_path(&s);
    // A card that sets up, then declines every charge (generic_decline).
    replace_card(&s, &page, "4000000000000341");

    assert_eq!(s.run_due_jobs(), 1, "the new card is tried at once");
    let failed = s.view("inv_01");
    assert_eq!(failed["status"], "PAYMENT_FAILED", "{failed}");
    assert!(
        failed["nextRetryAt"].is_null(),
        "a hard decline ends the retries: {failed}"
    );
    // The old retry's wake-up is still queued (only paying or stopping
    // drops an invoice's wake-ups); on its day it charges and tells no one.
    let told = s.outbox().len();
    s.clock.advance_ms(8 * 86_400_000);
    s.run_due_jobs();
    assert_eq!(s.intents_of("inv_01").len(), 2);
    assert_eq!(s.outbox().len(), told);
    assert!(s.view("inv_01")["nextRetryAt"].is_null());
}
