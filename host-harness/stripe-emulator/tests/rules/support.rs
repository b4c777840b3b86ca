//! A client of the in-process emulator, as a platform would call Stripe.

use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use stripe_emulator::{Clock, Emulator, Reply};

pub const ACCOUNT: &str = "acct_merchant";
pub const NOW_MS: u64 = 1_764_288_000_000;

pub struct Stripe {
    pub emu: Emulator,
    pub time: Arc<AtomicU64>,
    pub account: String,
}

impl Stripe {
    /// An emulator on a manual clock, with one connected account.
    pub fn new() -> Self {
        let (clock, time) = Clock::manual(NOW_MS);
        let emu = Emulator::new(clock);
        emu.connect_existing(ACCOUNT, "Merchant Ltd");
        Self {
            emu,
            time,
            account: ACCOUNT.into(),
        }
    }

    pub fn advance_secs(&self, secs: u64) {
        self.time.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    pub fn headers(&self, key: Option<&str>) -> Vec<(String, String)> {
        let mut h = vec![(
            "Authorization".to_string(),
            "Bearer sk_test_rules".to_string(),
        )];
        if !self.account.is_empty() {
            h.push(("Stripe-Account".into(), self.account.clone()));
        }
        if let Some(k) = key {
            h.push(("Idempotency-Key".into(), k.into()));
        }
        h
    }

    pub fn call(&self, method: &str, path: &str, form: &str) -> (u16, Value) {
        let r = self.raw(method, path, form, None);
        (r.status, r.json_body())
    }

    pub fn raw(&self, method: &str, path: &str, form: &str, key: Option<&str>) -> Reply {
        let (target, body) = if method == "GET" {
            let sep = if path.contains('?') { '&' } else { '?' };
            let target = if form.is_empty() {
                path.to_string()
            } else {
                format!("{path}{sep}{form}")
            };
            (target, Vec::new())
        } else {
            (path.to_string(), form.as_bytes().to_vec())
        };
        self.emu.handle(method, &target, &self.headers(key), &body)
    }

    /// POST that must succeed; returns the object.
    pub fn ok(&self, path: &str, form: &str) -> Value {
        let (status, v) = self.call("POST", path, form);
        assert_eq!(status, 200, "POST {path} {form}: {v}");
        v
    }

    /// A test-only route (`/_test/...`, the hosted page).
    pub fn test_route(&self, path: &str, form: &str) -> Reply {
        self.emu.handle("POST", path, &[], form.as_bytes())
    }

    pub fn customer(&self) -> String {
        id(&self.ok("/v1/customers", "name=Rules+Ltd"))
    }

    /// A card saved to `customer` (a number or a pm_card_* token).
    pub fn saved_card(&self, customer: &str, number: &str) -> String {
        let pm = id(&self.ok(
            "/v1/payment_methods",
            &format!("type=card&card[number]={number}"),
        ));
        self.ok(
            &format!("/v1/payment_methods/{pm}/attach"),
            &format!("customer={customer}"),
        );
        pm
    }

    pub fn off_session_charge(&self, customer: &str, pm: &str, extra: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/payment_intents",
            &format!(
                "amount=1000&currency=gbp&customer={customer}&payment_method={pm}&off_session=true&confirm=true&payment_method_types[0]=card{extra}"
            ),
        )
    }

    pub fn session(&self, extra: &str) -> Value {
        self.ok(
            "/v1/checkout/sessions",
            &format!(
                "mode=payment&success_url=https://x.test/ok&line_items[0][quantity]=1\
&line_items[0][price_data][currency]=gbp&line_items[0][price_data][unit_amount]=1000\
&line_items[0][price_data][product_data][name]=Invoice{extra}"
            ),
        )
    }

    pub fn event_types(&self) -> Vec<String> {
        self.emu
            .events()
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

pub fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}
