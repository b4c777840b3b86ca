//! Signed webhook delivery, with Stripe's exact signature scheme:
//! `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, one `v1`
//! per secret. Delivery is asynchronous and retried on any non-2xx answer,
//! and a seeded plan can make it as untidy as Stripe's: late (so out of
//! order), twice, or not at all until retried later.
//! https://docs.stripe.com/webhooks#verify-events
//! https://docs.stripe.com/webhooks#retries
//! https://docs.stripe.com/webhooks#event-ordering

use crate::{Emulator, faults, lock};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where events go, signed with every secret listed (as during a roll).
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secrets: Vec<String>,
    /// Deliver each event as it happens (with retries), or hold them for
    /// tests to deliver by hand, in any order.
    pub delivery: Delivery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Automatic,
    ByHand,
}

/// How untidy automatic delivery is, chosen by a seed.
#[derive(Debug, Clone, Default)]
pub struct DeliveryPlan {
    pub seed: u64,
    /// Each delivery waits up to this long (so events arrive out of order).
    pub max_delay: Duration,
    /// Share of events delivered twice.
    pub duplicate_per_mille: u32,
    /// Share of events held back until `retry_dropped` (Stripe retries
    /// for three days; a host that missed them reads /v1/events).
    pub drop_per_mille: u32,
}

#[derive(Default)]
pub struct Deliveries {
    plan: DeliveryPlan,
    dropped: Vec<Value>,
    duplicated: u64,
    /// Deliveries tried again after an endpoint failed to answer 2xx
    /// (counted by the delivery threads).
    retries: Arc<AtomicU64>,
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
    pub fn set_delivery_plan(&self, plan: DeliveryPlan) {
        lock(&self.deliveries).plan = plan;
    }

    /// Events held back by the plan so far, not yet retried.
    pub fn dropped(&self) -> usize {
        lock(&self.deliveries).dropped.len()
    }

    /// Stripe's later retry of every held-back event; returns how many.
    pub fn retry_dropped(&self) -> usize {
        let held = std::mem::take(&mut lock(&self.deliveries).dropped);
        for event in &held {
            for target in self.targets_of(event, Delivery::Automatic) {
                self.send_after(target, event, Duration::ZERO);
            }
        }
        held.len()
    }

    /// Deliveries tried again because the endpoint did not answer 2xx.
    pub fn redeliveries(&self) -> u64 {
        lock(&self.deliveries).retries.load(Ordering::SeqCst)
    }

    /// Events delivered twice by the plan so far.
    pub fn duplicated(&self) -> u64 {
        lock(&self.deliveries).duplicated
    }

    /// Forgets the held-back events (Stripe gave up on them).
    pub fn give_up_dropped(&self) -> usize {
        std::mem::take(&mut lock(&self.deliveries).dropped).len()
    }

    /// Sends `event` to its webhook endpoints as the plan says.
    pub(crate) fn send(&self, event: &Value) {
        for target in self.targets_of(event, Delivery::Automatic) {
            self.send_to(target, event);
        }
    }

    fn send_to(&self, target: WebhookTarget, event: &Value) {
        let (delays, drop) = {
            let mut d = lock(&self.deliveries);
            let plan = d.plan.clone();
            let mut roll = || faults::next(&mut d.plan.seed);
            let drop = (roll() % 1000) < plan.drop_per_mille as u64;
            let twice = (roll() % 1000) < plan.duplicate_per_mille as u64;
            let max = plan.max_delay.as_millis() as u64;
            let mut delay = || Duration::from_millis(if max == 0 { 0 } else { roll() % (max + 1) });
            let delays = if twice {
                vec![delay(), delay()]
            } else {
                vec![delay()]
            };
            if drop {
                d.dropped.push(event.clone());
            }
            if twice && !drop {
                d.duplicated += 1;
            }
            (delays, drop)
        };
        if drop {
            return;
        }
        for delay in delays {
            self.send_after(target.clone(), event, delay);
        }
    }

    /// The endpoints that take `event`, delivering as `mode` says.
    fn targets_of(&self, event: &Value, mode: Delivery) -> Vec<WebhookTarget> {
        let account = event["account"].as_str().unwrap_or("");
        let mut targets: Vec<WebhookTarget> = lock(&self.webhooks)
            .iter()
            .filter(|(only, t)| t.delivery == mode && only.as_deref().is_none_or(|a| a == account))
            .map(|(_, t)| t.clone())
            .collect();
        if mode == Delivery::Automatic {
            targets.extend(self.registered_targets(event));
        }
        targets
    }

    fn send_after(&self, target: WebhookTarget, event: &Value, delay: Duration) {
        let body = serde_json::to_vec_pretty(event).unwrap_or_default();
        let clock = self.clock.clone();
        let retries = lock(&self.deliveries).retries.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            deliver(&target, &body, || clock.now_secs(), &retries)
        });
    }

    /// Delivers `event` once, now, to its first endpoint, and returns the
    /// HTTP status (0: no answer or no endpoint).
    pub fn deliver_now(&self, event: &Value) -> u16 {
        let account = event["account"].as_str().unwrap_or("");
        let target = lock(&self.webhooks)
            .iter()
            .find(|(only, _)| only.as_deref().is_none_or(|a| a == account))
            .map(|(_, t)| t.clone());
        let Some(target) = target else {
            return 0;
        };
        let body = serde_json::to_vec_pretty(event).unwrap_or_default();
        post(&agent(), &target, &body, self.now())
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

/// Posts until a 2xx, backing off between attempts (Stripe retries for three
/// days; here a handful of quick tries keeps tests short).
fn deliver(target: &WebhookTarget, body: &[u8], now: impl Fn() -> i64, retries: &AtomicU64) {
    let agent = agent();
    for attempt in 0..8u32 {
        if attempt > 0 {
            retries.fetch_add(1, Ordering::SeqCst);
        }
        if (200..300).contains(&post(&agent, target, body, now())) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100 << attempt.min(5)));
    }
    eprintln!("[emulator] gave up delivering an event to {}", target.url);
}
