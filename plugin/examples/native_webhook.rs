//! The plugin's on-webhook compiled natively, with the in-memory host: the
//! same logic as the component, without wasm, for the benchmark table.
//!
//!   native_webhook SETUP_SCENARIO REPLAY_JSONL EVENT ITERATIONS
//!
//! The merchant and its keys come from the setup scenario that
//! `host-harness bench-webhook` wrote; the kv from the last line of its
//! replay (`host-harness replay`), so the state is the one wasmtime and jco
//! start from. Prints one JSON object.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Instant;
use stripe_plugin::contract::{Merchant, WebhookRequest};
use stripe_plugin::host::{memory::MemoryHost, native};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [setup, replay, event, iterations] = args.as_slice() else {
        eprintln!("usage: native_webhook SETUP_SCENARIO REPLAY_JSONL EVENT ITERATIONS");
        std::process::exit(2);
    };
    let setup: Value = serde_json::from_str(&std::fs::read_to_string(setup).unwrap()).unwrap();
    let replay = std::fs::read_to_string(replay).unwrap();
    let last: Value = serde_json::from_str(replay.lines().last().unwrap_or("{}")).unwrap();
    let text = std::fs::read_to_string(event).unwrap();
    let event: Value = serde_json::from_str(&text).unwrap();
    let n: usize = iterations.parse().unwrap();

    let m = &setup["calls"][0]["args"][0];
    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    let merchant = Merchant {
        account_id: s("account-id"),
        stripe_api_base: s("stripe-api-base"),
        auto_charge: m["auto-charge"].as_bool().unwrap_or(false),
        show_payment_link: m["show-payment-link"].as_bool().unwrap_or(true),
        stripe_receipts: m["stripe-receipts"].as_bool().unwrap_or(false),
        pay_link_base: s("pay-link-base"),
        notification_email: s("notification-email"),
        webhook_tolerance_secs: m["webhook-tolerance-secs"].as_u64().unwrap_or(300) as u32,
        livemode: m["livemode"].as_bool().unwrap_or(false),
        retry_days: m["retry-days"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_u64().and_then(|d| u32::try_from(d).ok()))
            .collect(),
    };
    // Keys and kv are the merchant's (its namespace), whatever its account.
    let namespace = setup["calls"][0]["namespace"].as_str().unwrap_or_default();
    let keys = &setup["keys"][namespace];
    let list = |k: &str| -> Vec<String> {
        keys[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let mut host = MemoryHost {
        now_ms: setup["calls"][0]["now-ms"].as_u64().unwrap_or(0),
        webhook_signing: list("webhook-signing"),
        pay_link: list("pay-link"),
        ..MemoryHost::default()
    };
    for (k, e) in last["kv"][namespace].as_object().into_iter().flatten() {
        let value = e["value"].as_str().unwrap_or_default().as_bytes().to_vec();
        host.kv.insert(k.clone(), (value, e["expires-ms"].as_u64()));
    }
    native::install(Box::new(host));

    let secret = list("webhook-signing").remove(0);
    let created = event["created"].as_i64().unwrap_or(0);
    let id = event["id"].as_str().unwrap_or("evt");
    let deliveries = |tag: &str| -> Vec<WebhookRequest> {
        (0..n)
            .map(|i| {
                let body = text.replacen(id, &format!("evt_native_{tag}_{i:08}"), 1);
                let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(format!("{created}.{body}").as_bytes());
                let v1 = hex::encode(mac.finalize().into_bytes());
                WebhookRequest {
                    headers: vec![("Stripe-Signature".into(), format!("t={created},v1={v1}"))],
                    body: body.into_bytes(),
                }
            })
            .collect()
    };
    let time = |list: Vec<WebhookRequest>| {
        let start = Instant::now();
        for r in &list {
            let out =
                stripe_plugin::handlers::webhook::on_webhook(&merchant, r).expect("on-webhook");
            assert_eq!(out.status, 200, "{}", out.reason);
        }
        start.elapsed().as_secs_f64() * 1e6 / list.len().max(1) as f64
    };
    time(deliveries("warm"));
    let us = time(deliveries("timed"));
    println!(
        "{}",
        json!({"subject": "plugin on-webhook compiled natively", "iterations": n, "us_per_event": us})
    );
}
