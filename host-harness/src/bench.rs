//! `host-harness bench-webhook`: the per-event time of `on-webhook` through
//! the real runtime (fresh Store, pooling allocator, SQLite kv), to set beside
//! stripe-node's `constructEvent` in the same run (tests/bench/webhook).

use crate::bindings::{Merchant, WebhookRequest};
use crate::db::Db;
use crate::imports::{Clock, HostEnv, KeyRing, MerchantKeys, StripeGate};
use crate::offline_stripe::InProcess;
use crate::platform::{PlatformCustomer, PlatformInvoice};
use crate::record::Recorder;
use crate::runtime::{Limits, PLUGIN_WASM, Runtime};
use anyhow::{Result, bail};
use std::sync::Arc;
use std::time::Instant;
use stripe_emulator::signature_header;

/// Times `iterations` deliveries of the event in `path` (its `data.object`
/// must name invoice `inv_bench` in its metadata) and prints µs per event.
pub fn webhook(path: &std::path::Path, iterations: u32) -> Result<()> {
    let body = std::fs::read(path)?;
    let event: serde_json::Value = serde_json::from_slice(&body)?;
    let created = event["created"].as_u64().unwrap_or(0);
    let clock = Clock::fixed(created * 1000);
    let emulator = crate::offline_stripe::emulator(&clock);
    // The merchant has connected its account (the emulator refuses others).
    emulator.connect_existing(
        event["account"].as_str().unwrap_or_default(),
        "Bench Merchant",
    );
    let env = Arc::new(HostEnv {
        db: Arc::new(Db::in_memory()?),
        stripe: StripeGate {
            base: "https://api.stripe.com".parse()?,
            api_key: Some("sk_test_bench".into()),
            backend: Arc::new(InProcess(emulator.clone())),
        },
        clock: clock.clone(),
        recorder: Recorder::default(),
        keys: KeyRing::default(),
    });
    let cache = std::env::temp_dir().join("stripe-plugin-cache");
    let keys = |webhook: &str| MerchantKeys {
        webhook_signing: vec![webhook.to_string()],
        pay_link: vec!["plk_bench".into()],
    };
    env.keys.set(
        event["account"].as_str().unwrap_or_default(),
        keys("whsec_bench_secret"),
    );
    env.keys
        .set("acct_bench_wrong_secret", keys("whsec_not_the_one"));
    let runtime = Runtime::new(PLUGIN_WASM, env, Limits::default(), Some(&cache))?;
    let secret = "whsec_bench_secret".to_string();
    let signing = secret.clone();
    let merchant = Merchant {
        account_id: event["account"].as_str().unwrap_or_default().to_string(),
        stripe_api_base: "https://api.stripe.com".into(),
        auto_charge: false,
        show_payment_link: true,
        stripe_receipts: false,
        pay_link_base: "https://billing.example.com".into(),
        notification_email: "finance@merchant.example".into(),
        webhook_tolerance_secs: 300,
        livemode: false,
    };
    // The invoice the event pays must have been sent through the plugin first.
    let customer: PlatformCustomer = serde_json::from_str(crate::demo::CUSTOMER_JSON)?;
    let mut invoice: PlatformInvoice = serde_json::from_str(crate::demo::INVOICE_JSON)?;
    invoice.id = "inv_bench".into();
    let mut c = customer.to_wit("c_bench");
    c.external_ids.retain(|e| e.key != "Stripe");
    if let Err(e) = runtime.on_invoice_finalized(&merchant, &invoice.to_wit(c))? {
        bail!("setting up the invoice: {}", e.message());
    }
    let request = WebhookRequest {
        headers: vec![
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
            (
                "Stripe-Signature".into(),
                signature_header(&[signing], created as i64, &body),
            ),
        ],
        body,
    };
    let first = runtime.on_webhook(&merchant, &request)?;
    match &first {
        Ok(o) if o.status == 200 && !o.transitions.is_empty() => {}
        other => bail!(
            "the event was not processed: {}",
            serde_json::to_string(&other.as_ref().map_err(|e| e.message()))?
        ),
    }
    for _ in 0..iterations.min(200) {
        runtime.on_webhook(&merchant, &request)??;
    }
    // Each delivery a distinct event (new id, signed anew) about the same
    // payment, as Stripe's retries and sibling events are; signed up front.
    let deliveries: Vec<WebhookRequest> = (0..iterations)
        .map(|i| {
            let text = String::from_utf8_lossy(&request.body).replacen(
                event["id"].as_str().unwrap_or("evt"),
                &format!("evt_bench_{i:08}"),
                1,
            );
            WebhookRequest {
                headers: vec![(
                    "Stripe-Signature".into(),
                    signature_header(
                        std::slice::from_ref(&secret),
                        created as i64,
                        text.as_bytes(),
                    ),
                )],
                body: text.into_bytes(),
            }
        })
        .collect();
    let time = |m: &Merchant| -> Result<f64> {
        let start = Instant::now();
        for d in &deliveries {
            runtime.on_webhook(m, d)??;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations.max(1)))
    };
    let full = time(&merchant)?;
    // The floor of any call: a fresh instance, the body lifted in, one HMAC
    // over it, then refused (the secret does not match). No parse, no kv.
    let wrong = Merchant {
        account_id: "acct_bench_wrong_secret".into(),
        ..merchant.clone()
    };
    let floor = time(&wrong)?;
    let bytes = request.body.len();
    println!(
        "{{\"subject\": \"plugin on-webhook via wasmtime\", \"event_bytes\": {bytes}, \"iterations\": {iterations}, \"us_per_event\": {full:.2}, \"us_instance_and_hmac_only\": {floor:.2}}}"
    );
    Ok(())
}
