//! What a platform team watches: `GET /metrics` in Prometheus text format,
//! and one structured log line per handled call. The test drives a merchant
//! through a declined charge, a forged webhook and a redelivered event, and
//! checks that the names exist and that the counts move.

use crate::merchants::{connected_merchant, customer_with_card, send};
use host_server::config::Flags;
use host_server::logging::LogFormat;
use host_tools::demo::Offline;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const ACCOUNT: &str = "acct_ObservedMerchant";

/// Every log line of this test binary, as the JSON format writes them.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        assert!(host_server::logging::init_with(
            LogFormat::Json,
            move || { Sink(sink.clone()) }
        ));
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `name{labels}` → value, from Prometheus text.
fn metrics(off: &Offline) -> HashMap<String, f64> {
    let url = format!("{}/metrics", off.admin.base_url);
    let resp = ureq::get(&url)
        .header("Authorization", &format!("Bearer {}", off.token))
        .call()
        .unwrap();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = resp.into_body().read_to_string().unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

#[test]
fn metrics_and_logs_name_what_happened_and_their_counts_move() {
    let logs = captured_logs();
    let off = Offline::start(&Flags::default()).unwrap();
    connected_merchant(&off, "observed", ACCOUNT, true);
    let before = metrics(&off);

    customer_with_card(&off, "observed", ACCOUNT, "4000000000000341");
    let invoice = send(&off, "observed");
    let start = Instant::now();
    let emails = || {
        let (_, outbox) = off.host("GET", "/merchants/observed/outbox", None).unwrap();
        outbox["data"].as_array().map_or(0, Vec::len)
    };
    while emails() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the decline was emailed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = off
        .host("POST", "/webhooks/stripe", Some(r#"{"id": "evt_forged"}"#))
        .unwrap();
    assert_eq!(status, 400);
    // The decline's webhook comes from the emulator on a thread of its own:
    // the emails above do not mean it has landed yet.
    let applied_since = |after: &HashMap<String, f64>| -> f64 {
        after
            .iter()
            .filter(|(k, _)| {
                k.starts_with("stripe_plugin_webhooks_total{") && k.contains("applied")
            })
            .map(|(k, v)| v - before.get(k).copied().unwrap_or(0.0))
            .sum()
    };
    let mut after = metrics(&off);
    while applied_since(&after) < 1.0 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
        after = metrics(&off);
    }

    let names = [
        r#"stripe_plugin_webhooks_total{event_type="unknown",outcome="refused"}"#,
        r#"stripe_plugin_handler_duration_seconds_count{handler="on-invoice-finalized"}"#,
        r#"stripe_plugin_handler_duration_seconds_count{handler="on-webhook"}"#,
        r#"stripe_plugin_handler_duration_seconds_count{handler="on-customer-updated"}"#,
        r#"stripe_plugin_stripe_requests_total{status="200"}"#,
        r#"stripe_plugin_stripe_requests_total{status="402"}"#,
        r#"stripe_plugin_emails_total{result="sent"}"#,
    ];
    for name in names {
        assert!(
            moved(&before, &after, name) >= 1.0,
            "{name} moved: {after:#?}"
        );
    }
    for name in [
        "stripe_plugin_queue_depth",
        "stripe_plugin_queue_oldest_age_seconds",
    ] {
        assert!(after.contains_key(name), "{name} is exported: {after:#?}");
    }
    assert!(
        applied_since(&after) >= 1.0,
        "a webhook was applied: {after:#?}"
    );

    // The logs: one line per call, with the merchant, invoice, event and outcome.
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["span"]["merchant"] == "observed")
        .collect();
    let handled = |f: &dyn Fn(&Value) -> bool| {
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "handled" && f(&l["span"]))
    };
    assert!(
        handled(&|s| s["invoice"] == "inv_01" && s["outcome"] == "ok"),
        "the finalize line names the invoice: {lines:#?}"
    );
    assert!(
        handled(
            &|s| s["event"].as_str().is_some_and(|e| e.starts_with("evt_"))
                && s["outcome"] == "applied"
                && s["event_type"].is_string()
        ),
        "a webhook line names its event and outcome: {lines:#?}"
    );
    // Never a secret, nor a customer's pay-link token.
    let token = invoice["paymentLink"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    for secret in off.app.webhook_secrets() {
        assert!(!text.contains(&secret));
    }
    assert!(!text.contains("sk_test_"));
    assert!(!text.contains(token), "the pay-link token is never logged");
}
