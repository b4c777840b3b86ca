//! A deterministic host for tests: fixed clock, in-memory SQLite, and Stripe
//! answered in-process by the emulator (or by a script), every exchange recorded.

use host_runtime::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
use host_runtime::bindings::{
    Customer, Invoice, Merchant, PaymentLink, Transition, WebhookRequest,
};
use host_runtime::imports::{Clock, HostEnv, HttpBackend, KeyRing, MerchantKeys, StripeGate};
use host_runtime::ports::{HostStore, OutgoingEmail, StoreResult};
use host_runtime::runtime::{Limits, PLUGIN_WASM, Runtime};
use host_server::app::Backing;
use host_server::db::Db;
use host_server::platform::{PlatformCustomer, PlatformInvoice};
use host_server::record::Recorder;
use host_server::state::Records;
use host_tools::demo::{CUSTOMER_JSON, INVOICE_JSON};
use host_tools::offline_stripe::InProcess;
use serde_json::{Value, json};
use std::sync::Arc;
use stripe_emulator::{Emulator, form};

/// 2025-11-28T00:00:00Z
pub const NOW_MS: u64 = 1_764_288_000_000;
pub const SECRET: &str = "whsec_test_harness_secret";
pub const ACCOUNT: &str = "acct_TestMerchant";
/// The test merchant's id: its kv, emails and keys are kept under it.
pub const TENANT: &str = host_server::db::DEFAULT_MERCHANT;
/// The metadata key under which the plugin names its invoice on Stripe objects.
/// The merchant's notification address in `Served::notifying`.
pub const MERCHANT_EMAIL: &str = "finance@merchant.example";
pub const INVOICE_KEY: &str = "billing_stripe_plugin_invoice";
pub const ROGUE_WASM: &[u8] = include_bytes!(env!("ROGUE_WASM"));

pub struct Harness {
    pub runtime: Runtime,
    pub db: Arc<Db>,
    pub recorder: Arc<Recorder>,
    pub keyring: Arc<KeyRing>,
    pub emulator: Emulator,
    pub clock: Clock,
    pub merchant: Merchant,
}

pub fn merchant() -> Merchant {
    Merchant {
        account_id: ACCOUNT.into(),
        stripe_api_base: "https://api.stripe.com".into(),
        auto_charge: true,
        show_payment_link: true,
        stripe_receipts: false,
        pay_link_base: "https://billing.example.com".into(),
        notification_email: "finance@merchant.example".into(),
        webhook_tolerance_secs: 300,
        livemode: false,
        retry_days: vec![1, 3, 5, 7],
    }
}

/// The test merchant's secrets, kept by the host.
pub fn keys(webhook: &[&str]) -> MerchantKeys {
    MerchantKeys {
        webhook_signing: webhook.iter().map(|s| s.to_string()).collect(),
        pay_link: vec![PAY_LINK_KEY.into()],
    }
}

/// The test merchant's pay-link key (fake, like every key here).
pub const PAY_LINK_KEY: &str = "plk_test_harness";

impl Harness {
    /// Replaces the merchant's webhook secrets (a rotation).
    pub fn set_keys(&mut self, webhook: &[&str]) {
        self.keyring.set(TENANT, keys(webhook));
    }

    pub fn new() -> Self {
        Self::with(PLUGIN_WASM, Limits::default(), None)
    }

    /// `backend` replaces the in-process emulator (for scripted answers).
    pub fn with(wasm: &[u8], limits: Limits, backend: Option<Arc<dyn HttpBackend>>) -> Self {
        Self::build(wasm, limits, move |emu| {
            backend.unwrap_or_else(|| Arc::new(InProcess(emu.clone())))
        })
    }

    /// A host whose Stripe is the emulator wrapped by `wrap`, which the test keeps.
    pub fn wrapped<B: HttpBackend + 'static>(wrap: impl FnOnce(Emulator) -> B) -> (Self, Arc<B>) {
        let mut kept = None;
        let h = Self::build(PLUGIN_WASM, Limits::default(), |emu| {
            let b = Arc::new(wrap(emu.clone()));
            kept = Some(b.clone());
            b
        });
        (h, kept.expect("built"))
    }

    /// A host whose store and Stripe are wrapped (both kept by the test):
    /// the plugin's kv and outbox reach the store through `store`.
    pub fn with_store<S: HostStore + 'static, B: HttpBackend + 'static>(
        store: impl FnOnce(Arc<dyn HostStore>) -> S,
        wrap: impl FnOnce(Emulator) -> B,
    ) -> (Self, Arc<S>, Arc<B>) {
        let (mut kept_store, mut kept_backend) = (None, None);
        let h = Self::build_with(
            PLUGIN_WASM,
            Limits::default(),
            |emu| {
                let b = Arc::new(wrap(emu.clone()));
                kept_backend = Some(b.clone());
                b
            },
            |inner| {
                let s = Arc::new(store(inner));
                kept_store = Some(s.clone());
                s
            },
        );
        (h, kept_store.expect("built"), kept_backend.expect("built"))
    }

    fn build(
        wasm: &[u8],
        limits: Limits,
        backend: impl FnOnce(&Emulator) -> Arc<dyn HttpBackend>,
    ) -> Self {
        Self::build_with(wasm, limits, backend, |inner| inner)
    }

    fn build_with(
        wasm: &[u8],
        limits: Limits,
        backend: impl FnOnce(&Emulator) -> Arc<dyn HttpBackend>,
        store: impl FnOnce(Arc<dyn HostStore>) -> Arc<dyn HostStore>,
    ) -> Self {
        let clock = Clock::fixed(NOW_MS);
        let emulator = host_tools::offline_stripe::emulator(&clock);
        emulator.set_public_base("https://checkout.stripe.test");
        // The merchant has connected its Stripe account to the platform.
        emulator.connect_existing(ACCOUNT, "Test Merchant Ltd");
        let parts = test_parts(&clock, backend(&emulator), "harness");
        let keyring = Arc::new(KeyRing::default());
        keyring.set(TENANT, keys(&[SECRET]));
        let env = HostEnv::new(
            store(parts.db.host_store()),
            parts.stripe,
            clock.clone(),
            keyring.clone(),
        )
        .with_observer(parts.recorder.clone());
        let env = Arc::new(env);
        let cache = std::env::temp_dir().join("stripe-plugin-test-cache");
        let mut runtime = Runtime::new(wasm, env, limits, Some(&cache)).expect("runtime");
        if wasm == PLUGIN_WASM {
            tap_if_asked(&mut runtime);
        }
        let h = Self {
            runtime,
            db: parts.db,
            recorder: parts.recorder,
            keyring,
            emulator,
            clock,
            merchant: merchant(),
        };
        // The platform has saved its customer c1 (whose addresses the
        // plugin's emails may go to).
        let c1: Value = serde_json::from_str(CUSTOMER_JSON).expect("customer");
        h.records().put_customer("c1", &c1).expect("customer c1");
        h
    }

    /// The requests the plugin sent since the last call, in a readable form:
    /// the form body as one `key=value` per entry, `Authorization` never present.
    pub fn requests(&self) -> Vec<Value> {
        self.recorder
            .drain()
            .into_iter()
            .map(|x| {
                let body: Vec<String> = form::pairs(x.body.as_bytes()).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                let headers: Vec<String> = x.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                json!({"request": format!("{} {}", x.method, x.url), "headers": headers, "form": body,
                       "status": x.status, "error": x.error})
            })
            .collect()
    }

    pub fn records(&self) -> Records<'_> {
        Records::new(
            &self.db,
            host_server::db::DEFAULT_MERCHANT,
            self.clock.now_ms(),
        )
    }

    /// Wraps `body` as Stripe would deliver it now, signed with `secret`.
    pub fn delivery(&self, body: &[u8], secret: &str) -> WebhookRequest {
        let header =
            stripe_emulator::signature_header(&[secret.to_string()], self.clock.now_secs(), body);
        WebhookRequest {
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Stripe-Signature".into(), header),
            ],
            body: body.to_vec(),
        }
    }

    /// Stripe's customer as an object in the merchant's account.
    pub fn stripe_customer(&self, name: &str) -> String {
        let reply = self.emulator.handle(
            "POST",
            "/v1/customers",
            &[
                ("Authorization".into(), "Bearer sk_test_x".into()),
                ("Stripe-Account".into(), ACCOUNT.into()),
            ],
            format!("name={name}").as_bytes(),
        );
        let v: Value = serde_json::from_slice(&reply.body).expect("json");
        v["id"].as_str().expect("id").to_string()
    }
}

impl Harness {
    /// Calls the emulator as Stripe's dashboard or the customer would, in the merchant's account.
    pub fn stripe(&self, method: &str, path: &str, form: &str) -> Value {
        self.stripe_reply(method, path, form).1
    }

    /// As `stripe`, with the HTTP status.
    pub fn stripe_reply(&self, method: &str, path: &str, form: &str) -> (u16, Value) {
        let reply = self.emulator.handle(
            method,
            path,
            &[
                ("Authorization".into(), "Bearer sk_test_x".into()),
                ("Stripe-Account".into(), ACCOUNT.into()),
            ],
            form.as_bytes(),
        );
        (
            reply.status,
            serde_json::from_slice(&reply.body).expect("json"),
        )
    }

    /// Saves a test card for `cus`, as the default payment method if `default`.
    pub fn add_card(&self, cus: &str, number: &str, default: bool) -> String {
        let pm = self.stripe(
            "POST",
            "/v1/payment_methods",
            &format!("type=card&card[number]={number}"),
        );
        let id = pm["id"].as_str().expect("pm").to_string();
        self.stripe(
            "POST",
            &format!("/v1/payment_methods/{id}/attach"),
            &format!("customer={cus}"),
        );
        if default {
            self.stripe(
                "POST",
                &format!("/v1/customers/{cus}"),
                &format!("invoice_settings[default_payment_method]={id}"),
            );
        }
        id
    }

    /// The example invoice, for a customer already linked to `cus` (self-serve).
    pub fn invoice_for(&self, cus: &str) -> Invoice {
        let mut inv = invoice();
        inv.customer = customer_linked_to("c1", cus);
        inv
    }

    /// PaymentIntents Stripe holds, by status.
    pub fn intents(&self, status: &str) -> usize {
        self.emulator
            .objects("payment_intent")
            .iter()
            .filter(|p| p["status"] == status)
            .count()
    }

    pub fn emails(&self) -> Vec<Value> {
        self.records().outbox(TENANT).expect("outbox")
    }
}

/// The Checkout Session behind a payment link, for tests that drive it.
pub trait LinkSession {
    fn session(&self) -> &str;
    fn expiry(&self) -> u64;
}

impl LinkSession for PaymentLink {
    fn session(&self) -> &str {
        self.checkout_session_id
            .as_deref()
            .expect("the link has a Checkout Session behind it")
    }

    fn expiry(&self) -> u64 {
        self.expires_at.expect("the link's session expires")
    }
}

/// The payment link a handler ended with; fails the test, showing every
/// transition, if it ended with anything else.
pub fn last_link(ts: &[Transition]) -> &PaymentLink {
    match ts.last() {
        Some(Transition::PaymentLinkAttached(l)) => l,
        _ => panic!("expected to end with a payment link: {ts:?}"),
    }
}

/// The payment link among the transitions, if any.
pub fn link_in(ts: &[Transition]) -> Option<&PaymentLink> {
    ts.iter().find_map(|t| match t {
        Transition::PaymentLinkAttached(l) => Some(l),
        _ => None,
    })
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

/// The platform's example customer, without its Stripe external id.
pub fn customer(id: &str) -> Customer {
    let mut c: PlatformCustomer = serde_json::from_str(CUSTOMER_JSON).expect("fixture");
    c.external_ids.retain(|e| e.key != "Stripe");
    c.to_wit(id)
}

/// The example customer with `Stripe` set to `cus`.
pub fn customer_linked_to(id: &str, cus: &str) -> Customer {
    let mut c = customer(id);
    c.external_ids.push(host_runtime::bindings::ExternalId {
        key: "Stripe".into(),
        value: cus.into(),
    });
    c
}

/// The platform's example invoice (GBP 1200.00, Stripe enabled) for customer c1.
pub fn invoice() -> Invoice {
    let inv: PlatformInvoice = serde_json::from_str(INVOICE_JSON).expect("fixture");
    inv.to_wit(customer("c1"))
}

/// One canned refusal: method, path prefix, status, JSON body, times left.
type Refusal = (String, String, u16, String, u32);

/// Stripe answered in-process, except that chosen requests get a canned
/// refusal, each rule a number of times.
pub struct ScriptedStripe {
    pub emulator: Emulator,
    pub rules: std::sync::Mutex<Vec<Refusal>>,
}

impl ScriptedStripe {
    pub fn refuse(&self, method: &str, path: &str, status: u16, body: Value, times: u32) {
        self.rules.lock().unwrap().push((
            method.into(),
            path.into(),
            status,
            body.to_string(),
            times,
        ));
    }
}

impl HttpBackend for ScriptedStripe {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let path = req.url.split_once("://").map_or("", |(_, r)| r);
        let path = &path[path.find('/').unwrap_or(path.len())..];
        let mut rules = self.rules.lock().unwrap();
        if let Some(rule) = rules
            .iter_mut()
            .find(|r| r.4 > 0 && r.0 == req.method.as_str() && path.starts_with(r.1.as_str()))
        {
            rule.4 -= 1;
            return Ok(
                host_runtime::bindings::billing::stripe_plugin::http::Response {
                    status: rule.2,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: rule.3.clone().into_bytes(),
                },
            );
        }
        drop(rules);
        InProcess(self.emulator.clone()).send(req)
    }
}

impl Harness {
    /// A host whose Stripe refuses what the test scripts (see `ScriptedStripe`).
    pub fn scripted() -> (Self, Arc<ScriptedStripe>) {
        Self::wrapped(|emulator| ScriptedStripe {
            emulator,
            rules: Default::default(),
        })
    }

    /// Finalizes `inv` for `m`; fails the test on a trap or an error.
    pub fn finalize(&self, m: &Merchant, inv: &Invoice) -> Vec<Transition> {
        match self.runtime.on_invoice_finalized(TENANT, m, inv) {
            Ok(Ok(ts)) => ts,
            other => panic!("finalizing {} failed: {other:?}", inv.id),
        }
    }

    /// Opens the pay link `token` for `m`; fails the test on a trap or an error.
    pub fn open(&self, m: &Merchant, token: &str) -> host_runtime::bindings::PayPage {
        match self.runtime.on_pay_link_opened(TENANT, m, token) {
            Ok(Ok(o)) => o.page,
            other => panic!("opening the pay link failed: {other:?}"),
        }
    }

    /// Checkout Sessions Stripe holds, by status.
    pub fn sessions(&self, status: &str) -> usize {
        self.emulator
            .objects("checkout.session")
            .iter()
            .filter(|s| s["status"] == status)
            .count()
    }

    /// The pay-link token of an invoice, from the link it was given.
    pub fn token(&self, ts: &[Transition]) -> String {
        let link = link_in(ts).expect("a payment link");
        link.url.rsplit('/').next().unwrap_or_default().to_string()
    }
}

/// The modules whose snapshots the portability check replays.
const SNAPSHOT_MODULES: [&str; 3] = ["handlers::", "collections::", "reconciliation::"];

/// With `STRIPE_PLUGIN_SCENARIO_DIR` set, the harness of a snapshot test
/// records its calls as a portable scenario there (tests/portability/).
fn tap_if_asked(runtime: &mut Runtime) {
    static HARNESSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Some(dir) = std::env::var_os("STRIPE_PLUGIN_SCENARIO_DIR") else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("main").to_string();
    if !SNAPSHOT_MODULES.iter().any(|m| test.starts_with(m)) {
        return;
    }
    let n = HARNESSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    host_tools::portable::tap::Tap::attach(runtime, dir.into(), &format!("{test}-{n}"));
}

/// A signed event about `object`, delivered to the plugin and applied to the
/// host's records as `serve` does; returns the outcome.
pub fn deliver_event(
    h: &Harness,
    m: &Merchant,
    id: &str,
    kind: &str,
    object: Value,
) -> host_runtime::bindings::WebhookOutcome {
    let event = json!({"id": id, "object": "event", "type": kind, "account": ACCOUNT,
        "livemode": false, "created": NOW_MS / 1000, "data": {"object": object}});
    deliver(h, m, &event)
}

/// `event` delivered as Stripe would (signed now) and applied as `serve` does.
pub fn deliver(h: &Harness, m: &Merchant, event: &Value) -> host_runtime::bindings::WebhookOutcome {
    let body = serde_json::to_vec(event).unwrap();
    let outcome = h
        .runtime
        .on_webhook(TENANT, m, &h.delivery(&body, SECRET))
        .unwrap()
        .unwrap_or_else(|e| panic!("{}: {e:?}", event["type"]));
    h.records().apply(&outcome.transitions).unwrap();
    outcome
}

/// Every event the emulator made, delivered in order.
pub fn deliver_all(h: &Harness, m: &Merchant) {
    for e in h.emulator.events() {
        deliver(h, m, &e);
    }
}

/// Every event the emulator made, delivered newest first.
pub fn deliver_newest_first(h: &Harness, m: &Merchant) {
    for e in h.emulator.events().iter().rev() {
        deliver(h, m, e);
    }
}

/// A succeeded PaymentIntent of inv_01, as Stripe sends it in an event.
pub fn payment_of(pi: &str, amount: u64) -> Value {
    json!({"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
        "currency": "gbp", "status": "succeeded", "metadata": {(INVOICE_KEY): "inv_01"}})
}

/// A dispute of `pi`, as Stripe sends it in an event.
pub fn dispute_of(id: &str, pi: &str, status: &str, amount: u64) -> Value {
    json!({"id": id, "object": "dispute", "payment_intent": pi, "charge": "ch_x",
        "status": status, "amount": amount, "currency": "gbp"})
}

/// A host with inv_01 (GBP 1200.00) sent with a link and no auto-charge.
pub fn sent_invoice() -> (Harness, Merchant) {
    let h = Harness::new();
    let m = send_invoice_01(&h);
    (h, m)
}

/// Sends inv_01 (GBP 1200.00) on `h` with a link and no auto-charge; the
/// merchant it was sent for.
pub fn send_invoice_01(h: &Harness) -> Merchant {
    let mut m = h.merchant.clone();
    m.auto_charge = false;
    h.records()
        .insert_draft(&json!({"id": "inv_01"}), "inv_01")
        .unwrap();
    h.finalize(&m, &invoice());
    m
}

/// The host's view of inv_01.
pub fn host_view(h: &Harness) -> Value {
    h.records().invoice_view("inv_01").unwrap().unwrap()
}

impl Harness {
    /// The first Checkout Session Stripe holds.
    pub fn first_session(&self) -> String {
        self.emulator.objects("checkout.session")[0]["id"]
            .as_str()
            .expect("a session")
            .to_string()
    }

    /// The customer completes Checkout Session `session` (`card=…`, `async=1`).
    pub fn complete(&self, session: &str, form: &str) {
        self.stripe(
            "POST",
            &format!("/_test/checkout/sessions/{session}/complete"),
            form,
        );
    }
}

/// What a test host stands on: an in-memory store, Stripe through
/// `backend`, the fixed `clock`, exchanges recorded under `name`.
fn test_parts(clock: &Clock, backend: Arc<dyn HttpBackend>, name: &str) -> Backing {
    Backing {
        db: Arc::new(Db::in_memory().expect("sqlite")),
        stripe: StripeGate {
            base: "https://api.stripe.com".parse().expect("url"),
            api_key: Some(format!("sk_test_{name}")),
            backend,
        },
        clock: clock.clone(),
        recorder: Arc::new(Recorder::for_tests(name)),
    }
}

/// `serve`'s core (an `App`) on an in-memory store, a fixed clock and the
/// in-process emulator (reached through `backend`, made from it), for
/// tests that drive the platform's routes and move time.
pub struct Served {
    pub app: host_server::app::App,
    pub emulator: Emulator,
    pub clock: Clock,
    /// How many of the emulator's events `deliver` has sent so far.
    delivered: std::sync::Mutex<usize>,
}

impl Served {
    /// `flags` adjust the default merchant (on ACCOUNT, links to billing.example.com).
    pub fn start(
        flags: host_server::config::Flags,
        backend: impl FnOnce(&Emulator) -> Arc<dyn HttpBackend>,
    ) -> Self {
        let clock = Clock::fixed(NOW_MS);
        let emulator = host_tools::offline_stripe::emulator(&clock);
        emulator.set_public_base("https://checkout.stripe.com");
        emulator.connect_existing(ACCOUNT, "Served Ltd");
        let parts = test_parts(&clock, backend(&emulator), "served");
        let flags = host_server::config::Flags {
            account: flags.account.clone().or(Some(ACCOUNT.into())),
            webhook_secrets: vec![SECRET.into()],
            pay_link_secrets: vec!["plk_test_served".into()],
            pay_link_base: Some("https://billing.example.com".into()),
            cache_dir: Some(std::env::temp_dir().join("stripe-plugin-test-cache")),
            ..flags
        };
        let settings = host_server::config::Settings::resolve(&flags).expect("settings");
        let app = host_server::app::App::with_backing(&settings, parts).expect("host");
        Self {
            app,
            emulator,
            clock,
            delivered: Default::default(),
        }
    }

    /// On the in-process emulator, the default merchant with `MERCHANT_EMAIL`
    /// as its notification address, and `flags` otherwise.
    pub fn notifying(flags: host_server::config::Flags) -> Self {
        let flags = host_server::config::Flags {
            notification_email: Some(MERCHANT_EMAIL.into()),
            ..flags
        };
        Self::start(flags, |emu| {
            Arc::new(host_tools::offline_stripe::InProcess(emu.clone()))
        })
    }

    /// The example invoice (`inv_01`) created and sent: its view.
    pub fn send_example(&self) -> Value {
        assert_eq!(self.call("POST", "/invoices", INVOICE_JSON).0, 201);
        let (status, view) = self.call("POST", "/invoices/inv_01/finalize", "");
        assert_eq!(status, 200, "{view}");
        view
    }

    /// The next `n` charges of card `pm` are declined with `code`.
    pub fn declines(&self, pm: &str, code: &str, n: u32) {
        self.stripe_test(
            &format!("/_test/payment_methods/{pm}/declines"),
            &format!("decline_code={code}&times={n}"),
        );
    }

    /// The PaymentIntents Stripe made for invoice `id`, oldest first.
    pub fn intents_of(&self, id: &str) -> Vec<Value> {
        self.intents()
            .into_iter()
            .filter(|pi| pi["metadata"][INVOICE_KEY] == id)
            .collect()
    }

    /// The platform's view of invoice `id`.
    pub fn view(&self, id: &str) -> Value {
        self.call("GET", &format!("/invoices/{id}"), "").1
    }

    /// Stripe's deliveries: every event the emulator made since the last
    /// call, oldest first, signed, to serve's webhook route; their statuses.
    pub fn deliver(&self) -> Vec<u16> {
        let events = self.emulator.events();
        let mut done = self.delivered.lock().unwrap();
        let fresh: Vec<Value> = events.into_iter().skip(*done).collect();
        *done += fresh.len();
        drop(done);
        fresh.iter().map(|event| self.deliver_one(event)).collect()
    }

    /// Stripe's delivery of `event` (again, if it was delivered before).
    pub fn deliver_one(&self, event: &Value) -> u16 {
        let body = serde_json::to_vec(event).unwrap();
        let t = (self.clock.now_ms() / 1000) as i64;
        let signature = stripe_emulator::signature_header(&[SECRET.to_string()], t, &body);
        let headers = [
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Stripe-Signature".to_string(), signature),
        ];
        self.app
            .handle("POST", "/webhooks/stripe", &headers, &body)
            .status
    }

    /// Runs every job of the queue due now (the host's clock), as a worker
    /// would; how many ran.
    pub fn run_due_jobs(&self) -> usize {
        let mut ran = 0;
        while self.app.run_next_job().expect("a job") {
            ran += 1;
            assert!(ran < 1_000, "the queue never empties");
        }
        ran
    }

    /// A test control of the emulator (`/_test/...`).
    pub fn stripe_test(&self, path: &str, form: &str) -> Value {
        let r = self.emulator.handle("POST", path, &[], form.as_bytes());
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    }

    /// Calls the emulator's API in the merchant's account, as its dashboard would.
    pub fn stripe(&self, method: &str, path: &str, form: &str) -> Value {
        let headers = [
            ("Authorization".to_string(), "Bearer sk_test_x".to_string()),
            ("Stripe-Account".to_string(), ACCOUNT.to_string()),
        ];
        let r = self
            .emulator
            .handle(method, path, &headers, form.as_bytes());
        assert_eq!(
            r.status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        serde_json::from_slice(&r.body).expect("json")
    }

    /// A Stripe customer with card `number` as its default, linked to the
    /// platform's customer `c1` (the example invoice's); the card's id.
    pub fn customer_with_card(&self, number: &str) -> String {
        let cus = self.stripe("POST", "/v1/customers", "name=John+Doe");
        let cus = cus["id"].as_str().unwrap().to_string();
        let pm = self.stripe(
            "POST",
            "/v1/payment_methods",
            &format!("type=card&card[number]={number}"),
        );
        let pm = pm["id"].as_str().unwrap().to_string();
        make_default(
            |method, path, form| {
                self.stripe(method, path, form);
            },
            &cus,
            &pm,
        );
        let mut c: Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
        c["externalIds"][1]["value"] = cus.as_str().into();
        let (status, body) = self.call("PUT", "/customers/c1", &c.to_string());
        assert_eq!(status, 200, "{body}");
        pm
    }

    /// The emails in the default merchant's outbox.
    pub fn outbox(&self) -> Vec<Value> {
        let (status, v) = self.call("GET", "/outbox", "");
        assert_eq!(status, 200, "{v}");
        v["data"].as_array().cloned().unwrap_or_default()
    }

    /// The PaymentIntents Stripe made, oldest first.
    pub fn intents(&self) -> Vec<Value> {
        self.emulator.objects("payment_intent")
    }

    /// A platform call (JSON), as the platform's own code in process makes it.
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let json = [("Content-Type".to_string(), "application/json".to_string())];
        let r = self.app.handle(method, path, &json, body.as_bytes());
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    /// Sends the example invoice with `id`, and returns its pay-link token.
    pub fn send(&self, id: &str) -> String {
        let mut doc: Value = serde_json::from_str(INVOICE_JSON).expect("invoice");
        doc["id"] = id.into();
        assert_eq!(self.call("POST", "/invoices", &doc.to_string()).0, 201);
        let (status, view) = self.call("POST", &format!("/invoices/{id}/finalize"), "");
        assert_eq!(status, 200, "{view}");
        token_of(&view)
    }

    /// The pay page of `token`: its status.
    pub fn open(&self, token: &str) -> u16 {
        self.app
            .handle("GET", &format!("/pay/{token}"), &[], b"")
            .status
    }
}

/// The pay-link token in an invoice's view.
pub fn token_of(view: &Value) -> String {
    let link = view["paymentLink"].as_str().expect("a pay link");
    link.rsplit('/').next().expect("a token").to_string()
}

/// What a `Watched` store saw: a read of a key, a write to a key (or the
/// outbox), a request to make writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent<'a> {
    Read(&'a str),
    Write(&'a str),
    Durable,
}

/// The real store, with what the plugin's imports ask of it reported to a
/// test as it happens.
pub struct Watched {
    inner: Arc<dyn HostStore>,
    watch: Box<dyn Fn(StoreEvent) + Send + Sync>,
}

impl Watched {
    pub fn new(
        inner: Arc<dyn HostStore>,
        watch: impl Fn(StoreEvent) + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            watch: Box::new(watch),
        }
    }
}

impl host_runtime::ports::KvStore for Watched {
    fn kv_get(&self, ns: &str, key: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>> {
        (self.watch)(StoreEvent::Read(key));
        self.inner.kv_get(ns, key, now_ms)
    }
    fn kv_set(&self, ns: &str, key: &str, value: &[u8], exp: Option<i64>) -> StoreResult<()> {
        (self.watch)(StoreEvent::Write(key));
        self.inner.kv_set(ns, key, value, exp)
    }
    fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        (self.watch)(StoreEvent::Write(key));
        self.inner.kv_delete(ns, key)
    }
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        exp: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        (self.watch)(StoreEvent::Write(key));
        self.inner
            .kv_compare_and_swap(ns, key, expected, new, exp, now_ms)
    }
    fn kv_purge_expired(&self, now_ms: i64) -> StoreResult<()> {
        self.inner.kv_purge_expired(now_ms)
    }
    fn make_durable(&self) -> StoreResult<()> {
        (self.watch)(StoreEvent::Durable);
        self.inner.make_durable()
    }
}

impl host_runtime::ports::EmailStore for Watched {
    fn outbox_insert(&self, email: &OutgoingEmail) -> StoreResult<bool> {
        (self.watch)(StoreEvent::Write("outbox"));
        self.inner.outbox_insert(email)
    }
    fn customer_has_address(&self, ns: &str, address: &str) -> StoreResult<bool> {
        self.inner.customer_has_address(ns, address)
    }
}

/// Attaches payment method `pm` to Stripe customer `cus` and makes it the
/// default, through `stripe` (the emulator's API, in the merchant's account).
pub fn make_default(stripe: impl Fn(&str, &str, &str), cus: &str, pm: &str) {
    stripe(
        "POST",
        &format!("/v1/payment_methods/{pm}/attach"),
        &format!("customer={cus}"),
    );
    stripe(
        "POST",
        &format!("/v1/customers/{cus}"),
        &format!("invoice_settings[default_payment_method]={pm}"),
    );
}
