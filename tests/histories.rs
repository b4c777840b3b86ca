//! Generated histories (proptest, with shrinking): platform, customer,
//! Stripe and host actions interleaved against `serve`'s own core (`App`,
//! the real component, its queue and sync), the emulator in process and a
//! clock the history moves. The money invariants are checked against the
//! emulator's ledger after every step and once the history has quiesced.

use e2e_tests::{ACCOUNT, INVOICE_KEY, NOW_MS, SECRET};
use host_runtime::imports::{Clock, StripeGate};
use host_server::app::{App, Backing};
use host_server::config::{Flags, Settings};
use host_server::db::Db;
use host_server::record::Recorder;
use host_tools::demo::{CUSTOMER_JSON, INVOICE_JSON};
use host_tools::offline_stripe::InProcess;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use stripe_emulator::Emulator;
use stripe_emulator::faults::{Fault, Rule, When};

/// Retries on serve's default schedule (days 1, 3, 5, 7).
const DEFAULT_RETRIES: u32 = 4;

/// The invoices a history plays with (all of customer c1).
const INVOICES: [&str; 2] = ["inv_a", "inv_b"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Full,
    Less,
}

impl Amount {
    fn decimal(self) -> &'static str {
        match self {
            Amount::Full => "1200.00",
            Amount::Less => "1000.00",
        }
    }

    fn minor(self) -> u64 {
        match self {
            Amount::Full => 120000,
            Amount::Less => 100000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Void,
    PaidOutsideStripe,
    Uncollectible,
    Open(Amount),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// Charged without trouble.
    Good,
    /// Attaches, then declines when charged.
    Declines,
    /// Always asks for 3-D Secure: off-session it fails `authentication_required`.
    NeedsAuth,
    /// A good card whose next `n` charges are declined `insufficient_funds`
    /// (soft: dunning retries it).
    SoftDeclines(u32),
}

impl Card {
    fn number(self) -> &'static str {
        match self {
            Card::Good | Card::SoftDeclines(_) => "4242424242424242",
            Card::Declines => "4000000000000341",
            Card::NeedsAuth => "4000002760003184",
        }
    }
}

/// How the customer pays the open Checkout Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pay {
    Card,
    Declined,
    ThreeDs {
        passes: bool,
    },
    /// A SEPA debit: the session completes unpaid, the money comes later.
    Debit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Charge,
    Session,
    Customer,
    Lookup,
    Refund,
}

impl Target {
    fn rule(self) -> (&'static str, &'static str) {
        match self {
            Target::Charge => ("POST", "/v1/payment_intents"),
            Target::Session => ("POST", "/v1/checkout/sessions"),
            Target::Customer => ("POST", "/v1/customers"),
            Target::Lookup => ("GET", "/v1/payment_intents"),
            Target::Refund => ("POST", "/v1/refunds"),
        }
    }
}

/// How the webhooks Stripe made since the last delivery arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    InOrder,
    Reversed,
    /// The next one is held back (delayed, or dropped until the sync or a retry).
    HoldNext,
    /// The last one delivered comes again.
    Duplicate,
    /// What was held back arrives now.
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStep {
    Open,
    Won,
    Lost,
}

/// One step of a history.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send {
        inv: usize,
        amount: Amount,
    },
    Patch {
        inv: usize,
        change: Change,
    },
    DefaultCard(Card),
    /// The customer follows the card page's link in their latest failure
    /// email and saves this card through "Replace your card".
    ReplaceCard(Card),
    /// The card network reissues the customer's default card (Stripe's
    /// card updater: `payment_method.automatically_updated`).
    CardReissued,
    MerchantAutoCharge(bool),
    OpenLink {
        inv: usize,
    },
    Pay {
        inv: usize,
        how: Pay,
    },
    SettleDebit {
        inv: usize,
        succeeds: bool,
    },
    Fault {
        target: Target,
        fault: Fault,
        after_work: bool,
        times: u32,
    },
    Deliver(Delivery),
    Refund {
        inv: usize,
        full: bool,
    },
    /// The platform refunds through `POST /invoices/{id}/refunds`: 300.00 or
    /// 1000.00, under refund id `r0`..`r2`.
    PlatformRefund {
        inv: usize,
        id: u8,
        large: bool,
    },
    Dispute {
        inv: usize,
        step: DisputeStep,
    },
    RunQueue,
    Sync,
    Advance {
        hours: u64,
    },
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |inv: &usize| INVOICES[*inv];
        match self {
            Action::Send { inv, amount } => {
                write!(f, "send {} for {}", name(inv), amount.decimal())
            }
            Action::Patch { inv, change } => write!(f, "PATCH {} {change:?}", name(inv)),
            Action::DefaultCard(c) => write!(f, "c1's default card becomes {c:?}"),
            Action::ReplaceCard(c) => write!(f, "c1 saves {c:?} on the card page"),
            Action::CardReissued => write!(f, "c1's default card is reissued"),
            Action::MerchantAutoCharge(on) => write!(f, "merchant autoCharge {on}"),
            Action::OpenLink { inv } => write!(f, "customer opens {}'s link", name(inv)),
            Action::Pay { inv, how } => write!(f, "customer pays {} by {how:?}", name(inv)),
            Action::SettleDebit { inv, succeeds } => {
                write!(
                    f,
                    "{}'s debit {}",
                    name(inv),
                    if *succeeds { "succeeds" } else { "fails" }
                )
            }
            Action::Fault {
                target,
                fault,
                after_work,
                times,
            } => write!(
                f,
                "Stripe: {fault:?} {} on {target:?}, {times}x",
                if *after_work {
                    "after the work"
                } else {
                    "before the work"
                }
            ),
            Action::Deliver(d) => write!(f, "webhooks {d:?}"),
            Action::Refund { inv, full } => write!(
                f,
                "refund {} {}",
                name(inv),
                if *full { "in full" } else { "in part" }
            ),
            Action::Dispute { inv, step } => write!(f, "dispute of {}: {step:?}", name(inv)),
            Action::PlatformRefund { inv, id, large } => write!(
                f,
                "the platform refunds {} of {} as r{id}",
                if *large { "1000.00" } else { "300.00" },
                name(inv)
            ),
            Action::RunQueue => write!(f, "the queue runs"),
            Action::Sync => write!(f, "sync"),
            Action::Advance { hours } => write!(f, "{hours} h pass"),
        }
    }
}

fn inv() -> impl Strategy<Value = usize> {
    0..INVOICES.len()
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![3 => Just(Amount::Full), 1 => Just(Amount::Less)]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::Void),
        Just(Change::PaidOutsideStripe),
        Just(Change::Uncollectible),
        amount().prop_map(Change::Open),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::RateLimited),
        Just(Fault::ServerError),
        Just(Fault::Timeout),
        Just(Fault::Reset),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => Just(Target::Charge),
        1 => Just(Target::Session),
        1 => Just(Target::Customer),
        1 => Just(Target::Lookup),
        1 => Just(Target::Refund),
    ]
}

fn card() -> impl Strategy<Value = Card> {
    prop_oneof![
        Just(Card::Good),
        Just(Card::Declines),
        Just(Card::NeedsAuth),
        (1..=3u32).prop_map(Card::SoftDeclines),
    ]
}

fn pay() -> impl Strategy<Value = Pay> {
    prop_oneof![
        3 => Just(Pay::Card),
        1 => Just(Pay::Declined),
        1 => any::<bool>().prop_map(|passes| Pay::ThreeDs { passes }),
        1 => Just(Pay::Debit),
    ]
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![
        3 => Just(Delivery::InOrder),
        1 => Just(Delivery::Reversed),
        1 => Just(Delivery::HoldNext),
        1 => Just(Delivery::Duplicate),
        1 => Just(Delivery::Release),
    ]
}

pub fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (inv(), amount()).prop_map(|(inv, amount)| Action::Send { inv, amount }),
        2 => (inv(), change()).prop_map(|(inv, change)| Action::Patch { inv, change }),
        3 => card().prop_map(Action::DefaultCard),
        2 => card().prop_map(Action::ReplaceCard),
        1 => Just(Action::CardReissued),
        1 => any::<bool>().prop_map(Action::MerchantAutoCharge),
        2 => inv().prop_map(|inv| Action::OpenLink { inv }),
        2 => (inv(), pay()).prop_map(|(inv, how)| Action::Pay { inv, how }),
        1 => (inv(), any::<bool>()).prop_map(|(inv, succeeds)| Action::SettleDebit { inv, succeeds }),
        3 => (target(), fault(), any::<bool>(), 1..=3u32)
            .prop_map(|(target, fault, after_work, times)| Action::Fault { target, fault, after_work, times }),
        4 => delivery().prop_map(Action::Deliver),
        1 => (inv(), any::<bool>()).prop_map(|(inv, full)| Action::Refund { inv, full }),
        2 => (inv(), 0..3u8, any::<bool>()).prop_map(|(inv, id, large)| Action::PlatformRefund { inv, id, large }),
        1 => (inv(), prop_oneof![Just(DisputeStep::Open), Just(DisputeStep::Won), Just(DisputeStep::Lost)])
            .prop_map(|(inv, step)| Action::Dispute { inv, step }),
        2 => Just(Action::RunQueue),
        1 => Just(Action::Sync),
        2 => prop_oneof![Just(1u64), Just(25u64), Just(72u64)].prop_map(|hours| Action::Advance { hours }),
    ]
}

pub fn history() -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(action(), 1..40)
}

/// What the platform did to one invoice, as the model keeps it.
#[derive(Debug, Default, Clone)]
struct Platform {
    sent: bool,
    /// What the platform last sent for (minor units).
    owed: u64,
    /// Voided, paid outside Stripe or written off (answered 200), not reopened since.
    stopped: bool,
    /// Reopened with an amount (answered 200) this many times.
    reopens: u32,
    /// Sent again for another amount at some point.
    repriced: bool,
}

/// One history's world: two workers of the host (each its own runtime and
/// instances) on one store, Stripe, and the model.
pub struct World {
    apps: [App; 2],
    /// Which worker takes the next step's calls.
    turn: usize,
    emu: Emulator,
    clock: Clock,
    secret: String,
    platform: BTreeMap<&'static str, Platform>,
    /// Events of `emu.events()` handed to the delivery policy so far.
    made: usize,
    /// Events held back (or answered with a retryable error), to come later.
    held: Vec<Value>,
    last_delivered: Option<Value>,
    /// Objects of Stripe's seen by the end of the last step.
    known: BTreeSet<String>,
    /// Checkout Sessions whose URL the plugin learned (and so could hand out).
    handed_out: BTreeSet<String>,
    emails: usize,
    /// The platform's refunds: (invoice, refund id) → the amount first asked.
    asked_refunds: BTreeMap<(&'static str, String), u64>,
}

fn reply_json(r: &host_server::app::Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

impl World {
    pub fn new() -> Self {
        let clock = Clock::fixed(NOW_MS);
        let emu = host_tools::offline_stripe::emulator(&clock);
        // Checkout's own origin, the one serve redirects a customer to.
        emu.set_public_base("https://checkout.stripe.com");
        emu.connect_existing(ACCOUNT, "History Merchant Ltd");
        let db = Arc::new(Db::in_memory().expect("sqlite"));
        let flags = Flags {
            account: Some(ACCOUNT.into()),
            webhook_secrets: vec![SECRET.into()],
            pay_link_secrets: vec!["plk_test_histories".into()],
            pay_link_base: Some("https://billing.example.com".into()),
            notification_email: Some("finance@merchant.example".into()),
            cache_dir: Some(std::env::temp_dir().join("stripe-plugin-test-cache")),
            ..Flags::default()
        };
        let settings = Settings::resolve(&flags).expect("settings");
        let worker = || {
            let backing = Backing {
                db: db.clone(),
                stripe: StripeGate {
                    base: "https://api.stripe.com".parse().expect("url"),
                    api_key: Some("sk_test_histories".into()),
                    backend: Arc::new(InProcess(emu.clone())),
                },
                clock: clock.clone(),
                recorder: Arc::new(Recorder::for_tests("histories")),
            };
            App::with_backing(&settings, backing).expect("host")
        };
        let w = World {
            apps: [worker(), worker()],
            turn: 0,
            emu,
            clock,
            secret: SECRET.into(),
            platform: BTreeMap::new(),
            made: 0,
            held: Vec::new(),
            last_delivered: None,
            known: BTreeSet::new(),
            handed_out: BTreeSet::new(),
            emails: 0,
            asked_refunds: BTreeMap::new(),
        };
        let mut c: Value = serde_json::from_str(CUSTOMER_JSON).expect("fixture");
        c["externalIds"] = json!([]);
        let (status, body) = w.host("PUT", "/customers/c1", Some(c));
        assert_eq!(status, 200, "{body}");
        w
    }

    /// The worker whose turn it is.
    fn app(&self) -> &App {
        &self.apps[self.turn % 2]
    }

    fn host(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type".to_string(), "application/json".to_string())];
        let r = self.app().handle(method, path, &headers, body.as_bytes());
        (r.status, reply_json(&r))
    }

    /// Stripe's API as the merchant's dashboard or the customer calls it.
    fn stripe(&self, method: &str, path: &str, form: &str) -> (u16, Value) {
        let headers = [
            ("Authorization".to_string(), "Bearer sk_test_x".to_string()),
            ("Stripe-Account".to_string(), ACCOUNT.to_string()),
        ];
        let r = self.emu.handle(method, path, &headers, form.as_bytes());
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }

    /// Stripe's objects of `kind` about invoice `id`.
    fn of_invoice(&self, kind: &str, id: &str) -> Vec<Value> {
        self.emu
            .objects(kind)
            .into_iter()
            .filter(|o| o["metadata"][INVOICE_KEY] == id)
            .collect()
    }

    /// The open session a customer can reach: only one whose URL the plugin
    /// learned (one whose create answer was lost is nobody's to pay).
    fn open_session(&self, id: &str) -> Option<String> {
        self.of_invoice("checkout.session", id)
            .into_iter()
            .filter(|s| s["status"] == "open")
            .filter(|s| {
                self.handed_out
                    .contains(s["id"].as_str().unwrap_or_default())
            })
            .filter_map(|s| s["id"].as_str().map(str::to_string))
            .next_back()
    }

    fn stripe_customer(&self) -> Option<String> {
        let (_, c) = self.host("GET", "/customers/c1", None);
        c["stripeCustomerId"].as_str().map(str::to_string)
    }

    pub fn view(&self, id: &str) -> Value {
        self.host("GET", &format!("/invoices/{id}"), None).1
    }

    fn outbox(&self) -> Vec<Value> {
        self.host("GET", "/outbox", None).1["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Plays one action; what it cannot do now (no such session yet, ...) is a no-op.
    pub fn play(&mut self, a: Action) {
        match a {
            Action::Send { inv, amount } => self.send(INVOICES[inv], amount),
            Action::Patch { inv, change } => self.patch(INVOICES[inv], change),
            Action::DefaultCard(card) => self.default_card(card),
            Action::ReplaceCard(card) => self.replace_card(card),
            Action::CardReissued => self.reissue_default_card(),
            Action::MerchantAutoCharge(on) => {
                let settings = json!({"accountId": ACCOUNT, "autoCharge": on,
                    "notificationEmail": "finance@merchant.example"});
                self.host("PUT", "/merchants/default", Some(settings));
            }
            Action::OpenLink { inv } => self.open_link(INVOICES[inv]),
            Action::Pay { inv, how } => self.pay(INVOICES[inv], how),
            Action::SettleDebit { inv, succeeds } => self.settle_debit(INVOICES[inv], succeeds),
            Action::Fault {
                target,
                fault,
                after_work,
                times,
            } => {
                let (method, path) = target.rule();
                self.emu.inject(Rule {
                    method: Some(method.into()),
                    account: None,
                    path: path.into(),
                    fault,
                    // Stripe's rate limiter refuses before any work.
                    when: if after_work && fault != Fault::RateLimited {
                        When::AfterWork
                    } else {
                        When::BeforeWork
                    },
                    times,
                });
            }
            Action::Deliver(d) => self.deliver(d),
            Action::Refund { inv, full } => self.refund(INVOICES[inv], full),
            Action::PlatformRefund { inv, id, large } => {
                self.platform_refund(INVOICES[inv], id, large)
            }
            Action::Dispute { inv, step } => self.dispute(INVOICES[inv], step),
            Action::RunQueue => self.run_queue(),
            Action::Sync => {
                let _ = self.app().sync();
            }
            Action::Advance { hours } => self.clock.advance_ms(hours * 3600 * 1000),
        }
    }

    fn send(&mut self, id: &'static str, amount: Amount) {
        let p = self.platform.entry(id).or_default().clone();
        if !p.sent {
            let mut doc: Value = serde_json::from_str(INVOICE_JSON).expect("fixture");
            doc["id"] = id.into();
            doc["invoiceNumber"] = format!("N-{id}").into();
            doc["amountDue"] = amount.decimal().into();
            self.host("POST", "/invoices", Some(doc));
        } else {
            // Sent again: the platform's document now says this amount.
            let merchant = self.app().platform.default_merchant.clone();
            self.app()
                .db
                .set_amount_due(&merchant, id, amount.decimal())
                .expect("store");
        }
        let (status, body) = self.host("POST", &format!("/invoices/{id}/finalize"), None);
        let p = self.platform.get_mut(id).expect("entry");
        let accepted = status == 200 || body["queued"] == true;
        if accepted {
            p.repriced |= p.sent && p.owed != amount.minor();
            p.sent = true;
            p.owed = amount.minor();
        }
    }

    fn patch(&mut self, id: &'static str, change: Change) {
        let body = match change {
            Change::Void => json!({"change": "VOID"}),
            Change::PaidOutsideStripe => json!({"change": "PAID_OUTSIDE_STRIPE"}),
            Change::Uncollectible => json!({"change": "UNCOLLECTIBLE"}),
            Change::Open(a) => json!({"change": "OPEN", "amountDue": a.decimal()}),
        };
        let (status, _) = self.host("PATCH", &format!("/invoices/{id}"), Some(body));
        if status != 200 {
            return;
        }
        let p = self.platform.entry(id).or_default();
        match change {
            Change::Open(_) => {
                p.stopped = false;
                p.reopens += 1;
            }
            _ => p.stopped = true,
        }
    }

    /// The card page's path, from the newest email to the customer that
    /// carries one (none before a failure).
    fn card_page(&self) -> Option<String> {
        let base = "https://billing.example.com";
        self.outbox().iter().rev().find_map(|e| {
            e["text"].as_str().and_then(|t| {
                t.split_whitespace()
                    .find(|w| w.starts_with(&format!("{base}/billing/")))
                    .map(|u| u.trim_start_matches(base).to_string())
            })
        })
    }

    fn replace_card(&mut self, card: Card) {
        let Some(page) = self.card_page() else {
            return;
        };
        let form = [(
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        )];
        let path = format!("{page}/replace-card");
        let r = self.app().handle("POST", &path, &form, b"");
        let location = r.headers.iter().find(|(k, _)| k == "Location");
        let Some(session) = location.and_then(|(_, l)| l.rsplit('/').next()) else {
            return;
        };
        let complete = format!("/_test/checkout/sessions/{session}/complete");
        self.stripe("POST", &complete, &format!("card={}", card.number()));
        if let Card::SoftDeclines(n) = card {
            let (_, cs) = self.stripe("GET", &format!("/v1/checkout/sessions/{session}"), "");
            let seti = cs["setup_intent"].as_str().unwrap_or_default();
            let (_, intent) = self.stripe("GET", &format!("/v1/setup_intents/{seti}"), "");
            if let Some(pm) = intent["payment_method"].as_str() {
                let path = format!("/_test/payment_methods/{pm}/declines");
                let form = format!("decline_code=insufficient_funds&times={n}");
                self.emu.handle("POST", &path, &[], form.as_bytes());
            }
        }
    }

    fn reissue_default_card(&mut self) {
        let Some(cus) = self.stripe_customer() else {
            return;
        };
        let (_, c) = self.stripe("GET", &format!("/v1/customers/{cus}"), "");
        if let Some(pm) = c["invoice_settings"]["default_payment_method"].as_str() {
            let path = format!("/_test/payment_methods/{pm}/automatically_update");
            self.emu.handle("POST", &path, &[], b"");
        }
    }

    fn default_card(&mut self, card: Card) {
        let Some(cus) = self.stripe_customer() else {
            return;
        };
        let (_, pm) = self.stripe(
            "POST",
            "/v1/payment_methods",
            &format!("type=card&card[number]={}", card.number()),
        );
        let Some(pm) = pm["id"].as_str() else {
            return;
        };
        if let Card::SoftDeclines(n) = card {
            let path = format!("/_test/payment_methods/{pm}/declines");
            let form = format!("decline_code=insufficient_funds&times={n}");
            self.emu.handle("POST", &path, &[], form.as_bytes());
        }
        e2e_tests::make_default(
            |method, path, form| {
                self.stripe(method, path, form);
            },
            &cus,
            pm,
        );
    }

    fn token(&self, id: &str) -> Option<String> {
        self.view(id)["paymentLink"]
            .as_str()
            .and_then(|u| u.rsplit('/').next())
            .map(str::to_string)
    }

    fn open_link(&mut self, id: &str) {
        if let Some(token) = self.token(id) {
            self.host("GET", &format!("/pay/{token}"), None);
        }
    }

    fn pay(&mut self, id: &str, how: Pay) {
        let Some(session) = self.open_session(id) else {
            return;
        };
        let complete = format!("/_test/checkout/sessions/{session}/complete");
        match how {
            Pay::Card => self.stripe("POST", &complete, "card=4242424242424242"),
            Pay::Declined => self.stripe("POST", &complete, "card=4000000000000002"),
            Pay::Debit => self.stripe("POST", &complete, "async=1"),
            Pay::ThreeDs { passes } => {
                self.stripe("POST", &complete, "card=4000002760003184");
                let result = if passes { "passed" } else { "failed" };
                let path = format!("/_test/checkout/sessions/{session}/authenticate");
                self.stripe("POST", &path, &format!("result={result}"))
            }
        };
    }

    fn settle_debit(&mut self, id: &str, succeeds: bool) {
        let processing =
            self.of_invoice("checkout.session", id)
                .into_iter()
                .filter(|s| s["status"] == "complete" && s["payment_status"] == "unpaid")
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .find(|s| {
                    self.emu.objects("checkout.session").iter().any(|o| {
                        o["id"] == s.as_str()
                            && self.emu.objects("payment_intent").iter().any(|p| {
                                p["id"] == o["payment_intent"] && p["status"] == "processing"
                            })
                    })
                });
        if let Some(session) = processing {
            let result = if succeeds { "succeeded" } else { "failed" };
            let path = format!("/_test/checkout/sessions/{session}/async");
            self.stripe("POST", &path, &format!("result={result}"));
        }
    }

    fn succeeded_payments(&self, id: &str) -> Vec<Value> {
        self.emu
            .objects("payment_intent")
            .into_iter()
            .filter(|p| p["metadata"][INVOICE_KEY] == id && p["status"] == "succeeded")
            .collect()
    }

    /// The platform's refund. The first amount asked under an id that was
    /// not refused outright (a 4xx sends nothing) is kept: the most Stripe
    /// may ever refund under it.
    fn platform_refund(&mut self, id: &'static str, refund: u8, large: bool) {
        let amount = if large { "1000.00" } else { "300.00" };
        let refund_id = format!("r{refund}");
        let body = json!({"refundId": refund_id, "amount": amount, "reason": "duplicate"});
        let (status, _) = self.host("POST", &format!("/invoices/{id}/refunds"), Some(body));
        if !(400..500).contains(&status) {
            self.asked_refunds
                .entry((id, refund_id))
                .or_insert(if large { 100_000 } else { 30_000 });
        }
    }

    fn refund(&mut self, id: &str, full: bool) {
        let Some(pi) = self.succeeded_payments(id).into_iter().next() else {
            return;
        };
        let amount = pi["amount_received"].as_u64().unwrap_or(0);
        let part = if full { amount } else { amount / 4 };
        let pi = pi["id"].as_str().unwrap_or_default().to_string();
        self.stripe(
            "POST",
            "/v1/refunds",
            &format!("payment_intent={pi}&amount={part}"),
        );
    }

    fn dispute(&mut self, id: &str, step: DisputeStep) {
        let pis: BTreeSet<String> = self
            .succeeded_payments(id)
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect();
        let open = self
            .emu
            .objects("dispute")
            .into_iter()
            .filter(|d| {
                d["payment_intent"]
                    .as_str()
                    .is_some_and(|p| pis.contains(p))
            })
            .find(|d| d["status"] != "won" && d["status"] != "lost");
        match (step, open) {
            (DisputeStep::Open, None) => {
                if let Some(pi) = pis.iter().next_back() {
                    self.stripe("POST", "/_test/disputes", &format!("payment_intent={pi}"));
                }
            }
            (DisputeStep::Won | DisputeStep::Lost, Some(d)) => {
                let status = if step == DisputeStep::Won {
                    "won"
                } else {
                    "lost"
                };
                let path = format!(
                    "/_test/disputes/{}/close",
                    d["id"].as_str().unwrap_or_default()
                );
                self.stripe("POST", &path, &format!("status={status}"));
            }
            _ => {}
        }
    }

    fn run_queue(&mut self) {
        self.clock.advance_ms(6_000);
        for _ in 0..10 {
            if !self.app().run_next_job().unwrap_or(false) {
                break;
            }
        }
    }

    /// One event delivered as Stripe would (signed now); a 5xx is redelivered later.
    fn post(&mut self, event: &Value) {
        let body = serde_json::to_vec(event).expect("json");
        let header = stripe_emulator::signature_header(
            std::slice::from_ref(&self.secret),
            self.clock.now_secs(),
            &body,
        );
        let headers = [
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Stripe-Signature".to_string(), header),
        ];
        let r = self
            .app()
            .handle("POST", "/webhooks/stripe", &headers, &body);
        if r.status >= 500 {
            self.held.push(event.clone());
        }
        self.last_delivered = Some(event.clone());
    }

    fn deliver(&mut self, d: Delivery) {
        let events = self.emu.events();
        let mut fresh: Vec<Value> = events[self.made..].to_vec();
        self.made = events.len();
        match d {
            Delivery::InOrder => {}
            Delivery::Reversed => fresh.reverse(),
            Delivery::HoldNext => {
                if !fresh.is_empty() {
                    self.held.push(fresh.remove(0));
                }
            }
            Delivery::Duplicate => fresh.extend(self.last_delivered.clone()),
            Delivery::Release => fresh.append(&mut self.held),
        }
        for e in fresh {
            self.post(&e);
        }
    }

    /// Lets the history settle: faults healed, every webhook delivered (and
    /// redelivered while answered 5xx), the queue drained, a sync.
    pub fn quiesce(&mut self) {
        self.emu.heal();
        for _ in 0..4 {
            self.deliver(Delivery::Release);
            self.deliver(Delivery::InOrder);
            self.clock.advance_ms(10 * 60 * 1000);
            self.run_queue();
            let _ = self.app().sync();
        }
        self.deliver(Delivery::Release);
        self.deliver(Delivery::InOrder);
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// A field of the plugin's own record of `id`.
fn plugin_field(w: &World, id: &str, field: &str) -> Option<String> {
    let raw = w
        .app()
        .db
        .kv_peek(host_server::db::DEFAULT_MERCHANT, &format!("invoice:{id}"))
        .ok()??;
    let text = String::from_utf8(raw).ok()?;
    let prefix = format!("{field}=");
    text.split('&')
        .find_map(|kv| kv.strip_prefix(prefix.as_str()))
        .map(str::to_string)
}

/// The plugin's own record of `id`: its state, named as the host names statuses.
fn plugin_status(w: &World, id: &str) -> Option<String> {
    let state = plugin_field(w, id, "state")?;
    Some(match state.as_str() {
        "open" => "FINAL".into(),
        "failed" => "PAYMENT_FAILED".into(),
        "action_required" => "ACTION_REQUIRED".into(),
        s => s.to_ascii_uppercase(),
    })
}

fn money_taken(p: &Value) -> bool {
    p["status"] == "succeeded" || p["status"] == "processing"
}

/// Checked after every step. `before` is each invoice's host status before it.
pub fn check_step(w: &mut World, before: &BTreeMap<&str, Value>) -> Result<(), String> {
    for id in INVOICES {
        let p = w.platform.get(id).cloned().unwrap_or_default();
        let sessions = w.of_invoice("checkout.session", id);
        let intents = w.of_invoice("payment_intent", id);
        let created_now = |o: &&Value| !w.known.contains(o["id"].as_str().unwrap_or_default());
        let was_stopped = before[id]["collectionStopped"].is_string() && p.stopped;
        if was_stopped {
            if let Some(s) = sessions.iter().find(created_now) {
                return Err(format!(
                    "{id}: a Checkout Session {} opened after collection stopped",
                    s["id"]
                ));
            }
            let charged = intents
                .iter()
                .filter(created_now)
                .find(|pi| pi["metadata"]["billing_stripe_plugin_channel"] == "auto_charge");
            if let Some(pi) = charged {
                return Err(format!(
                    "{id}: charged off-session ({}) after collection stopped",
                    pi["id"]
                ));
            }
        }
        // Paid: no retry (nor any other off-session charge) follows.
        if before[id]["status"] == "PAID"
            && let Some(pi) = intents
                .iter()
                .filter(created_now)
                .find(|pi| pi["metadata"]["billing_stripe_plugin_channel"] == "auto_charge")
        {
            return Err(format!(
                "{id}: charged off-session ({}) after it was paid",
                pi["id"]
            ));
        }
        let taking = intents.iter().filter(|p| money_taken(p)).count();
        if taking as u32 > 1 + p.reopens {
            let ids: Vec<&Value> = intents
                .iter()
                .filter(|p| money_taken(p))
                .map(|p| &p["id"])
                .collect();
            return Err(format!("{id}: {taking} PaymentIntents took money: {ids:?}"));
        }
        w.handed_out.extend(plugin_field(w, id, "session"));
        let open: Vec<&Value> = sessions
            .iter()
            .filter(|s| s["status"] == "open")
            .filter(|s| w.handed_out.contains(s["id"].as_str().unwrap_or_default()))
            .map(|s| &s["id"])
            .collect();
        if open.len() > 1 {
            return Err(format!(
                "{id}: two payable Checkout Sessions open at once: {open:?}"
            ));
        }
    }
    check_platform_refunds(w)?;
    check_no_failure_email_after_paid(w, before)?;
    for kind in ["checkout.session", "payment_intent"] {
        for o in w.emu.objects(kind) {
            w.known
                .insert(o["id"].as_str().unwrap_or_default().to_string());
        }
    }
    Ok(())
}

/// Under one refund id, Stripe never refunds more than the platform asked
/// (a retry, a lost answer or news heard between tries never adds a refund).
fn check_platform_refunds(w: &World) -> Result<(), String> {
    let refunds = w.emu.objects("refund");
    for ((id, refund_id), asked) in &w.asked_refunds {
        let made: u64 = refunds
            .iter()
            .filter(|r| r["metadata"][INVOICE_KEY] == *id)
            .filter(|r| r["metadata"]["billing_stripe_plugin_refund"] == refund_id.as_str())
            .filter_map(|r| r["amount"].as_u64())
            .sum();
        if made > *asked {
            return Err(format!(
                "{id}: refund {refund_id} asked for {asked}, Stripe refunded {made}"
            ));
        }
    }
    Ok(())
}

fn check_no_failure_email_after_paid(
    w: &mut World,
    before: &BTreeMap<&str, Value>,
) -> Result<(), String> {
    let outbox = w.outbox();
    let intents = w.emu.objects("payment_intent");
    for e in &outbox[w.emails.min(outbox.len())..] {
        let key = e["dedupeKey"].as_str().unwrap_or_default();
        if let Some(pi) = intents.iter().find(|pi| {
            key.starts_with("payment-failed:")
                && pi["id"]
                    .as_str()
                    .is_some_and(|id| key.contains(&format!(":{id}:")))
        }) {
            let retry: u32 = pi["metadata"]["billing_stripe_plugin_retry"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let soft = pi["last_payment_error"]["decline_code"] == "insufficient_funds";
            if soft && (1..DEFAULT_RETRIES).contains(&retry) {
                return Err(format!("retry {retry} ({}) emailed: {key}", pi["id"]));
            }
        }
        for id in INVOICES {
            let failure = key.starts_with(&format!("payment-failed:{id}:"))
                || key.starts_with(&format!("action-required:{id}:"));
            let settled =
                before[id]["status"] == "PAID" || before[id]["collectionStopped"].is_string();
            if failure && settled {
                return Err(format!(
                    "{id}: failure email {key} after it was {}",
                    before[id]
                ));
            }
        }
    }
    w.emails = outbox.len();
    Ok(())
}

/// Checked once the history has quiesced.
pub fn check_final(w: &mut World) -> Result<(), String> {
    for id in INVOICES {
        let view = w.view(id);
        if view["id"].is_null() {
            continue;
        }
        // Stopped before its send ever completed (the queued send is then
        // cancelled): the host keeps DRAFT while the plugin's record is open.
        let never_sent = view["status"] == "DRAFT" && view["collectionStopped"].is_string();
        if let Some(plugin) = plugin_status(w, id)
            && view["status"] != plugin.as_str()
            && !(never_sent && plugin == "FINAL")
        {
            return Err(format!(
                "{id}: the host shows {} but the plugin's record is {plugin}",
                view["status"]
            ));
        }
        check_payments_listed(w, id, &view)?;
        check_overpayment(w, id, &view)?;
        check_failure_told(w, id, &view)?;
    }
    check_no_email_twice(w)?;
    check_order_independence(w)
}

/// No one gets the same email twice (same recipients, subject and text).
fn check_no_email_twice(w: &World) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for e in w.outbox() {
        let key = (
            e["to"].to_string(),
            e["subject"].to_string(),
            e["text"].to_string(),
        );
        if !seen.insert(key) {
            return Err(format!(
                "email sent twice: {} ({})",
                e["subject"], e["dedupeKey"]
            ));
        }
    }
    Ok(())
}

fn check_payments_listed(w: &World, id: &str, view: &Value) -> Result<(), String> {
    let listed: BTreeSet<&str> = view["payments"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["stripeRef"].as_str()).collect())
        .unwrap_or_default();
    for pi in w.succeeded_payments(id) {
        let pid = pi["id"].as_str().unwrap_or_default();
        if !listed.contains(pid) {
            return Err(format!(
                "{id}: succeeded payment {pid} missing from the host's payments {listed:?}"
            ));
        }
    }
    Ok(())
}

/// What the merchant keeps of `id`'s payments, from Stripe's ledger.
fn kept(w: &World, id: &str) -> u64 {
    let pis: Vec<Value> = w.succeeded_payments(id);
    let ids: BTreeSet<&str> = pis.iter().filter_map(|p| p["id"].as_str()).collect();
    let paid: u64 = pis
        .iter()
        .filter_map(|p| p["amount_received"].as_u64())
        .sum();
    let refunded: u64 = w
        .emu
        .objects("refund")
        .iter()
        .filter(|r| {
            r["payment_intent"]
                .as_str()
                .is_some_and(|p| ids.contains(p))
        })
        .filter(|r| r["status"] != "failed" && r["status"] != "canceled")
        .filter_map(|r| r["amount"].as_u64())
        .sum();
    let lost: u64 = w
        .emu
        .objects("dispute")
        .iter()
        .filter(|d| {
            d["payment_intent"]
                .as_str()
                .is_some_and(|p| ids.contains(p))
        })
        .filter(|d| d["status"] == "lost")
        .filter_map(|d| d["amount"].as_u64())
        .sum();
    paid.saturating_sub(refunded).saturating_sub(lost)
}

/// Money kept beyond what the platform asked for is reported (host and
/// email), and nothing is reported when there is none. Invoices re-priced or
/// reopened are left out: what they owe then depends on what the plugin knew.
fn check_overpayment(w: &World, id: &str, view: &Value) -> Result<(), String> {
    let p = w.platform.get(id).cloned().unwrap_or_default();
    if p.repriced || p.reopens > 0 || !p.sent {
        return Ok(());
    }
    let owed = if p.stopped { 0 } else { p.owed };
    let kept = kept(w, id);
    let told = w.outbox().iter().any(|e| {
        e["dedupeKey"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("overpaid:{id}:"))
    });
    if kept > owed {
        let excess = format!("{}.{:02}", (kept - owed) / 100, (kept - owed) % 100);
        if view["overpaid"] != excess.as_str() || !told {
            return Err(format!(
                "{id}: {excess} kept beyond what is owed, but overpaid is {} and the merchant {}",
                view["overpaid"],
                if told { "was told" } else { "was never told" }
            ));
        }
    } else if !view["overpaid"].is_null() {
        return Err(format!(
            "{id}: overpaid {} shown, but {kept} kept of {owed} owed",
            view["overpaid"]
        ));
    }
    Ok(())
}

/// An invoice left failed, or waiting on the customer, told both parties
/// about its last off-session failure.
fn check_failure_told(w: &World, id: &str, view: &Value) -> Result<(), String> {
    let state = view["status"].as_str().unwrap_or_default();
    let failed = state == "PAYMENT_FAILED" || state == "ACTION_REQUIRED";
    // Once collection stopped, no failure email goes out (and a failure heard
    // while it was stopped stays untold after a reopen).
    let reopened = w.platform.get(id).is_some_and(|p| p.reopens > 0);
    if !failed || view["collectionStopped"].is_string() || reopened {
        return Ok(());
    }
    let last_off_session = w
        .of_invoice("payment_intent", id)
        .into_iter()
        .filter(|p| p["metadata"]["billing_stripe_plugin_channel"] == "auto_charge")
        .filter(|p| !p["last_payment_error"].is_null())
        .next_back();
    let Some(pi) = last_off_session else {
        return Ok(());
    };
    let pid = pi["id"].as_str().unwrap_or_default();
    let keys: Vec<String> = w
        .outbox()
        .iter()
        .filter_map(|e| e["dedupeKey"].as_str().map(str::to_string))
        .filter(|k| k.contains(pid))
        .collect();
    let merchant = keys.iter().any(|k| k.ends_with(":merchant"));
    let customer = keys.iter().any(|k| !k.ends_with(":merchant"));
    // Dunning: a soft-declined retry with more to come tells no one; the
    // first failure and the last retry tell both.
    let retry: Option<u32> = pi["metadata"]["billing_stripe_plugin_retry"]
        .as_str()
        .and_then(|n| n.parse().ok());
    let soft = pi["last_payment_error"]["decline_code"] == "insufficient_funds";
    if let Some(n) = retry.filter(|_| soft)
        && keys.is_empty()
    {
        return if n < DEFAULT_RETRIES {
            Ok(())
        } else {
            Err(format!("{id}: the last retry {pid} failed and told no one"))
        };
    }
    if !(merchant && customer) {
        return Err(format!(
            "{id}: off-session failure {pid} told {keys:?}, not both parties"
        ));
    }
    Ok(())
}

/// Every event delivered again, newest first, changes nothing and emails no one.
fn check_order_independence(w: &mut World) -> Result<(), String> {
    let snapshot = |w: &World| -> Vec<Value> {
        INVOICES
            .iter()
            .map(|id| {
                let v = w.view(id);
                json!([
                    v["status"],
                    v["amountPaid"],
                    v["amountRefunded"],
                    v["payments"],
                    v["overpaid"],
                    plugin_status(w, id)
                ])
            })
            .collect()
    };
    let before = snapshot(w);
    let emails = w.outbox().len();
    let mut all = w.emu.events();
    all.reverse();
    for e in &all {
        w.post(e);
    }
    let after = snapshot(w);
    if before != after {
        return Err(format!(
            "redelivering every event changed the invoices: {before:?} -> {after:?}"
        ));
    }
    let now = w.outbox().len();
    if now != emails {
        return Err(format!(
            "redelivering every event sent {} emails again",
            now - emails
        ));
    }
    Ok(())
}

/// What the histories reached, so that a run shows it exercised something.
#[derive(Debug, Default)]
pub struct Reached {
    pub histories: u32,
    pub steps: u32,
    /// Final host statuses, with how many invoices ended in each.
    pub statuses: BTreeMap<String, u32>,
    pub charges_taken: u32,
    pub sessions: u32,
    pub emails: u32,
    pub stripe_faults: u32,
    /// Dunning retries charged (off-session charges with a retry number),
    /// and how many of them took the money.
    pub retries: u32,
    pub retries_paid: u32,
    /// Refunds Stripe made for the platform's `POST /invoices/{id}/refunds`.
    pub platform_refunds: u32,
    /// Cards saved on the card page (setup-mode sessions completed), and
    /// invoices paid by a card saved there.
    pub cards_replaced: u32,
    pub paid_by_replaced_card: u32,
}

static REACHED: std::sync::Mutex<Option<Reached>> = std::sync::Mutex::new(None);

fn note_reached(w: &World, steps: usize) {
    let mut guard = REACHED.lock().unwrap_or_else(|p| p.into_inner());
    let r = guard.get_or_insert_with(Reached::default);
    r.histories += 1;
    r.steps += steps as u32;
    for id in INVOICES {
        let status = w.view(id)["status"]
            .as_str()
            .unwrap_or("never sent")
            .to_string();
        *r.statuses.entry(status).or_default() += 1;
    }
    let pis = w.emu.objects("payment_intent");
    r.charges_taken += pis.iter().filter(|p| money_taken(p)).count() as u32;
    r.sessions += w.emu.objects("checkout.session").len() as u32;
    r.emails += w.outbox().len() as u32;
    r.stripe_faults += w.emu.injected().len() as u32;
    let retries: Vec<&Value> = pis
        .iter()
        .filter(|p| p["metadata"]["billing_stripe_plugin_retry"].is_string())
        .collect();
    r.retries += retries.len() as u32;
    r.retries_paid += retries.iter().filter(|p| money_taken(p)).count() as u32;
    r.platform_refunds += w
        .emu
        .objects("refund")
        .iter()
        .filter(|r| r["metadata"]["billing_stripe_plugin_refund"].is_string())
        .count() as u32;
    let saved: Vec<Value> = w
        .emu
        .objects("setup_intent")
        .into_iter()
        .filter(|si| si["status"] == "succeeded")
        .collect();
    r.cards_replaced += saved.len() as u32;
    r.paid_by_replaced_card += pis
        .iter()
        .filter(|p| money_taken(p))
        .filter(|p| {
            saved
                .iter()
                .any(|si| si["payment_method"] == p["payment_method"])
        })
        .count() as u32;
}

/// Takes what the histories reached since the last call.
pub fn reached() -> Reached {
    REACHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_default()
}

/// Plays `history` in a new world, checking after every step and at the end.
pub fn run(history: &[Action]) -> Result<(), String> {
    let mut w = World::new();
    for (n, a) in history.iter().enumerate() {
        let before: BTreeMap<&str, Value> = INVOICES.iter().map(|id| (*id, w.view(id))).collect();
        w.turn = n;
        w.play(*a);
        check_step(&mut w, &before).map_err(|e| format!("after step {} ({a:?}): {e}", n + 1))?;
    }
    w.quiesce();
    check_final(&mut w).map_err(|e| format!("once quiet: {e}"))?;
    note_reached(&w, history.len());
    Ok(())
}

/// Runs `cases` generated histories from `seed`; on a failure, the shrunk
/// history and the seed to replay it.
pub fn explore(seed: u64, cases: u32) -> Result<u32, String> {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    match runner.run(&history(), |h| run(&h).map_err(TestCaseError::fail)) {
        Ok(()) => Ok(cases),
        Err(TestError::Fail(why, minimal)) => {
            let steps: Vec<String> = minimal
                .iter()
                .enumerate()
                .map(|(i, a)| format!("  {}. {a:?}", i + 1))
                .collect();
            Err(format!(
                "seed {seed}: {why}\nshrunk history ({} steps):\n{}",
                minimal.len(),
                steps.join("\n")
            ))
        }
        Err(TestError::Abort(why)) => Err(format!("seed {seed}: aborted: {why}")),
    }
}

/// The fixed seeds `tests/run` plays, each with this many histories.
const SEEDS: [u64; 6] = [20261203, 7, 11, 1_000_003, 42, 9_999_991];
const CASES_PER_SEED: u32 = 150;

#[test]
fn generated_histories_keep_the_money_invariants() {
    let started = std::time::Instant::now();
    for seed in SEEDS {
        if let Err(e) = explore(seed, CASES_PER_SEED) {
            panic!("{e}");
        }
    }
    let reached = reached();
    eprintln!(
        "{} histories in {:.1} s; reached {reached:?}",
        SEEDS.len() as u32 * CASES_PER_SEED,
        started.elapsed().as_secs_f64(),
    );
    // The invariants above held over dunning too, not beside it.
    assert!(
        reached.retries > 0 && reached.retries_paid > 0,
        "no history reached a dunning retry: {reached:?}"
    );
    assert!(
        reached.platform_refunds > 0,
        "no history reached a platform refund: {reached:?}"
    );
    assert!(
        reached.cards_replaced > 0 && reached.paid_by_replaced_card > 0,
        "no history paid with a card saved on the card page: {reached:?}"
    );
}

/// The long soak: `HISTORIES=2000 SEED=1 cargo test -p e2e-tests --test
/// tests histories::soak -- --ignored --nocapture`. Prints the seed of any
/// failure, with its shrunk history.
#[test]
#[ignore]
fn soak() {
    let total: u32 = std::env::var("HISTORIES")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(1000);
    let first: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let per_seed = 50;
    for n in 0..total.div_ceil(per_seed) {
        let seed = first + u64::from(n);
        if let Err(e) = explore(seed, per_seed) {
            eprintln!("{e}\n");
            failures.push(seed);
        }
    }
    eprintln!(
        "soak: {total} histories from seed {first}, {:.0} s, {} failing seeds {failures:?}; reached {:?}",
        started.elapsed().as_secs_f64(),
        failures.len(),
        reached()
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

/// Found by the soak (seed 957): a retry's failure heard after the invoice
/// was paid by the next retry and then reopened for more was emailed, as if
/// it were the last retry; whether it is told is now read from the attempt.
#[test]
fn a_retrys_failure_heard_late_is_told_to_no_one() {
    let history = [
        Action::Send {
            inv: 0,
            amount: Amount::Full,
        },
        Action::DefaultCard(Card::SoftDeclines(2)),
        Action::Send {
            inv: 0,
            amount: Amount::Full,
        },
        Action::Advance { hours: 72 },
        Action::RunQueue,
        Action::Patch {
            inv: 0,
            change: Change::Open(Amount::Full),
        },
        Action::Deliver(Delivery::InOrder),
    ];
    run(&history).unwrap();
}

/// Found by the soak (seed 530): the link opened a session after a soft
/// decline, and the retry's charge closed it, which moves the attempt on;
/// the retry then lost its identity (no retry number on the charge, and a
/// lost answer would not have been resumed as the same retry).
#[test]
fn a_retry_that_closes_the_links_session_is_still_the_retry() {
    let history = [
        Action::Send {
            inv: 0,
            amount: Amount::Full,
        },
        Action::DefaultCard(Card::SoftDeclines(2)),
        Action::OpenLink { inv: 0 },
        Action::Advance { hours: 25 },
        Action::OpenLink { inv: 0 },
    ];
    run(&history).unwrap();
}
