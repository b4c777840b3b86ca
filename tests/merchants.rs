//! Many merchants on one host, through `serve` over loopback: merchants are
//! data (`PUT /merchants/{m}`), every platform route also exists under
//! `/merchants/{m}/…`, one Connect webhook endpoint routes each event by its
//! `account`, and a pay link opens only its own merchant's invoice.

use host_server::config::Flags;
use host_tools::demo::{CUSTOMER_JSON, INVOICE_JSON, Offline};
use serde_json::{Value, json};
use std::time::Duration;

const ALPHA: &str = "acct_AlphaIsolation";
const BETA: &str = "acct_BetaIsolation";

fn offline() -> Offline {
    Offline::start(&Flags::default()).expect("offline host")
}

/// A merchant whose Stripe account is already connected to the platform.
pub fn connected_merchant(off: &Offline, id: &str, account: &str, auto_charge: bool) {
    let (status, _) = off
        .stripe(
            "POST",
            &format!("/_test/accounts/{account}/connect"),
            Some(&format!("business_name={id}+Ltd")),
        )
        .unwrap();
    assert_eq!(status, 200);
    let settings = json!({
        "accountId": account, "autoCharge": auto_charge, "showPaymentLink": true,
        "stripeReceipts": false, "notificationEmail": format!("finance@{id}.example"),
        "livemode": false, "displayName": format!("{id} Ltd"),
    });
    let (status, body) = off
        .host(
            "PUT",
            &format!("/merchants/{id}"),
            Some(&settings.to_string()),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, got) = off.host("GET", &format!("/merchants/{id}"), None).unwrap();
    assert_eq!(got["accountId"], account, "{got}");
    assert_eq!(got["autoCharge"], auto_charge, "{got}");
}

/// The platform's customer `c1` of merchant `m`, linked to a new Stripe
/// customer of `account` whose default card is `number`.
pub fn customer_with_card(off: &Offline, m: &str, account: &str, number: &str) {
    let (_, cus) = off
        .stripe_api_as(account, "POST", "/v1/customers", "name=John+Doe")
        .unwrap();
    let cus = cus["id"].as_str().unwrap().to_string();
    let mut doc: Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
    doc["externalIds"][1]["value"] = cus.as_str().into();
    let (status, body) = off
        .host(
            "PUT",
            &format!("/merchants/{m}/customers/c1"),
            Some(&doc.to_string()),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let form = format!("type=card&card[number]={number}");
    let (_, pm) = off
        .stripe_api_as(account, "POST", "/v1/payment_methods", &form)
        .unwrap();
    let pm = pm["id"].as_str().unwrap();
    let attach = format!("/v1/payment_methods/{pm}/attach");
    off.stripe_api_as(account, "POST", &attach, &format!("customer={cus}"))
        .unwrap();
    let default = format!("invoice_settings[default_payment_method]={pm}");
    off.stripe_api_as(account, "POST", &format!("/v1/customers/{cus}"), &default)
        .unwrap();
}

pub fn send(off: &Offline, m: &str) -> Value {
    let (status, body) = off
        .host(
            "POST",
            &format!("/merchants/{m}/invoices"),
            Some(INVOICE_JSON),
        )
        .unwrap();
    assert_eq!(
        status, 201,
        "the same invoice id is free in each merchant: {body}"
    );
    let (status, inv) = off
        .host(
            "POST",
            &format!("/merchants/{m}/invoices/inv_01/finalize"),
            None,
        )
        .unwrap();
    assert_eq!(status, 200, "{inv}");
    inv
}

fn invoice(off: &Offline, m: &str) -> Value {
    off.host("GET", &format!("/merchants/{m}/invoices/inv_01"), None)
        .unwrap()
        .1
}

/// The path of a pay link, and its token.
fn token_of(link: &str) -> &str {
    link.rsplit('/').next().unwrap()
}

#[test]
fn two_merchants_on_two_connected_accounts_share_nothing() {
    let off = offline();
    connected_merchant(&off, "alpha", ALPHA, true);
    connected_merchant(&off, "beta", BETA, false);
    // Alpha charges a declining card on file: both alpha and its customer
    // are emailed. Beta sends a link, which its customer pays.
    customer_with_card(&off, "alpha", ALPHA, "4000000000000341");
    let alpha = send(&off, "alpha");
    let beta = send(&off, "beta");

    let alpha_link = alpha["paymentLink"].as_str().expect("alpha's link");
    let beta_link = beta["paymentLink"].as_str().expect("beta's link");
    let base = &off.server.base_url;
    assert!(
        alpha_link.starts_with(&format!("{base}/merchants/alpha/pay/")),
        "{alpha_link}"
    );
    assert!(
        beta_link.starts_with(&format!("{base}/merchants/beta/pay/")),
        "{beta_link}"
    );

    // A token opens its own merchant's invoice only, wherever it is sent.
    for path in [
        format!("/merchants/beta/pay/{}", token_of(alpha_link)),
        format!("/merchants/alpha/pay/{}", token_of(beta_link)),
        format!("/pay/{}", token_of(alpha_link)),
        format!("/merchants/nobody/pay/{}", token_of(alpha_link)),
    ] {
        let (status, page) = off.host("GET", &path, None).unwrap();
        assert_eq!(status, 404, "{path}: {page}");
    }

    let session = beta["checkoutSessionId"].as_str().unwrap();
    assert_eq!(off.pay_session(session, "4242424242424242").unwrap(), 200);
    wait_for(&off, "beta", "PAID");
    let alpha = invoice(&off, "alpha");
    assert_ne!(
        alpha["status"], "PAID",
        "beta's payment moved only beta's invoice: {alpha}"
    );
    assert!(
        alpha["lastFailure"].is_object(),
        "alpha's charge declined: {alpha}"
    );
    // The unscoped routes are the default merchant's, which has no inv_01.
    let (status, _) = off.host("GET", "/invoices/inv_01", None).unwrap();
    assert_eq!(status, 404);

    // Emails: alpha's failure went to alpha and its customer, under alpha's account only.
    let outbox = |m: &str| {
        off.host("GET", &format!("/merchants/{m}/outbox"), None)
            .unwrap()
            .1
    };
    let alpha_mail = outbox("alpha")["data"].as_array().unwrap().clone();
    assert!(!alpha_mail.is_empty(), "alpha's decline was emailed");
    for mail in &alpha_mail {
        assert_eq!(mail["merchant"], "alpha", "{mail}");
        assert!(!mail.to_string().contains("beta"), "{mail}");
    }
    assert!(
        alpha_mail.iter().any(
            |m| m["to"].as_str().unwrap().contains("finance@alpha.example")
                || m["cc"].as_str().unwrap().contains("finance@alpha.example")
        ),
        "{alpha_mail:?}"
    );
    for mail in outbox("beta")["data"].as_array().unwrap() {
        assert_eq!(mail["merchant"], "beta", "{mail}");
        assert!(!mail.to_string().contains("alpha"), "{mail}");
    }

    // kv: each merchant's entries sit in its own namespace, and neither's
    // Stripe objects appear in the other's.
    let db = &off.app.db;
    let rows = db.kv_rows().unwrap();
    let text =
        |(_, k, v): &(String, String, Vec<u8>)| format!("{k} {}", String::from_utf8_lossy(v));
    let alpha_session = alpha["checkoutSessionId"].as_str().unwrap();
    assert!(rows.iter().any(|r| r.0 == "alpha") && rows.iter().any(|r| r.0 == "beta"));
    for row in &rows {
        if row.0 == "beta" {
            assert!(!text(row).contains(alpha_session), "{}", text(row));
        }
        if row.0 == "alpha" {
            assert!(!text(row).contains(session), "{}", text(row));
        }
    }
}

fn wait_for(off: &Offline, m: &str, status: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let inv = invoice(off, m);
        if inv["status"] == status {
            return inv;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{m}'s inv_01 is {} not {status}",
            inv["status"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_connect_endpoint_routes_events_by_account_and_ignores_unknown_accounts() {
    let off = offline();
    // Onboarding creates gamma's connected account and stores it on gamma.
    let settings = json!({"autoCharge": false, "notificationEmail": "finance@gamma.example",
        "displayName": "Gamma GmbH"});
    let (status, body) = off
        .host("PUT", "/merchants/gamma", Some(&settings.to_string()))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let request = json!({"email": "owner@gamma.example", "country": "DE"});
    let (status, link) = off
        .host(
            "POST",
            "/merchants/gamma/onboarding",
            Some(&request.to_string()),
        )
        .unwrap();
    assert_eq!(status, 200, "{link}");
    let account = link["accountId"]
        .as_str()
        .expect("a connected account")
        .to_string();
    assert!(link["url"].as_str().unwrap().starts_with("http"), "{link}");
    let (_, gamma) = off.host("GET", "/merchants/gamma", None).unwrap();
    assert_eq!(gamma["accountId"], account.as_str(), "{gamma}");
    assert_eq!(gamma["chargesEnabled"], false, "{gamma}");

    // Onboarding finished: Stripe sends account.updated for gamma's account
    // to the platform's one Connect endpoint, which routes it to gamma.
    let (status, _) = off
        .stripe(
            "POST",
            &format!("/_test/accounts/{account}/activate"),
            Some(""),
        )
        .unwrap();
    assert_eq!(status, 200);
    let start = std::time::Instant::now();
    while off.host("GET", "/merchants/gamma", None).unwrap().1["chargesEnabled"] != true {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "account.updated reached gamma"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // An event of an account that belongs to no merchant: 2xx, ignored.
    let stranger = json!({"id": "evt_stranger", "object": "event", "type": "account.updated",
        "account": "acct_nobody", "livemode": false, "created": 1,
        "data": {"object": {"id": "acct_nobody", "object": "account", "charges_enabled": true}}});
    let (status, body) = off.post_webhook(stranger.to_string().as_bytes()).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reason"],
        "account acct_nobody belongs to no merchant; ignored"
    );
    // ...but only once it is signed: a forged one is refused as any other.
    let (status, _) = off
        .host("POST", "/webhooks/stripe", Some(&stranger.to_string()))
        .unwrap();
    assert_eq!(status, 400);
}

#[test]
fn merchant_settings_are_checked_and_unknown_merchants_are_404() {
    let off = offline();
    let (status, body) = off
        .host("PUT", "/merchants/delta", Some(r#"{"autoCharge": "yes"}"#))
        .unwrap();
    assert_eq!(status, 400, "{body}");
    let (status, body) = off
        .host("PUT", "/merchants/delta", Some(r#"{"autoCharg": true}"#))
        .unwrap();
    assert_eq!(
        status, 400,
        "an unknown setting is an error, not ignored: {body}"
    );
    for path in [
        "/merchants/delta",
        "/merchants/delta/invoices/inv_01",
        "/merchants/delta/outbox",
    ] {
        let (status, _) = off.host("GET", path, None).unwrap();
        assert_eq!(status, 404, "{path}");
    }
    // Two merchants cannot share a connected account.
    let a = json!({"accountId": "acct_shared"}).to_string();
    assert_eq!(off.host("PUT", "/merchants/one", Some(&a)).unwrap().0, 200);
    let (status, body) = off.host("PUT", "/merchants/two", Some(&a)).unwrap();
    assert_eq!(status, 409, "{body}");
}

/// Alpha and beta on their connected accounts, webhooks held (none reaches
/// the host), and each of `payers` has sent an invoice its customer paid.
fn paid_while_webhooks_are_held(payers: &[&str]) -> Offline {
    let off = offline();
    connected_merchant(&off, "alpha", ALPHA, false);
    connected_merchant(&off, "beta", BETA, false);
    crate::end_to_end::hold_webhooks(&off);
    for m in payers {
        let inv = send(&off, m);
        let session = inv["checkoutSessionId"].as_str().unwrap();
        assert_eq!(off.pay_session(session, "4242424242424242").unwrap(), 200);
    }
    off
}

/// The catch-up sync runs merchant by merchant. A connected account whose
/// Stripe calls keep failing (500s on listing its events, more than the
/// plugin's own retries) does not hold up the other merchants' sync; its own
/// is queued, and the queue catches it up once Stripe answers again.
#[test]
fn a_sync_that_fails_for_one_merchant_is_queued_and_the_others_still_sync() {
    let off = paid_while_webhooks_are_held(&["alpha", "beta"]);
    let fault = format!("path=/v1/events&method=GET&fault=500&account={ALPHA}&times=3");
    let (status, _) = off.stripe("POST", "/_test/faults", Some(&fault)).unwrap();
    assert_eq!(status, 200);

    let synced = off.app.sync();
    assert!(
        synced.is_ok(),
        "one merchant's failure is not the sync's: {synced:?}"
    );
    assert_eq!(invoice(&off, "beta")["status"], "PAID", "beta was synced");
    assert_eq!(
        invoice(&off, "alpha")["status"],
        "FINAL",
        "alpha's sync failed"
    );

    let start = std::time::Instant::now();
    while invoice(&off, "alpha")["status"] != "PAID" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the queue caught alpha up"
        );
        off.app.run_next_job().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !off.app.run_next_job().unwrap(),
        "the job is gone once done"
    );
}

/// Every worker's timer asks for the periodic sync; each merchant's is
/// queued once a period, however many ask and whenever in the period they
/// do, and run once by whichever worker is free.
#[test]
fn a_periodic_sync_is_one_job_per_merchant_whichever_worker_asks() {
    let off = paid_while_webhooks_are_held(&["alpha"]);

    // Four workers' timers fire in the same period.
    let period = Duration::from_secs(300);
    for _ in 0..4 {
        off.app.queue_syncs(period).unwrap();
    }
    let mut runs = 0;
    while off.app.run_next_job().unwrap() {
        runs += 1;
    }
    // Later in the period (the jobs done and gone), more workers' timers fire.
    for _ in 0..4 {
        off.app.queue_syncs(period).unwrap();
    }
    assert!(
        !off.app.run_next_job().unwrap(),
        "this period's syncs are done"
    );
    let connected = ["default", "alpha", "beta"].len();
    assert_eq!(runs, connected, "one sync per connected merchant");
    assert_eq!(
        invoice(&off, "alpha")["status"],
        "PAID",
        "the sync caught alpha up"
    );
}

/// Security review S5: a finalize queued for merchant alpha on its account
/// never runs once alpha lost that account: not on the platform's account
/// (no account at all), nor on another account alpha was given meanwhile.
/// The job ends as a dead letter, and nothing reaches Stripe.
#[test]
fn a_queued_job_runs_only_on_the_account_it_was_queued_for() {
    for (case, later) in [
        ("no account", json!({})),
        ("another account", json!({"accountId": "acct_AlphaNew"})),
    ] {
        let off = offline();
        connected_merchant(&off, "alpha", ALPHA, false);
        off.stripe(
            "POST",
            "/_test/accounts/acct_AlphaNew/connect",
            Some("business_name=New"),
        )
        .unwrap();
        let fault = format!(
            "path=/v1/checkout/sessions&method=POST&fault=rate_limit&account={ALPHA}&times=5"
        );
        assert_eq!(
            off.stripe("POST", "/_test/faults", Some(&fault)).unwrap().0,
            200
        );
        let (status, _) = off
            .host("POST", "/merchants/alpha/invoices", Some(INVOICE_JSON))
            .unwrap();
        assert_eq!(status, 201);
        let (status, body) = off
            .host("POST", "/merchants/alpha/invoices/inv_01/finalize", None)
            .unwrap();
        assert_eq!(status, 503, "{case}: {body}");
        assert_eq!(body["queued"], true, "{case}: {body}");
        let (status, _) = off
            .host("PUT", "/merchants/alpha", Some(&later.to_string()))
            .unwrap();
        assert_eq!(status, 200);
        off.stripe("POST", "/_test/faults/heal", Some("")).unwrap();
        off.exchanges();
        // The job is due after Stripe's Retry-After; run what is due until it is gone.
        let start = std::time::Instant::now();
        let dead = loop {
            off.app.run_next_job().unwrap();
            let (_, dead) = off
                .host("GET", "/merchants/alpha/dead-letters", None)
                .unwrap();
            let (_, inv) = off
                .host("GET", "/merchants/alpha/invoices/inv_01", None)
                .unwrap();
            if dead["data"].as_array().is_some_and(|d| !d.is_empty()) || inv["status"] != "DRAFT" {
                break dead;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{case}: the job never ran"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            off.exchanges().is_empty(),
            "{case}: the queued finalize reached Stripe"
        );
        assert_eq!(
            dead["data"].as_array().map(Vec::len),
            Some(1),
            "{case}: {dead}"
        );
    }
}

/// The merchant `m`'s emails, as the platform reads them.
fn outbox_of(off: &Offline, m: &str) -> Vec<Value> {
    let (status, outbox) = off
        .host("GET", &format!("/merchants/{m}/outbox"), None)
        .unwrap();
    assert_eq!(status, 200, "{outbox}");
    outbox["data"].as_array().cloned().unwrap_or_default()
}

/// Security review S6 (a): the plugin's records, emails and keys belong to
/// a merchant, not to an account. A new merchant with no account yet shares
/// nothing with the default merchant running on the platform's own account.
#[test]
fn a_merchant_without_an_account_sees_nothing_of_the_platform_accounts_merchant() {
    let flags = Flags {
        account: Some(String::new()),
        ..Flags::default()
    };
    let off = Offline::start(&flags).unwrap();
    let mut doc: Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
    doc["externalIds"] = json!([]);
    let (status, body) = off
        .host("PUT", "/customers/c1", Some(&doc.to_string()))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    off.send_invoice(json!({})).unwrap();
    off.save_default_card("c1", "4000000000000341").unwrap();
    let (_, inv) = off
        .send_invoice(json!({"id": "inv_02", "invoiceNumber": "INV-0002"}))
        .unwrap();
    assert_eq!(inv["status"], "PAYMENT_FAILED", "{inv}");
    assert!(!outbox_of(&off, "default").is_empty());
    let (status, _) = off.host("PUT", "/merchants/newbie", Some("{}")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(outbox_of(&off, "newbie"), Vec::<Value>::new());
}

/// Security review S6 (b): an account moved from one merchant to another
/// hands over nothing: not the first merchant's emails, nor its pay links.
#[test]
fn an_account_moved_to_another_merchant_hands_over_nothing() {
    let off = offline();
    connected_merchant(&off, "alpha", ALPHA, true);
    customer_with_card(&off, "alpha", ALPHA, "4000000000000341");
    let inv = send_declined(&off, "alpha");
    let link = inv["paymentLink"].as_str().expect("a pay link").to_string();
    assert!(!outbox_of(&off, "alpha").is_empty());
    off.stripe(
        "POST",
        "/_test/accounts/acct_AlphaTwo/connect",
        Some("business_name=Two"),
    )
    .unwrap();
    let moved = json!({"accountId": "acct_AlphaTwo"}).to_string();
    assert_eq!(
        off.host("PUT", "/merchants/alpha", Some(&moved)).unwrap().0,
        200
    );
    let taken = json!({"accountId": ALPHA}).to_string();
    assert_eq!(
        off.host("PUT", "/merchants/gamma", Some(&taken)).unwrap().0,
        200
    );
    assert_eq!(outbox_of(&off, "gamma"), Vec::<Value>::new());
    let token = link.rsplit('/').next().unwrap();
    let (status, page) = off
        .host("GET", &format!("/merchants/gamma/pay/{token}"), None)
        .unwrap();
    assert_eq!(status, 404, "{page}");
}

/// Merchant `m` sends inv_01 to a customer whose card is declined.
fn send_declined(off: &Offline, m: &str) -> Value {
    let (status, _) = off
        .host(
            "POST",
            &format!("/merchants/{m}/invoices"),
            Some(INVOICE_JSON),
        )
        .unwrap();
    assert_eq!(status, 201);
    let (_, inv) = off
        .host(
            "POST",
            &format!("/merchants/{m}/invoices/inv_01/finalize"),
            None,
        )
        .unwrap();
    assert_eq!(inv["status"], "PAYMENT_FAILED", "{inv}");
    inv
}

/// Security review S18: what Stripe said of a connected account is its
/// merchant's. Another merchant can neither read it nor, through its own
/// transitions, change it.
#[test]
fn a_merchant_reads_and_writes_only_its_own_accounts_state() {
    let off = offline();
    connected_merchant(&off, "alpha", ALPHA, false);
    connected_merchant(&off, "beta", BETA, false);
    let (status, _) = off
        .stripe(
            "POST",
            &format!("/_test/accounts/{ALPHA}/activate"),
            Some(""),
        )
        .unwrap();
    assert_eq!(status, 200);
    let start = std::time::Instant::now();
    while off.host("GET", "/merchants/alpha", None).unwrap().1["chargesEnabled"] != true {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "account.updated reached alpha"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let own = format!("/merchants/alpha/accounts/{ALPHA}");
    let theirs = format!("/merchants/beta/accounts/{ALPHA}");
    assert_eq!(off.host("GET", &own, None).unwrap().0, 200);
    assert_eq!(off.host("GET", &theirs, None).unwrap().0, 404);
    let forged = host_runtime::bindings::Transition::AccountDisconnected(ALPHA.into());
    host_server::state::Records::new(&off.app.db, "beta", 0)
        .apply(&[forged])
        .unwrap();
    let (_, alpha) = off.host("GET", "/merchants/alpha", None).unwrap();
    assert_eq!(
        alpha["chargesEnabled"], true,
        "beta's transition changed alpha's account: {alpha}"
    );
}
