//! `host-harness bench-webhook`: the per-event time of `on-webhook` through
//! the real runtime (pooling allocator, SQLite kv in memory), measured several
//! ways in one run, printed as one JSON object for `tests/bench/run` to set
//! beside stripe-node's `constructEvent` in the same run.

use crate::bindings::{Merchant, WebhookRequest};
use crate::db::Db;
use crate::imports::{Clock, HostEnv, KeyRing, MerchantKeys, StripeGate};
use crate::offline_stripe::InProcess;
use crate::platform::{PlatformCustomer, PlatformInvoice};
use crate::runtime::{Limits, PLUGIN_WASM, Profiling, Reuse, Runtime};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use stripe_emulator::signature_header;

const SECRET: &str = "whsec_bench_secret";
/// The bench merchant, and one whose webhook secret does not match.
const TENANT: &str = "bench";
const WRONG_TENANT: &str = "bench-wrong-secret";

/// One runtime with the bench invoice sent, and the event that pays it.
struct Bench {
    runtime: Runtime,
    db: Arc<Db>,
    merchant: Merchant,
    event: Value,
    body: Vec<u8>,
}

impl Bench {
    /// With `tap`, the setup calls are also written there as a portable
    /// scenario (for the jco bench, which replays them before timing).
    fn new(body: Vec<u8>, tap: Option<&Path>) -> Result<Self> {
        let event: Value = serde_json::from_slice(&body)?;
        let account = event["account"].as_str().unwrap_or_default().to_string();
        let clock = Clock::fixed(created(&event) * 1000);
        let emulator = crate::offline_stripe::emulator(&clock);
        // The merchant has connected its account (the emulator refuses others).
        emulator.connect_existing(&account, "Bench Merchant");
        let db = Arc::new(Db::in_memory()?);
        let stripe = StripeGate {
            base: "https://api.stripe.com".parse()?,
            api_key: Some("sk_test_bench".into()),
            backend: Arc::new(InProcess(emulator.clone())),
        };
        // Counted as serve counts them: the metrics are part of a call's cost.
        let keyring = Arc::new(KeyRing::default());
        let env = Arc::new(
            HostEnv::new(db.host_store(), stripe, clock.clone(), keyring.clone())
                .with_observer(Arc::new(crate::metrics::Metrics::default())),
        );
        let keys = |webhook: &str| MerchantKeys {
            webhook_signing: vec![webhook.to_string()],
            pay_link: vec!["plk_bench".into()],
        };
        keyring.set(TENANT, keys(SECRET));
        keyring.set(WRONG_TENANT, keys("whsec_not_the_one"));
        let cache = std::env::temp_dir().join("stripe-plugin-cache");
        // Profiling one path (BENCH_PROFILE): wasm functions named for perf.
        let profiling = match std::env::var_os("BENCH_PROFILE") {
            Some(_) => Profiling::PerfMap,
            None => Profiling::Off,
        };
        let mut runtime =
            Runtime::profiled(PLUGIN_WASM, env, Limits::default(), Some(&cache), profiling)?;
        if let Some(path) = tap {
            let dir = path.parent().unwrap_or(Path::new("."));
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("bench");
            crate::portable::tap::Tap::attach(&mut runtime, dir.to_path_buf(), name);
        }
        let merchant = bench_merchant(&account, "https://api.stripe.com");
        let bench = Self {
            runtime,
            db,
            merchant,
            event,
            body,
        };
        bench.send_invoice()?;
        Ok(bench)
    }

    /// The invoice the event pays must have been sent through the plugin first.
    fn send_invoice(&self) -> Result<()> {
        let customer: PlatformCustomer = serde_json::from_str(crate::demo::CUSTOMER_JSON)?;
        let mut invoice: PlatformInvoice = serde_json::from_str(crate::demo::INVOICE_JSON)?;
        invoice.id = "inv_bench".into();
        let mut c = customer.to_wit("c_bench");
        c.external_ids.retain(|e| e.key != "Stripe");
        if let Err(e) =
            self.runtime
                .on_invoice_finalized(TENANT, &self.merchant, &invoice.to_wit(c))?
        {
            bail!("setting up the invoice: {}", e.message());
        }
        let first = self.deliveries(1, "first").remove(0);
        match self.runtime.on_webhook(TENANT, &self.merchant, &first)? {
            Ok(o) if o.status == 200 && !o.transitions.is_empty() => Ok(()),
            Ok(o) => bail!("the event was not processed: answered {}", o.status),
            Err(e) => bail!("the event was not processed: {}", e.message()),
        }
    }

    /// `n` distinct deliveries (new event ids, each signed) about the same
    /// payment, as Stripe's retries and sibling events are; signed up front.
    fn deliveries(&self, n: u32, tag: &str) -> Vec<WebhookRequest> {
        let text = String::from_utf8_lossy(&self.body);
        let id = self.event["id"].as_str().unwrap_or("evt");
        (0..n)
            .map(|i| {
                let body = text
                    .replacen(id, &format!("evt_{tag}_{i:08}"), 1)
                    .into_bytes();
                let header =
                    signature_header(&[SECRET.to_string()], created(&self.event) as i64, &body);
                WebhookRequest {
                    headers: vec![("Stripe-Signature".into(), header)],
                    body,
                }
            })
            .collect()
    }

    /// µs per call of on-webhook over `requests`, as `tenant`.
    fn time(&self, tenant: &str, requests: &[WebhookRequest]) -> Result<f64> {
        let start = Instant::now();
        for r in requests {
            self.runtime.on_webhook(tenant, &self.merchant, r)??;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / requests.len().max(1) as f64)
    }

    /// µs per call at steady state, as stripe-node's figure is taken: a
    /// warm-up, then two equal halves of at least `n` calls in all, doubled
    /// until the halves agree within 5% (at most 8 times `n`).
    fn steady(&self, n: u32, tag: &str) -> Result<(f64, Value)> {
        self.time(
            TENANT,
            &self.deliveries(n.min(1000), &format!("{tag}_warm")),
        )?;
        let mut half = n.div_ceil(2).max(1);
        loop {
            let first = self.time(TENANT, &self.deliveries(half, &format!("{tag}_{half}_a")))?;
            let second = self.time(TENANT, &self.deliveries(half, &format!("{tag}_{half}_b")))?;
            let spread = (first - second).abs() / first.min(second);
            if spread <= 0.05 || half >= 4 * n {
                let us = (first + second) / 2.0;
                let how = json!({"us_per_event": us, "iterations": 2 * half,
                                 "halves_us": [first, second], "steady": spread <= 0.05});
                return Ok((us, how));
            }
            half *= 2;
        }
    }

    /// Every figure, with instances fresh per call or reused.
    fn figures(&mut self, n: u32, reuse: Reuse, tag: &str) -> Result<Value> {
        self.runtime.set_reuse(reuse);
        let (full, timed) = self.steady(n, tag)?;
        // The floor of a real delivery: the body lifted in, one HMAC over it,
        // refused (the secret does not match). No parse, no kv.
        let floor = self.time(WRONG_TENANT, &self.deliveries(n, &format!("{tag}_floor")))?;
        // An empty call: no headers, no body; answered 400 at once.
        let empty = vec![
            WebhookRequest {
                headers: vec![],
                body: vec![],
            };
            n as usize
        ];
        let empty_call = self.time(TENANT, &empty)?;
        Ok(
            json!({"us_per_event": full, "us_floor": floor, "us_empty_call": empty_call,
                  "timed": timed}),
        )
    }

    /// Fills the merchant's kv with invoices `range` like the bench one.
    fn store_invoices(&self, range: std::ops::Range<usize>) -> Result<()> {
        let db = &self.db;
        let ns = TENANT;
        let record = db.kv_peek(ns, "invoice:inv_bench")?.unwrap_or_default();
        let mut conn = db.sqlite()?;
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT OR REPLACE INTO kv (ns, key, value, expires_ms) VALUES (?1, ?2, ?3, NULL)",
            )?;
            for i in range {
                stmt.execute(rusqlite::params![
                    ns,
                    format!("invoice:inv_fill_{i:07}"),
                    record
                ])?;
                stmt.execute(rusqlite::params![
                    ns,
                    format!("payment:pi_fill_{i:07}"),
                    format!("inv_fill_{i:07}").into_bytes()
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The bench merchant: links on, no auto-charge, Stripe at `api_base`.
fn bench_merchant(account: &str, api_base: &str) -> Merchant {
    Merchant {
        account_id: account.into(),
        stripe_api_base: api_base.into(),
        auto_charge: false,
        show_payment_link: true,
        stripe_receipts: false,
        pay_link_base: "https://billing.example.com".into(),
        notification_email: "finance@merchant.example".into(),
        webhook_tolerance_secs: 300,
        livemode: false,
        retry_days: Vec::new(),
    }
}

fn created(event: &Value) -> u64 {
    event["created"].as_u64().unwrap_or(0)
}

/// The event at about `bytes` bytes: its object cut to the fields the plugin
/// reads, then padded in `description`.
fn padded(event: &Value, bytes: usize) -> Result<Vec<u8>> {
    let mut e = event.clone();
    if let Some(object) = e["data"]["object"].as_object_mut() {
        const KEPT: [&str; 12] = [
            "id",
            "object",
            "amount",
            "amount_received",
            "currency",
            "customer",
            "latest_charge",
            "metadata",
            "payment_method",
            "status",
            "created",
            "livemode",
        ];
        object.retain(|k, _| KEPT.contains(&k.as_str()));
    }
    let base = serde_json::to_vec_pretty(&e)?.len();
    e["data"]["object"]["description"] = json!("x".repeat(bytes.saturating_sub(base + 2)));
    Ok(serde_json::to_vec_pretty(&e)?)
}

/// Times `iterations` deliveries of the event in `path` (its `data.object`
/// must name invoice `inv_bench` in its metadata) every way, writes the
/// padded events into `out_dir` (for stripe-node at the same sizes), and
/// prints one JSON object.
/// How much of the benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Every figure: both instance kinds, body sizes, invoices stored.
    Full,
    /// The figures the budgets judge (reused and fresh instances), for the
    /// rounds interleaved with stripe-node's.
    Core,
}

pub fn webhook(path: &Path, iterations: u32, out_dir: &Path, scope: Scope) -> Result<()> {
    let body = std::fs::read(path)?;
    let event: Value = serde_json::from_slice(&body)?;
    std::fs::create_dir_all(out_dir)?;
    // The setup as a portable scenario, for the jco bench (written on drop).
    drop(Bench::new(
        body.clone(),
        Some(&out_dir.join("webhook-setup.json")),
    )?);
    let mut bench = Bench::new(body.clone(), None)?;
    // For a profiler: one path only, many times (BENCH_PROFILE=reused|fresh-empty).
    if let Ok(path) = std::env::var("BENCH_PROFILE") {
        let requests = match path.as_str() {
            "fresh-empty" => {
                bench.runtime.set_reuse(Reuse::Never);
                vec![
                    WebhookRequest {
                        headers: vec![],
                        body: vec![]
                    };
                    iterations as usize
                ]
            }
            _ => bench.deliveries(iterations, "hot"),
        };
        println!("{path}: {:.2} us per call", bench.time(TENANT, &requests)?);
        return Ok(());
    }
    let fresh = bench.figures(iterations, Reuse::Never, "fresh")?;
    let reused = bench.figures(iterations, Reuse::PerMerchant, "reused")?;
    if scope == Scope::Core {
        println!(
            "{}",
            json!({"subject": "plugin on-webhook via wasmtime", "event_bytes": body.len(),
                   "fresh_instance": fresh, "reused_instance": reused,
                   "component_bytes": PLUGIN_WASM.len()})
        );
        return Ok(());
    }

    let mut by_size = serde_json::Map::new();
    std::fs::create_dir_all(out_dir)?;
    for kb in [1usize, 16, 64] {
        let sized = padded(&event, kb * 1024)?;
        let file = out_dir.join(format!("event-{kb}k.json"));
        std::fs::write(&file, &sized)?;
        let mut b = Bench::new(sized, None)?;
        b.runtime.set_reuse(Reuse::PerMerchant);
        let n = (iterations / (kb as u32).max(1)).max(200);
        let us = b.time(TENANT, &b.deliveries(n, &format!("size{kb}")))?;
        by_size.insert(format!("{kb}k"), json!({"us_per_event": us, "event": file}));
    }

    let mut by_stored = serde_json::Map::new();
    let mut stored = 1usize;
    for total in [1_000usize, 1_000_000] {
        bench.store_invoices(stored..total)?;
        stored = total;
        let us = bench.time(
            TENANT,
            &bench.deliveries(iterations, &format!("stored{total}")),
        )?;
        by_stored.insert(total.to_string(), json!({"us_per_event": us}));
    }

    let out = json!({
        "subject": "plugin on-webhook via wasmtime",
        "event_bytes": body.len(),
        "iterations": iterations,
        "fresh_instance": fresh,
        "reused_instance": reused,
        "by_body_size": by_size,
        "by_invoices_stored": by_stored,
        "component_bytes": PLUGIN_WASM.len(),
    });
    println!("{out}");
    Ok(())
}

/// An HTTP backend that counts the time spent waiting on it.
struct Timed {
    inner: crate::imports::UreqBackend,
    spent_ns: std::sync::atomic::AtomicU64,
    requests: std::sync::atomic::AtomicU64,
}

impl crate::imports::HttpBackend for Timed {
    fn send(
        &self,
        req: &crate::bindings::billing::stripe_plugin::http::Request,
    ) -> Result<
        crate::bindings::billing::stripe_plugin::http::Response,
        crate::bindings::billing::stripe_plugin::http::HttpError,
    > {
        let start = Instant::now();
        let out = self.inner.send(req);
        let ns = start.elapsed().as_nanos() as u64;
        self.spent_ns
            .fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        out
    }
}

/// `host-harness bench-finalize`: invoices finalized per second against the
/// emulator over loopback HTTP (a new customer each, linked and given a
/// Checkout link), and the share of the time spent waiting on HTTP.
pub fn finalize(invoices: u32) -> Result<()> {
    use stripe_emulator::server::RunningEmulator;
    let account = "acct_BenchMerchant";
    let clock = Clock::System;
    let emulator = stripe_emulator::Emulator::new(stripe_emulator::Clock::system());
    emulator.connect_existing(account, "Bench Merchant");
    let running = RunningEmulator::start(emulator, "127.0.0.1:0").map_err(anyhow::Error::msg)?;
    let timed = Arc::new(Timed {
        inner: crate::imports::UreqBackend::new(std::time::Duration::from_secs(10)),
        spent_ns: Default::default(),
        requests: Default::default(),
    });
    let stripe = StripeGate {
        base: running.base_url.parse()?,
        api_key: Some("sk_test_bench".into()),
        backend: timed.clone(),
    };
    let keyring = Arc::new(KeyRing::default());
    let env = Arc::new(
        HostEnv::new(
            Db::in_memory()?.host_store(),
            stripe,
            clock,
            keyring.clone(),
        )
        .with_observer(Arc::new(crate::metrics::Metrics::default())),
    );
    keyring.set(
        TENANT,
        MerchantKeys {
            webhook_signing: vec![SECRET.into()],
            pay_link: vec!["plk_bench".into()],
        },
    );
    let cache = std::env::temp_dir().join("stripe-plugin-cache");
    let runtime = Runtime::new(PLUGIN_WASM, env, Limits::default(), Some(&cache))?;
    let merchant = bench_merchant(account, &running.base_url);
    let customer: PlatformCustomer = serde_json::from_str(crate::demo::CUSTOMER_JSON)?;
    let invoice: PlatformInvoice = serde_json::from_str(crate::demo::INVOICE_JSON)?;
    let start = Instant::now();
    for i in 0..invoices {
        let mut c = customer.to_wit(&format!("c_bench_{i}"));
        c.external_ids.retain(|e| e.key != "Stripe");
        let mut inv = invoice.clone();
        inv.id = format!("inv_bench_{i}");
        inv.customer_id = format!("c_bench_{i}");
        if let Err(e) = runtime.on_invoice_finalized(TENANT, &merchant, &inv.to_wit(c))? {
            bail!("finalizing: {}", e.message());
        }
    }
    let total = start.elapsed().as_secs_f64();
    let http = timed.spent_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9;
    let requests = timed.requests.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "subject": "on-invoice-finalized against the emulator over loopback",
            "invoices": invoices,
            "invoices_per_sec": f64::from(invoices) / total,
            "stripe_requests_per_invoice": requests as f64 / f64::from(invoices.max(1)),
            "share_in_http": http / total,
            "share_in_plugin_and_host": 1.0 - http / total,
        })
    );
    Ok(())
}
