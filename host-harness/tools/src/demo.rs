//! `host-harness demo`: the whole story offline. The emulator and `serve` run
//! in-process on loopback ports; the demo plays the billing platform and the
//! customer over real HTTP, and prints what happened.

use crate::access::{self, Audience, Door};
use crate::app::App;
use crate::config::{ApiKey, Flags, Settings};
use crate::http_server::{RunningServer, Shutdown};
use crate::imports::Clock;
use crate::record::{Exchange, Recorder};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use stripe_emulator::server::RunningEmulator;
use stripe_emulator::{Delivery, Emulator, WebhookTarget};

pub const CUSTOMER_JSON: &str = include_str!("../../fixtures/customer.json");
pub const INVOICE_JSON: &str = include_str!("../../fixtures/invoice.json");

/// A test-mode key for the emulator only; it never reaches Stripe.
pub const DEMO_KEY: &str = "sk_test_offline_demo";

/// A complete offline setup: emulator, host, HTTP client.
pub struct Offline {
    pub emulator: RunningEmulator,
    /// The public listener: webhooks, pay pages, /healthz.
    pub server: RunningServer,
    /// The platform listener: everything else, with `token`.
    pub admin: RunningServer,
    /// A platform-wide token, made at start as `host-harness token create` would.
    pub token: String,
    pub app: Arc<App>,
    agent: ureq::Agent,
    _dir: Option<TempDir>,
}

/// A private directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How the emulator reaches `serve`'s webhook route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhooks {
    /// Every event, signed with `serve`'s secrets (as `stripe listen`
    /// forwards them); a secret is made when none is given.
    Forwarded,
    /// Only through the endpoints registered with `/v1/webhook_endpoints`
    /// (as `host-harness stripe-setup` leaves them), with their secrets.
    Registered,
}

impl Offline {
    /// Starts the emulator and a host wired to it. `flags` adjust the merchant.
    pub fn start(flags: &Flags) -> Result<Self> {
        let emulator = RunningEmulator::start(
            Emulator::new(stripe_emulator::Clock::system()),
            "127.0.0.1:0",
        )
        .map_err(anyhow::Error::msg)?;
        let server = RunningServer::bind("127.0.0.1:0")?;
        Self::start_with(emulator, server, flags, Webhooks::Forwarded)
    }

    /// Starts a host on `server` (its public listener, bound already, so
    /// that its URL could be registered first) against `emulator`.
    pub fn start_with(
        emulator: RunningEmulator,
        server: RunningServer,
        flags: &Flags,
        webhooks: Webhooks,
    ) -> Result<Self> {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let unique = format!("{}-{}-{n}", std::process::id(), Clock::System.now_ms());
        let dir = TempDir(std::env::temp_dir().join(format!("stripe-plugin-demo-{unique}")));
        std::fs::create_dir_all(&dir.0)?;
        let secret = format!("whsec_demo_{unique}");
        let admin = RunningServer::bind("127.0.0.1:0")?;
        let mut flags = flags.clone();
        flags
            .stripe_api_base
            .get_or_insert(emulator.base_url.clone());
        let db = match std::env::var("STRIPE_PLUGIN_TEST_POSTGRES") {
            // Tests run on PostgreSQL when STRIPE_PLUGIN_TEST_POSTGRES names a
            // server (see tests/run): a new, empty database per host.
            Ok(server) if !server.is_empty() => {
                let name = format!("offline_{}", unique.replace('-', "_"));
                crate::db::postgres::create_database(&server, &name)?.into()
            }
            _ => dir.0.join("host.db"),
        };
        if crate::db::is_postgres(&db.to_string_lossy()) && flags.pay_link_secrets.is_empty() {
            // Workers on PostgreSQL are given their pay-link key.
            let key = crate::tokens::random_bytes::<32>()?;
            flags
                .pay_link_secrets
                .push(format!("plk_{}", hex::encode(key)));
        }
        flags.db.get_or_insert(db);
        // The host's database is thrown away with the demo; its compiled
        // component is kept in the user's cache, for the next start.
        if flags.cache_dir.is_none() {
            flags.cache_dir = host_server::cache_dirs::user_dir();
        }
        flags.account.get_or_insert("acct_DemoMerchant".into());
        flags
            .notification_email
            .get_or_insert("finance@merchant.example".into());
        flags.pay_link_base.get_or_insert(server.base_url.clone());
        if flags.webhook_secrets.is_empty() && webhooks == Webhooks::Forwarded {
            flags.webhook_secrets.push(secret);
        }
        let mut settings = Settings::resolve(&flags)?;
        // The emulator's key is given, never taken from the environment.
        if flags.api_key_env.is_none() {
            settings.api_key = Some(ApiKey(DEMO_KEY.into()));
        }
        let recorder = match &settings.record_http {
            Some(path) => Recorder::to_file(path)?.in_memory(),
            None => Recorder::for_tests("offline"),
        };
        let app = Arc::new(App::from_settings(&settings, recorder)?);
        let token = app
            .tokens()
            .create(None, "offline", Clock::System.now_ms() as i64)?
            .token;
        server.run(app.clone(), 8, Shutdown::OnDrop, Door::Public, &[])?;
        admin.run(app.clone(), 4, Shutdown::OnDrop, Door::Platform, &[])?;
        if let Some(account) = settings.merchant.account_id.as_deref() {
            // The merchant connected its Stripe account to the platform.
            emulator
                .emulator
                .connect_existing(account, "Demo Merchant Ltd");
        }
        if webhooks == Webhooks::Forwarded {
            emulator.emulator.set_webhook(Some(WebhookTarget {
                url: format!("{}/webhooks/stripe", server.base_url),
                secrets: settings.keys.webhook_signing.clone(),
                delivery: Delivery::Automatic,
            }));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Self {
            emulator,
            server,
            admin,
            token,
            app,
            agent,
            _dir: Some(dir),
        })
    }

    /// Calls the host (`serve`) as its audience would and returns status and
    /// JSON: a public route (a webhook, a pay page) on the public listener;
    /// any other as the platform, on the platform listener with its token.
    pub fn host(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, Value)> {
        let segments: Vec<&str> = path
            .split('?')
            .next()
            .unwrap_or(path)
            .trim_matches('/')
            .split('/')
            .collect();
        if access::audience(method, &segments) == Audience::Public {
            let url = format!("{}{path}", self.server.base_url);
            return call(&self.agent, method, &url, body, &[]);
        }
        let url = format!("{}{path}", self.admin.base_url);
        let auth = format!("Bearer {}", self.token);
        call(&self.agent, method, &url, body, &[("Authorization", &auth)])
    }

    /// One call to any URL with exactly these headers (a JSON body is sent
    /// as `application/json`, anything else as a form): for the tests of
    /// what the listeners refuse.
    pub fn raw(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        call(&self.agent, method, url, body, headers)
    }

    /// Calls the emulator as a customer or test would (test-only routes included).
    pub fn stripe(&self, method: &str, path: &str, form: Option<&str>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.emulator.base_url);
        call(&self.agent, method, &url, form, &[])
    }

    /// The customer pays Checkout Session `session` with the test card `card`.
    pub fn pay_session(&self, session: &str, card: &str) -> Result<u16> {
        let path = format!("/_test/checkout/sessions/{session}/complete");
        Ok(self.stripe("POST", &path, Some(&format!("card={card}")))?.0)
    }

    /// Calls the emulator's API as the default merchant would from Stripe's dashboard.
    pub fn stripe_api(&self, method: &str, path: &str, form: &str) -> Result<(u16, Value)> {
        let account = self.app.merchant()?.account_id;
        self.stripe_api_as(&account, method, path, form)
    }

    /// Calls the emulator's API as the owner of `account` would.
    pub fn stripe_api_as(
        &self,
        account: &str,
        method: &str,
        path: &str,
        form: &str,
    ) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.emulator.base_url);
        let auth = format!("Bearer {DEMO_KEY}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Stripe-Account", account),
        ];
        call(&self.agent, method, &url, Some(form), &headers)
    }

    /// Saves a test card as the default payment method of the platform
    /// customer's Stripe customer, as the merchant would in Stripe's dashboard.
    pub fn save_default_card(&self, customer_id: &str, number: &str) -> Result<String> {
        let (_, c) = self.host("GET", &format!("/customers/{customer_id}"), None)?;
        let Some(cus) = c["stripeCustomerId"].as_str().map(str::to_string) else {
            bail!("customer {customer_id} is not linked to Stripe: {c}");
        };
        let (_, pm) = self.stripe_api(
            "POST",
            "/v1/payment_methods",
            &format!("type=card&card[number]={number}"),
        )?;
        let pm = pm["id"].as_str().unwrap_or_default().to_string();
        self.stripe_api(
            "POST",
            &format!("/v1/payment_methods/{pm}/attach"),
            &format!("customer={cus}"),
        )?;
        let default = format!("invoice_settings[default_payment_method]={pm}");
        self.stripe_api("POST", &format!("/v1/customers/{cus}"), &default)?;
        Ok(pm)
    }

    /// Creates a draft from the example invoice with `changes` applied, and finalizes it.
    pub fn send_invoice(&self, changes: Value) -> Result<(u16, Value)> {
        let mut inv: Value = serde_json::from_str(INVOICE_JSON)?;
        if let (Some(i), Some(c)) = (inv.as_object_mut(), changes.as_object()) {
            i.extend(c.clone());
        }
        let id = inv["id"].as_str().unwrap_or_default().to_string();
        self.host("POST", "/invoices", Some(&inv.to_string()))?;
        self.host("POST", &format!("/invoices/{id}/finalize"), None)
    }

    /// Waits until the invoice reaches `status`.
    pub fn wait_for_status(&self, invoice: &str, status: &str, within: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            let (_, inv) = self.host("GET", &format!("/invoices/{invoice}"), None)?;
            if inv["status"] == status {
                return Ok(inv);
            }
            if start.elapsed() > within {
                bail!(
                    "invoice {invoice} is {} after {} s, not {status}",
                    inv["status"],
                    within.as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Posts `body` to the host's webhook endpoint, signed now with the
    /// merchant's first secret, as Stripe delivers an event.
    pub fn post_webhook(&self, body: &[u8]) -> Result<(u16, Value)> {
        let header = stripe_emulator::signature_header(
            &self.app.webhook_secrets()[..1],
            Clock::System.now_secs(),
            body,
        );
        let url = format!("{}/webhooks/stripe", self.server.base_url);
        let req = ureq::http::Request::builder()
            .method("POST")
            .uri(url.as_str())
            .header("Content-Type", "application/json")
            .header("Stripe-Signature", header)
            .body(body.to_vec())?;
        let resp = self.agent.run(req).with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// The plugin's kv value under `key` in the merchant's namespace (for tests
    /// that compare the host's records with the plugin's).
    pub fn plugin_kv(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.app
            .db
            .kv_peek(&self.app.platform.default_merchant, key)
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.app.recorder.drain()
    }
}

/// One HTTP call; a body that is not JSON is sent as a form.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value)> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    if let Some(b) = body {
        let form = !b.trim_start().starts_with('{');
        builder = builder.header(
            "Content-Type",
            if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            },
        );
    }
    let req = builder.body(body.unwrap_or("").as_bytes().to_vec())?;
    let resp = agent.run(req).with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

struct Timeline {
    start: Instant,
}

impl Timeline {
    fn step(&self, what: &str) {
        println!("\n[{:>6.3}s] == {what}", self.start.elapsed().as_secs_f64());
    }

    fn show(&self, off: &Offline) {
        for x in off.exchanges() {
            let key = x
                .headers
                .iter()
                .find(|(k, _)| k == "Idempotency-Key")
                .map(|(_, v)| format!("  key={v}"))
                .unwrap_or_default();
            let path = x
                .url
                .split_once("://")
                .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
                .unwrap_or(&x.url);
            println!("          plugin -> Stripe  {} {path}{key}", x.method);
            let body: Value = serde_json::from_str(&x.response).unwrap_or(Value::Null);
            let what = body["id"]
                .as_str()
                .or(body["error"]["message"].as_str())
                .unwrap_or("");
            match x.status {
                Some(s) => println!("          Stripe -> plugin  {s} {what}"),
                None => println!(
                    "          Stripe -> plugin  no answer: {}",
                    x.error.unwrap_or_default()
                ),
            }
        }
        for line in off.app.drain_journal() {
            println!("          transition        {line}");
        }
    }
}

/// Runs the story and prints the timeline. Errors if any step goes wrong.
pub fn run(flags: &Flags) -> Result<()> {
    let t = Timeline {
        start: Instant::now(),
    };
    let off = Offline::start(flags)?;
    println!(
        "Stripe emulator on {}, billing host on {} (public) and {} (platform, with a token)",
        off.emulator.base_url, off.server.base_url, off.admin.base_url
    );

    t.step("The platform saves customer c1 (no Stripe id yet)");
    let mut customer: Value = serde_json::from_str(CUSTOMER_JSON)?;
    customer["externalIds"] = serde_json::json!([{"key": "Xero", "value": "123456789"}]);
    let (status, _) = off.host("PUT", "/customers/c1", Some(&customer.to_string()))?;
    println!("          PUT /customers/c1 -> {status}");
    t.show(&off);

    t.step("The platform creates invoice INV-0001 (GBP 1200.00, Stripe enabled) and finalizes it");
    let (status, _) = off.host("POST", "/invoices", Some(INVOICE_JSON))?;
    println!("          POST /invoices -> {status}");
    let (status, inv) = off.host("POST", "/invoices/inv_01/finalize", None)?;
    println!(
        "          POST /invoices/inv_01/finalize -> {status}, status {}",
        inv["status"]
    );
    t.show(&off);
    let Some(link) = inv["paymentLink"].as_str() else {
        bail!("no payment link on the invoice: {inv}")
    };
    println!("          payment link on the invoice: {link}");

    t.step("The customer pays the Checkout Session with 4242 4242 4242 4242");
    let session = inv["checkoutSessionId"].as_str().unwrap_or_default();
    let (status, paid) = off.stripe(
        "POST",
        &format!("/_test/checkout/sessions/{session}/complete"),
        Some("card=4242424242424242"),
    )?;
    println!(
        "          checkout -> {status}, payment_status {}",
        paid["payment_status"]
    );

    t.step("Stripe sends the signed webhook; the host marks the invoice paid");
    let inv = off.wait_for_status("inv_01", "PAID", Duration::from_secs(15))?;
    t.show(&off);
    println!(
        "          GET /invoices/inv_01 -> status {}, amountPaid {}",
        inv["status"], inv["amountPaid"]
    );
    let (_, again) = off.host(
        "GET",
        &format!("/pay/{}", link.rsplit('/').next().unwrap_or_default()),
        None,
    )?;
    println!(
        "          the same pay link, opened again: {}",
        page_title(&again)
    );

    t.step("Invoice INV-0002 is charged automatically with the card saved at checkout");
    let (_, inv2) =
        off.send_invoice(serde_json::json!({"id": "inv_02", "invoiceNumber": "INV-0002"}))?;
    t.show(&off);
    println!(
        "          INV-0002 -> status {}, amountPaid {}",
        inv2["status"], inv2["amountPaid"]
    );
    if inv2["status"] != "PAID" {
        bail!("INV-0002 was not charged: {inv2}");
    }

    t.step("The customer's default card is now one the bank declines (4000 0000 0000 0341); INV-0003 is sent");
    off.save_default_card("c1", "4000000000000341")?;
    let (_, inv3) =
        off.send_invoice(serde_json::json!({"id": "inv_03", "invoiceNumber": "INV-0003"}))?;
    t.show(&off);
    println!(
        "          INV-0003 -> status {}, Stripe said \"{}\"",
        inv3["status"].as_str().unwrap_or("?"),
        inv3["lastFailure"]["message"].as_str().unwrap_or("nothing")
    );
    let (_, outbox) = off.host("GET", "/outbox", None)?;
    for m in outbox["data"].as_array().into_iter().flatten() {
        println!(
            "          email to {}: {}",
            m["to"].as_str().unwrap_or(""),
            m["subject"].as_str().unwrap_or("")
        );
    }

    t.step("A JPY invoice (JPY 5000, a zero-decimal currency) is charged with a good card");
    off.save_default_card("c1", "4242424242424242")?;
    let (_, inv4) = off.send_invoice(serde_json::json!({"id": "inv_04", "invoiceNumber": "INV-0004", "currency": "JPY",
        "amountDue": "5000", "grossTotal": "5000", "netTotal": "5000", "totalTax": "0", "lineItems": []}))?;
    t.show(&off);
    let pi = inv4["payments"][0]["stripeRef"]
        .as_str()
        .unwrap_or_default();
    let (_, charged) = off.stripe_api("GET", &format!("/v1/payment_intents/{pi}"), "")?;
    println!(
        "          INV-0004 -> status {}; Stripe charged amount={} {}",
        inv4["status"], charged["amount"], charged["currency"]
    );

    let (inv, refunds) = refund_part_of_the_first(&t, &off)?;

    println!(
        "\nDone: INV-0001 {}, INV-0002 {}, INV-0003 {}, INV-0004 {}.",
        inv["status"], inv2["status"], inv3["status"], inv4["status"]
    );
    if inv3["status"] != "PAYMENT_FAILED"
        || inv4["status"] != "PAID"
        || charged["amount"] != 5000
        || inv["status"] != "PARTIALLY_REFUNDED"
        || refunds != 1
    {
        bail!("the story did not end as it should");
    }
    Ok(())
}

/// The platform refunds part of INV-0001, then sends the same request
/// again (a retry): one refund at Stripe. Returns the invoice as the host
/// shows it and how many refunds Stripe holds for its payment.
fn refund_part_of_the_first(t: &Timeline, off: &Offline) -> Result<(Value, usize)> {
    t.step("The platform refunds GBP 200.00 of INV-0001 (refund r1), then sends the same request again");
    let body = serde_json::json!({"refundId": "r1", "amount": "200.00", "reason": "requested_by_customer"})
        .to_string();
    for attempt in ["first", "again"] {
        let (status, _) = off.host("POST", "/invoices/inv_01/refunds", Some(&body))?;
        println!("          POST /invoices/inv_01/refunds ({attempt}) -> {status}");
    }
    let inv = off.wait_for_status("inv_01", "PARTIALLY_REFUNDED", Duration::from_secs(15))?;
    t.show(off);
    let pi = inv["payments"][0]["stripeRef"].as_str().unwrap_or_default();
    let (_, listed) = off.stripe_api("GET", &format!("/v1/refunds?payment_intent={pi}"), "")?;
    let refunds = listed["data"].as_array().map_or(0, Vec::len);
    println!(
        "          INV-0001 -> status {}, amountRefunded {}; Stripe holds {refunds} refund for {pi}",
        inv["status"], inv["amountRefunded"]
    );
    Ok((inv, refunds))
}

fn page_title(v: &Value) -> String {
    let html = v.as_str().unwrap_or_default();
    html.split("<h1>")
        .nth(1)
        .and_then(|r| r.split("</h1>").next())
        .unwrap_or("(no page)")
        .to_string()
}
