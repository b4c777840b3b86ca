//! `serve`'s core, the `App`: built from settings, it routes the platform's
//! API and Stripe's webhooks to the plugin and applies what the plugin
//! returns durably before answering. One file per route family: `routing`
//! (every request's way in), `webhooks`, `customers`, `invoices`,
//! `pay_link`, `merchants`, `sync`, and `jobs` (the queue's work).

use crate::access::{self, Asked, Audience, Door, Refusal};
use crate::bindings::{
    CollectionStop, InvoiceChange, InvoiceUpdate, Merchant, OnboardingRequest, PayPage,
    PluginError, RefundReason, RefundRequest, Transition, WebhookRequest,
};
use crate::config::Settings;
use crate::db::Db;
use crate::imports::{
    Clock, HostEnv, KeyRing, MailDelivery, MerchantKeys, StripeGate, UreqBackend,
};
use crate::jobs::JobKind;
use crate::merchants::{MerchantSettings, Merchants, PutError};
use crate::metrics::WebhookOutcome;
use crate::pages::{OnboardingView, PayView, Rendered};
use crate::platform::{PlatformCustomer, PlatformInvoice};
use crate::ports::{Observer, Observers, Pacer};
use crate::record::Recorder;
use crate::runtime::{PLUGIN_WASM, Runtime};
use crate::state::{ApplyError, Records};
use crate::tokens::Tokens;
use anyhow::Context as _;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tracing::field::Empty;

mod card_page;
mod customers;
mod invoices;
mod jobs;
mod merchants;
mod pay_link;
mod reply;
mod routing;
mod sync;
mod webhooks;

pub use reply::Reply;

/// The largest request body serve reads (larger ones are refused with 413);
/// webhook bodies have their own, smaller bound in the plugin.
pub const MAX_BODY: u64 = 1 << 20;

/// What the host gives every merchant: the Stripe API base, where pay links
/// point, the webhook tolerance, and the platform's keys.
pub struct Platform {
    /// The merchant of the unscoped routes, named by the config file; events
    /// with no `account` go to it.
    pub default_merchant: String,
    pub stripe_api_base: String,
    /// The default merchant's pay-link base; another merchant's adds
    /// `/merchants/{id}`, so its links name it.
    pub pay_link_base: String,
    pub webhook_tolerance_secs: u32,
    /// How long a pay link opens after its invoice settled (ms).
    pub pay_link_expiry_ms: u64,
    /// The platform's Connect endpoint secrets, and the pay-link keys from
    /// which each merchant's own are derived.
    pub keys: MerchantKeys,
}

/// What a finalize came to.
pub(crate) enum Finalized {
    Done,
    Missing,
    Failed(PluginError),
}

/// Who runs the periodic sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncBy {
    /// The queue: one job per merchant a period, for the whole fleet.
    Queue,
    /// This worker, every merchant, every period (no queue runners here).
    ThisWorker,
}

/// One merchant as a call sees it.
pub struct Scope {
    pub id: String,
    pub settings: MerchantSettings,
    /// The contract's record of this merchant.
    pub merchant: Merchant,
}

impl Scope {
    /// Whether the merchant can use Stripe yet: the default merchant may run
    /// on the platform's own account, any other needs its connected one.
    pub(crate) fn connected(&self, platform: &Platform) -> bool {
        self.id == platform.default_merchant || !self.merchant.account_id.is_empty()
    }
}

/// The host: a runtime, the platform's settings, the merchants' records, and
/// a journal of what changed.
pub struct App {
    pub runtime: Runtime,
    /// The store: the runtime's kv and outbox, and everything of serve's.
    pub db: Arc<Db>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The Stripe exchanges (`--record-http`, and the tests').
    pub recorder: Arc<Recorder>,
    /// Each merchant's secrets, as the runtime's `mac` reads them.
    keyring: Arc<KeyRing>,
    pub platform: Platform,
    /// SHA-256 hashes of the configured platform-wide tokens.
    token_hashes: Vec<String>,
    /// The SMTP relay that sends the outbox's emails, when there is one.
    pub(crate) mailer: Option<crate::mailer::Mailer>,
    journal: Mutex<Journal>,
}

/// What `serve`'s host stands on besides the runtime: its store, the way to
/// Stripe, the clock, and the log of Stripe exchanges.
pub struct Backing {
    pub db: Arc<Db>,
    pub stripe: StripeGate,
    pub clock: Clock,
    pub recorder: Arc<Recorder>,
}

/// A listener as the requests' checks see it: who it is for, and (for the
/// platform's) the `Host` names it answers to.
#[derive(Debug, Clone)]
pub struct Doorway {
    pub door: Door,
    pub hosts: Vec<String>,
}

impl App {
    /// Builds the whole host from settings: database, Stripe gate (real HTTP
    /// with the configured timeout), system clock, runtime. The default
    /// merchant's settings come from the config file at every start.
    pub fn from_settings(s: &Settings, recorder: Recorder) -> anyhow::Result<Self> {
        let db = Arc::new(Db::open(&s.db.to_string_lossy())?);
        let api_key = s.api_key.as_ref().map(|k| k.0.clone());
        let base = url::Url::parse(&s.stripe_api_base)?;
        let backend = Arc::new(UreqBackend::new(std::time::Duration::from_secs(
            s.stripe_timeout_secs,
        )));
        let stripe = StripeGate {
            base,
            api_key,
            backend,
        };
        Self::with_backing(
            s,
            Backing {
                db,
                stripe,
                clock: Clock::System,
                recorder: Arc::new(recorder),
            },
        )
    }

    /// The host on parts made by the caller (its store, Stripe backend and
    /// clock): what `from_settings` builds for `serve`, and what a test
    /// builds around an in-process emulator and a fixed clock.
    pub fn with_backing(s: &Settings, b: Backing) -> anyhow::Result<Self> {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let observers: Vec<Arc<dyn Observer>> = vec![metrics.clone(), b.recorder.clone()];
        let pacer = crate::pacing::Pacing::new(s.stripe_requests_per_sec).map(|pacing| {
            Arc::new(crate::pacing::PacedStore {
                pacing,
                db: b.db.clone(),
            }) as Arc<dyn Pacer>
        });
        let mail = if s.smtp.is_some() {
            MailDelivery::Relay
        } else {
            MailDelivery::OutboxOnly
        };
        let keyring = Arc::new(KeyRing::default());
        let env = HostEnv::new(b.db.host_store(), b.stripe, b.clock, keyring.clone())
            .with_observer(Arc::new(Observers(observers)))
            .with_pacer(pacer)
            .with_mail(mail);
        let mut keys = s.keys.clone();
        if keys.pay_link.is_empty() {
            keys.pay_link
                .push(crate::secrets::unconfigured_pay_link_key(&s.db, &b.db)?);
        }
        let runtime = Runtime::profiled(
            PLUGIN_WASM,
            Arc::new(env),
            s.limits,
            s.cache_dir.as_deref(),
            s.profiling,
        )?;
        let platform = Platform {
            default_merchant: s.merchant_id.clone(),
            stripe_api_base: s.stripe_api_base.clone(),
            pay_link_base: s.pay_link_base.clone(),
            webhook_tolerance_secs: s.webhook_tolerance_secs,
            pay_link_expiry_ms: u64::from(s.pay_link_expiry_days) * 86_400_000,
            keys,
        };
        let app = Self {
            runtime,
            db: b.db,
            metrics,
            recorder: b.recorder,
            keyring,
            platform,
            token_hashes: s.platform_token_sha256.clone(),
            mailer: s
                .smtp
                .as_ref()
                .map(crate::mailer::Mailer::new)
                .transpose()?,
            journal: Mutex::default(),
        };
        match (&s.smtp, app.runtime.env().mail) {
            (Some(relay), MailDelivery::Relay) => {
                tracing::info!(relay = %relay.host, "emails are sent through the SMTP relay")
            }
            (Some(_), MailDelivery::OutboxOnly) => tracing::warn!(
                "an SMTP relay is configured, but this host keeps emails in the outbox only"
            ),
            (None, _) => tracing::warn!(
                "no SMTP relay is configured (--smtp-host): emails are kept in the outbox and not sent"
            ),
        }
        app.merchants()
            .put(&s.merchant_id, &s.merchant)
            .context("storing the default merchant")?;
        Ok(app)
    }

    pub(crate) fn merchants(&self) -> Merchants<'_> {
        Merchants::new(&self.db)
    }

    /// The merchant `id` as calls see it, with its keys in the key ring.
    pub fn scope(&self, id: &str) -> anyhow::Result<Option<Scope>> {
        let settings = self.merchants().get(id)?;
        Ok(settings.map(|s| self.scope_of(id, s)))
    }

    /// Merchant `id` with `settings`, as a call sees it.
    fn scope_of(&self, id: &str, settings: MerchantSettings) -> Scope {
        let p = &self.platform;
        let pay_link_base = if id == p.default_merchant {
            p.pay_link_base.clone()
        } else {
            format!("{}/merchants/{id}", p.pay_link_base.trim_end_matches('/'))
        };
        let merchant = Merchant {
            account_id: settings.account().unwrap_or_default().to_string(),
            stripe_api_base: p.stripe_api_base.clone(),
            auto_charge: settings.auto_charge,
            show_payment_link: settings.show_payment_link,
            stripe_receipts: settings.stripe_receipts,
            pay_link_base,
            notification_email: settings.notification_email.clone(),
            webhook_tolerance_secs: p.webhook_tolerance_secs,
            livemode: settings.livemode,
            retry_days: settings.retry_days.clone(),
        };
        let scope = Scope {
            id: id.to_string(),
            settings,
            merchant,
        };
        // Every merchant's keys are its own, connected or not (S6).
        self.keyring.ensure(id, self.keys_of(id));
        scope
    }

    /// A merchant's keys: the platform's webhook secrets (one Connect
    /// endpoint serves every account), and pay-link keys of its own, so that
    /// no merchant's token verifies under another's.
    fn keys_of(&self, id: &str) -> MerchantKeys {
        let p = &self.platform;
        if id == p.default_merchant {
            return p.keys.clone();
        }
        let derive = |key: &String| {
            let mac = crate::imports::hmac_sha256(key, format!("pay-link:{id}").as_bytes())
                .unwrap_or_default();
            format!("plk_{}", hex::encode(mac))
        };
        MerchantKeys {
            webhook_signing: p.keys.webhook_signing.clone(),
            pay_link: p.keys.pay_link.iter().map(derive).collect(),
        }
    }

    fn default_scope(&self) -> anyhow::Result<Scope> {
        self.scope(&self.platform.default_merchant)?
            .ok_or_else(|| anyhow::anyhow!("the default merchant is missing from the database"))
    }

    /// The default merchant's record (the one the config file names).
    pub fn merchant(&self) -> anyhow::Result<Merchant> {
        Ok(self.default_scope()?.merchant)
    }

    /// The platform's webhook signing secrets (host side: tests and the demo
    /// sign with them; the plugin never sees them).
    pub fn webhook_secrets(&self) -> Vec<String> {
        self.platform.keys.webhook_signing.clone()
    }

    /// Takes the journal lines written so far (one per applied transition).
    pub fn drain_journal(&self) -> Vec<String> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
    }

    /// Applies transitions durably; `source` says which call produced them.
    fn apply(
        &self,
        scope: &Scope,
        source: &str,
        transitions: &[Transition],
    ) -> Result<(), ApplyError> {
        self.records(scope).apply(transitions)?;
        self.journal_lines(scope, source, transitions);
        Ok(())
    }

    /// One line per transition; another merchant's than the default's names it.
    fn journal_lines(&self, scope: &Scope, source: &str, transitions: &[Transition]) {
        let source = if scope.id == self.platform.default_merchant {
            format!("({source})")
        } else {
            format!("({}: {source})", scope.id)
        };
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        for t in transitions {
            j.push(format!("{source:<34} {t}"));
        }
    }

    pub(crate) fn records<'a>(&'a self, scope: &'a Scope) -> Records<'a> {
        let env = self.runtime.env();
        Records::new(&self.db, &scope.id, env.clock.now_ms()).of_account(&scope.merchant.account_id)
    }

    /// The platform's tokens.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens::new(&self.db, &self.token_hashes)
    }

    /// Stores what the plugin decided; when the host cannot, the answer is
    /// a 503 (retry), never a 500: nothing was lost, the call can be redone.
    fn apply_or_503(
        &self,
        scope: &Scope,
        source: &str,
        transitions: &[Transition],
    ) -> anyhow::Result<Option<Reply>> {
        Ok(self.apply(scope, source, transitions).err().map(|e| {
            tracing::warn!(error = %e, source, "transitions not stored; answered 503");
            Reply::error(503, &format!("not stored, retry: {e}"), true)
        }))
    }
}

/// What the host applied, one line per transition, for the demo and the
/// tests to read: the newest lines only, so a long-running `serve` never
/// grows it without bound.
#[derive(Default)]
pub struct Journal {
    lines: std::collections::VecDeque<String>,
}

impl Journal {
    /// Lines kept before the oldest is dropped.
    pub const KEPT: usize = 10_000;

    pub fn push(&mut self, line: String) {
        if self.lines.len() == Self::KEPT {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn drain(&mut self) -> Vec<String> {
        self.lines.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Journal;

    #[test]
    fn the_journal_keeps_only_its_newest_lines() {
        let mut j = Journal::default();
        for i in 0..Journal::KEPT + 5 {
            j.push(format!("line {i}"));
        }
        let lines = j.drain();
        assert_eq!(lines.len(), Journal::KEPT);
        assert_eq!(lines[0], "line 5");
        assert!(j.drain().is_empty());
    }
}
