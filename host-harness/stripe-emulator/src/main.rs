//! `stripe-emulator`: the offline Stripe test-mode emulator as a process, for
//! a host under test (`serve --stripe-api-base http://127.0.0.1:12111`).

use clap::Parser;
use stripe_emulator::standalone::Standalone;

/// The offline Stripe test-mode emulator: Stripe's paths, objects, errors,
/// idempotency, Connect and signed webhooks, on one loopback listener.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:12111")]
    listen: String,
    /// A connected account that exists from the start (acct_…).
    #[arg(long)]
    account: Option<String>,
    /// The business name of that account (shown on Checkout's page).
    #[arg(long, default_value = "Merchant Ltd")]
    business_name: String,
    /// Deliver signed events here (e.g. http://127.0.0.1:8787/webhooks/stripe).
    #[arg(long)]
    webhook_url: Option<String>,
    /// The webhook signing secrets (whsec_…, newest first), from the
    /// environment only, as `serve` reads them.
    #[arg(
        long = "webhook-secret",
        env = "STRIPE_PLUGIN_WEBHOOK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    webhook_secrets: Vec<String>,
    /// API requests per second and account before 429s (Stripe's sandbox
    /// allows 25); none by default.
    #[arg(long)]
    rate_limit: Option<u32>,
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let standalone = Standalone {
        listen: a.listen,
        account: a.account,
        business_name: a.business_name,
        webhook_url: a.webhook_url,
        webhook_secrets: a.webhook_secrets,
        rate_limit: a.rate_limit,
    };
    match standalone.run() {
        Err(e) => {
            eprintln!("stripe-emulator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
