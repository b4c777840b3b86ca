//! `serve`: the billing host in a box. Routes the platform's API and Stripe's
//! webhooks to the plugin, and applies what it returns durably before answering.

use crate::bindings::{
    CollectionStop, InvoiceChange, InvoiceUpdate, Merchant, OnboardingRequest, PayPage,
    PluginError, Transition, WebhookRequest,
};
use crate::config::Settings;
use crate::db::Db;
use crate::imports::{Clock, HostEnv, KeyRing, StripeGate, UreqBackend};
use crate::platform::{PlatformCustomer, PlatformInvoice};
use crate::record::Recorder;
use crate::runtime::{PLUGIN_WASM, Runtime};
use crate::state::{ApplyError, Records};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

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

/// The host: a runtime, a merchant, the records, and a journal of what changed.
pub struct App {
    pub runtime: Runtime,
    pub merchant: Merchant,
    journal: Mutex<Vec<String>>,
}

impl App {
    pub fn new(runtime: Runtime, merchant: Merchant) -> Self {
        Self {
            runtime,
            merchant,
            journal: Mutex::default(),
        }
    }

    /// Builds the whole host from settings: database, Stripe gate (real HTTP
    /// with the configured timeout), system clock, runtime.
    pub fn from_settings(s: &Settings, recorder: Recorder) -> anyhow::Result<Self> {
        let db = Arc::new(if s.db.as_os_str() == ":memory:" {
            Db::in_memory()?
        } else {
            Db::open(&s.db)?
        });
        let api_key = std::env::var(&s.api_key_env).ok().filter(|k| !k.is_empty());
        let base = url::Url::parse(&s.stripe_api_base)?;
        let backend = Arc::new(UreqBackend::new(std::time::Duration::from_secs(
            s.stripe_timeout_secs,
        )));
        let stripe = StripeGate {
            base,
            api_key,
            backend,
        };
        let mut keys = s.keys.clone();
        if keys.pay_link.is_empty() {
            keys.pay_link.push(db.pay_link_key()?);
        }
        let env = Arc::new(HostEnv {
            db,
            stripe,
            clock: Clock::System,
            recorder,
            keys: KeyRing::default(),
        });
        env.keys.set(&s.merchant.account_id, keys);
        let runtime = Runtime::new(PLUGIN_WASM, env, s.limits, Some(&s.cache_dir))?;
        Ok(Self::new(runtime, s.merchant.clone()))
    }

    /// The merchant's webhook signing secrets (host side: tests and the demo
    /// sign with them; the plugin never sees them).
    pub fn webhook_secrets(&self) -> Vec<String> {
        self.runtime
            .env()
            .keys
            .get(&self.merchant.account_id)
            .webhook_signing
    }

    /// Catches up on missed webhooks: calls `on-sync` from the stored cursor
    /// until Stripe has nothing more, storing each call's transitions with
    /// its cursor. Returns the events read and applied.
    pub fn sync(&self) -> anyhow::Result<(u32, u32)> {
        let key = self.merchant.account_id.clone();
        let (mut read, mut applied) = (0, 0);
        for _ in 0..100 {
            let cursor = self.records().sync_cursor(&key)?;
            let out = match self.runtime.on_sync(&self.merchant, cursor.as_deref())? {
                Ok(out) => out,
                Err(e) => anyhow::bail!("sync: {}", e.message()),
            };
            (read, applied) = (read + out.read, applied + out.applied);
            self.records()
                .apply_synced(&key, &out.next_cursor, &out.transitions)
                .map_err(|e| anyhow::anyhow!("storing a sync: {e}"))?;
            self.journal_lines("sync", &out.transitions);
            if !out.more {
                break;
            }
        }
        Ok((read, applied))
    }

    /// Runs `sync` now and then every `every`, for as long as the process.
    pub fn sync_periodically(self: &Arc<Self>, every: std::time::Duration) {
        let app = self.clone();
        std::thread::spawn(move || {
            loop {
                match app.sync() {
                    Ok((read, applied)) => {
                        eprintln!(
                            "[sync] {read} events read, {applied} applied that no webhook had brought"
                        )
                    }
                    Err(e) => eprintln!("[sync] failed, will try again: {e:#}"),
                }
                std::thread::sleep(every);
            }
        });
    }

    /// Takes the journal lines written so far (one per applied transition).
    pub fn drain_journal(&self) -> Vec<String> {
        std::mem::take(&mut *self.journal.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Applies transitions durably; `source` says which call produced them.
    fn apply(&self, source: &str, transitions: &[Transition]) -> Result<(), ApplyError> {
        self.records().apply(transitions)?;
        self.journal_lines(source, transitions);
        Ok(())
    }

    fn journal_lines(&self, source: &str, transitions: &[Transition]) {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        j.extend(
            transitions
                .iter()
                .map(|t| format!("{:<34} {}", format!("({source})"), t)),
        );
    }
    fn records(&self) -> Records<'_> {
        Records::new(&self.runtime.env().db)
    }

    pub fn handle(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        let path = target.split('?').next().unwrap_or(target);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let result = match (method, segments.as_slice()) {
            ("POST", ["webhooks", "stripe"]) => Ok(self.webhook(headers, body)),
            ("PUT", ["customers", id]) => self.put_customer(id, body),
            ("GET", ["customers", id]) => self
                .records()
                .customer_view(id)
                .map(|c| found(c, "customer")),
            ("POST", ["invoices"]) => self.create_invoice(body),
            ("POST", ["invoices", id, "finalize"]) => self.finalize(id),
            ("PATCH", ["invoices", id]) => self.update_invoice(id, body),
            ("GET", ["invoices", id]) => {
                self.records().invoice_view(id).map(|i| found(i, "invoice"))
            }
            ("GET", ["pay", token]) => self.pay_link(token),
            ("POST", ["onboarding"]) => self.onboarding(body),
            ("GET", ["accounts", id]) => {
                self.records().account_view(id).map(|a| found(a, "account"))
            }
            ("GET", ["outbox"]) => self
                .records()
                .outbox()
                .map(|o| Reply::json(200, &json!({"data": o}))),
            ("GET", ["healthz"]) => Ok(Reply::json(200, &json!({"ok": true}))),
            _ => Ok(Reply::error(404, "no such route", false)),
        };
        result.unwrap_or_else(|e| {
            eprintln!("[host] {method} {path}: {e:#}");
            Reply::error(500, "host error", true)
        })
    }

    /// 2xx only once the transitions are stored; an invoice the host does not
    /// know yet is a 503, so that Stripe delivers the event again later.
    fn webhook(&self, headers: &[(String, String)], body: &[u8]) -> Reply {
        let req = WebhookRequest {
            headers: headers.to_vec(),
            body: body.to_vec(),
        };
        let outcome = match self.runtime.on_webhook(&self.merchant, &req) {
            Err(trap) => {
                eprintln!("[host] on-webhook failed: {trap:#}");
                return Reply::error(500, "plugin failed", true);
            }
            Ok(Err(e)) => return Reply::plugin_error(&e),
            Ok(Ok(outcome)) => outcome,
        };
        eprintln!(
            "[webhook] {} {} -> {} {}",
            outcome.event_id.as_deref().unwrap_or("-"),
            outcome.event_type.as_deref().unwrap_or("-"),
            outcome.status,
            outcome.reason
        );
        if (200..300).contains(&outcome.status) {
            let source = format!("webhook {}", outcome.event_type.as_deref().unwrap_or("?"));
            match self.apply(&source, &outcome.transitions) {
                Ok(()) => {}
                Err(ApplyError::UnknownInvoice(id)) => {
                    return Reply::error(
                        503,
                        &format!("invoice {id} is not known here yet; retry later"),
                        true,
                    );
                }
                Err(ApplyError::Storage(e)) => {
                    eprintln!("[host] storing webhook transitions: {e:#}");
                    return Reply::error(503, "storage unavailable", true);
                }
            }
        }
        Reply::json(
            outcome.status,
            &json!({"reason": outcome.reason, "event": outcome.event_id, "type": outcome.event_type,
                    "transitions": outcome.transitions.len()}),
        )
    }

    fn put_customer(&self, id: &str, body: &[u8]) -> anyhow::Result<Reply> {
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
        let previous = self.records().parsed_customer(id)?.map(|p| p.to_wit(id));
        match self.runtime.on_customer_updated(
            &self.merchant,
            &parsed.to_wit(id),
            previous.as_ref(),
        )? {
            Err(e) => Ok(Reply::plugin_error(&e)),
            Ok(transitions) => {
                self.records().put_customer(id, &doc)?;
                self.apply_or_503("customer updated", &transitions)?;
                Ok(found(self.records().customer_view(id)?, "customer"))
            }
        }
    }

    fn create_invoice(&self, body: &[u8]) -> anyhow::Result<Reply> {
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
        if !self.records().insert_draft(&doc, &parsed.id)? {
            return Ok(Reply::error(
                409,
                &format!("invoice {} exists", parsed.id),
                false,
            ));
        }
        Ok(Reply {
            status: 201,
            ..found(self.records().invoice_view(&parsed.id)?, "invoice")
        })
    }

    fn finalize(&self, id: &str) -> anyhow::Result<Reply> {
        let Some((invoice, _)) = self.records().parsed_invoice(id)? else {
            return Ok(Reply::error(404, "no such invoice", false));
        };
        let customer = self
            .records()
            .parsed_customer(&invoice.customer_id)?
            .unwrap_or_default();
        let wit = invoice.to_wit(customer.to_wit(&invoice.customer_id));
        match self.runtime.on_invoice_finalized(&self.merchant, &wit)? {
            Err(e) => Ok(Reply::plugin_error(&e)),
            Ok(transitions) => {
                self.records().set_status_if(id, "DRAFT", "FINAL")?;
                self.apply_or_503("invoice finalized", &transitions)?;
                Ok(found(self.records().invoice_view(id)?, "invoice"))
            }
        }
    }

    /// The platform changed a sent invoice: `{"change": "VOID" | "PAID_OUTSIDE_STRIPE"
    /// | "UNCOLLECTIBLE" | "OPEN", "amountDue": "200.00"}`. The plugin stops or
    /// re-prices collection; `amountDue` is kept on the invoice.
    fn update_invoice(&self, id: &str, body: &[u8]) -> anyhow::Result<Reply> {
        let Some((_, _)) = self.records().parsed_invoice(id)? else {
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
        match self.runtime.on_invoice_updated(&self.merchant, &update)? {
            Err(e) => Ok(Reply::plugin_error(&e)),
            Ok(transitions) => {
                if v["amountDue"].is_string() {
                    self.records().set_amount_due(id, &amount_due)?;
                }
                self.apply_or_503("invoice updated", &transitions)?;
                Ok(found(self.records().invoice_view(id)?, "invoice"))
            }
        }
    }

    /// The stable pay link: where the plugin says to go, or what to show.
    fn pay_link(&self, token: &str) -> anyhow::Result<Reply> {
        let outcome = match self.runtime.on_pay_link_opened(&self.merchant, token)? {
            Err(e) => {
                return Ok(page(
                    503,
                    "Payment unavailable",
                    &format!("Please try again in a moment. ({})", e.message()),
                ));
            }
            Ok(o) => o,
        };
        self.apply_or_503("pay link opened", &outcome.transitions)?;
        Ok(match outcome.page {
            PayPage::Redirect(url) => Reply {
                status: 303,
                headers: vec![("Location".into(), url)],
                body: Vec::new(),
            },
            PayPage::Paid(p) => {
                let number = self.invoice_number(&p.invoice_id)?;
                let text = format!(
                    "Invoice {number} is paid: {} {}. Thank you.",
                    p.total_paid.decimal, p.total_paid.currency
                );
                page(200, "Payment successful", &text)
            }
            PayPage::Processing(number) => page(
                200,
                "Payment processing",
                &format!("The payment for invoice {number} is on its way. Nothing more to do."),
            ),
            PayPage::NothingDue(c) => {
                let number = self.invoice_number(&c.invoice_id)?;
                let why = match c.reason {
                    CollectionStop::PaidOutsideStripe => "it has been paid",
                    CollectionStop::Void => "it was cancelled",
                    CollectionStop::Uncollectible => "it is closed",
                    CollectionStop::NothingDue | CollectionStop::StripeRemoved => {
                        "nothing is due through this link"
                    }
                };
                page(
                    200,
                    "Nothing to pay",
                    &format!("There is nothing to pay for invoice {number}: {why}."),
                )
            }
            PayPage::Refunded(s) => {
                let number = self.invoice_number(&s.invoice_id)?;
                page(
                    200,
                    "Payment refunded",
                    &format!(
                        "Invoice {number} was paid ({} {}); {} {} of it has been refunded.",
                        s.amount_paid.decimal,
                        s.amount_paid.currency,
                        s.amount_refunded.decimal,
                        s.amount_refunded.currency
                    ),
                )
            }
            PayPage::Disputed(s) => {
                let number = self.invoice_number(&s.invoice_id)?;
                page(
                    200,
                    "Payment disputed",
                    &format!(
                        "The payment for invoice {number} is disputed with your bank. Please contact the merchant."
                    ),
                )
            }
            PayPage::NotFound => page(404, "Link not found", "This payment link does not exist."),
        })
    }

    fn onboarding(&self, body: &[u8]) -> anyhow::Result<Reply> {
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let req = OnboardingRequest {
            merchant_ref: field("merchantRef"),
            email: field("email"),
            country: field("country"),
            refresh_url: format!("{}/onboarding/refresh", self.merchant.pay_link_base),
            return_url: format!("{}/onboarding/done", self.merchant.pay_link_base),
        };
        Ok(match self.runtime.start_onboarding(&self.merchant, &req)? {
            Err(e) => Reply::plugin_error(&e),
            Ok(o) => Reply::json(
                200,
                &json!({"accountId": o.account_id, "url": o.url, "expiresAt": o.expires_at}),
            ),
        })
    }

    /// The number the platform shows for an invoice (its id if unknown).
    fn invoice_number(&self, invoice_id: &str) -> anyhow::Result<String> {
        Ok(self
            .records()
            .parsed_invoice(invoice_id)?
            .map_or_else(|| invoice_id.to_string(), |(i, _)| i.invoice_number))
    }

    fn apply_or_503(&self, source: &str, transitions: &[Transition]) -> anyhow::Result<()> {
        self.apply(source, transitions)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// A small HTML page for the customer; `title` is also the page's heading.
fn page(status: u16, title: &str, text: &str) -> Reply {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    Reply::html(
        status,
        format!(
            "<!doctype html><html><head><meta charset=utf-8><title>{t}</title></head>\
             <body style=\"font-family:sans-serif;max-width:32em;margin:4em auto\"><h1>{t}</h1><p>{x}</p></body></html>",
            t = esc(title),
            x = esc(text)
        ),
    )
}

fn found(v: Option<Value>, what: &str) -> Reply {
    match v {
        Some(v) => Reply::json(200, &v),
        None => Reply::error(404, &format!("no such {what}"), false),
    }
}

pub use crate::http_server::{RunningServer, Shutdown};
