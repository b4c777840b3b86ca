//! `host-harness bench-serve`: durable webhook throughput over loopback. It
//! starts the Stripe emulator and a real `serve` (SQLite, WAL, group
//! commit: every answer after its sync), sends the invoice the events pay, then posts signed,
//! distinct events from `--connections` keep-alive clients (ureq) for
//! `--seconds`, and reports events/s and latency percentiles. With
//! `--node-handler`, the same load then goes to the handler a team would
//! write instead (stripe-node's constructEvent, better-sqlite3 at the same
//! durability), in the same run. Every event must be answered 200: serve
//! answers only after storing.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stripe_emulator::server::RunningEmulator;
use stripe_emulator::{Clock, Emulator, signature_header};

const SECRET: &str = "whsec_bench_secret";

/// What one load run measured.
struct Load {
    sent: usize,
    ok: usize,
    /// Answered 200 in the first half of the load.
    ok_first_half: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
}

impl Load {
    fn report(mut self, subject: &str) -> Value {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies_us.len() as f64 * p).ceil() as usize).saturating_sub(1);
            self.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        let half = self.seconds / 2.0;
        let halves = [
            self.ok_first_half as f64 / half,
            (self.ok - self.ok_first_half) as f64 / half,
        ];
        let spread = (halves[0] - halves[1]).abs() / halves[0].min(halves[1]);
        json!({
            "subject": subject,
            "halves_events_per_sec": halves,
            "steady": spread <= 0.05,
            "events": self.sent,
            "answered_200": self.ok,
            "lost": self.sent - self.ok,
            "events_per_sec": self.ok as f64 / self.seconds,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        })
    }
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// One call with a JSON body, as the platform when `token` is given.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Result<(u16, Value)> {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let req = req.body(body.map(Value::to_string).unwrap_or_default().into_bytes())?;
    let mut resp = agent.run(req)?;
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Ok((
        resp.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    ))
}

fn wait_healthy(base: &str) -> Result<()> {
    let agent = agent();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok((200, _)) = call(&agent, "GET", &format!("{base}/healthz"), None, None) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{base} never answered /healthz")
}

/// Posts signed, distinct events (the template's id replaced) to `url` from
/// `connections` clients for `seconds`.
fn load(url: &str, template: &str, event_id: &str, connections: usize, seconds: u64) -> Load {
    load_spread(&[url.to_string()], template, event_id, connections, seconds)
}

/// The same, client `c` posting to `urls[c % n]`, as a load balancer
/// spreading connections over workers would.
fn load_spread(
    urls: &[String],
    template: &str,
    event_id: &str,
    connections: usize,
    seconds: u64,
) -> Load {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let middle = start + Duration::from_secs(seconds) / 2;
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let (url, template, event_id) = (
                urls[c % urls.len()].clone(),
                template.to_string(),
                event_id.to_string(),
            );
            std::thread::spawn(move || {
                let agent = agent();
                let (mut sent, mut ok, mut latencies) = (0usize, 0usize, Vec::new());
                let mut ok_first_half = 0usize;
                while Instant::now() < deadline {
                    let body =
                        template.replacen(&event_id, &format!("evt_load_{c:03}_{sent:09}"), 1);
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let header =
                        signature_header(&[SECRET.to_string()], now as i64, body.as_bytes());
                    let t = Instant::now();
                    let answer = ureq::http::Request::builder()
                        .method("POST")
                        .uri(&url)
                        .header("Content-Type", "application/json; charset=utf-8")
                        .header("Stripe-Signature", header)
                        .body(body.into_bytes())
                        .map_err(|e| e.to_string())
                        .and_then(|r| agent.run(r).map_err(|e| e.to_string()));
                    latencies.push(t.elapsed().as_micros() as u64);
                    sent += 1;
                    if let Ok(mut r) = answer {
                        let _ = r.body_mut().read_to_vec();
                        if r.status().as_u16() == 200 {
                            ok += 1;
                            if Instant::now() < middle {
                                ok_first_half += 1;
                            }
                        }
                    }
                }
                (sent, ok, ok_first_half, latencies)
            })
        })
        .collect();
    let mut out = Load {
        sent: 0,
        ok: 0,
        ok_first_half: 0,
        seconds: 0.0,
        latencies_us: Vec::new(),
    };
    for w in workers {
        if let Ok((sent, ok, first, lat)) = w.join() {
            out.sent += sent;
            out.ok += ok;
            out.ok_first_half += first;
            out.latencies_us.extend(lat);
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

/// `workers` serve processes on `db` against one emulator, with the bench
/// invoice sent (through the first).
fn start_serve(
    dir: &Path,
    account: &str,
    db: &str,
    workers: usize,
) -> Result<(Vec<Running>, Vec<String>, RunningEmulator)> {
    let emulator = Emulator::new(Clock::system());
    emulator.connect_existing(account, "Bench Merchant");
    let stripe = RunningEmulator::start(emulator, "127.0.0.1:0").map_err(anyhow::Error::msg)?;
    let mut running = Vec::new();
    let mut bases = Vec::new();
    // The platform's token: serve is given its hash only.
    let token = format!("spt_{}", hex::encode(crate::tokens::random_bytes::<32>()?));
    let mut admin = String::new();
    for n in 0..workers {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let admin_listen = format!("127.0.0.1:{}", free_port()?);
        let base = format!("http://{listen}");
        let log = std::fs::File::create(dir.join(format!("serve-{n}.log")))?;
        let child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .args([
                "--listen",
                &listen,
                "--admin-listen",
                &admin_listen,
                "--platform-token-sha256",
                &crate::tokens::sha256_hex(&token),
                "--account",
                account,
                "--webhook-secret",
                SECRET,
            ])
            .args([
                "--stripe-api-base",
                &stripe.base_url,
                "--pay-link-base",
                &base,
            ])
            .args(["--db", db])
            .arg("--cache-dir")
            .arg(std::env::temp_dir().join("stripe-plugin-cache"))
            .args(["--sync-every-secs", "0", "--queue-workers", "0"])
            .args(["--notification-email", "finance@merchant.example"])
            .env("STRIPE_API_KEY", "sk_test_bench")
            // Every worker signs pay links with the same key (a fake one).
            .env("STRIPE_PLUGIN_PAY_LINK_SECRETS", "plk_test_bench_only")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting serve")?;
        running.push(Running(child));
        wait_healthy(&base)?;
        if admin.is_empty() {
            admin = format!("http://{admin_listen}");
        }
        bases.push(base);
    }
    send_bench_invoice(&admin, &token)?;
    Ok((running, bases, stripe))
}

/// The invoice every bench event pays.
fn send_bench_invoice(base: &str, token: &str) -> Result<()> {
    let token = Some(token);
    let agent = agent();
    let customer: Value = serde_json::from_str(crate::demo::CUSTOMER_JSON)?;
    let mut invoice: Value = serde_json::from_str(crate::demo::INVOICE_JSON)?;
    invoice["id"] = json!("inv_bench");
    let customer_id = invoice["customerId"].as_str().unwrap_or("c1").to_string();
    let mut c = customer.clone();
    if let Some(ids) = c["externalIds"].as_array_mut() {
        ids.retain(|e| e["key"] != "Stripe");
    }
    call(
        &agent,
        "PUT",
        &format!("{base}/customers/{customer_id}"),
        Some(&c),
        token,
    )?;
    let invoices = format!("{base}/invoices");
    call(&agent, "POST", &invoices, Some(&invoice), token)?;
    let (status, v) = call(
        &agent,
        "POST",
        &format!("{base}/invoices/inv_bench/finalize"),
        None,
        token,
    )?;
    if status >= 300 {
        bail!("finalizing the bench invoice: {status} {v}");
    }
    Ok(())
}

/// The Node.js handler on a fresh database.
fn start_node(script: &Path, dir: &Path) -> Result<(Running, String)> {
    let port = free_port()?;
    let child = Command::new("node")
        .arg(script)
        .arg(port.to_string())
        .arg(dir.join("node.db"))
        .arg(SECRET)
        .stdout(Stdio::null())
        .spawn()
        .context("starting the Node.js handler")?;
    let running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base)?;
    Ok((running, base))
}

pub fn run(
    event: &Path,
    seconds: u64,
    connections: usize,
    node_handler: Option<PathBuf>,
    postgres: Option<String>,
) -> Result<()> {
    let template = std::fs::read_to_string(event)?;
    let parsed: Value = serde_json::from_str(&template)?;
    let account = parsed["account"].as_str().unwrap_or_default();
    let event_id = parsed["id"].as_str().unwrap_or("evt").to_string();
    let dir = std::env::temp_dir().join(format!("bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let measure = |db: &str, workers: usize, subject: &str| -> Result<Value> {
        let (serve, bases, stripe) = start_serve(&dir, account, db, workers)?;
        let urls: Vec<String> = bases
            .iter()
            .map(|b| format!("{b}/webhooks/stripe"))
            .collect();
        load_spread(&urls, &template, &event_id, connections, 1); // warm-up
        let report = load_spread(&urls, &template, &event_id, connections, seconds).report(subject);
        drop(serve);
        drop(stripe);
        Ok(report)
    };

    let sqlite = dir.join("serve.db").to_string_lossy().into_owned();
    let plugin = measure(&sqlite, 1, "serve (plugin, SQLite)")?;
    let mut on_postgres = Vec::new();
    if let Some(server) = &postgres {
        for workers in [1, 2, 4] {
            let db =
                crate::db::postgres::create_database(server, &format!("bench_serve_{workers}"))?;
            let subject = format!("serve x{workers} workers, PostgreSQL");
            let mut report = measure(&db, workers, &subject)?;
            report["workers"] = json!(workers);
            on_postgres.push(report);
        }
    }

    let node = match node_handler {
        Some(script) => {
            let (node, base) = start_node(&script, &dir)?;
            let url = format!("{base}/webhooks/stripe");
            load(&url, &template, &event_id, connections, 1);
            let report = load(&url, &template, &event_id, connections, seconds)
                .report("Node.js: stripe-node constructEvent + better-sqlite3");
            drop(node);
            Some(report)
        }
        None => None,
    };
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        json!({"connections": connections, "seconds": seconds, "serve": plugin, "node": node,
               "postgres": on_postgres})
    );
    Ok(())
}
