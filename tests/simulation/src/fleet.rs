//! Many `serve` workers on one PostgreSQL database, and what drives them:
//! shared by the `workers` and `month-end` binaries (each uses part of it).
#![allow(dead_code)]

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A small seeded generator (xorshift), so a run can be repeated.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

pub struct Worker {
    /// The public listener: Stripe's webhooks.
    pub base_url: String,
    /// The platform listener: everything else, with the fleet's token.
    pub admin_url: String,
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// One call; retried while the answer is 5xx or none (as a job runner would).
pub fn call(
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

/// Prints the violations; the exit code says whether there were any. Returned
/// from `main`, so the fleet is dropped (its workers stopped) either way.
pub fn report(violations: &[String]) -> std::process::ExitCode {
    println!("  violations: {}", violations.len());
    for v in violations {
        println!("    - {v}");
    }
    if violations.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Runs `jobs` on `threads` threads, each job to a random worker.
pub fn in_parallel<J: Send>(threads: usize, jobs: Vec<J>, run: impl Fn(J) + Sync) {
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

/// A platform token made on `db` by `host-harness token create`, as an
/// operator would.
pub fn make_token(host_harness: &str, db: &str) -> String {
    let out = Command::new(host_harness)
        .args(["token", "create", "--label", "tests", "--db", db])
        .stderr(Stdio::inherit())
        .output()
        .expect("host-harness token create");
    assert!(out.status.success(), "token create failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn fresh_database(server: &str, seed: u64) -> String {
    let name = format!("workers_{seed}_{}", std::process::id());
    let mut client = postgres::Client::connect(server, postgres::NoTls).expect("PostgreSQL");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("a database for the workers");
    let mut url = url::Url::parse(server).expect("a PostgreSQL URL");
    url.set_path(&name);
    url.to_string()
}

/// How to start the workers.
pub struct Spawn<'a> {
    pub host_harness: &'a str,
    pub db: &'a str,
    pub account: &'a str,
    pub secret: &'a str,
    pub stripe_base: &'a str,
    pub api_key: &'a str,
    pub dir: &'a std::path::Path,
    pub extra_args: &'a [String],
}

/// `n` `serve` processes on one database, each on its own loopback port.
pub fn start_workers(n: usize, s: &Spawn) -> Vec<Worker> {
    (0..n)
        .map(|k| {
            let listen = format!("127.0.0.1:{}", free_port());
            let admin_listen = format!("127.0.0.1:{}", free_port());
            let log =
                std::fs::File::create(s.dir.join(format!("worker-{k}.log"))).expect("a log file");
            let child = Command::new(s.host_harness)
                .args([
                    "serve",
                    "--listen",
                    &listen,
                    "--admin-listen",
                    &admin_listen,
                    "--db",
                    s.db,
                    "--account",
                    s.account,
                ])
                .args([
                    "--webhook-secret",
                    s.secret,
                    "--stripe-api-base",
                    s.stripe_base,
                ])
                .args(["--sync-every-secs", "0", "--log-format", "json"])
                // A Stripe call that hangs fails in 5 s, and the work is retried.
                .args(["--stripe-timeout-secs", "5"])
                .args(["--notification-email", "finance@workers.example"])
                .arg("--cache-dir")
                .arg(s.dir.join("cache"))
                .args(s.extra_args)
                .env("STRIPE_API_KEY", s.api_key)
                // Every worker signs pay links with the same key (a fake one).
                .env("STRIPE_PLUGIN_PAY_LINK_SECRETS", "plk_test_fleet_only")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("serve");
            Worker {
                base_url: format!("http://{listen}"),
                admin_url: format!("http://{admin_listen}"),
                child,
            }
        })
        .collect()
}

pub fn wait_healthy(workers: &[Worker]) {
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

/// What a fleet of workers needs.
pub struct FleetConfig<'a> {
    /// Names its temporary directory and database.
    pub name: &'a str,
    pub workers: usize,
    pub host_harness: &'a str,
    /// A PostgreSQL server; the fleet makes a database of its own on it.
    pub postgres: &'a str,
    pub seed: u64,
    pub account: &'a str,
    pub secret: &'a str,
    pub stripe_base: &'a str,
    pub api_key: &'a str,
    /// More flags for every worker's `serve`.
    pub extra_args: &'a [String],
}

/// Healthy workers on a fresh database, and a seeded way to pick one.
pub struct Fleet {
    pub db: String,
    dir: std::path::PathBuf,
    workers: Vec<Worker>,
    /// The workers' platform listeners.
    urls: Vec<String>,
    /// Their public listeners.
    public_urls: Vec<String>,
    /// `Bearer` and the platform token the fleet made with `token create`.
    auth: String,
    rng: Mutex<Rng>,
}

impl Fleet {
    pub fn start(c: &FleetConfig) -> Self {
        let dir =
            std::env::temp_dir().join(format!("{}-{}-{}", c.name, c.seed, std::process::id()));
        std::fs::create_dir_all(dir.join("cache")).expect("a temp dir");
        let db = fresh_database(c.postgres, c.seed);
        let auth = format!("Bearer {}", make_token(c.host_harness, &db));
        let spawn = Spawn {
            host_harness: c.host_harness,
            db: &db,
            account: c.account,
            secret: c.secret,
            stripe_base: c.stripe_base,
            api_key: c.api_key,
            dir: &dir,
            extra_args: c.extra_args,
        };
        let workers = start_workers(c.workers, &spawn);
        wait_healthy(&workers);
        let urls = workers.iter().map(|w| w.admin_url.clone()).collect();
        let public_urls = workers.iter().map(|w| w.base_url.clone()).collect();
        Self {
            db,
            dir,
            workers,
            urls,
            public_urls,
            auth,
            rng: Mutex::new(Rng(c.seed | 1)),
        }
    }

    /// A worker's base URL, at random (as a load balancer would).
    /// A worker's platform listener, at random.
    pub fn pick(&self) -> String {
        let n = self.lock().below(self.urls.len());
        self.urls[n].clone()
    }

    /// A worker's public listener, at random (where Stripe's webhooks go).
    pub fn pick_public(&self) -> String {
        let n = self.lock().below(self.public_urls.len());
        self.public_urls[n].clone()
    }

    /// Every worker's platform listener.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The headers of a platform call: JSON, and the fleet's token.
    pub fn platform_headers(&self) -> [(&str, &str); 2] {
        [
            ("Content-Type", "application/json"),
            ("Authorization", self.auth.as_str()),
        ]
    }

    pub fn shuffle<T>(&self, items: &mut [T]) {
        self.lock().shuffle(items);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.workers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
