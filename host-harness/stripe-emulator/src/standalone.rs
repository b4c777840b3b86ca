//! The emulator as a process of its own (its `stripe-emulator` binary, and
//! `host-harness stripe-emulator`): one listener, optionally one connected
//! account and one webhook endpoint, until the process is killed.

use crate::server::RunningEmulator;
use crate::{Clock, Delivery, Emulator, WebhookTarget};

/// What a standalone emulator is started with.
#[derive(Debug, Clone, Default)]
pub struct Standalone {
    /// Where to listen (`127.0.0.1:12111` by default).
    pub listen: String,
    /// A connected account that exists from the start (`acct_…`).
    pub account: Option<String>,
    /// Its business name, shown on the Checkout page.
    pub business_name: String,
    /// Where signed events are delivered.
    pub webhook_url: Option<String>,
    /// The secrets they are signed with (`whsec_…`, newest first).
    pub webhook_secrets: Vec<String>,
    /// API requests per second and account before 429s (none: unlimited).
    pub rate_limit: Option<u32>,
}

impl Standalone {
    /// Starts the emulator and serves until the process ends.
    pub fn run(&self) -> Result<std::convert::Infallible, String> {
        let running = RunningEmulator::start(Emulator::new(Clock::system()), &self.listen)?;
        if let Some(account) = &self.account {
            running
                .emulator
                .connect_existing(account, &self.business_name);
        }
        running.emulator.limit_rate(self.rate_limit);
        if let Some(url) = &self.webhook_url {
            running.emulator.set_webhook(Some(WebhookTarget {
                url: url.clone(),
                secrets: self.webhook_secrets.clone(),
                delivery: Delivery::Automatic,
            }));
        }
        eprintln!("Stripe emulator listening on {}", running.base_url);
        loop {
            std::thread::park();
        }
    }
}
