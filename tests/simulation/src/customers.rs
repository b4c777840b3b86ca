//! The load: one case per invoice, each a customer doing what customers do.

use crate::args::Args;
use crate::hosts::{Fleet, Merchant, agent};
use crate::rng::Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;
use stripe_emulator::Emulator;
use stripe_emulator::server::RunningEmulator;

/// What the customer of one invoice does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    PaysByLink,
    DeclinedThenPays,
    FailsAuthenticationThenPays,
    DebitSucceeds,
    DebitFailsThenPaysByCard,
    ChargedOnSend,
    ChargeDeclinedThenPaysByLink,
    PaysThenIsRefunded,
    PaysThenDisputes,
    OpensTwoTabsAndPaysInBoth,
    NeverPays,
    /// The platform voids the invoice right after sending it with a card on
    /// file (the send may still be queued after a fault), then sends it again.
    VoidedAfterSend,
    /// A bank debit is in flight when the platform records a bank transfer;
    /// then the debit succeeds too.
    PaidElsewhereWhileDebitInFlight,
    /// The platform credits part of the invoice and sends it again before the
    /// customer pays.
    CreditedThenPays,
}

impl Scenario {
    const ALL: [Scenario; 14] = [
        Scenario::PaysByLink,
        Scenario::DeclinedThenPays,
        Scenario::FailsAuthenticationThenPays,
        Scenario::DebitSucceeds,
        Scenario::DebitFailsThenPaysByCard,
        Scenario::ChargedOnSend,
        Scenario::ChargeDeclinedThenPaysByLink,
        Scenario::PaysThenIsRefunded,
        Scenario::PaysThenDisputes,
        Scenario::OpensTwoTabsAndPaysInBoth,
        Scenario::NeverPays,
        Scenario::VoidedAfterSend,
        Scenario::PaidElsewhereWhileDebitInFlight,
        Scenario::CreditedThenPays,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::PaysByLink => "pays by link",
            Scenario::DeclinedThenPays => "declined, then pays",
            Scenario::FailsAuthenticationThenPays => "fails 3-D Secure, then pays",
            Scenario::DebitSucceeds => "bank debit succeeds",
            Scenario::DebitFailsThenPaysByCard => "bank debit fails, then pays by card",
            Scenario::ChargedOnSend => "card on file charged",
            Scenario::ChargeDeclinedThenPaysByLink => "card on file declined, then pays by link",
            Scenario::PaysThenIsRefunded => "pays, then refunded in part",
            Scenario::PaysThenDisputes => "pays, then disputes",
            Scenario::OpensTwoTabsAndPaysInBoth => "pays in two tabs at once",
            Scenario::NeverPays => "never pays",
            Scenario::VoidedAfterSend => "voided right after it was sent",
            Scenario::PaidElsewhereWhileDebitInFlight => {
                "paid by transfer while a debit is in flight"
            }
            Scenario::CreditedThenPays => "credited, then pays",
        }
    }

    /// How many payments the customer means to make.
    pub fn intended_payments(self) -> usize {
        usize::from(self != Scenario::NeverPays)
    }

    fn card_on_file(self) -> Option<&'static str> {
        match self {
            Scenario::ChargedOnSend => Some("4242424242424242"),
            Scenario::ChargeDeclinedThenPaysByLink => Some("4000000000000341"),
            Scenario::VoidedAfterSend => Some("4242424242424242"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub merchant: usize,
    pub invoice: String,
    pub customer: String,
    pub currency: &'static str,
    pub amount: &'static str,
    pub scenario: Scenario,
    /// Kill this merchant's serve once the case is done.
    pub crash_after: bool,
}

const AMOUNTS: [(&str, &str); 4] = [
    ("GBP", "120.00"),
    ("EUR", "99.50"),
    ("USD", "250.00"),
    ("JPY", "5000"),
];

pub fn plan(args: &Args) -> Vec<Case> {
    let mut rng = Rng::new(args.seed);
    let mut cases = Vec::new();
    for m in 0..args.merchants {
        for i in 0..args.invoices {
            let (currency, amount) = AMOUNTS[rng.below(AMOUNTS.len())];
            cases.push(Case {
                merchant: m,
                invoice: format!("inv_m{m}_{i:03}"),
                customer: format!("cust_m{m}_{i:03}"),
                currency,
                amount,
                scenario: Scenario::ALL[rng.below(Scenario::ALL.len())],
                crash_after: false,
            });
        }
    }
    for _ in 0..args.crashes.min(cases.len()) {
        let at = rng.below(cases.len());
        cases[at].crash_after = true;
    }
    cases
}

/// What the customers did, and what the emulator said to them.
#[derive(Default)]
pub struct Outcome {
    by_scenario: Mutex<BTreeMap<&'static str, usize>>,
    pub payments_accepted: Mutex<BTreeMap<String, usize>>,
    /// Invoices the platform voided or recorded as paid another way.
    pub stopped: Mutex<BTreeSet<String>>,
    /// Invoices credited, with what was left to pay (minor units).
    pub credited: Mutex<BTreeMap<String, i64>>,
    pub surprises: Mutex<Vec<String>>,
}

impl Outcome {
    fn did(&self, s: Scenario) {
        *self
            .by_scenario
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(s.name())
            .or_default() += 1;
    }

    fn paid(&self, invoice: &str) {
        *self
            .payments_accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(invoice.to_string())
            .or_default() += 1;
    }

    pub fn summary(&self) -> String {
        let by = self.by_scenario.lock().unwrap_or_else(|p| p.into_inner());
        by.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn run(fleet: &Fleet, emulator: &RunningEmulator, plan: &[Case]) -> Outcome {
    let outcome = Outcome::default();
    std::thread::scope(|s| {
        for (n, m) in fleet.merchants.iter().enumerate() {
            let cases: Vec<&Case> = plan.iter().filter(|c| c.merchant == n).collect();
            let (outcome, emu) = (&outcome, &emulator.emulator);
            s.spawn(move || {
                let driver = Driver {
                    m,
                    emu,
                    agent: agent(),
                    outcome,
                };
                for case in cases {
                    driver.run_case(case);
                    if case.crash_after {
                        fleet.crash(n);
                    }
                }
            });
        }
    });
    outcome
}

struct Driver<'a> {
    m: &'a Merchant,
    emu: &'a Emulator,
    agent: ureq::Agent,
    outcome: &'a Outcome,
}

impl Driver<'_> {
    /// The merchant's own Stripe call (dashboard, refunds), retried under one
    /// idempotency key through the day's faults.
    fn stripe(&self, method: &str, path: &str, form: &str, key: &str) -> Value {
        let headers = vec![
            (
                "Authorization".to_string(),
                "Bearer sk_test_sim_dashboard".to_string(),
            ),
            ("Stripe-Account".to_string(), self.m.account.clone()),
            ("Idempotency-Key".to_string(), key.to_string()),
        ];
        let mut last = Value::Null;
        for _ in 0..20 {
            let r = self.emu.handle(method, path, &headers, form.as_bytes());
            last = r.json_body();
            if r.status < 500 && r.status != 429 && r.status != 409 {
                return last;
            }
        }
        last
    }

    /// A customer's action on Stripe's side (the hosted page, the bank).
    fn customer(&self, path: &str, form: &str) -> u16 {
        self.emu.handle("POST", path, &[], form.as_bytes()).status
    }

    fn complete(&self, session: &str, form: &str) -> u16 {
        self.customer(
            &format!("/_test/checkout/sessions/{session}/complete"),
            form,
        )
    }

    fn run_case(&self, c: &Case) {
        self.outcome.did(c.scenario);
        let stripe_id = c
            .scenario
            .card_on_file()
            .map(|card| self.customer_with_card(c, card));
        let externals = match &stripe_id {
            Some(id) => json!([{"key": "Stripe", "value": id}]),
            None => json!([]),
        };
        let customer = json!({"contactName": format!("Customer {}", c.customer), "legalName": c.customer,
            "billingEmails": [format!("{}@customers.example", c.customer)], "email": format!("{}@customers.example", c.customer),
            "externalIds": externals});
        self.m.host(
            &self.agent,
            "PUT",
            &format!("/customers/{}", c.customer),
            Some(&customer.to_string()),
        );
        let invoice = json!({"id": c.invoice, "invoiceNumber": c.invoice.to_uppercase(), "customerId": c.customer,
            "currency": c.currency, "issueDate": "2026-11-29", "dueDate": "2026-12-29",
            "lineItems": [{"title": "Subscription", "quantity": "1", "rate": c.amount, "netTotal": c.amount,
                           "taxRate": "0", "totalTax": "0", "grossTotal": c.amount}],
            "netTotal": c.amount, "totalTax": "0", "grossTotal": c.amount, "amountDue": c.amount,
            "paymentOptions": ["BANK_TRANSFER", "STRIPE"], "autoCharge": stripe_id.is_some()});
        let (s, v) = self
            .m
            .host(&self.agent, "POST", "/invoices", Some(&invoice.to_string()));
        if s >= 300 {
            self.note(c, &format!("the host refused the invoice: {s} {v}"));
        }
        let (_, inv) = self.m.host(
            &self.agent,
            "POST",
            &format!("/invoices/{}/finalize", c.invoice),
            None,
        );
        if c.scenario == Scenario::ChargedOnSend {
            if inv["status"] == "PAID" {
                self.outcome.paid(&c.invoice);
            }
            return;
        }
        if c.scenario == Scenario::VoidedAfterSend {
            self.stop(c, "VOID");
            // Sent again after the void: it must charge nothing more.
            self.resend(c);
            return;
        }
        if c.scenario == Scenario::CreditedThenPays {
            self.credit(c);
            // Sent again after the credit: it collects only what is left.
            self.resend(c);
            if let Some(session) = self.open_link(c) {
                self.pay(c, &session);
            }
            return;
        }
        let Some(session) = self.session_of(c, &inv) else {
            self.note(c, "no Checkout session to pay");
            return;
        };
        self.pay(c, &session);
        self.after_payment(c);
    }

    /// The platform's PATCH, tried until `serve` takes it (the day's faults
    /// and crashes make some tries fail, as a platform would see).
    fn patch(&self, c: &Case, body: Value) -> bool {
        for _ in 0..60 {
            let (status, _) = self.m.host(
                &self.agent,
                "PATCH",
                &format!("/invoices/{}", c.invoice),
                Some(&body.to_string()),
            );
            if status == 200 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        self.note(c, &format!("the host never took {body}"));
        false
    }

    /// The platform sends the invoice again (finalize), as after an edit.
    fn resend(&self, c: &Case) {
        self.m.host(
            &self.agent,
            "POST",
            &format!("/invoices/{}/finalize", c.invoice),
            None,
        );
    }

    /// The platform stops collection (`VOID`, `PAID_OUTSIDE_STRIPE`).
    fn stop(&self, c: &Case, change: &str) {
        if self.patch(c, json!({"change": change})) {
            self.outcome
                .stopped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.invoice.clone());
        }
    }

    /// A credit note: half of the invoice is left to pay.
    fn credit(&self, c: &Case) {
        let (left, minor) = half(c.currency, c.amount);
        if self.patch(c, json!({"change": "OPEN", "amountDue": left})) {
            self.outcome
                .credited
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.invoice.clone(), minor);
        }
    }

    fn note(&self, c: &Case, what: &str) {
        self.outcome
            .surprises
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{} ({}): {what}", c.invoice, c.scenario.name()));
    }

    /// The session the invoice's pay link leads to now.
    fn session_of(&self, c: &Case, inv: &Value) -> Option<String> {
        if let Some(cs) = inv["checkoutSessionId"].as_str() {
            return Some(cs.to_string());
        }
        self.open_link(c)
    }

    /// Opens the stable pay link and follows it to Checkout.
    fn open_link(&self, c: &Case) -> Option<String> {
        let (_, inv) = self.m.host(
            &self.agent,
            "GET",
            &format!("/invoices/{}", c.invoice),
            None,
        );
        let link = inv["paymentLink"].as_str()?.to_string();
        let no_redirects: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        for _ in 0..40 {
            if let Ok(resp) = no_redirects.get(&link).call() {
                if let Some(to) = resp.headers().get("location").and_then(|l| l.to_str().ok()) {
                    return to.rsplit('/').next().map(str::to_string);
                }
                if resp.status().as_u16() < 500 {
                    return None;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        None
    }

    fn pay(&self, c: &Case, session: &str) {
        let card = "card=4242424242424242";
        let paid = match c.scenario {
            Scenario::DeclinedThenPays => {
                self.complete(session, "card=4000000000000002");
                self.complete(session, card)
            }
            Scenario::FailsAuthenticationThenPays => {
                self.complete(session, "card=4000002760003184");
                self.customer(
                    &format!("/_test/checkout/sessions/{session}/authenticate"),
                    "result=failed",
                );
                self.complete(session, "card=4000002760003184");
                self.customer(
                    &format!("/_test/checkout/sessions/{session}/authenticate"),
                    "result=complete",
                )
            }
            Scenario::DebitSucceeds => {
                self.complete(session, "async=1");
                self.customer(
                    &format!("/_test/checkout/sessions/{session}/async"),
                    "result=succeeded",
                )
            }
            Scenario::PaidElsewhereWhileDebitInFlight => {
                self.complete(session, "async=1");
                self.stop(c, "PAID_OUTSIDE_STRIPE");
                self.customer(
                    &format!("/_test/checkout/sessions/{session}/async"),
                    "result=succeeded",
                )
            }
            Scenario::DebitFailsThenPaysByCard => {
                self.complete(session, "async=1");
                self.customer(
                    &format!("/_test/checkout/sessions/{session}/async"),
                    "result=failed",
                );
                // The failure is known to the host once its webhook (or sync) lands.
                std::thread::sleep(Duration::from_millis(600));
                match self.open_link(c) {
                    Some(next) if next != session => self.complete(&next, card),
                    _ => 0,
                }
            }
            Scenario::OpensTwoTabsAndPaysInBoth => {
                let other = self.open_link(c).unwrap_or_else(|| session.to_string());
                let (a, b) = std::thread::scope(|s| {
                    let a = s.spawn(|| self.complete(session, card));
                    let b = s.spawn(|| self.complete(&other, card));
                    (a.join().unwrap_or(0), b.join().unwrap_or(0))
                });
                for accepted in [a, b].into_iter().filter(|s| *s == 200) {
                    let _ = accepted;
                    self.outcome.paid(&c.invoice);
                }
                return;
            }
            Scenario::NeverPays => return,
            _ => self.complete(session, card),
        };
        if paid == 200 {
            self.outcome.paid(&c.invoice);
        }
    }

    fn after_payment(&self, c: &Case) {
        let pi = || {
            self.emu.objects("payment_intent").into_iter().find(|pi| {
                pi["status"] == "succeeded"
                    && pi["metadata"]["billing_stripe_plugin_invoice"] == c.invoice.as_str()
            })
        };
        match c.scenario {
            Scenario::PaysThenIsRefunded => {
                if let Some(pi) = pi() {
                    let half = pi["amount"].as_i64().unwrap_or(0) / 2;
                    let form = format!(
                        "payment_intent={}&amount={half}",
                        pi["id"].as_str().unwrap_or_default()
                    );
                    self.stripe(
                        "POST",
                        "/v1/refunds",
                        &form,
                        &format!("refund-{}", c.invoice),
                    );
                }
            }
            Scenario::PaysThenDisputes => {
                if let Some(pi) = pi() {
                    let form = format!("payment_intent={}", pi["id"].as_str().unwrap_or_default());
                    let d = self
                        .emu
                        .handle("POST", "/_test/disputes", &[], form.as_bytes())
                        .json_body();
                    if let Some(id) = d["id"].as_str() {
                        self.customer(&format!("/_test/disputes/{id}/close"), "status=won");
                    }
                }
            }
            _ => {}
        }
    }

    /// A Stripe customer of the merchant with `card` saved as the default.
    fn customer_with_card(&self, c: &Case, card: &str) -> String {
        let cus = self.stripe(
            "POST",
            "/v1/customers",
            &format!("name={}", c.customer),
            &format!("cus-{}", c.invoice),
        );
        let cus = cus["id"].as_str().unwrap_or_default().to_string();
        let pm = self.stripe(
            "POST",
            "/v1/payment_methods",
            &format!("type=card&card[number]={card}"),
            &format!("pm-{}", c.invoice),
        );
        let pm = pm["id"].as_str().unwrap_or_default().to_string();
        self.stripe(
            "POST",
            &format!("/v1/payment_methods/{pm}/attach"),
            &format!("customer={cus}"),
            &format!("attach-{}", c.invoice),
        );
        self.stripe(
            "POST",
            &format!("/v1/customers/{cus}"),
            &format!("invoice_settings[default_payment_method]={pm}"),
            &format!("default-{}", c.invoice),
        );
        cus
    }
}

/// Half of `amount` in `currency`, as the platform writes it and in minor units.
fn half(currency: &str, amount: &str) -> (String, i64) {
    let minor: i64 = amount.replace('.', "").parse().unwrap_or(0);
    let half = minor / 2;
    if currency == "JPY" {
        (half.to_string(), half)
    } else {
        (format!("{}.{:02}", half / 100, half % 100), half)
    }
}
