//! `workers`: N `serve` processes on one PostgreSQL database, sharing
//! nothing else, as behind a load balancer. The same customers, finalizes
//! and Stripe events go to random workers: duplicated, shuffled and
//! concurrent. Each effect must happen once:
//! - the emulator's ledger: one succeeded payment per invoice, whatever the
//!   number of finalizes; the refunds that were made;
//! - the database: every invoice has the status the ledger implies, one
//!   payment, its refund; no email twice.
//!
//! Exits 1 on any violation, and prints them.

use clap::Parser;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
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

const ACCOUNT: &str = "acct_workers_merchant";
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
}

fn case(i: usize) -> Case {
    match i % 3 {
        0 => Case::PaysLink,
        1 => Case::Charged,
        _ => Case::ChargedThenRefunded,
    }
}

/// A small seeded generator (xorshift), so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

struct Worker {
    base_url: String,
    child: Child,
}

/// A worker is stopped whatever happens, a failed assertion included: an
/// orphan would hold its database connections.
impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// One call; retried while the answer is 5xx or none (as a job runner would).
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for _ in 0..40 {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let Ok(req) = req.body(body.to_vec()) else {
            return last;
        };
        match agent.run(req) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                last = (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                );
                if status < 500 {
                    return last;
                }
            }
            Err(e) => last = (0, Value::String(e.to_string())),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

/// Runs `jobs` on `threads` threads, each job to a random worker.
fn in_parallel<J: Send>(threads: usize, jobs: Vec<J>, run: impl Fn(J) + Sync) {
    let queue = Mutex::new(jobs);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    match job {
                        Some(j) => run(j),
                        None => break,
                    }
                }
            });
        }
    });
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

fn fresh_database(server: &str, seed: u64) -> String {
    let name = format!("workers_{seed}_{}", std::process::id());
    let mut client = postgres::Client::connect(server, postgres::NoTls).expect("PostgreSQL");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("a database for the workers");
    let mut url = url::Url::parse(server).expect("a PostgreSQL URL");
    url.set_path(&name);
    url.to_string()
}

fn start_workers(
    args: &Args,
    db: &str,
    emulator: &RunningEmulator,
    dir: &std::path::Path,
) -> Vec<Worker> {
    let secret = format!("whsec_workers_{}", args.seed);
    (0..args.workers)
        .map(|n| {
            let listen = format!("127.0.0.1:{}", free_port());
            let log =
                std::fs::File::create(dir.join(format!("worker-{n}.log"))).expect("a log file");
            let child = Command::new(&args.host_harness)
                .args([
                    "serve",
                    "--listen",
                    &listen,
                    "--db",
                    db,
                    "--account",
                    ACCOUNT,
                ])
                .args([
                    "--webhook-secret",
                    &secret,
                    "--stripe-api-base",
                    &emulator.base_url,
                ])
                .args(["--sync-every-secs", "0", "--log-format", "json"])
                // A Stripe call that hangs fails in 5 s, and the job is retried.
                .args(["--stripe-timeout-secs", "5"])
                .args(["--notification-email", "finance@workers.example"])
                .arg("--cache-dir")
                .arg(dir.join("cache"))
                .env("STRIPE_API_KEY", API_KEY)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("serve");
            Worker {
                base_url: format!("http://{listen}"),
                child,
            }
        })
        .collect()
}

fn wait_healthy(workers: &[Worker]) {
    let agent = agent();
    for w in workers {
        let start = Instant::now();
        while call(&agent, "GET", &format!("{}/healthz", w.base_url), &[], b"").0 != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "worker never answered"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn main() {
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
    let dir = std::env::temp_dir().join(format!("workers-{}-{}", args.seed, std::process::id()));
    std::fs::create_dir_all(dir.join("cache")).expect("a temp dir");
    let db = fresh_database(&args.postgres, args.seed);
    let workers = start_workers(&args, &db, &running, &dir);
    wait_healthy(&workers);
    let urls: Vec<String> = workers.iter().map(|w| w.base_url.clone()).collect();
    let rng = Mutex::new(Rng(args.seed | 1));
    let pick = || {
        urls[rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .below(urls.len())]
        .clone()
    };
    let agent = agent();
    let json_body = [("Content-Type", "application/json")];

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
    rng.lock()
        .unwrap_or_else(|p| p.into_inner())
        .shuffle(&mut finalizes);
    in_parallel(args.threads, finalizes, |i| {
        let url = format!("{}/invoices/inv_{i}/finalize", pick());
        let (status, body) = call(&agent, "POST", &url, &[], b"");
        assert_eq!(status, 200, "finalize inv_{i}: {body}");
    });

    // Customers pay their links; some charges are partly refunded.
    for i in 0..args.invoices {
        let (_, inv) = call(
            &agent,
            "GET",
            &format!("{}/invoices/inv_{i}", pick()),
            &[],
            b"",
        );
        match case(i) {
            Case::PaysLink => {
                let session = inv["checkoutSessionId"].as_str().unwrap_or_default();
                let path = format!("/_test/checkout/sessions/{session}/complete");
                emulator.handle("POST", &path, &[], b"card=4242424242424242");
            }
            Case::ChargedThenRefunded => {
                let pi = emulator.objects("payment_intent").into_iter().find(|p| {
                    p["metadata"]["billing_stripe_plugin_invoice"] == format!("inv_{i}")
                        && p["status"] == "succeeded"
                });
                if let Some(pi) = pi {
                    let form = format!(
                        "payment_intent={}&amount=1000",
                        pi["id"].as_str().unwrap_or_default()
                    );
                    stripe(&emulator, "POST", "/v1/refunds", &form);
                }
            }
            Case::Charged => {}
        }
    }

    // Every event `copies` times, shuffled, concurrently, to random workers.
    let events = emulator.events();
    let mut deliveries: Vec<&Value> = events.iter().flat_map(|e| vec![e; args.copies]).collect();
    rng.lock()
        .unwrap_or_else(|p| p.into_inner())
        .shuffle(&mut deliveries);
    in_parallel(args.threads, deliveries, |event| {
        let body = serde_json::to_vec_pretty(event).unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let header = signature_header(std::slice::from_ref(&secret), now, &body);
        let headers = [
            ("Content-Type", "application/json"),
            ("Stripe-Signature", header.as_str()),
        ];
        let url = format!("{}/webhooks/stripe", pick());
        let (status, reply) = call(&agent, "POST", &url, &headers, &body);
        assert!(
            (200..300).contains(&status),
            "event {}: {status} {reply}",
            event["id"]
        );
    });

    let violations = check(&args, &emulator, &db);
    println!(
        "{} workers on one PostgreSQL: {} invoices, each finalize {}×, {} events each delivered {}× to random workers, {:.1} s",
        args.workers,
        args.invoices,
        args.copies,
        events.len(),
        args.copies,
        started.elapsed().as_secs_f64()
    );
    drop(workers);
    let _ = std::fs::remove_dir_all(&dir);
    if violations.is_empty() {
        println!("  violations: 0");
    } else {
        println!("  violations: {}", violations.len());
        for v in &violations {
            println!("    - {v}");
        }
        std::process::exit(1);
    }
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
                "{id}: {} succeeded payments in Stripe (expected 1): {pis:?}",
                pis.len()
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
            _ => "PAID",
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
        if case(i) == Case::ChargedThenRefunded && state["amountRefunded"] != "10.00" {
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
