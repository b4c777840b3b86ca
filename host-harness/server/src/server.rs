//! `serve`: the billing host in a box. Routes the platform's API and Stripe's
//! webhooks to the plugin, and applies what it returns durably before answering.

use crate::access::{self, Asked, Audience, Door, Refusal};
use crate::bindings::{
    CollectionStop, InvoiceChange, InvoiceUpdate, Merchant, OnboardingRequest, PayPage,
    PluginError, Transition, WebhookRequest,
};
use crate::config::Settings;
use crate::db::Db;
use crate::imports::{
    Clock, HostEnv, MailDelivery, MerchantKeys, StripeGate, UreqBackend,
};
use crate::jobs::JobKind;
use crate::merchants::{MerchantSettings, Merchants, PutError};
use crate::metrics::WebhookOutcome;
use crate::pages::{PayView, Rendered};
use crate::ports::{Observer, Observers, Pacer};
use crate::platform::{PlatformCustomer, PlatformInvoice};
use crate::record::Recorder;
use crate::runtime::{PLUGIN_WASM, Runtime};
use crate::state::{ApplyError, Records};
use crate::tokens::Tokens;
use anyhow::Context as _;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tracing::field::Empty;

/// Largest request body read; webhook bodies have their own, smaller bound in the plugin.
/// The largest request body serve reads (larger ones are refused with 413).
pub const MAX_BODY: u64 = 1 << 20;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec_pretty(v).unwrap_or_default(),
        }
    }

    pub fn html(status: u16, html: String) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: html.into_bytes(),
        }
    }

    pub fn error(status: u16, message: &str, retryable: bool) -> Self {
        Self::json(
            status,
            &json!({"error": {"message": message, "retryable": retryable}}),
        )
    }

    fn plugin_error(e: &PluginError) -> Self {
        let status = match e {
            PluginError::InvalidInput(_) => 422,
            PluginError::Stripe(s) if !s.retryable => 422,
            _ => 503,
        };
        let mut reply = Self::error(status, &e.message(), e.retryable());
        // Stripe asked to wait: whoever retries this call should, too.
        if let PluginError::Stripe(s) = e
            && let Some(ms) = s.retry_after_ms
        {
            reply
                .headers
                .push(("Retry-After".into(), ms.div_ceil(1000).to_string()));
        }
        reply
    }
}

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
        let env = HostEnv::new(b.db.clone(), b.stripe, b.clock)
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
        let m = &s.merchant;
        let platform = Platform {
            default_merchant: s.merchant_id.clone(),
            stripe_api_base: m.stripe_api_base.clone(),
            pay_link_base: m.pay_link_base.clone(),
            webhook_tolerance_secs: m.webhook_tolerance_secs,
            pay_link_expiry_ms: u64::from(s.pay_link_expiry_days) * 86_400_000,
            keys,
        };
        let app = Self {
            runtime,
            db: b.db,
            metrics,
            recorder: b.recorder,
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
        let seeded = MerchantSettings {
            account_id: Some(m.account_id.clone()).filter(|a| !a.is_empty()),
            auto_charge: m.auto_charge,
            show_payment_link: m.show_payment_link,
            stripe_receipts: m.stripe_receipts,
            notification_email: m.notification_email.clone(),
            livemode: m.livemode,
            display_name: s.display_name.clone(),
        };
        app.merchants()
            .put(&s.merchant_id, &seeded)
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
        };
        let scope = Scope {
            id: id.to_string(),
            settings,
            merchant,
        };
        // Every merchant's keys are its own, connected or not (S6).
        self.runtime.env().keys.ensure(id, self.keys_of(id));
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
            let mac = crate::imports::mac::hmac_sha256(key, format!("pay-link:{id}").as_bytes())
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

    /// Catches up on missed webhooks for every connected merchant, one at a
    /// time. A merchant whose sync fails does not hold up the others: if a
    /// retry can help, its sync is queued; if not, it is logged. Returns the
    /// events read and applied.
    pub fn sync(&self) -> anyhow::Result<(u32, u32)> {
        let (mut read, mut applied) = (0, 0);
        for scope in self.connected_scopes()? {
            match self.sync_one(&scope)? {
                Ok((r, a)) => (read, applied) = (read + r, applied + a),
                Err(e) if e.retryable() => self.queue(&scope, JobKind::Sync, "", &e)?,
                Err(e) => {
                    tracing::error!(merchant = %scope.id, error = %e.message(), "sync failed")
                }
            }
        }
        Ok((read, applied))
    }

    /// Every merchant that can use Stripe yet, in id order.
    pub(crate) fn connected_scopes(&self) -> anyhow::Result<Vec<Scope>> {
        let mut out = Vec::new();
        for id in self.merchants().ids()? {
            if let Some(scope) = self.scope(&id)?
                && scope.connected(&self.platform)
            {
                out.push(scope);
            }
        }
        Ok(out)
    }

    /// Calls `on-sync` for the merchant from its stored cursor until Stripe
    /// has nothing more, storing each call's transitions with its cursor.
    /// The outer error is the store's; the inner one the plugin's.
    pub(crate) fn sync_one(
        &self,
        scope: &Scope,
    ) -> anyhow::Result<Result<(u32, u32), PluginError>> {
        let key = scope.id.clone();
        let (mut read, mut applied) = (0, 0);
        for _ in 0..100 {
            let cursor = self.records(scope).sync_cursor(&key)?;
            let out = match self
                .runtime
                .on_sync(&scope.id, &scope.merchant, cursor.as_deref())?
            {
                Ok(out) => out,
                Err(e) => return Ok(Err(e)),
            };
            (read, applied) = (read + out.read, applied + out.applied);
            self.records(scope)
                .apply_synced(&key, &out.next_cursor, &out.transitions)
                .map_err(|e| anyhow::anyhow!("storing a sync: {e}"))?;
            self.journal_lines(scope, "sync", &out.transitions);
            if !out.more {
                break;
            }
        }
        Ok(Ok((read, applied)))
    }

    /// Syncs every merchant itself at start (catching up on what came while
    /// it was down), then every `every` for as long as the process: by
    /// queueing each merchant's sync once a period for the whole fleet
    /// (`queue_syncs`), or, on a worker without queue runners, by running
    /// every merchant's sync itself.
    pub fn sync_periodically(self: &Arc<Self>, every: std::time::Duration, by: SyncBy) {
        let app = self.clone();
        std::thread::spawn(move || {
            let mut now_by = SyncBy::ThisWorker;
            loop {
                let done = match now_by {
                    SyncBy::Queue => app.queue_syncs(every).map(|()| {
                        tracing::info!("sync: this period's syncs queued");
                    }),
                    SyncBy::ThisWorker => app.sync().map(|(read, applied)| {
                        tracing::info!(
                            read,
                            applied,
                            "sync: events read, and applied that no webhook had brought"
                        );
                    }),
                };
                if let Err(e) = done {
                    tracing::warn!(error = %format!("{e:#}"), "sync failed; will try again");
                }
                now_by = by;
                std::thread::sleep(every);
            }
        });
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
        Records::new(&self.db, &scope.id, env.clock.now_ms())
    }

    /// The platform's tokens.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens::new(&self.db, &self.token_hashes)
    }

    /// A request from the network: checked for its listener, `Host`, body
    /// type and token (`access`), then handled. A refused one runs nothing.
    pub fn handle_at(
        &self,
        doorway: &Doorway,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        match self.admit(doorway, method, target, headers, body.len()) {
            Ok(()) => self.handle(method, target, headers, body),
            Err(refusal) => {
                let listener = match doorway.door {
                    Door::Public => "public",
                    Door::Platform => "platform",
                };
                let segments = segments_of(target);
                tracing::info!(
                    method,
                    route = loggable_route(&segments),
                    listener,
                    status = refusal.status(),
                    reason = refusal.name(),
                    "refused"
                );
                let metrics = &self.metrics;
                metrics.refused_request(listener, refusal.name());
                let mut reply = Reply::error(refusal.status(), refusal.message(), false);
                if refusal == Refusal::Unauthenticated {
                    reply
                        .headers
                        .push(("WWW-Authenticate".into(), "Bearer".into()));
                }
                reply
            }
        }
    }

    fn admit(
        &self,
        doorway: &Doorway,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body_len: usize,
    ) -> Result<(), Refusal> {
        let segments = segments_of(target);
        let asked = Asked {
            method,
            segments: &segments,
            headers,
            body_len,
        };
        let Audience::Platform(owner) = access::precheck(doorway.door, &asked, &doorway.hosts)?
        else {
            return Ok(());
        };
        let grant = match asked.bearer().map(|t| self.tokens().verify(t)) {
            Some(Ok(Some(grant))) => grant,
            Some(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "reading the platform's tokens");
                return Err(Refusal::Unauthenticated);
            }
            _ => return Err(Refusal::Unauthenticated),
        };
        if grant.covers(owner, &self.platform.default_merchant) {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }

    /// A request, routed: the in-process entry, whose caller is the platform
    /// itself (tests, an embedding host). Over the network every request
    /// goes through `handle_at` first.
    pub fn handle(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        let started = std::time::Instant::now();
        let segments = segments_of(target);
        let span = tracing::info_span!(
            "request",
            merchant = Empty,
            invoice = Empty,
            event = Empty,
            event_type = Empty,
            outcome = Empty,
        );
        let _in_span = span.enter();
        let reply = self.route(method, &segments, headers, body);
        // A webhook's outcome is its own (applied, ignored ...); the rest say
        // what their status says.
        if segments != ["webhooks", "stripe"] {
            span.record(
                "outcome",
                match reply.status {
                    200..=399 => "ok",
                    400..=499 => "refused",
                    _ => "failed",
                },
            );
        }
        let route = loggable_route(&segments);
        let elapsed_us = started.elapsed().as_micros() as u64;
        // Probes are polled often: their lines are debug.
        if matches!(segments.as_slice(), ["healthz"] | ["metrics"]) {
            tracing::debug!(method, route, status = reply.status, elapsed_us, "handled");
        } else {
            tracing::info!(method, route, status = reply.status, elapsed_us, "handled");
        }
        reply
    }

    fn route(
        &self,
        method: &str,
        segments: &[&str],
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        let result = match (method, segments) {
            ("POST", ["webhooks", "stripe"]) => self.webhook(headers, body),
            ("GET", ["healthz"]) => Ok(Reply::json(200, &json!({"ok": true}))),
            ("GET", ["metrics"]) => self.metrics_page(),
            ("PUT", ["merchants", id]) => self.put_merchant(id, body),
            ("GET", ["merchants", id]) => self.merchant_view(id),
            (_, ["merchants", id, rest @ ..]) => match self.scope(id) {
                Ok(Some(scope)) => self.scoped(&scope, method, rest, body),
                Ok(None) => Ok(Reply::error(404, &format!("no such merchant {id}"), false)),
                Err(e) => Err(e),
            },
            (_, rest) => self
                .default_scope()
                .and_then(|scope| self.scoped(&scope, method, rest, body)),
        };
        result.unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "host error");
            Reply::error(500, "host error", true)
        })
    }

    /// The platform's routes for one merchant: `/merchants/{id}/…`, or
    /// unscoped for the default merchant.
    fn scoped(
        &self,
        scope: &Scope,
        method: &str,
        route: &[&str],
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let span = tracing::Span::current();
        span.record("merchant", scope.id.as_str());
        if let ["invoices", id, ..] = route {
            span.record("invoice", *id);
        }
        let reads_only = method == "GET" && !matches!(route, ["pay", _]);
        if !reads_only && !matches!(route, ["onboarding"]) && !scope.connected(&self.platform) {
            return Ok(Reply::error(
                409,
                &format!(
                    "merchant {} has no connected Stripe account yet: POST /merchants/{}/onboarding first",
                    scope.id, scope.id
                ),
                false,
            ));
        }
        match (method, route) {
            ("PUT", ["customers", id]) => self.put_customer(scope, id, body),
            ("GET", ["customers", id]) => self
                .records(scope)
                .customer_view(id)
                .map(|c| found(c, "customer")),
            ("POST", ["invoices"]) => self.create_invoice(scope, body),
            ("POST", ["invoices", id, "finalize"]) => self.finalize(scope, id),
            ("PATCH", ["invoices", id]) => self.update_invoice(scope, id, body),
            ("GET", ["invoices", id]) => self
                .records(scope)
                .invoice_view(id)
                .map(|i| found(i, "invoice")),
            ("GET", ["pay", token]) => self.pay_link(scope, token),
            ("POST", ["invoices", id, "pay-link", "revoke"]) => {
                if self.records(scope).revoke_pay_link(id)? {
                    Ok(found(self.records(scope).invoice_view(id)?, "invoice"))
                } else {
                    Ok(Reply::error(404, "no such invoice", false))
                }
            }
            ("POST", ["onboarding"]) => self.onboarding(scope, body),
            ("GET", ["accounts", id]) => self
                .records(scope)
                .account_view(id)
                .map(|a| found(a, "account")),
            ("GET", ["outbox"]) => self
                .records(scope)
                .outbox(&scope.id)
                .map(|o| Reply::json(200, &json!({"data": o}))),
            ("GET", ["dead-letters"]) => {
                let dead = self.db.dead_letters(&scope.id)?;
                Ok(Reply::json(200, &json!({"data": dead})))
            }
            ("POST", ["dead-letters", id, "retry"]) => self.retry_dead_letter(scope, id),
            _ => Ok(Reply::error(404, "no such route", false)),
        }
    }

    /// `/metrics`, with the queue's depth and age read from the store now.
    fn metrics_page(&self) -> anyhow::Result<Reply> {
        let now = self.now_ms();
        let (depth, oldest_ms) = self.db.queue_stats(now)?;
        self.metrics
            .set_queue(depth, oldest_ms, self.db.dead_letter_count()?);
        Ok(Reply {
            status: 200,
            headers: vec![("Content-Type".into(), crate::metrics::CONTENT_TYPE.into())],
            body: self.metrics.render().into_bytes(),
        })
    }

    fn put_merchant(&self, id: &str, body: &[u8]) -> anyhow::Result<Reply> {
        let stored = MerchantSettings::parse(body).and_then(|s| self.merchants().put(id, &s));
        match stored {
            Ok(()) => self.merchant_view(id),
            Err(PutError::Storage(e)) => Err(e),
            Err(e @ PutError::AccountTaken(_)) => Ok(Reply::error(409, &e.to_string(), false)),
            Err(e @ PutError::Invalid(_)) => Ok(Reply::error(400, &e.to_string(), false)),
        }
    }

    /// The merchant's settings, with what Stripe said of its account.
    fn merchant_view(&self, id: &str) -> anyhow::Result<Reply> {
        let Some(scope) = self.scope(id)? else {
            return Ok(Reply::error(404, &format!("no such merchant {id}"), false));
        };
        let mut view = serde_json::to_value(&scope.settings)?;
        let account = match scope.settings.account() {
            Some(a) => self.records(&scope).account_view(a)?,
            None => None,
        };
        let flag = |k: &str| account.as_ref().is_some_and(|a| a[k] == true);
        view["id"] = id.into();
        view["chargesEnabled"] = flag("chargesEnabled").into();
        view["detailsSubmitted"] = flag("detailsSubmitted").into();
        view["payLinkBase"] = scope.merchant.pay_link_base.clone().into();
        Ok(Reply::json(200, &view))
    }

    /// 2xx only once the transitions are stored; an invoice the host does not
    /// know yet is a 503, so that Stripe delivers the event again later.
    ///
    /// One endpoint serves every connected account: an event goes to the
    /// merchant of its `account`, or to the default merchant when it has
    /// none. An account of no merchant's is still verified by the plugin
    /// (under the platform's secrets, as the default merchant's event for a
    /// foreign account), then answered 2xx and ignored.
    fn webhook(&self, headers: &[(String, String)], body: &[u8]) -> anyhow::Result<Reply> {
        let mut seen = SeenEvent::default();
        let reply = self.deliver(headers, body, &mut seen)?;
        let outcome = match reply.status {
            200..=299 if seen.unrouted => WebhookOutcome::Unrouted,
            200..=299 if seen.transitions > 0 => WebhookOutcome::Applied,
            200..=299 => WebhookOutcome::Ignored,
            400..=499 => WebhookOutcome::Refused,
            _ => WebhookOutcome::Failed,
        };
        let span = tracing::Span::current();
        span.record("outcome", outcome.name());
        if let Some(t) = &seen.event_type {
            span.record("event_type", t.as_str());
        }
        if let Some(id) = &seen.event_id {
            span.record("event", id.as_str());
        }
        self.metrics
            .webhook(seen.event_type.as_deref(), outcome);
        Ok(reply)
    }

    fn deliver(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        seen: &mut SeenEvent,
    ) -> anyhow::Result<Reply> {
        let account = event_account(body);
        let routed = match account.as_deref() {
            Some(a) => self.merchants().by_account(a)?,
            None => None,
        };
        let unrouted = account.is_some() && routed.is_none();
        let scope = match routed {
            Some((id, settings)) => self.scope_of(&id, settings),
            None => self.default_scope()?,
        };
        tracing::Span::current().record("merchant", scope.id.as_str());
        seen.unrouted = unrouted;
        let req = WebhookRequest {
            headers: webhook_headers(headers),
            body: body.to_vec(),
        };
        let outcome = match self.runtime.on_webhook(&scope.id, &scope.merchant, &req) {
            Err(trap) => {
                tracing::error!(error = %format!("{trap:#}"), "on-webhook failed");
                return Ok(Reply::error(500, "plugin failed", true));
            }
            Ok(Err(e)) => return Ok(Reply::plugin_error(&e)),
            Ok(Ok(outcome)) => outcome,
        };
        seen.event_id = outcome.event_id.clone();
        seen.event_type = outcome.event_type.clone();
        if unrouted && (200..300).contains(&outcome.status) {
            let reason = format!(
                "account {} belongs to no merchant; ignored",
                account.unwrap_or_default()
            );
            return Ok(Reply::json(
                outcome.status,
                &json!({"reason": reason, "event": outcome.event_id, "type": outcome.event_type,
                        "transitions": 0}),
            ));
        }
        tracing::debug!(reason = %outcome.reason, "plugin answered");
        if (200..300).contains(&outcome.status) {
            let source = format!("webhook {}", outcome.event_type.as_deref().unwrap_or("?"));
            match self.apply(&scope, &source, &outcome.transitions) {
                Ok(()) => seen.transitions = outcome.transitions.len(),
                Err(ApplyError::UnknownInvoice(id)) => {
                    return Ok(Reply::error(
                        503,
                        &format!("invoice {id} is not known here yet; retry later"),
                        true,
                    ));
                }
                Err(ApplyError::Storage(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "storing webhook transitions");
                    return Ok(Reply::error(503, "storage unavailable", true));
                }
            }
        }
        Ok(Reply::json(
            outcome.status,
            &json!({"reason": outcome.reason, "event": outcome.event_id, "type": outcome.event_type,
                    "transitions": outcome.transitions.len()}),
        ))
    }

    fn put_customer(&self, scope: &Scope, id: &str, body: &[u8]) -> anyhow::Result<Reply> {
        let doc: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Ok(Reply::error(
                    400,
                    "body must be a customer JSON object",
                    false,
                ));
            }
        };
        let parsed: PlatformCustomer = match serde_json::from_value(doc.clone()) {
            Ok(c) => c,
            Err(e) => return Ok(Reply::error(400, &format!("invalid customer: {e}"), false)),
        };
        let previous = self
            .records(scope)
            .parsed_customer(id)?
            .map(|p| p.to_wit(id));
        match self.runtime.on_customer_updated(
            &scope.id,
            &scope.merchant,
            &parsed.to_wit(id),
            previous.as_ref(),
        )? {
            Err(e) => Ok(Reply::plugin_error(&e)),
            Ok(transitions) => {
                self.records(scope).put_customer(id, &doc)?;
                if let Some(refused) = self.apply_or_503(scope, "customer updated", &transitions)? {
                    return Ok(refused);
                }
                Ok(found(self.records(scope).customer_view(id)?, "customer"))
            }
        }
    }

    fn create_invoice(&self, scope: &Scope, body: &[u8]) -> anyhow::Result<Reply> {
        let doc: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Ok(Reply::error(
                    400,
                    "body must be an invoice JSON object",
                    false,
                ));
            }
        };
        let parsed: PlatformInvoice = match serde_json::from_value(doc.clone()) {
            Ok(i) => i,
            Err(e) => return Ok(Reply::error(400, &format!("invalid invoice: {e}"), false)),
        };
        if !self.records(scope).insert_draft(&doc, &parsed.id)? {
            return Ok(Reply::error(
                409,
                &format!("invoice {} exists", parsed.id),
                false,
            ));
        }
        Ok(Reply {
            status: 201,
            ..found(self.records(scope).invoice_view(&parsed.id)?, "invoice")
        })
    }

    /// Sends the invoice. A failure that a retry can cure (a Stripe 429 or
    /// 5xx, a timeout) is also queued, so the work is done even if the
    /// platform never calls again: the answer is still the error (503, with
    /// `Retry-After`), marked `"queued": true`.
    fn finalize(&self, scope: &Scope, id: &str) -> anyhow::Result<Reply> {
        match self.finalize_now(scope, id)? {
            Finalized::Done => Ok(found(self.records(scope).invoice_view(id)?, "invoice")),
            Finalized::Missing => Ok(Reply::error(404, "no such invoice", false)),
            Finalized::Failed(e) if e.retryable() => {
                self.queue(scope, JobKind::Finalize, id, &e)?;
                let mut reply = Reply::plugin_error(&e);
                reply.body = serde_json::to_vec_pretty(&json!({
                    "error": {"message": e.message(), "retryable": true}, "queued": true,
                }))?;
                Ok(reply)
            }
            Finalized::Failed(e) => Ok(Reply::plugin_error(&e)),
        }
    }

    /// Runs `on-invoice-finalized` and stores what it decided.
    pub(crate) fn finalize_now(&self, scope: &Scope, id: &str) -> anyhow::Result<Finalized> {
        let Some((invoice, _)) = self.records(scope).parsed_invoice(id)? else {
            return Ok(Finalized::Missing);
        };
        let customer = self
            .records(scope)
            .parsed_customer(&invoice.customer_id)?
            .unwrap_or_default();
        let wit = invoice.to_wit(customer.to_wit(&invoice.customer_id));
        match self
            .runtime
            .on_invoice_finalized(&scope.id, &scope.merchant, &wit)?
        {
            Err(e) => Ok(Finalized::Failed(e)),
            Ok(transitions) => {
                self.records(scope).set_status_if(id, "DRAFT", "FINAL")?;
                if let Err(e) = self.apply(scope, "invoice finalized", &transitions) {
                    // Not stored: a retry (or the queue) recomputes the same transitions.
                    return Ok(Finalized::Failed(PluginError::HostUnavailable(format!(
                        "storing what the plugin decided: {e}"
                    ))));
                }
                Ok(Finalized::Done)
            }
        }
    }

    /// The platform changed a sent invoice: `{"change": "VOID" | "PAID_OUTSIDE_STRIPE"
    /// | "UNCOLLECTIBLE" | "OPEN", "amountDue": "200.00"}`. The plugin stops or
    /// re-prices collection; `amountDue` is kept on the invoice.
    fn update_invoice(&self, scope: &Scope, id: &str, body: &[u8]) -> anyhow::Result<Reply> {
        let Some((_, _)) = self.records(scope).parsed_invoice(id)? else {
            return Ok(Reply::error(404, "no such invoice", false));
        };
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let Some(change) = v["change"].as_str().and_then(InvoiceChange::from_name) else {
            return Ok(Reply::error(
                400,
                "change must be OPEN, VOID, PAID_OUTSIDE_STRIPE or UNCOLLECTIBLE",
                false,
            ));
        };
        let amount_due = v["amountDue"].as_str().unwrap_or("0").to_string();
        let update = InvoiceUpdate {
            invoice_id: id.into(),
            change,
            amount_due: amount_due.clone(),
        };
        match self
            .runtime
            .on_invoice_updated(&scope.id, &scope.merchant, &update)?
        {
            Err(e) => Ok(Reply::plugin_error(&e)),
            Ok(transitions) => {
                if v["amountDue"].is_string() {
                    self.records(scope).set_amount_due(id, &amount_due)?;
                }
                self.requeue_on_change(scope, id, change)?;
                if let Some(refused) = self.apply_or_503(scope, "invoice updated", &transitions)? {
                    return Ok(refused);
                }
                Ok(found(self.records(scope).invoice_view(id)?, "invoice"))
            }
        }
    }

    /// A finalize still queued must not send what the platform stopped; a
    /// reopened invoice whose send never completed (still a draft here) is
    /// queued to be sent, due now.
    fn requeue_on_change(
        &self,
        scope: &Scope,
        id: &str,
        change: InvoiceChange,
    ) -> anyhow::Result<()> {
        let db = &self.db;
        if !matches!(change, InvoiceChange::Open) {
            if db.cancel_job(&scope.id, JobKind::Finalize.name(), id)? {
                tracing::info!(
                    invoice = id,
                    "queued finalize cancelled: collection stopped"
                );
            }
            return Ok(());
        }
        let draft = self
            .records(scope)
            .parsed_invoice(id)?
            .is_some_and(|(_, st)| st.status == "DRAFT");
        if draft {
            let now = self.now_ms();
            db.enqueue_job(&crate::db::NewJob {
                merchant: &scope.id,
                kind: JobKind::Finalize.name(),
                subject: id,
                run_at_ms: now,
                created_ms: now,
                error: "reopened before its send completed",
                account: &scope.merchant.account_id,
            })?;
        }
        Ok(())
    }

    /// An operator queues a dead letter again, due now.
    fn retry_dead_letter(&self, scope: &Scope, id: &str) -> anyhow::Result<Reply> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(Reply::error(404, "no such dead letter", false));
        };
        let now = self.now_ms();
        if self
            .db
            .revive_dead_letter(&scope.id, id, now)?
        {
            Ok(Reply::json(200, &json!({"queued": true})))
        } else {
            Ok(Reply::error(404, "no such dead letter", false))
        }
    }

    /// The stable pay link: where the plugin says to go, or what to show.
    fn pay_link(&self, scope: &Scope, token: &str) -> anyhow::Result<Reply> {
        let brand = scope.settings.display_name.as_deref().unwrap_or_default();
        if let Some((invoice, st)) = self.records(scope).invoice_of_pay_link(token)?
            && !st.pay_link_open(self.now_ms() as u64, self.platform.pay_link_expiry_ms)
        {
            tracing::info!(invoice, "pay link revoked or expired; not opened");
            return Ok(page(PayView::NotFound.render(brand), None));
        }
        let outcome = match self
            .runtime
            .on_pay_link_opened(&scope.id, &scope.merchant, token)?
        {
            Err(e) => {
                tracing::warn!(error = %e.message(), "pay link unavailable");
                return Ok(page(PayView::Unavailable.render(brand), None));
            }
            Ok(o) => o,
        };
        if let Some(refused) = self.apply_or_503(scope, "pay link opened", &outcome.transitions)? {
            return Ok(refused);
        }
        let number = |id: &str| self.invoice_number(scope, id);
        let location = match &outcome.page {
            PayPage::Redirect(url) if !checkout_allowed(url, &self.platform.stripe_api_base) => {
                tracing::warn!(
                    "pay link: the plugin's redirect is not Stripe Checkout; not followed"
                );
                return Ok(page(PayView::Unavailable.render(brand), None));
            }
            PayPage::Redirect(url) => Some(url.clone()),
            _ => None,
        };
        let view_number;
        let view = match &outcome.page {
            PayPage::Redirect(url) => PayView::Redirecting { url },
            PayPage::Paid(p) => {
                view_number = number(&p.invoice_id)?;
                PayView::Paid {
                    invoice: &view_number,
                    paid: &p.total_paid,
                }
            }
            PayPage::Processing(n) => PayView::Processing { invoice: n },
            PayPage::NothingDue(c) => {
                view_number = number(&c.invoice_id)?;
                let why = match c.reason {
                    CollectionStop::PaidOutsideStripe => "it has been paid",
                    CollectionStop::Void => "it was cancelled",
                    CollectionStop::Uncollectible => "it is closed",
                    CollectionStop::NothingDue | CollectionStop::StripeRemoved => {
                        "nothing is due through this link"
                    }
                };
                PayView::NothingToPay {
                    invoice: &view_number,
                    why,
                }
            }
            PayPage::Refunded(s) => {
                view_number = number(&s.invoice_id)?;
                PayView::Refunded {
                    invoice: &view_number,
                    paid: &s.amount_paid,
                    refunded: &s.amount_refunded,
                }
            }
            PayPage::Disputed(s) => {
                view_number = number(&s.invoice_id)?;
                PayView::Disputed {
                    invoice: &view_number,
                }
            }
            PayPage::NotFound => PayView::NotFound,
        };
        Ok(page(view.render(brand), location))
    }

    /// Creates the merchant's connected account (once: a merchant that has
    /// one gets a fresh link for it), stores it on the merchant, and returns
    /// the Account Link. The reference Stripe keeps is the merchant's id.
    fn onboarding(&self, scope: &Scope, body: &[u8]) -> anyhow::Result<Reply> {
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        // The platform-wide idempotency key of the account's creation is
        // made from this reference: it is the merchant's id, never the
        // caller's choice (security review S17).
        if v.get("merchantRef").is_some_and(|r| r != scope.id.as_str()) {
            return Ok(Reply::error(
                400,
                "merchantRef is the merchant's id and cannot be chosen",
                false,
            ));
        }
        let base = &scope.merchant.pay_link_base;
        let req = OnboardingRequest {
            merchant_ref: scope.id.clone(),
            email: field("email"),
            country: field("country"),
            refresh_url: format!("{base}/onboarding/refresh"),
            return_url: format!("{base}/onboarding/done"),
        };
        let o = match self
            .runtime
            .start_onboarding(&scope.id, &scope.merchant, &req)?
        {
            Err(e) => return Ok(Reply::plugin_error(&e)),
            Ok(o) => o,
        };
        if scope.id != self.platform.default_merchant && scope.settings.account().is_none() {
            let settings = MerchantSettings {
                account_id: Some(o.account_id.clone()),
                ..scope.settings.clone()
            };
            match self.merchants().put(&scope.id, &settings) {
                Ok(()) => {}
                Err(PutError::Storage(e)) => return Err(e),
                Err(e) => return Ok(Reply::error(409, &e.to_string(), false)),
            }
        }
        Ok(Reply::json(
            200,
            &json!({"accountId": o.account_id, "url": o.url, "expiresAt": o.expires_at}),
        ))
    }

    /// The number the platform shows for an invoice (its id if unknown).
    fn invoice_number(&self, scope: &Scope, invoice_id: &str) -> anyhow::Result<String> {
        Ok(self
            .records(scope)
            .parsed_invoice(invoice_id)?
            .map_or_else(|| invoice_id.to_string(), |(i, _)| i.invoice_number))
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

/// A customer's page as an HTTP answer; a redirect carries its `Location`.
/// The pages are public and carry a bearer token in their URL: no script,
/// no framing, no form, no referrer, never cached, never sniffed.
const PAGE_HEADERS: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store, private"),
];

fn page(rendered: Rendered, location: Option<String>) -> Reply {
    let mut reply = Reply::html(rendered.status, rendered.html);
    reply.headers.extend(
        PAGE_HEADERS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    if let Some(url) = location {
        reply.headers.push(("Location".into(), url));
    }
    reply
}

/// Where a pay link may send the customer: Stripe Checkout
/// (`https://checkout.stripe.com`), or, when the host is pointed at another
/// Stripe than Stripe's own (the emulator), that Stripe's origin, which
/// serves its Checkout page.
fn checkout_allowed(url: &str, stripe_api_base: &str) -> bool {
    let Ok(to) = url::Url::parse(url) else {
        return false;
    };
    let checkout = url::Url::parse("https://checkout.stripe.com").map(|u| u.origin());
    if checkout.is_ok_and(|c| c == to.origin()) {
        return true;
    }
    url::Url::parse(stripe_api_base)
        .is_ok_and(|base| base.host_str() != Some("api.stripe.com") && base.origin() == to.origin())
}

/// What the metrics and the log line say of one webhook delivery.
#[derive(Default)]
struct SeenEvent {
    event_id: Option<String>,
    event_type: Option<String>,
    transitions: usize,
    unrouted: bool,
}

/// The route for the log: a pay-link token is a bearer credential of the
/// customer's, so it is never written down.
fn loggable_route(segments: &[&str]) -> String {
    let mut out = String::new();
    let mut after_pay = false;
    for s in segments {
        out.push('/');
        out.push_str(if after_pay { "{token}" } else { s });
        after_pay = *s == "pay";
    }
    out
}

/// The headers of a delivery the plugin sees: Stripe's signature and the
/// body's type, nothing else (a proxy's cookies or credentials never enter
/// the sandbox; security review S20).
fn webhook_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| {
            k.eq_ignore_ascii_case("stripe-signature") || k.eq_ignore_ascii_case("content-type")
        })
        .cloned()
        .collect()
}

/// A target's path, in segments (the query dropped).
fn segments_of(target: &str) -> Vec<&str> {
    let path = target.split('?').next().unwrap_or(target);
    path.trim_matches('/').split('/').collect()
}

/// The connected account an event names (`account`), read without trusting
/// it: the plugin verifies the signature under the merchant it is routed to.
fn event_account(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Routing<'a> {
        #[serde(borrow)]
        account: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Routing>(body)
        .ok()
        .and_then(|r| r.account)
        .map(|a| a.into_owned())
}

fn found(v: Option<Value>, what: &str) -> Reply {
    match v {
        Some(v) => Reply::json(200, &v),
        None => Reply::error(404, &format!("no such {what}"), false),
    }
}


#[cfg(test)]
mod tests {
    use super::Journal;

    #[test]
    fn a_delivery_carries_only_its_signature_and_type_into_the_sandbox() {
        let given = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let kept = super::webhook_headers(&given(&[
            ("Stripe-Signature", "t=1,v1=ab"),
            ("content-type", "application/json"),
            ("Authorization", "Bearer spt_secret"),
            ("Cookie", "session=1"),
            ("X-Forwarded-For", "10.0.0.1"),
        ]));
        assert_eq!(
            kept,
            given(&[
                ("Stripe-Signature", "t=1,v1=ab"),
                ("content-type", "application/json")
            ])
        );
    }

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
