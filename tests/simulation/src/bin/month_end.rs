//! `month-end`: every invoice of every merchant finalized at once, by N
//! `serve` workers on one PostgreSQL, against an emulator that holds each
//! connected account to Stripe's sandbox rate (25 requests per second) and
//! answers 429 beyond it. Finalizes that meet a 429 are queued in the store
//! and retried with backoff by whichever worker is free.
//!
//! Checked: every invoice ends with its link or its charge, no invoice is
//! charged twice. Reported: the time to finish against the bound the rate
//! limit sets, the 429s, the jobs retried.

#[path = "../fleet.rs"]
mod fleet;

use clap::Parser;
use fleet::{Fleet, FleetConfig, agent, call, in_parallel};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use stripe_emulator::server::RunningEmulator;
use stripe_emulator::{Clock, Emulator};

#[derive(Parser, Debug)]
#[command(about = "Month-end: every invoice finalized at once against Stripe's rate limit")]
struct Args {
    #[arg(long, default_value = "target/debug/host-harness")]
    host_harness: String,
    /// A PostgreSQL server (a database of its own is made on it).
    #[arg(long)]
    postgres: String,
    #[arg(long, default_value_t = 4)]
    workers: usize,
    #[arg(long, default_value_t = 4)]
    merchants: usize,
    /// Invoices in all, spread over the merchants.
    #[arg(long, default_value_t = 200)]
    invoices: usize,
    /// Stripe API requests per second and account (the sandbox's is 25).
    #[arg(long, default_value_t = 25)]
    rate_limit: u32,
    /// Requests per second and account the workers pace themselves to,
    /// together (`serve --stripe-requests-per-sec`); 0: unpaced, 429s only.
    #[arg(long, default_value_t = 24)]
    pace: u32,
    /// Finalizes sent at once by the platform.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Give up waiting after this long.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    #[arg(long, default_value_t = 20261130)]
    seed: u64,
}

const API_KEY: &str = "sk_test_month_end_fake";

fn stripe(emu: &Emulator, account: &str, path: &str, form: &str) -> Value {
    let headers = [
        ("Authorization".into(), format!("Bearer {API_KEY}")),
        ("Stripe-Account".into(), account.to_string()),
    ];
    serde_json::from_slice(&emu.handle("POST", path, &headers, form.as_bytes()).body)
        .unwrap_or_default()
}

fn account_of(k: usize) -> String {
    format!("acct_MonthEnd{k}")
}

/// Invoice `i` belongs to merchant `i % merchants`; one in three has a card on file.
fn charged(i: usize) -> bool {
    i % 3 == 1
}

/// Whether an invoice has its link or its payment.
fn done(inv: &Value) -> bool {
    inv["paymentLink"].is_string() || inv["status"] == "PAID"
}

/// Invoice `i` as a worker, at random, holds it.
fn invoice(agent: &ureq::Agent, fleet: &Fleet, args: &Args, i: usize) -> Value {
    let url = format!(
        "{}/merchants/m{}/invoices/inv_{i}",
        fleet.pick(),
        i % args.merchants
    );
    call(agent, "GET", &url, &fleet.platform_headers(), b"").1
}

/// The sum of one metric over every worker's `/metrics`.
fn metric(agent: &ureq::Agent, fleet: &Fleet, name: &str) -> f64 {
    fleet
        .urls()
        .iter()
        .map(|u| {
            let headers = fleet.platform_headers();
            let (_, text) = call(agent, "GET", &format!("{u}/metrics"), &headers, b"");
            text.as_str()
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .fold(0.0, |a, b| a + b)
        })
        // A fold from +0.0: an empty float sum is -0.0, printed "-0".
        .fold(0.0, |a, b| a + b)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let emulator = Emulator::new(Clock::system());
    let running = RunningEmulator::start(emulator.clone(), "127.0.0.1:0").expect("emulator");
    let platform = "acct_MonthEndPlatform";
    emulator.connect_existing(platform, "Platform Ltd");
    for k in 0..args.merchants {
        emulator.connect_existing(&account_of(k), &format!("Merchant {k} Ltd"));
    }
    let secret = format!("whsec_month_end_{}", args.seed);
    let fleet = Fleet::start(&FleetConfig {
        name: "month-end",
        workers: args.workers,
        host_harness: &args.host_harness,
        postgres: &args.postgres,
        seed: args.seed,
        account: platform,
        secret: &secret,
        stripe_base: &running.base_url,
        api_key: API_KEY,
        extra_args: &["--stripe-requests-per-sec".into(), args.pace.to_string()],
    });
    let pick = || fleet.pick();
    let agent = agent();
    let json_body = fleet.platform_headers();

    // The platform's month: merchants, their customers (cards on file for
    // some, made in each merchant's own account), and the invoices.
    for k in 0..args.merchants {
        let settings = json!({"accountId": account_of(k), "autoCharge": true,
            "displayName": format!("Merchant {k} Ltd"), "notificationEmail": format!("finance@m{k}.example")});
        let (status, body) = call(
            &agent,
            "PUT",
            &format!("{}/merchants/m{k}", pick()),
            &json_body,
            settings.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "PUT merchant m{k}: {body}");
    }
    let setup: Vec<usize> = (0..args.invoices).collect();
    in_parallel(args.concurrency, setup, |i| {
        let (m, account) = (i % args.merchants, account_of(i % args.merchants));
        let cus = stripe(
            &emulator,
            &account,
            "/v1/customers",
            &format!("name=Customer+{i}"),
        );
        let cus = cus["id"].as_str().unwrap_or_default().to_string();
        if charged(i) {
            let pm = stripe(
                &emulator,
                &account,
                "/v1/payment_methods",
                "type=card&card[number]=4242424242424242",
            );
            let pm = pm["id"].as_str().unwrap_or_default();
            stripe(
                &emulator,
                &account,
                &format!("/v1/payment_methods/{pm}/attach"),
                &format!("customer={cus}"),
            );
            stripe(
                &emulator,
                &account,
                &format!("/v1/customers/{cus}"),
                &format!("invoice_settings[default_payment_method]={pm}"),
            );
        }
        let doc = json!({"name": format!("Customer {i}"), "email": format!("c{i}@customer.example"),
            "externalIds": [{"key": "Stripe", "value": cus}]});
        let base = format!("{}/merchants/m{m}", pick());
        let (status, body) = call(
            &agent,
            "PUT",
            &format!("{base}/customers/c{i}"),
            &json_body,
            doc.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "PUT customer c{i}: {body}");
        let total = format!("{}.00", 100 + i % 900);
        let invoice = json!({"id": format!("inv_{i}"), "invoiceNumber": format!("INV-{i:05}"), "customerId": format!("c{i}"),
            "currency": "GBP", "issueDate": "2026-11-30", "dueDate": "2026-12-30", "lineItems": [],
            "netTotal": total, "totalTax": "0.00", "grossTotal": total, "amountDue": total,
            "paymentOptions": ["BANK_TRANSFER", "STRIPE"], "autoCharge": true});
        let (status, body) = call(
            &agent,
            "POST",
            &format!("{base}/invoices"),
            &json_body,
            invoice.to_string().as_bytes(),
        );
        assert!(
            status == 201 || status == 409,
            "POST inv_{i}: {status} {body}"
        );
    });
    let setup_requests = metric(
        &agent,
        &fleet,
        "stripe_plugin_stripe_requests_total{status=\"200\"}",
    );

    // Month-end: Stripe holds every account to its rate; every invoice is
    // finalized at once, once. A 503 is fine: the work is queued.
    emulator.limit_rate(Some(args.rate_limit));
    let started = Instant::now();
    // An invoice is done when its finalize answers with the link or the
    // payment; the others (queued) are polled until they are.
    let queued = Mutex::new(Vec::new());
    let mut order: Vec<usize> = (0..args.invoices).collect();
    fleet.shuffle(&mut order);
    in_parallel(args.concurrency, order, |i| {
        let url = format!(
            "{}/merchants/m{}/invoices/inv_{i}/finalize",
            pick(),
            i % args.merchants
        );
        let mut req = ureq::http::Request::builder()
            .method("POST")
            .uri(url.as_str());
        req = req.header("Content-Length", "0");
        for (k, v) in fleet.platform_headers() {
            req = req.header(k, v);
        }
        let answer = req.body(Vec::new()).ok().and_then(|r| agent.run(r).ok());
        let finished = answer.is_some_and(|mut r| {
            let body = r.body_mut().read_to_string().unwrap_or_default();
            r.status() == 200 && done(&serde_json::from_str(&body).unwrap_or_default())
        });
        if !finished {
            queued.lock().unwrap_or_else(|p| p.into_inner()).push(i);
        }
    });
    let queued = queued.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut pending = queued.clone();
    while !pending.is_empty() && started.elapsed() < Duration::from_secs(args.timeout_secs) {
        pending.retain(|&i| !done(&invoice(&agent, &fleet, &args, i)));
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let took = started.elapsed();

    // Untimed: every invoice, as stored now, has its link or its payment.
    let mut violations = Vec::new();
    let unfinished = (0..args.invoices)
        .filter(|&i| !done(&invoice(&agent, &fleet, &args, i)))
        .count();
    if unfinished > 0 {
        violations.push(format!(
            "{unfinished} invoices have neither a link nor a charge after {:.0} s",
            took.as_secs_f64()
        ));
    }
    let mut paid = BTreeMap::<String, usize>::new();
    for pi in emulator.objects("payment_intent") {
        if pi["status"] == "succeeded"
            && let Some(inv) = pi["metadata"]["billing_stripe_plugin_invoice"].as_str()
        {
            *paid
                .entry(format!(
                    "{}/{inv}",
                    pi["_account"].as_str().unwrap_or_default()
                ))
                .or_default() += 1;
        }
    }
    for (inv, n) in &paid {
        if *n > 1 {
            violations.push(format!("{inv}: charged {n} times"));
        }
    }
    let charges_expected = (0..args.invoices).filter(|&i| charged(i)).count();
    let charges: usize = paid.values().sum();
    let requests = metric(
        &agent,
        &fleet,
        "stripe_plugin_stripe_requests_total{status=\"200\"}",
    ) - setup_requests;
    let retried = metric(
        &agent,
        &fleet,
        "stripe_plugin_jobs_total{kind=\"finalize\",result=\"retried\"}",
    );
    let jobs_done = metric(
        &agent,
        &fleet,
        "stripe_plugin_jobs_total{kind=\"finalize\",result=\"done\"}",
    );
    let held_back = metric(
        &agent,
        &fleet,
        "stripe_plugin_stripe_requests_total{status=\"held-back\"}",
    );
    let bound = requests / (args.rate_limit as f64 * args.merchants as f64);
    println!(
        "month-end: {} invoices over {} merchants, {} workers on one PostgreSQL, Stripe at {} requests/s per account, the workers pacing themselves to {}",
        args.invoices, args.merchants, args.workers, args.rate_limit, args.pace
    );
    println!(
        "  finished in {:.1} s; the rate limit's bound for the {:.0} Stripe requests that succeeded is {:.1} s ({:.2}x)",
        took.as_secs_f64(),
        requests,
        bound,
        took.as_secs_f64() / bound.max(0.001)
    );
    println!(
        "  429s from Stripe: {}; requests held back by the workers' pacing: {held_back:.0}; finalizes answered 503 and queued: {}; queued finalizes run: {jobs_done:.0} done, {retried:.0} retried",
        emulator.rate_limited(),
        queued.len()
    );
    println!(
        "  charges: {charges} (cards on file: {charges_expected}); links: {}",
        args.invoices - charges_expected
    );
    if charges != charges_expected {
        violations.push(format!(
            "{charges} charges for {charges_expected} invoices with a card on file"
        ));
    }
    fleet::report(&violations)
}
