//! `host-harness`: serve, demo and the offline Stripe emulator.

use anyhow::Result;
use clap::{Parser, Subcommand};
use host_server::access::Door;
use host_server::app::{App, SyncBy};
use host_server::config::{Flags, Settings};
use host_server::http_server::{RunningServer, Shutdown};
use host_server::record::Recorder;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "host-harness",
    version,
    about = "Runs the Stripe payments plugin: a billing host in a box, a demo, an offline Stripe emulator"
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The billing host: Stripe's webhooks and the pay pages on --listen
    /// (public), the platform's API on --admin-listen (private, with a token).
    Serve,
    /// Registers (or updates) the platform and Connect webhook endpoints at
    /// PUBLIC_URL/webhooks/stripe with the plugin's event types and API
    /// version, keeps their signing secrets for serve, and prints the
    /// permissions a restricted key needs. Running it again changes nothing.
    StripeSetup {
        /// The public listener as Stripe reaches it, e.g. https://billing.example.com.
        #[arg(long)]
        public_url: String,
    },
    /// The platform's API tokens, kept in the store as hashes.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// The whole story offline, against the embedded Stripe emulator; prints a timeline.
    Demo,
    /// Times on-webhook per event through the runtime (see tests/bench/webhook).
    BenchWebhook {
        /// A Stripe event whose object names invoice inv_bench in its metadata.
        #[arg(long)]
        event: std::path::PathBuf,
        #[arg(long, default_value_t = 5000)]
        iterations: u32,
        /// Where the events padded to 1, 16 and 64 KB are written.
        #[arg(long, default_value = "target/bench")]
        out_dir: std::path::PathBuf,
        #[arg(long, value_enum, default_value = "full")]
        scope: host_tools::bench::Scope,
    },
    /// Durable webhook throughput of `serve` over loopback, and of a Node.js
    /// handler in the same run (see tests/bench/run).
    BenchServe {
        /// A Stripe event whose object names invoice inv_bench in its metadata.
        #[arg(long)]
        event: std::path::PathBuf,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// tests/bench/node/handler.mjs, to load it the same way after serve.
        #[arg(long)]
        node_handler: Option<std::path::PathBuf>,
        /// A PostgreSQL server: also measure 1, 2 and 4 workers on it.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Invoices finalized per second against the emulator over loopback.
    BenchFinalize {
        #[arg(long, default_value_t = 300)]
        invoices: u32,
    },
    /// Replays portable scenarios (tests/portability/README.md) with in-memory
    /// imports; prints one canonical JSON line per call.
    Replay {
        /// Scenario files, replayed in the order given.
        #[arg(required = true)]
        scenarios: Vec<std::path::PathBuf>,
    },
    /// Writes the embedded plugin component, the exact bytes this host runs
    /// (for a second runtime, e.g. jco).
    WriteComponent {
        /// Where to write it.
        path: std::path::PathBuf,
    },
    /// The offline Stripe test-mode emulator alone, on --listen.
    StripeEmulator {
        /// Deliver signed events here (e.g. http://127.0.0.1:8787/webhooks/stripe); sign with --webhook-secret.
        #[arg(long)]
        webhook_url: Option<String>,
        /// The business name of the account `--account` connects (shown on Checkout's page).
        #[arg(long, default_value = "Merchant Ltd")]
        business_name: String,
        /// API requests per second and account before 429s (Stripe's
        /// sandbox allows 25); none by default.
        #[arg(long)]
        rate_limit: Option<u32>,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Makes a token and prints it, once, on stdout (the store keeps its hash).
    Create {
        /// A token for this merchant's routes only [default: every route].
        #[arg(long)]
        merchant: Option<String>,
        /// What it is for, shown by `token list`.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Lists the tokens (ids, labels, merchants; never the tokens).
    List,
    /// Revokes a token at once, by its id (`tok_…`).
    Revoke { id: String },
    /// Reads a token on stdin and prints its SHA-256, for
    /// `--platform-token-sha256` or `platform.token_sha256`.
    Hash,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let format = cli.flags.log_format.unwrap_or_default();
    if matches!(cli.command, Command::Demo) {
        // The story goes to stdout on its own; serve's log lines to a file.
        let path = std::env::temp_dir().join("stripe-plugin-demo.log");
        host_server::logging::init_to_file(format, &path)?;
        println!("(serve's log: {})", path.display());
    } else {
        host_server::logging::init(format);
    }
    match cli.command {
        Command::Demo => host_tools::demo::run(&cli.flags),
        Command::WriteComponent { path } => {
            Ok(std::fs::write(path, host_runtime::runtime::PLUGIN_WASM)?)
        }
        Command::BenchServe {
            event,
            seconds,
            connections,
            node_handler,
            postgres,
        } => host_tools::bench_serve::run(&event, seconds, connections, node_handler, postgres),
        Command::BenchFinalize { invoices } => host_tools::bench::finalize(invoices),
        Command::Replay { scenarios } => host_tools::portable::replay::main(&scenarios),
        Command::BenchWebhook {
            event,
            iterations,
            out_dir,
            scope,
        } => host_tools::bench::webhook(&event, iterations, &out_dir, scope),
        Command::Serve => {
            let settings = Settings::resolve(&cli.flags)?;
            let recorder = match &settings.record_http {
                Some(p) => Recorder::to_file(p)?,
                None => Recorder::default(),
            };
            let app = Arc::new(App::from_settings(&settings, recorder)?);
            let server = RunningServer::bind(&settings.listen)?;
            let admin = RunningServer::bind(&settings.admin_listen)?;
            host_server::access::platform_listener_allowed(admin.addr, app.tokens().any_valid()?)
                .map_err(anyhow::Error::msg)?;
            server.run(app.clone(), 8, Shutdown::OnSignal, Door::Public, &[])?;
            admin.run(
                app.clone(),
                4,
                Shutdown::OnSignal,
                Door::Platform,
                &settings.admin_hosts,
            )?;
            if !app.tokens().any_valid()? {
                tracing::warn!(
                    "no platform token is valid: every platform request will be refused; make one with `host-harness token create`"
                );
            }
            let runners = cli.flags.queue_workers.unwrap_or(4);
            app.run_queue(runners);
            if settings.sync_every_secs > 0 {
                let by = if runners > 0 {
                    SyncBy::Queue
                } else {
                    SyncBy::ThisWorker
                };
                let every = std::time::Duration::from_secs(settings.sync_every_secs);
                app.sync_periodically(every, by);
            }
            tracing::info!(
                listen = %server.base_url,
                admin_listen = %admin.base_url,
                stripe_api_base = %settings.stripe_api_base,
                "billing host listening"
            );
            // Until SIGTERM: then no new connections, the calls in flight finish.
            server.wait();
            admin.wait();
            tracing::info!("billing host stopped");
            Ok(())
        }
        Command::Token { action } => token(&cli.flags, action),
        Command::StripeSetup { public_url } => stripe_setup(&cli.flags, &public_url),
        Command::StripeEmulator {
            webhook_url,
            business_name,
            rate_limit,
        } => {
            let standalone = stripe_emulator::standalone::Standalone {
                listen: cli
                    .flags
                    .listen
                    .clone()
                    .unwrap_or_else(|| "127.0.0.1:12111".into()),
                account: cli.flags.account.clone(),
                business_name,
                webhook_url,
                webhook_secrets: cli.flags.webhook_secrets.clone(),
                rate_limit,
            };
            match standalone.run().map_err(anyhow::Error::msg)? {}
        }
    }
}

/// `host-harness token …`: on the store `--db` names.
fn token(flags: &Flags, action: TokenAction) -> Result<()> {
    use host_server::tokens::{Tokens, sha256_hex};
    if let TokenAction::Hash = action {
        let mut token = String::new();
        std::io::stdin().read_line(&mut token)?;
        println!("{}", sha256_hex(token.trim()));
        return Ok(());
    }
    let settings = Settings::resolve(flags)?;
    let db = host_server::db::Db::open(&settings.db.to_string_lossy())?;
    let tokens = Tokens::new(&db, &settings.platform_token_sha256);
    let now = host_runtime::imports::Clock::System.now_ms() as i64;
    match action {
        TokenAction::Create { merchant, label } => {
            if let Some(m) = &merchant {
                anyhow::ensure!(
                    host_server::merchants::valid_id(m),
                    "merchant must be 1 to 64 letters, digits, - or _"
                );
            }
            let made = tokens.create(merchant.as_deref(), &label, now)?;
            eprintln!("token {} made; it is shown once, keep it:", made.id);
            println!("{}", made.token);
        }
        TokenAction::List => {
            for t in tokens.list()? {
                let state = if t.revoked_ms.is_some() {
                    "revoked"
                } else {
                    "valid"
                };
                let whose = t.merchant.as_deref().unwrap_or("(every merchant)");
                println!("{}  {state:<7}  {whose}  {}", t.id, t.label);
            }
        }
        TokenAction::Revoke { id } => {
            anyhow::ensure!(tokens.revoke(&id, now)?, "no valid token {id}");
            eprintln!("token {id} revoked");
        }
        TokenAction::Hash => {}
    }
    Ok(())
}

/// `stripe-setup`: a secrets file named on the command line is made (empty,
/// `0600`) when it does not exist yet, for the run to fill.
fn stripe_setup(flags: &Flags, public_url: &str) -> Result<()> {
    if let Some(path) = flags.webhook_secrets_file.as_ref().filter(|p| !p.exists()) {
        host_server::secrets::create_private(path)?;
    }
    let settings = Settings::resolve(flags)?;
    let report = host_server::stripe_setup::run(&settings, public_url)?;
    print!("{report}");
    Ok(())
}
