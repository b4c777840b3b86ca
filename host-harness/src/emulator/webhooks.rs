//! Events and their signed delivery, with Stripe's exact signature scheme:
//! `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, one `v1`
//! per secret. Delivery is asynchronous and retried on any non-2xx answer.

use super::{Emulator, Stored, lock};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

/// Where events go, signed with every secret listed (as during a roll).
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secrets: Vec<String>,
    /// Deliver each event as it happens (with retries); false holds them for
    /// tests to deliver by hand, in any order.
    pub automatic: bool,
}

/// Stripe's header for `body`, signed at `t` with each secret.
pub fn signature_header(secrets: &[String], t: i64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            continue;
        };
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

impl Emulator {
    /// Records an event for `object` and delivers it if a webhook is set.
    pub fn emit(&self, account: &str, kind: &str, object: Value) -> Value {
        self.emit_with_previous(account, kind, object, Value::Null)
    }

    /// As `emit`, with `data.previous_attributes` (what an update changed).
    pub fn emit_with_previous(
        &self,
        account: &str,
        kind: &str,
        object: Value,
        previous: Value,
    ) -> Value {
        let mut event = json!({
            "id": self.next_id("evt"), "object": "event", "api_version": "2024-06-20",
            "created": self.clock.now_secs(), "data": {"object": object}, "livemode": false,
            "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null}, "type": kind,
        });
        if !account.is_empty() {
            event["account"] = account.into();
        }
        if !previous.is_null() {
            event["data"]["previous_attributes"] = previous;
        }
        {
            let mut st = self.state();
            st.events.push(event.clone());
            let id = event["id"].as_str().unwrap_or_default().to_string();
            st.objects.insert(
                id,
                Stored {
                    account: account.to_string(),
                    object: event.clone(),
                },
            );
        }
        if let Some(target) = lock(&self.webhook).clone().filter(|t| t.automatic) {
            let body = serde_json::to_vec_pretty(&event).unwrap_or_default();
            let clock = self.clock.clone();
            std::thread::spawn(move || deliver(&target, &body, || clock.now_secs()));
        }
        event
    }

    /// Delivers `event` once, now, and returns the HTTP status (0: no answer).
    pub fn deliver_now(&self, event: &Value) -> u16 {
        let Some(target) = lock(&self.webhook).clone() else {
            return 0;
        };
        let body = serde_json::to_vec_pretty(event).unwrap_or_default();
        post(&agent(), &target, &body, self.clock.now_secs())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, target: &WebhookTarget, body: &[u8], now: i64) -> u16 {
    let header = signature_header(&target.secrets, now, body);
    agent
        .post(&target.url)
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Stripe-Signature", &header)
        .header(
            "User-Agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .send(body)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Posts until a 2xx, backing off between attempts (Stripe retries for days;
/// here a handful of quick tries keeps tests short).
fn deliver(target: &WebhookTarget, body: &[u8], now: impl Fn() -> i64) {
    let agent = agent();
    for attempt in 0..8u32 {
        if (200..300).contains(&post(&agent, target, body, now())) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100 << attempt.min(5)));
    }
    eprintln!("[emulator] gave up delivering an event to {}", target.url);
}
