//! The runtime embedded by a billing host of its own: an in-memory store, a
//! Stripe that no call may reach, one merchant's webhook secret, and one
//! signed webhook whose transitions the host applies. Run: `cargo run -p
//! host-runtime --example embed` (tests/run does).

use hmac::{Hmac, Mac};
use host_runtime::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
use host_runtime::bindings::{Merchant, WebhookRequest};
use host_runtime::imports::{Clock, HostEnv, HttpBackend, KeyRing, MerchantKeys, StripeGate};
use host_runtime::ports::{EmailStore, KvStore, OutgoingEmail, StoreResult};
use host_runtime::runtime::{Limits, PLUGIN_WASM, Runtime};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The host's kv (expiry ignored, for brevity) and outbox, in memory.
#[derive(Default)]
struct Memory(Mutex<HashMap<(String, String), Vec<u8>>>);

impl KvStore for Memory {
    fn kv_get(&self, ns: &str, key: &str, _: i64) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&(ns.into(), key.into()))
            .cloned())
    }
    fn kv_set(&self, ns: &str, key: &str, value: &[u8], _: Option<i64>) -> StoreResult<()> {
        self.0
            .lock()
            .unwrap()
            .insert((ns.into(), key.into()), value.to_vec());
        Ok(())
    }
    fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        self.0.lock().unwrap().remove(&(ns.into(), key.into()));
        Ok(())
    }
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        _: Option<i64>,
        _: i64,
    ) -> StoreResult<bool> {
        let mut kv = self.0.lock().unwrap();
        let k = (ns.to_string(), key.to_string());
        let swapped = kv.get(&k).map(Vec::as_slice) == expected;
        if swapped {
            kv.insert(k, new.to_vec());
        }
        Ok(swapped)
    }
    fn kv_purge_expired(&self, _: i64) -> StoreResult<()> {
        Ok(())
    }
}

impl EmailStore for Memory {
    fn outbox_insert(&self, email: &OutgoingEmail) -> StoreResult<bool> {
        println!("email to {}: {}", email.recipients, email.subject);
        Ok(true)
    }
    fn customer_has_address(&self, _: &str, _: &str) -> StoreResult<bool> {
        Ok(false)
    }
}

/// A Stripe this example never needs: every request is refused.
struct NoStripe;

impl HttpBackend for NoStripe {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        Err(HttpError::Denied(format!("no Stripe here: {}", req.url)))
    }
}

fn main() -> anyhow::Result<()> {
    let secret = "whsec_embed_example";
    let stripe = StripeGate {
        base: "https://api.stripe.com".parse()?,
        api_key: None,
        backend: Arc::new(NoStripe),
    };
    let keys = Arc::new(KeyRing::default());
    keys.set(
        "m1",
        MerchantKeys {
            webhook_signing: vec![secret.into()],
            pay_link: vec!["plk_embed".into()],
        },
    );
    let env = HostEnv::new(Arc::new(Memory::default()), stripe, Clock::System, keys);
    let runtime = Runtime::new(PLUGIN_WASM, Arc::new(env), Limits::default(), None)?;

    let merchant = Merchant {
        account_id: "acct_Embed".into(),
        stripe_api_base: "https://api.stripe.com".into(),
        auto_charge: true,
        show_payment_link: true,
        stripe_receipts: false,
        pay_link_base: "https://billing.example.com".into(),
        notification_email: "finance@merchant.example".into(),
        webhook_tolerance_secs: 300,
        livemode: false,
        retry_days: vec![1, 3, 5, 7],
    };
    let now = Clock::System.now_ms() / 1000;
    let body = format!(
        r#"{{"id":"evt_embed","object":"event","type":"account.updated","account":"acct_Embed","created":{now},"livemode":false,"data":{{"object":{{"id":"acct_Embed","object":"account","charges_enabled":true,"details_submitted":true}}}}}}"#
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(format!("{now}.{body}").as_bytes());
    let signature = format!("t={now},v1={}", hex::encode(mac.finalize().into_bytes()));
    let request = WebhookRequest {
        headers: vec![("Stripe-Signature".into(), signature)],
        body: body.into_bytes(),
    };

    // The outer error is the host's (a trap, a limit); the inner one the plugin's.
    let outcome = runtime
        .on_webhook("m1", &merchant, &request)?
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    println!("webhook answered {} ({})", outcome.status, outcome.reason);
    for t in &outcome.transitions {
        println!("apply: {t}"); // a real host stores these in one transaction, then answers Stripe
    }
    anyhow::ensure!(
        outcome.status == 200 && !outcome.transitions.is_empty(),
        "the webhook was not applied"
    );
    Ok(())
}
