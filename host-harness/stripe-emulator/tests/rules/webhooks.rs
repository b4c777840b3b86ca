//! Webhook delivery: signed, per endpoint, and as untidy as Stripe's when
//! the plan says so (late, twice, or held back and retried later).
//! https://docs.stripe.com/webhooks#retries

use crate::support::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stripe_emulator::{Delivery, DeliveryPlan, WebhookTarget};

/// A loopback endpoint that keeps the event ids it receives.
struct Endpoint {
    url: String,
    got: Arc<Mutex<Vec<String>>>,
    _server: Arc<tiny_http::Server>,
}

fn endpoint() -> Endpoint {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!("http://{}/hook", server.server_addr().to_ip().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let (s, g) = (server.clone(), got.clone());
    std::thread::spawn(move || {
        while let Ok(mut req) = s.recv() {
            let mut body = String::new();
            let _ = req.as_reader().read_to_string(&mut body);
            let signed = req
                .headers()
                .iter()
                .any(|h| h.field.equiv("Stripe-Signature"));
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if signed {
                g.lock()
                    .unwrap()
                    .push(v["id"].as_str().unwrap_or_default().to_string());
            }
            let _ = req.respond(tiny_http::Response::empty(200));
        }
    });
    Endpoint {
        url,
        got,
        _server: server,
    }
}

fn wait_for(got: &Arc<Mutex<Vec<String>>>, n: usize) -> Vec<String> {
    let start = Instant::now();
    while got.lock().unwrap().len() < n && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    got.lock().unwrap().clone()
}

fn target(url: &str) -> WebhookTarget {
    WebhookTarget {
        url: url.to_string(),
        secrets: vec!["whsec_rules".into()],
        delivery: Delivery::Automatic,
    }
}

#[test]
fn each_account_s_events_go_to_its_own_endpoint() {
    let s = Stripe::new();
    s.emu.connect_existing("acct_other", "Other");
    let (mine, theirs) = (endpoint(), endpoint());
    s.emu.add_webhook_for(ACCOUNT, target(&mine.url));
    s.emu.add_webhook_for("acct_other", target(&theirs.url));
    let cus = s.customer();
    let card = s.saved_card(&cus, "4242424242424242");
    s.off_session_charge(&cus, &card, "");
    let n = s.emu.events().len();
    assert_eq!(wait_for(&mine.got, n).len(), n);
    assert!(theirs.got.lock().unwrap().is_empty());
}

#[test]
fn the_plan_duplicates_or_holds_back_events_until_retried() {
    let s = Stripe::new();
    let hook = endpoint();
    s.emu.add_webhook_for(ACCOUNT, target(&hook.url));
    s.emu.set_delivery_plan(DeliveryPlan {
        seed: 1,
        max_delay: Duration::from_millis(50),
        duplicate_per_mille: 1000,
        drop_per_mille: 0,
    });
    s.customer();
    let cus = s.customer();
    s.saved_card(&cus, "4242424242424242");
    let n = s.emu.events().len();
    let got = wait_for(&hook.got, 2 * n);
    assert_eq!(got.len(), 2 * n, "every event twice: {got:?}");
    assert_eq!(s.emu.duplicated(), n as u64);

    let s = Stripe::new();
    let hook = endpoint();
    s.emu.add_webhook_for(ACCOUNT, target(&hook.url));
    s.emu.set_delivery_plan(DeliveryPlan {
        seed: 2,
        max_delay: Duration::ZERO,
        duplicate_per_mille: 0,
        drop_per_mille: 1000,
    });
    let cus = s.customer();
    s.saved_card(&cus, "4242424242424242");
    std::thread::sleep(Duration::from_millis(200));
    assert!(hook.got.lock().unwrap().is_empty(), "all held back");
    let held = s.emu.dropped();
    assert_eq!(held, s.emu.events().len());
    assert_eq!(s.emu.retry_dropped(), held);
    assert_eq!(wait_for(&hook.got, held).len(), held);
}

#[test]
fn late_deliveries_arrive_out_of_order_and_a_failing_endpoint_is_retried() {
    let s = Stripe::new();
    let hook = endpoint();
    s.emu.add_webhook_for(ACCOUNT, target(&hook.url));
    s.emu.set_delivery_plan(DeliveryPlan {
        seed: 5,
        max_delay: Duration::from_millis(300),
        duplicate_per_mille: 0,
        drop_per_mille: 0,
    });
    let cus = s.customer();
    let card = s.saved_card(&cus, "4242424242424242");
    for _ in 0..11 {
        s.off_session_charge(&cus, &card, "");
    }
    let made: Vec<String> = s.emu.events().iter().map(id).collect();
    let got = wait_for(&hook.got, made.len());
    assert_eq!(got.len(), made.len());
    assert_ne!(got, made, "a delay of up to 300 ms reorders a dozen events");

    // An endpoint that is down at first: Stripe tries again.
    let s = Stripe::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.emu
        .add_webhook_for(ACCOUNT, target(&format!("http://127.0.0.1:{port}/hook")));
    let before = s.emu.redeliveries();
    let cus = s.customer();
    s.saved_card(&cus, "4242424242424242");
    std::thread::sleep(Duration::from_millis(150));
    let server = tiny_http::Server::http(format!("127.0.0.1:{port}")).unwrap();
    let req = server
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("a retried delivery");
    let _ = req.respond(tiny_http::Response::empty(200));
    assert!(s.emu.redeliveries() > before);
}

/// Endpoints registered through `/v1/webhook_endpoints`: the secret only in
/// the create's answer; `api_version` and `connect` fixed at creation.
/// https://docs.stripe.com/api/webhook_endpoints
#[test]
fn a_registered_endpoint_shows_its_secret_once_and_keeps_its_api_version() {
    let mut s = Stripe::new();
    s.account = String::new();
    let made = s.ok(
        "/v1/webhook_endpoints",
        "url=https://host.example/webhooks/stripe&enabled_events[]=charge.refunded&api_version=2024-06-20&connect=true&metadata[role]=connect",
    );
    assert!(
        made["secret"].as_str().unwrap().starts_with("whsec_"),
        "{made}"
    );
    assert_eq!(made["api_version"], "2024-06-20");
    let id = id(&made);
    let (status, got) = s.call("GET", &format!("/v1/webhook_endpoints/{id}"), "");
    assert_eq!(status, 200);
    assert!(
        got.get("secret").is_none() && got.get("_secret").is_none(),
        "{got}"
    );
    assert_eq!(got["metadata"]["role"], "connect");
    let (status, err) = s.call(
        "POST",
        &format!("/v1/webhook_endpoints/{id}"),
        "api_version=2025-01-27",
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "api_version");
    let (status, err) = s.call("POST", "/v1/webhook_endpoints", "url=https://x.example/");
    assert_eq!(
        (status, err["error"]["param"].as_str()),
        (400, Some("enabled_events"))
    );
    let updated = s.ok(
        &format!("/v1/webhook_endpoints/{id}"),
        "enabled_events[]=charge.refunded&enabled_events[]=account.updated&disabled=true",
    );
    assert_eq!(updated["status"], "disabled");
    assert_eq!(updated["enabled_events"].as_array().unwrap().len(), 2);
    let (_, listed) = s.call("GET", "/v1/webhook_endpoints", "");
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let (status, gone) = s.call("DELETE", &format!("/v1/webhook_endpoints/{id}"), "");
    assert_eq!((status, gone["deleted"].as_bool()), (200, Some(true)));
    let (_, listed) = s.call("GET", "/v1/webhook_endpoints", "");
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");
}

/// A Connect endpoint gets the connected accounts' events it is enabled
/// for, signed with its own secret; an account endpoint gets none of them.
/// https://docs.stripe.com/connect/webhooks
#[test]
fn a_connect_endpoint_gets_connected_accounts_events_of_its_types() {
    let s = Stripe::new();
    let (connect, platform) = (endpoint(), endpoint());
    let register = |url: &str, connect: bool, types: &str| {
        let form = format!("url={url}&connect={connect}&{types}");
        let r = s.emu.handle(
            "POST",
            "/v1/webhook_endpoints",
            &[("Authorization".into(), "Bearer sk_test_rules".into())],
            form.as_bytes(),
        );
        assert_eq!(r.status, 200);
    };
    register(
        &connect.url,
        true,
        "enabled_events[]=payment_intent.succeeded",
    );
    register(&platform.url, false, "enabled_events[]=*");
    let cus = s.customer();
    let card = s.saved_card(&cus, "4242424242424242");
    s.off_session_charge(&cus, &card, "");
    let succeeded: Vec<String> = s
        .emu
        .events()
        .iter()
        .filter(|e| e["type"] == "payment_intent.succeeded")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(succeeded.len(), 1);
    assert_eq!(wait_for(&connect.got, 1), succeeded);
    assert!(platform.got.lock().unwrap().is_empty());
}
