//! The merchants' hosts: one `serve` process each, on its own connected
//! account, database and loopback port, killed and restarted at will.

use crate::args::Args;
use serde_json::Value;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use stripe_emulator::server::RunningEmulator;
use stripe_emulator::{Delivery, WebhookTarget};

pub struct Merchant {
    pub account: String,
    pub secret: String,
    /// The public listener: webhooks and pay pages.
    pub base_url: String,
    /// The platform listener, called with `auth`.
    pub admin_url: String,
    /// `Bearer` and the token made by `host-harness token create`.
    auth: String,
    admin_listen: String,
    pub db: PathBuf,
    pub log: PathBuf,
    listen: String,
    child: Mutex<Option<Child>>,
}

pub struct Fleet {
    pub merchants: Vec<Merchant>,
    pub api_key: String,
    pub dir: PathBuf,
    host_harness: String,
    stripe_base: String,
    sync_every_secs: String,
    crashes: AtomicUsize,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// One HTTP call with a JSON body, as `auth` (a bearer token) when given;
/// `Err` when no answer came.
pub fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
    auth: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Content-Type", "application/json");
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    let req = req
        .body(body.unwrap_or_default().as_bytes().to_vec())
        .map_err(|e| e.to_string())?;
    let mut resp = agent.run(req).map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A platform token made on `db` by `host-harness token create`, as an
/// operator would.
fn make_token(host_harness: &str, db: &std::path::Path) -> std::io::Result<String> {
    let out = Command::new(host_harness)
        .args(["token", "create", "--label", "bad-day", "--db"])
        .arg(db)
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other("host-harness token create failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Fleet {
    pub fn start(args: &Args, emulator: &RunningEmulator) -> std::io::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("bad-day-{}-{}", args.seed, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cache"))?;
        let mut fleet = Fleet {
            merchants: Vec::new(),
            api_key: format!("sk_test_sim_{:016x}", args.seed.wrapping_mul(0x9e37_79b9)),
            dir,
            host_harness: args.host_harness.clone(),
            stripe_base: emulator.base_url.clone(),
            sync_every_secs: args.sync_every_secs.to_string(),
            crashes: AtomicUsize::new(0),
        };
        for n in 1..=args.merchants {
            let account = format!("acct_SimMerchant{n}");
            emulator
                .emulator
                .connect_existing(&account, &format!("Merchant {n} Ltd"));
            let listen = format!("127.0.0.1:{}", free_port()?);
            let admin_listen = format!("127.0.0.1:{}", free_port()?);
            let db = fleet.dir.join(format!("merchant-{n}.db"));
            let m = Merchant {
                secret: format!("whsec_sim_{:x}_{n}", args.seed),
                base_url: format!("http://{listen}"),
                admin_url: format!("http://{admin_listen}"),
                auth: format!("Bearer {}", make_token(&fleet.host_harness, &db)?),
                admin_listen,
                db,
                log: fleet.dir.join(format!("merchant-{n}.log")),
                account,
                listen,
                child: Mutex::new(None),
            };
            emulator.emulator.add_webhook_for(
                &m.account,
                WebhookTarget {
                    url: format!("{}/webhooks/stripe", m.base_url),
                    secrets: vec![m.secret.clone()],
                    delivery: Delivery::Automatic,
                },
            );
            fleet.spawn(&m)?;
            fleet.merchants.push(m);
        }
        for m in &fleet.merchants {
            fleet.wait_healthy(m)?;
        }
        Ok(fleet)
    }

    fn spawn(&self, m: &Merchant) -> std::io::Result<()> {
        let log = OpenOptions::new().create(true).append(true).open(&m.log)?;
        let child = Command::new(&self.host_harness)
            .arg("serve")
            .args([
                "--listen",
                &m.listen,
                "--admin-listen",
                &m.admin_listen,
                "--account",
                &m.account,
                "--webhook-secret",
                &m.secret,
            ])
            .args([
                "--stripe-api-base",
                &self.stripe_base,
                "--pay-link-base",
                &m.base_url,
            ])
            .arg("--db")
            .arg(&m.db)
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args([
                "--sync-every-secs",
                &self.sync_every_secs,
                "--stripe-timeout-secs",
                "2",
            ])
            .args(["--notification-email", "finance@merchant.example"])
            .env("STRIPE_API_KEY", &self.api_key)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        *m.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    fn wait_healthy(&self, m: &Merchant) -> std::io::Result<()> {
        let agent = agent();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let health = format!("{}/healthz", m.base_url);
            if let Ok((200, _)) = call(&agent, "GET", &health, None, None) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::other(format!(
            "serve for {} never answered",
            m.account
        )))
    }

    /// SIGKILL (no shutdown, no flush), then a restart on the same database.
    pub fn crash(&self, n: usize) {
        let m = &self.merchants[n];
        if let Some(mut child) = m.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.crashes.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        if self.spawn(m).is_ok() {
            let _ = self.wait_healthy(m);
        }
    }

    pub fn crashes(&self) -> usize {
        self.crashes.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        for m in &self.merchants {
            if let Some(mut child) = m.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Merchant {
    /// A call to this merchant's host, repeated while it is down or busy
    /// (as a platform's job runner would).
    pub fn host(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.admin_url);
        let mut last = (0, Value::Null);
        for _ in 0..120 {
            match call(agent, method, &url, body, Some(&self.auth)) {
                Ok((s, v)) if s < 500 => return (s, v),
                Ok(other) => last = other,
                Err(e) => last = (0, Value::String(e)),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        last
    }
}
