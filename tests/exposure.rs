//! What `serve` lets the internet do (issue 19, section 1), through its two
//! listeners over loopback: the public one answers only Stripe's webhooks,
//! the pay pages and `/healthz`; the platform one asks every request for a
//! bearer token, the right `Host` and a JSON body, before anything runs.

use host_server::config::Flags;
use host_tools::demo::{INVOICE_JSON, Offline};
use serde_json::{Value, json};

fn offline() -> Offline {
    Offline::start(&Flags::default()).expect("offline host")
}

/// Every platform route, with a body that would change something.
fn platform_routes() -> Vec<(&'static str, String, Option<String>)> {
    let mut doc: Value = serde_json::from_str(INVOICE_JSON).unwrap();
    doc["id"] = "inv_evil".into();
    let merchant = json!({"accountId": "acct_evil", "autoCharge": true, "showPaymentLink": true,
        "stripeReceipts": false, "notificationEmail": "evil@example.com", "livemode": true});
    let reopen = json!({"change": "OPEN", "amountDue": "0.01"}).to_string();
    let mut routes: Vec<(&str, String, Option<String>)> = vec![
        ("PUT", "/merchants/evil".into(), Some(merchant.to_string())),
        (
            "PUT",
            "/merchants/default".into(),
            Some(merchant.to_string()),
        ),
        ("GET", "/merchants/default".into(), None),
        (
            "PUT",
            "/customers/c1".into(),
            Some(json!({"name": "Eve"}).to_string()),
        ),
        ("GET", "/customers/c1".into(), None),
        ("POST", "/invoices".into(), Some(doc.to_string())),
        ("POST", "/invoices/inv_01/finalize".into(), None),
        ("PATCH", "/invoices/inv_01".into(), Some(reopen.clone())),
        ("GET", "/invoices/inv_01".into(), None),
        ("POST", "/onboarding".into(), Some("{}".into())),
        ("GET", "/accounts/acct_DemoMerchant".into(), None),
        ("GET", "/outbox".into(), None),
        ("GET", "/dead-letters".into(), None),
        ("POST", "/dead-letters/1/retry".into(), None),
        ("GET", "/metrics".into(), None),
    ];
    for (m, p, b) in routes.clone() {
        if p.starts_with("/invoices") || p.starts_with("/customers") || p == "/outbox" {
            routes.push((m, format!("/merchants/default{p}"), b));
        }
    }
    routes
}

/// What the platform sees of the invoice, the merchants and Stripe: none of
/// it may change under a refused call.
fn snapshot(off: &Offline) -> Value {
    let (_, invoice) = off.host("GET", "/invoices/inv_01", None).unwrap();
    let (_, evil) = off.host("GET", "/merchants/evil", None).unwrap();
    let (_, default) = off.host("GET", "/merchants/default", None).unwrap();
    let (_, drafts) = off.host("GET", "/invoices/inv_evil", None).unwrap();
    json!({"invoice": invoice, "evil": evil, "default": default, "draft": drafts})
}

#[test]
fn the_public_listener_serves_no_platform_route() {
    let off = offline();
    off.send_invoice(json!({})).unwrap();
    let before = snapshot(&off);
    off.exchanges();
    for (method, path, body) in platform_routes() {
        let url = format!("{}{path}", off.server.base_url);
        let (status, reply) = off.raw(method, &url, body.as_deref(), &[]).unwrap();
        assert_eq!(
            status, 404,
            "{method} {path} on the public listener: {reply}"
        );
    }
    assert_eq!(snapshot(&off), before);
    assert!(off.exchanges().is_empty(), "a refused call reached Stripe");
}

#[test]
fn every_platform_route_wants_a_valid_token_and_changes_nothing_without_one() {
    let off = offline();
    off.send_invoice(json!({})).unwrap();
    let before = snapshot(&off);
    off.exchanges();
    let wrong = format!("Bearer {}x", off.token);
    let revoked = off.app.tokens().create(None, "old", 0).unwrap();
    assert!(off.app.tokens().revoke(&revoked.id, 1).unwrap());
    let revoked = format!("Bearer {}", revoked.token);
    let refused: &[&[(&str, &str)]] = &[
        &[],
        &[("Authorization", &wrong)],
        &[("Authorization", "Bearer ")],
        &[("Authorization", &revoked)],
        &[("Authorization", &format!("Basic {}", off.token))],
    ];
    for (method, path, body) in platform_routes() {
        let url = format!("{}{path}", off.admin.base_url);
        for headers in refused {
            let (status, reply) = off.raw(method, &url, body.as_deref(), headers).unwrap();
            assert_eq!(status, 401, "{method} {path} with {headers:?}: {reply}");
        }
    }
    assert_eq!(snapshot(&off), before);
    assert!(off.exchanges().is_empty(), "a refused call reached Stripe");
    let (_, metrics) = off.host("GET", "/metrics", None).unwrap();
    let metrics = metrics.as_str().unwrap_or_default();
    let expected = platform_routes().len() * refused.len();
    assert!(
        metrics.contains(&format!(
            "stripe_plugin_refused_requests_total{{listener=\"platform\",reason=\"unauthenticated\"}} {expected}"
        )),
        "{metrics}"
    );
}

#[test]
fn a_web_page_cannot_post_to_the_platform_nor_rebind_its_name() {
    let off = offline();
    off.send_invoice(json!({})).unwrap();
    let before = snapshot(&off);
    off.exchanges();
    let auth = format!("Bearer {}", off.token);
    let finalize = format!("{}/invoices/inv_01/finalize", off.admin.base_url);
    let patch = format!("{}/invoices/inv_01", off.admin.base_url);
    // A form post: the browser sends text/plain or a form, never JSON.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        for (method, url) in [("POST", &finalize), ("PATCH", &patch)] {
            let (status, reply) = off
                .raw(
                    method,
                    url,
                    None,
                    &[("Authorization", &auth), ("Content-Type", ct)],
                )
                .unwrap();
            assert_eq!(status, 415, "{method} {url} as {ct}: {reply}");
        }
    }
    // A body whose type is not declared JSON.
    let (status, _) = off
        .raw(
            "PATCH",
            &patch,
            Some("change=OPEN&amountDue=0.01"),
            &[("Authorization", &auth)],
        )
        .unwrap();
    assert_eq!(status, 415);
    // DNS rebinding: the page's own name in Host.
    let (status, _) = off
        .raw(
            "POST",
            &finalize,
            None,
            &[("Authorization", &auth), ("Host", "evil.example")],
        )
        .unwrap();
    assert_eq!(status, 421);
    assert_eq!(snapshot(&off), before);
    assert!(off.exchanges().is_empty(), "a refused call reached Stripe");
}

#[test]
fn a_merchants_token_reaches_only_that_merchants_routes() {
    let off = offline();
    let settings = json!({"accountId": "acct_AlphaTokens", "autoCharge": false, "showPaymentLink": true,
        "stripeReceipts": false, "notificationEmail": "finance@alpha.example", "livemode": false});
    let (status, _) = off
        .host("PUT", "/merchants/alpha", Some(&settings.to_string()))
        .unwrap();
    assert_eq!(status, 200);
    let alpha = off.app.tokens().create(Some("alpha"), "alpha", 0).unwrap();
    let auth = format!("Bearer {}", alpha.token);
    let call = |method: &str, path: &str, body: Option<&str>| {
        let url = format!("{}{path}", off.admin.base_url);
        off.raw(method, &url, body, &[("Authorization", &auth)])
            .unwrap()
            .0
    };
    assert_eq!(call("GET", "/merchants/alpha", None), 200);
    assert_eq!(call("GET", "/merchants/alpha/outbox", None), 200);
    for (method, path, body) in [
        ("GET", "/merchants/default", None),
        ("GET", "/outbox", None),
        ("GET", "/merchants/default/outbox", None),
        ("PUT", "/merchants/alpha", Some(settings.to_string())),
        ("GET", "/metrics", None),
    ] {
        assert_eq!(call(method, path, body.as_deref()), 403, "{method} {path}");
    }
}

#[test]
fn health_is_on_both_listeners_and_the_public_one_keeps_its_routes() {
    let off = offline();
    for base in [&off.server.base_url, &off.admin.base_url] {
        let (status, _) = off
            .raw("GET", &format!("{base}/healthz"), None, &[])
            .unwrap();
        assert_eq!(status, 200, "{base}");
    }
    // A webhook on the platform listener is not served there.
    let url = format!("{}/webhooks/stripe", off.admin.base_url);
    let auth = format!("Bearer {}", off.token);
    let (status, _) = off
        .raw("POST", &url, Some("{}"), &[("Authorization", &auth)])
        .unwrap();
    assert_eq!(status, 404);
    // The public listener still takes Stripe's (here unsigned: refused by the plugin, 400).
    let (status, _) = off.host("POST", "/webhooks/stripe", Some("{}")).unwrap();
    assert_eq!(status, 400);
}

/// Security review S17: the platform-wide idempotency key of account
/// creation comes from the merchant's id, never from the caller's body, so
/// one merchant cannot replay another's account creation and be handed
/// its account.
#[test]
fn a_merchant_cannot_choose_the_key_that_creates_its_account() {
    let off = offline();
    for id in ["alpha", "beta"] {
        let (status, _) = off
            .host("PUT", &format!("/merchants/{id}"), Some("{}"))
            .unwrap();
        assert_eq!(status, 200);
    }
    let request = json!({"email": "owner@alpha.example", "country": "GB"});
    let (status, alpha) = off
        .host(
            "POST",
            "/merchants/alpha/onboarding",
            Some(&request.to_string()),
        )
        .unwrap();
    assert_eq!(status, 200, "{alpha}");
    off.exchanges();
    let stolen = json!({"email": "owner@alpha.example", "country": "GB", "merchantRef": "alpha"});
    let (status, reply) = off
        .host(
            "POST",
            "/merchants/beta/onboarding",
            Some(&stolen.to_string()),
        )
        .unwrap();
    assert_eq!(status, 400, "{reply}");
    assert!(
        off.exchanges().is_empty(),
        "a refused onboarding reached Stripe"
    );
    let (status, beta) = off
        .host(
            "POST",
            "/merchants/beta/onboarding",
            Some(&request.to_string()),
        )
        .unwrap();
    assert_eq!(status, 200, "{beta}");
    assert_ne!(beta["accountId"], alpha["accountId"]);
    let keys: Vec<String> = off
        .exchanges()
        .iter()
        .flat_map(|x| x.headers.clone())
        .filter(|(k, _)| k == "Idempotency-Key")
        .map(|(_, v)| v)
        .collect();
    assert!(
        keys.contains(&"account-create:beta".to_string()),
        "{keys:?}"
    );
}

/// Security review S12: a pay link is a bearer token in a URL, and URLs
/// leak. The platform can revoke an invoice's link, and a link expires a
/// configurable time after its invoice is settled (paid, void, paid
/// outside Stripe, written off).
#[test]
fn a_pay_link_can_be_revoked_and_expires_after_its_invoice_is_settled() {
    use e2e_tests::Served;
    use host_tools::offline_stripe::InProcess;
    let flags = Flags {
        auto_charge: Some(false),
        pay_link_expiry_days: Some(30),
        ..Flags::default()
    };
    let served = Served::start(flags, |emu| std::sync::Arc::new(InProcess(emu.clone())));
    let revoked = served.send("inv_revoked");
    assert_eq!(served.open(&revoked), 303);
    let (status, _) = served.call("POST", "/invoices/inv_revoked/pay-link/revoke", "");
    assert_eq!(status, 200);
    assert_eq!(served.open(&revoked), 404, "a revoked link still opens");

    let settled = served.send("inv_settled");
    let void = json!({"change": "VOID"}).to_string();
    assert_eq!(served.call("PATCH", "/invoices/inv_settled", &void).0, 200);
    assert_eq!(
        served.open(&settled),
        200,
        "the link says the invoice was cancelled"
    );
    served.clock.advance_ms(29 * 86_400_000);
    assert_eq!(served.open(&settled), 200);
    served.clock.advance_ms(2 * 86_400_000);
    assert_eq!(
        served.open(&settled),
        404,
        "a link 31 days after its invoice settled still opens"
    );

    let open = served.send("inv_open");
    assert_eq!(
        served.open(&open),
        303,
        "an unsettled invoice's link never expires"
    );
}

/// Stripe sends the merchant back from onboarding to the Account Link's
/// `return_url`, or to its `refresh_url` when the link has expired or was
/// used (https://docs.stripe.com/api/account_links/create). Both are pages
/// of the public listener that carry nothing and call no one; nowhere
/// else are they served.
#[test]
fn the_account_links_return_and_refresh_pages_are_served_publicly() {
    let off = offline();
    let (status, _) = off.host("PUT", "/merchants/gamma", Some("{}")).unwrap();
    assert_eq!(status, 200);
    let request = json!({"email": "owner@gamma.example", "country": "GB"});
    let (status, reply) = off
        .host(
            "POST",
            "/merchants/gamma/onboarding",
            Some(&request.to_string()),
        )
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    let link = off
        .exchanges()
        .into_iter()
        .find(|x| x.url.ends_with("/v1/account_links"))
        .expect("an Account Link was made");
    let sent: std::collections::HashMap<String, String> =
        form_urlencoded::parse(link.body.as_bytes())
            .into_owned()
            .collect();
    for (param, says) in [
        ("return_url", "Details sent to Stripe"),
        ("refresh_url", "Onboarding link expired"),
    ] {
        let url = &sent[param];
        assert!(url.starts_with(&off.server.base_url), "{param} = {url}");
        let (status, page) = off.raw("GET", url, None, &[]).unwrap();
        assert_eq!(status, 200, "{param}: {page}");
        assert!(page.to_string().contains(says), "{param}: {page}");
        let path = &url[off.server.base_url.len()..];
        let on_admin = format!("{}{path}", off.admin.base_url);
        let auth = format!("Bearer {}", off.token);
        let (status, _) = off
            .raw("GET", &on_admin, None, &[("Authorization", &auth)])
            .unwrap();
        assert_eq!(status, 404, "{param} on the platform listener");
        let (status, _) = off.raw("POST", url, Some("{}"), &[]).unwrap();
        assert_eq!(status, 404, "POST {param} on the public listener");
    }
    assert!(off.exchanges().is_empty(), "a page called Stripe");
}
