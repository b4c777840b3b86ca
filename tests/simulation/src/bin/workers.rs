//! `workers`: N `serve` processes on one PostgreSQL database, sharing
//! nothing else, as behind a load balancer. The same customers, finalizes
//! and Stripe events go to random workers: duplicated, shuffled and
//! concurrent. Each effect must happen once:
//! - the emulator's ledger: one succeeded payment per invoice, whatever the
//!   number of finalizes; the refunds that were made;
//! - the database: every invoice has the status the ledger implies, one
//!   payment, its refund (and its dispute); no email twice;
//! - the plugin's kv: a counter every worker adds to at once (deliveries of
//!   other integrations' payments, ignored) equals the deliveries made.
//!
//! Each payment's events go as one burst, all at once, as Stripe sends them.
//! With PostgreSQL's compare-and-swap replaced by get-then-set this run
//! fails (the counter loses about half its increments); with it, it passes.
//!
//! Exits 1 on any violation, and prints them.

#[path = "../fleet.rs"]
mod fleet;

use clap::Parser;
use fleet::{Fleet, FleetConfig, agent, call, in_parallel};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;
use stripe_emulator::server::RunningEmulator;
use stripe_emulator::{Clock, Delivery, Emulator, WebhookTarget, signature_header};

#[derive(Parser, Debug)]
#[command(
    about = "N serve workers on one PostgreSQL: the same work to random workers; each effect once"
)]
struct Args {
    #[arg(long, default_value = "target/debug/host-harness")]
    host_harness: String,
    /// A PostgreSQL server (a database of its own is made on it).
    #[arg(long)]
    postgres: String,
    #[arg(long, default_value_t = 4)]
    workers: usize,
    #[arg(long, default_value_t = 24)]
    invoices: usize,
    /// Times each finalize and each event is sent.
    #[arg(long, default_value_t = 3)]
    copies: usize,
    #[arg(long, default_value_t = 8)]
    threads: usize,
    #[arg(long, default_value_t = 20261130)]
    seed: u64,
}

const ACCOUNT: &str = "acct_WorkersMerchant";
const API_KEY: &str = "sk_test_workers_fake";

/// What each invoice is, by its number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    /// No card on file: the customer pays the link.
    PaysLink,
    /// A card on file, charged when the invoice is sent.
    Charged,
    /// Charged, then 10.00 of it refunded.
    ChargedThenRefunded,
    /// Charged, 10.00 refunded, then disputed: two facts about one payment
    /// that change different parts of the plugin's record, whose events
    /// arrive together. Only compare-and-swap keeps both.
    RefundedThenDisputed,
}

fn case(i: usize) -> Case {
    match i % 4 {
        0 => Case::PaysLink,
        1 => Case::Charged,
        2 => Case::ChargedThenRefunded,
        _ => Case::RefundedThenDisputed,
    }
}

fn stripe(emu: &Emulator, method: &str, path: &str, form: &str) -> Value {
    let reply = emu.handle(
        method,
        path,
        &[
            ("Authorization".into(), format!("Bearer {API_KEY}")),
            ("Stripe-Account".into(), ACCOUNT.into()),
        ],
        form.as_bytes(),
    );
    serde_json::from_slice(&reply.body).unwrap_or_default()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let emulator = Emulator::new(Clock::system());
    let running = RunningEmulator::start(emulator.clone(), "127.0.0.1:0").expect("emulator");
    emulator.connect_existing(ACCOUNT, "Workers Merchant Ltd");
    let secret = format!("whsec_workers_{}", args.seed);
    // Events are held: this program delivers them, to random workers.
    emulator.set_webhook(Some(WebhookTarget {
        url: "http://127.0.0.1:9/held".into(),
        secrets: vec![secret.clone()],
        delivery: Delivery::ByHand,
    }));
    let fleet = Fleet::start(&FleetConfig {
        name: "workers",
        workers: args.workers,
        host_harness: &args.host_harness,
        postgres: &args.postgres,
        seed: args.seed,
        account: ACCOUNT,
        secret: &secret,
        stripe_base: &running.base_url,
        api_key: API_KEY,
        extra_args: &[],
    });
    let pick = || fleet.pick();
    let agent = agent();
    let json_body = fleet.platform_headers();

    // Customers, each linked to a Stripe customer; two in three have a card on file.
    let customers: Vec<(usize, String)> = (0..args.invoices)
        .map(|i| {
            let cus = stripe(
                &emulator,
                "POST",
                "/v1/customers",
                &format!("name=Customer+{i}"),
            );
            let cus = cus["id"].as_str().unwrap_or_default().to_string();
            if case(i) != Case::PaysLink {
                let pm = stripe(
                    &emulator,
                    "POST",
                    "/v1/payment_methods",
                    "type=card&card[number]=4242424242424242",
                );
                let pm = pm["id"].as_str().unwrap_or_default();
                stripe(
                    &emulator,
                    "POST",
                    &format!("/v1/payment_methods/{pm}/attach"),
                    &format!("customer={cus}"),
                );
                stripe(
                    &emulator,
                    "POST",
                    &format!("/v1/customers/{cus}"),
                    &format!("invoice_settings[default_payment_method]={pm}"),
                );
            }
            (i, cus)
        })
        .collect();
    in_parallel(args.threads, customers, |(i, cus)| {
        let doc = json!({"name": format!("Customer {i}"), "email": format!("c{i}@customer.example"),
            "externalIds": [{"key": "Stripe", "value": cus}]});
        let url = format!("{}/customers/c{i}", pick());
        let (status, body) = call(&agent, "PUT", &url, &json_body, doc.to_string().as_bytes());
        assert_eq!(status, 200, "PUT customer c{i}: {body}");
    });

    // Invoices, then each finalized `copies` times, concurrently, on random workers.
    let invoice = |i: usize| {
        let total = format!("{}.00", 100 + i);
        json!({"id": format!("inv_{i}"), "invoiceNumber": format!("INV-{i:04}"), "customerId": format!("c{i}"),
            "currency": "GBP", "issueDate": "2026-11-30", "dueDate": "2026-12-30", "lineItems": [],
            "netTotal": total, "totalTax": "0.00", "grossTotal": total, "amountDue": total,
            "paymentOptions": ["BANK_TRANSFER", "STRIPE"], "autoCharge": true})
    };
    in_parallel(args.threads, (0..args.invoices).collect(), |i| {
        let url = format!("{}/invoices", pick());
        let (status, body) = call(
            &agent,
            "POST",
            &url,
            &json_body,
            invoice(i).to_string().as_bytes(),
        );
        assert!(
            status == 201 || status == 409,
            "POST inv_{i}: {status} {body}"
        );
    });
    let mut finalizes: Vec<usize> = (0..args.invoices)
        .flat_map(|i| vec![i; args.copies])
        .collect();
    fleet.shuffle(&mut finalizes);
    in_parallel(args.threads, finalizes, |i| {
        let url = format!("{}/invoices/inv_{i}/finalize", pick());
        let (status, body) = call(&agent, "POST", &url, &json_body, b"");
        assert_eq!(status, 200, "finalize inv_{i}: {body}");
    });

    // Customers pay their links; some charges are partly refunded.
    for i in 0..args.invoices {
        let (_, inv) = call(
            &agent,
            "GET",
            &format!("{}/invoices/inv_{i}", pick()),
            &json_body,
            b"",
        );
        match case(i) {
            Case::PaysLink => {
                let session = inv["checkoutSessionId"].as_str().unwrap_or_default();
                let path = format!("/_test/checkout/sessions/{session}/complete");
                emulator.handle("POST", &path, &[], b"card=4242424242424242");
            }
            Case::ChargedThenRefunded | Case::RefundedThenDisputed => {
                let pi = emulator.objects("payment_intent").into_iter().find(|p| {
                    p["metadata"]["billing_stripe_plugin_invoice"] == format!("inv_{i}")
                        && p["status"] == "succeeded"
                });
                let pi = pi.and_then(|p| p["id"].as_str().map(String::from));
                let pi = pi.unwrap_or_default();
                let form = format!("payment_intent={pi}&amount=1000");
                stripe(&emulator, "POST", "/v1/refunds", &form);
                if case(i) == Case::RefundedThenDisputed {
                    let form = format!("payment_intent={pi}");
                    emulator.handle("POST", "/_test/disputes", &[], form.as_bytes());
                }
            }
            Case::Charged => {}
        }
    }

    // Every event `copies` times, to random workers. Stripe sends the events
    // of one payment within moments of each other, and a retry or a second
    // endpoint doubles them: so each payment's deliveries go as one burst,
    // shuffled and all at once, while other payments' bursts run beside it.
    let events = emulator.events();
    let mut bursts = BTreeMap::<String, Vec<&Value>>::new();
    for e in &events {
        for _ in 0..args.copies {
            bursts.entry(payment_of(e)).or_default().push(e);
        }
    }
    let mut bursts: Vec<Vec<&Value>> = bursts.into_values().collect();
    for b in &mut bursts {
        fleet.shuffle(b);
    }
    fleet.shuffle(&mut bursts);
    let deliver = |event: &Value| {
        let body = serde_json::to_vec_pretty(event).unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let header = signature_header(std::slice::from_ref(&secret), now, &body);
        let headers = [
            ("Content-Type", "application/json"),
            ("Stripe-Signature", header.as_str()),
        ];
        let url = format!("{}/webhooks/stripe", fleet.pick_public());
        let (status, reply) = call(&agent, "POST", &url, &headers, &body);
        assert!(
            (200..300).contains(&status),
            "event {}: {status} {reply}",
            event["id"]
        );
    };
    in_parallel(args.threads.div_ceil(4), bursts, |burst| {
        in_parallel(burst.len(), burst, deliver);
    });

    // Payments another integration made on the same account: every delivery
    // of their events is ignored and counted in the plugin's kv, one counter
    // that all workers add to at once.
    let outside = outside_payments(&emulator, args.invoices * 2);
    let mut burst: Vec<&Value> = outside.iter().flat_map(|e| vec![e; args.copies]).collect();
    fleet.shuffle(&mut burst);
    in_parallel(args.threads * 2, burst, deliver);

    let mut violations = check(&args, &emulator, &fleet.db);
    let counted = ignored_count(&fleet.db);
    let sent = outside.len() * args.copies;
    println!("  other integrations' payments: {sent} deliveries, {counted} counted as ignored");
    if counted != sent {
        violations.push(format!(
            "{sent} deliveries of other integrations' payments, {counted} counted as ignored"
        ));
    }
    println!(
        "{} workers on one PostgreSQL: {} invoices, each finalize {}×, {} events each delivered {}× to random workers, {:.1} s",
        args.workers,
        args.invoices,
        args.copies,
        events.len(),
        args.copies,
        started.elapsed().as_secs_f64()
    );
    fleet::report(&violations)
}

/// `n` card payments made on the account without the plugin; their
/// `payment_intent.succeeded` events.
fn outside_payments(emulator: &Emulator, n: usize) -> Vec<Value> {
    let before = emulator.events().len();
    for _ in 0..n {
        let pm = stripe(
            emulator,
            "POST",
            "/v1/payment_methods",
            "type=card&card[number]=4242424242424242",
        );
        let form = format!(
            "amount=500&currency=gbp&confirm=true&automatic_payment_methods[enabled]=true&automatic_payment_methods[allow_redirects]=never&payment_method={}",
            pm["id"].as_str().unwrap_or_default()
        );
        stripe(emulator, "POST", "/v1/payment_intents", &form);
    }
    let events = emulator.events();
    let new = events.into_iter().skip(before);
    new.filter(|e| e["type"] == "payment_intent.succeeded")
        .collect()
}

/// The plugin's count of deliveries it ignored as not its own.
fn ignored_count(db: &str) -> usize {
    let mut client = postgres::Client::connect(db, postgres::NoTls).expect("the workers' database");
    let row = client
        .query_opt("SELECT value FROM kv WHERE key = 'not-ours-events'", &[])
        .ok()
        .flatten();
    row.and_then(|r| String::from_utf8(r.get::<_, Vec<u8>>(0)).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The payment an event is about (its PaymentIntent), or the event's own
/// object for the few that have none.
fn payment_of(event: &Value) -> String {
    let o = &event["data"]["object"];
    let pi = match o["object"].as_str() {
        Some("payment_intent") => o["id"].as_str(),
        _ => o["payment_intent"].as_str(),
    };
    pi.or(o["id"].as_str()).unwrap_or_default().to_string()
}

/// Each effect once, in the ledger and in the database.
fn check(args: &Args, emulator: &Emulator, db: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut paid = BTreeMap::<String, Vec<String>>::new();
    for pi in emulator.objects("payment_intent") {
        if pi["status"] == "succeeded"
            && let Some(inv) = pi["metadata"]["billing_stripe_plugin_invoice"].as_str()
        {
            paid.entry(inv.into())
                .or_default()
                .push(pi["id"].as_str().unwrap_or_default().into());
        }
    }
    let mut client = postgres::Client::connect(db, postgres::NoTls).expect("the workers' database");
    for i in 0..args.invoices {
        let id = format!("inv_{i}");
        let pis = paid.get(&id).cloned().unwrap_or_default();
        if pis.len() != 1 {
            out.push(format!(
                "{id}: {} succeeded payments in Stripe (expected 1): {}",
                pis.len(),
                pis.join(", ")
            ));
        }
        let row = client
            .query_opt(
                "SELECT state FROM invoices WHERE merchant = 'default' AND id = $1",
                &[&id],
            )
            .ok()
            .flatten();
        let Some(state) = row.and_then(|r| serde_json::from_str::<Value>(r.get::<_, &str>(0)).ok())
        else {
            out.push(format!("{id}: not in the database"));
            continue;
        };
        let expected = match case(i) {
            Case::ChargedThenRefunded => "PARTIALLY_REFUNDED",
            Case::RefundedThenDisputed => "DISPUTED",
            Case::PaysLink | Case::Charged => "PAID",
        };
        if state["status"] != expected {
            out.push(format!(
                "{id}: status {} in the database, the ledger says {expected}",
                state["status"]
            ));
        }
        let payments = state["payments"].as_array().map_or(0, Vec::len);
        if payments != 1 {
            out.push(format!("{id}: {payments} payments recorded (expected 1)"));
        }
        let refunded = matches!(
            case(i),
            Case::ChargedThenRefunded | Case::RefundedThenDisputed
        );
        if refunded && state["amountRefunded"] != "10.00" {
            out.push(format!(
                "{id}: refunded {} in the database, 10.00 in the ledger",
                state["amountRefunded"]
            ));
        }
    }
    let twice = client
        .query(
            "SELECT recipients, subject, count(*) FROM outbox GROUP BY recipients, subject HAVING count(*) > 1",
            &[],
        )
        .map(|rows| rows.len())
        .unwrap_or(0);
    if twice > 0 {
        out.push(format!("{twice} emails went out more than once"));
    }
    out
}
