//! Taking the money: the off-session charge of a card on file, and the
//! Checkout Session behind the stable pay link. One payment in flight per
//! invoice: before charging, the open session is expired, and the invoice's
//! paid state is checked again.

use super::settle::{self, Settled};
use crate::contract::{Merchant, PluginError, Transition};
use crate::dunning::{self, Channel, Failed};
use crate::imports::{self, CallError};
use crate::notify::{Reason, Tell};
use crate::record::{self, InvoiceRecord, KeyAge};
use crate::stripe::objects::Obj;
use crate::stripe::request::{self, OffSessionCharge, SessionSpec};

/// What an auto-charge attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Charge {
    /// No card on file: collect by link.
    NoCard,
    /// Paid, or money on its way: nothing more to collect now.
    Done,
    /// Declined or needs the customer: collect by link.
    NeedsLink,
}

/// Payment methods that can be charged off-session with no customer present:
/// cards and bank debits with a mandate (SEPA, Bacs, ACH).
const CHARGEABLE: [&str; 4] = ["card", "sepa_debit", "bacs_debit", "us_bank_account"];

/// A payment method on file and its type.
struct OnFile {
    id: String,
    kind: String,
}

/// kv key of the last time the card network reissued a card (the card
/// updater, `payment_method.automatically_updated`): its event id.
pub fn renewal_key(payment_method: &str) -> String {
    format!("card-renewed:{payment_method}")
}

/// What a decline of `payment_method` bars: the method as it is now, so
/// that the same PaymentMethod reissued since is a card not yet declined.
fn bar_of(payment_method: &str) -> Result<String, PluginError> {
    Ok(
        match imports::kv_get_string(&renewal_key(payment_method))? {
            Some(event) => format!("{payment_method}@{event}"),
            None => payment_method.to_string(),
        },
    )
}

/// The customer's default payment method; else their only card; else, with
/// no card, their only payment method of any chargeable type (a debit).
fn method_on_file(m: &Merchant, stripe_customer: &str) -> Result<Option<OnFile>, PluginError> {
    let customer = imports::stripe(m, &request::retrieve_customer(stripe_customer))?;
    if let Some(pm) = customer.default_payment_method() {
        let method = imports::stripe(m, &request::retrieve_payment_method(pm))?;
        return Ok(chargeable(&method));
    }
    let cards = imports::stripe(
        m,
        &request::list_payment_methods(stripe_customer, Some("card")),
    )?;
    match cards.list() {
        [only] => return Ok(chargeable(only)),
        [] => {}
        _ => return Ok(None),
    }
    // A server that lists only cards (localstripe) refuses this: no debit then.
    match imports::call(m, &request::list_payment_methods(stripe_customer, None)) {
        Ok(all) => Ok(match all.list() {
            [only] => chargeable(only),
            _ => None,
        }),
        Err(CallError::Stripe(f)) if !f.error.retryable => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn chargeable(method: &Obj) -> Option<OnFile> {
    let kind = method.kind.as_deref().unwrap_or("card");
    CHARGEABLE.contains(&kind).then(|| OnFile {
        id: method.id().to_string(),
        kind: kind.to_string(),
    })
}

/// Where Stripe sends the receipt, when the merchant asked for Stripe's receipts.
fn receipt_email<'a>(m: &Merchant, rec: &'a InvoiceRecord) -> Option<&'a str> {
    m.stripe_receipts
        .then(|| rec.emails.first().map(String::as_str))
        .flatten()
}

fn push(out: &mut Vec<Transition>, s: Settled) {
    out.extend(s.transitions);
}

/// Closes the invoice's open session so that it cannot also take money.
/// Returns true when the session had already been paid.
pub fn close_session(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    out: &mut Vec<Transition>,
) -> Result<bool, PluginError> {
    let Some(session) = rec.session.clone() else {
        return Ok(false);
    };
    match imports::call(m, &request::expire_checkout_session(&session)) {
        Ok(_) => {}
        // Only open sessions can be expired: find out what became of it.
        Err(CallError::Stripe(f)) if f.error.status == 400 || f.error.status == 404 => {
            let s = imports::stripe(m, &request::retrieve_checkout_session(&session))?;
            return settle_closed_session(m, invoice_id, &s, out);
        }
        Err(e) => return Err(e.into()),
    }
    record::drop_session(invoice_id, &session)?;
    Ok(false)
}

/// Money arrived (or is on its way) by another route than the invoice's open
/// session: that session is expired, so it cannot take the money a second
/// time. `paid_session` is the session the money came through, if known: it
/// is complete, and is only forgotten.
pub fn close_leftover_session(
    m: &Merchant,
    invoice_id: &str,
    paid_session: Option<&str>,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(());
    };
    let waiting = rec.takes_payment();
    match rec.session.as_deref() {
        None => {}
        Some(_) if waiting => {}
        Some(s) if Some(s) == paid_session => record::drop_session(invoice_id, s)?,
        Some(_) => {
            close_session(m, invoice_id, &rec, out)?;
        }
    }
    Ok(())
}

/// Before a failure is believed: the invoice's current session may have been
/// paid since the failing attempt (events arrive late and in any order), so
/// Stripe is asked what became of it, and a payment found there is counted.
pub fn settle_current_session(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(());
    };
    let Some(id) = rec.session.as_deref().filter(|_| rec.state.collecting()) else {
        return Ok(());
    };
    let s = imports::stripe(m, &request::retrieve_checkout_session(id))?;
    if s.status() == Some("complete") {
        settle_closed_session(m, invoice_id, &s, out)?;
    }
    Ok(())
}

/// What became of a session that can no longer be expired. Returns true when
/// its money is taken or on its way; otherwise it is dropped, and the next
/// payment gets a new attempt.
fn settle_closed_session(
    m: &Merchant,
    invoice_id: &str,
    s: &Obj,
    out: &mut Vec<Transition>,
) -> Result<bool, PluginError> {
    let counted = record::load(invoice_id)?.is_some_and(|r| r.counted(&s.payment_ref()));
    if counted {
        record::drop_session(invoice_id, s.id())?;
        return Ok(true);
    }
    if s.status() == Some("complete") {
        // "unpaid": a bank debit that is processing, or that has since failed.
        let pi = match (s.payment_status(), s.payment_intent()) {
            (Some("unpaid"), Some(pi)) => {
                Some(imports::stripe(m, &request::retrieve_payment_intent(pi))?)
            }
            _ => None,
        };
        match pi.as_ref().and_then(|p| p.status()) {
            None => {
                push(
                    out,
                    settle::session_completed(m, invoice_id, s, Tell::Both)?,
                );
                record::drop_session(invoice_id, s.id())?;
                return Ok(true);
            }
            Some("succeeded") => {
                let p = pi.as_ref().unwrap_or(s);
                push(
                    out,
                    settle::paid(
                        m,
                        invoice_id,
                        p.id(),
                        p.amount_taken().unwrap_or(0),
                        p.currency(),
                        Tell::Both,
                    )?,
                );
                record::drop_session(invoice_id, s.id())?;
                return Ok(true);
            }
            Some("processing") => {
                push(
                    out,
                    settle::processing(invoice_id, &s.payment_ref(), s.amount_total())?,
                );
                return Ok(true);
            }
            Some(_) => {}
        }
    }
    record::drop_session(invoice_id, s.id())?;
    Ok(false)
}

/// The Stripe customer the invoice's customer is linked to now. Relinking
/// moves open invoices to the new Stripe customer; after an unlink there is
/// none, and no card is charged.
fn current_customer(invoice_id: &str, rec: &InvoiceRecord) -> Result<Option<String>, PluginError> {
    let linked = imports::kv_get_string(&super::link_key(&rec.customer_id))?;
    if let Some(id) = linked.as_deref().filter(|id| *id != rec.stripe_customer) {
        record::update(invoice_id, &mut |r| {
            r.stripe_customer = id.to_string();
            true
        })?;
    }
    Ok(linked)
}

/// A Checkout payment saved its method for later (`setup_future_usage`):
/// it becomes the default of the invoice's Stripe customer, so that the next
/// invoice is charged with it even when an older card is also on file.
pub fn keep_saved_method(m: &Merchant, invoice_id: &str, pi: &Obj) -> Result<Kept, PluginError> {
    let (Some(customer), Some(method)) = (pi.customer(), pi.payment_method()) else {
        return Ok(Kept::NotAsked);
    };
    let ours = record::load(invoice_id)?.is_some_and(|r| r.stripe_customer == customer);
    if pi.setup_future_usage.as_deref() != Some("off_session") || !ours {
        return Ok(Kept::NotAsked);
    }
    // The payment is what matters: a card that cannot become the default
    // (removed meanwhile, or Stripe unreachable) costs only the convenience.
    match imports::stripe(m, &request::set_default_payment_method(customer, method)) {
        Ok(_) => Ok(Kept::AsDefault),
        Err(_) => Ok(Kept::Refused),
    }
}

/// What became of the payment method a Checkout payment saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    AsDefault,
    /// Stripe refused or could not be reached; the customer keeps their
    /// previous default.
    Refused,
    NotAsked,
}

/// Charges the card on file off-session, at most once per attempt number,
/// and never a payment method already declined or refused for this invoice.
pub fn auto_charge(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<Charge, PluginError> {
    record::with_lease(invoice_id, &mut || charge_card_on_file(m, invoice_id, out))
}

fn charge_card_on_file(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<Charge, PluginError> {
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(Charge::NoCard);
    };
    if !rec.takes_payment() {
        return Ok(Charge::Done);
    }
    let Some(stripe_customer) = current_customer(invoice_id, &rec)? else {
        return Ok(Charge::NoCard);
    };
    let Some(OnFile { id: card, kind }) = method_on_file(m, &stripe_customer)? else {
        return Ok(Charge::NoCard);
    };
    let bar = bar_of(&card)?;
    // A method declined for this invoice is charged again only by its
    // dunning retry, on its day (`due`). Another card, or this one reissued,
    // is charged now, even while a retry of the old one waits.
    let barred = rec.declined_methods.contains(&bar);
    if barred && !rec.retry_running {
        return Ok(Charge::NeedsLink);
    }
    if close_session(m, invoice_id, &rec, out)? {
        return Ok(Charge::Done);
    }
    // Re-check just before charging: a webhook may have settled it meanwhile.
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(Charge::NoCard);
    };
    if !rec.takes_payment() {
        return Ok(Charge::Done);
    }
    let rec = match rec.charge_key_age(imports::now_ms()) {
        KeyAge::Kept => rec,
        KeyAge::Unused => note_charge_sent(invoice_id, rec.attempt)?,
        KeyAge::Forgotten => match attempt_intent(m, invoice_id, &rec, &stripe_customer)? {
            Some(pi) if took_money(&pi) => {
                return charged(m, invoice_id, &rec, rec.outstanding(), &pi, out);
            }
            _ => {
                bump_attempt(invoice_id, rec.attempt, None)?;
                let attempt = record::load(invoice_id)?.map_or(rec.attempt + 1, |r| r.attempt);
                note_charge_sent(invoice_id, attempt)?
            }
        },
    };
    let receipt = receipt_email(m, &rec);
    let charge = off_session_charge(invoice_id, &rec, &stripe_customer, &card, &kind, receipt);
    match imports::call(m, &request::create_off_session_payment(&charge)) {
        Ok(pi) => charged(m, invoice_id, &rec, charge.amount_minor, &pi, out),
        Err(CallError::Stripe(f)) if f.is_card_error() => {
            declined(m, invoice_id, &rec, &bar, &f, out)?;
            Ok(Charge::NeedsLink)
        }
        // This key was sent before with other parameters (another card, or
        // amount): what that first request did decides. It took money, or it
        // was declined (both told, as any decline): only then a link. (A 409
        // is the same key still running: a plain retry, below.)
        Err(CallError::Stripe(f))
            if f.error.error_type == "idempotency_error" && f.error.status == 400 =>
        {
            Ok(
                match resolve_sent_charge(m, invoice_id, NotListed::KeyUsed, out)? {
                    Resolved::Took => Charge::Done,
                    Resolved::Clear => Charge::NeedsLink,
                },
            )
        }
        Err(CallError::Stripe(f)) if !f.error.retryable => {
            refused(m, invoice_id, &rec, &bar, &f, out)?;
            Ok(Charge::NeedsLink)
        }
        // Stripe's rate limiter refuses before any work and saves nothing
        // under the key: no charge was made.
        Err(CallError::Stripe(f)) if f.error.status == 429 => {
            forget_charge_sent(invoice_id, rec.attempt)?;
            Err(CallError::Stripe(f).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// This attempt's charge was refused before Stripe did any work: it is not
/// of unknown outcome, and its key is still unused.
fn forget_charge_sent(invoice_id: &str, attempt: u32) -> Result<(), PluginError> {
    record::update(invoice_id, &mut |r| {
        let ours = r.attempt == attempt && r.charge_sent_ms.is_some();
        if ours {
            r.charge_sent_ms = None;
        }
        ours
    })?;
    Ok(())
}

fn off_session_charge<'a>(
    invoice_id: &'a str,
    rec: &'a InvoiceRecord,
    stripe_customer: &'a str,
    payment_method: &'a str,
    method_type: &'a str,
    receipt_email: Option<&'a str>,
) -> OffSessionCharge<'a> {
    OffSessionCharge {
        invoice_id,
        invoice_number: &rec.number,
        currency: &rec.currency,
        amount_minor: rec.outstanding(),
        stripe_customer,
        payment_method,
        method_type,
        receipt_email,
        attempt: rec.attempt,
        retry: rec.retry_running.then_some(rec.retries_done),
    }
}

/// Records that this attempt's charge is about to be sent (the first time),
/// and returns the record as it now is.
fn note_charge_sent(invoice_id: &str, attempt: u32) -> Result<InvoiceRecord, PluginError> {
    let now = imports::now_ms();
    let rec = record::update(invoice_id, &mut |r| {
        let first = r.attempt == attempt && r.charge_sent_ms.is_none();
        if first {
            r.charge_sent_ms = Some(now);
        }
        first
    })?;
    rec.ok_or_else(|| PluginError::NotReady(format!("no record of {invoice_id}")))
}

/// Whether a PaymentIntent took money, or may yet take it.
fn took_money(pi: &Obj) -> bool {
    matches!(
        pi.status(),
        Some("succeeded" | "processing" | "requires_action")
    )
}

/// How long a charge that Stripe does not list may still be in flight: one
/// request's tries (3 × 30 s) are well inside it.
const IN_FLIGHT_MS: u64 = 120_000;

/// What it means that Stripe lists no charge of this attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotListed {
    /// Nothing was taken once this long (ms) has passed since it was sent;
    /// before that it may still be running.
    AfterMs(u64),
    /// Stripe said the key was used: the charge exists, not listed yet.
    KeyUsed,
}

/// What became of a charge of unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// It took money (or it is on its way): counted now.
    Took,
    /// Nothing was taken: the invoice may be charged or linked again.
    Clear,
}

/// Before anything else may charge the invoice or open a link for it, a
/// charge of unknown outcome (sent, never answered) is resolved: Stripe is
/// asked what became of it, and its outcome counted as if it had been heard
/// (money taken, or a decline told to both parties); one it never made is
/// forgotten. While it cannot be known yet, `not-ready`. Called holding the
/// invoice's lease.
pub fn resolve_unknown_charge(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<Resolved, PluginError> {
    let unknown = record::load(invoice_id)?.is_some_and(|r| r.charge_unknown());
    if !unknown {
        return Ok(Resolved::Clear);
    }
    resolve_sent_charge(m, invoice_id, NotListed::AfterMs(IN_FLIGHT_MS), out)
}

/// Asks Stripe what this attempt's charge did, and counts it; `not_listed`
/// says what it means when Stripe lists none.
fn resolve_sent_charge(
    m: &Merchant,
    invoice_id: &str,
    not_listed: NotListed,
    out: &mut Vec<Transition>,
) -> Result<Resolved, PluginError> {
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(Resolved::Clear);
    };
    match attempt_intent(m, invoice_id, &rec, &rec.stripe_customer)? {
        Some(pi) if took_money(&pi) => {
            charged(m, invoice_id, &rec, rec.outstanding(), &pi, out)?;
            Ok(Resolved::Took)
        }
        Some(pi) => {
            push(out, settle::intent_failed(m, invoice_id, &pi, Tell::Both)?);
            bump_attempt(invoice_id, rec.attempt, pi.payment_method())?;
            Ok(Resolved::Clear)
        }
        None => {
            let sent = rec.charge_sent_ms.unwrap_or(0);
            let age = imports::now_ms().saturating_sub(sent);
            let may_run = match not_listed {
                NotListed::KeyUsed => true,
                NotListed::AfterMs(ms) => age < ms,
            };
            if may_run {
                return Err(PluginError::NotReady(format!(
                    "invoice {invoice_id} has a charge of unknown outcome (sent {} s ago); retry shortly",
                    age / 1000
                )));
            }
            bump_attempt(invoice_id, rec.attempt, None)?;
            Ok(Resolved::Clear)
        }
    }
}

/// The PaymentIntent an earlier try of this attempt made, if any: looked up
/// in Stripe, by the attempt named in its metadata, among the customer's
/// PaymentIntents since the key was first sent.
fn attempt_intent(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    stripe_customer: &str,
) -> Result<Option<Obj>, PluginError> {
    let since = rec.charge_sent_ms.unwrap_or(0) / 1000;
    let since = i64::try_from(since).unwrap_or(i64::MAX).saturating_sub(300);
    let attempt = rec.attempt.to_string();
    let mut after: Option<String> = None;
    for _page in 0..10 {
        let list = imports::stripe(
            m,
            &request::list_payment_intents(stripe_customer, since, after.as_deref()),
        )?;
        let more = list.has_more == Some(true);
        let data = list.data.unwrap_or_default();
        let last = data.last().map(|pi| pi.id().to_string());
        let ours = data.into_iter().find(|pi| {
            pi.invoice_id() == Some(invoice_id)
                && pi.metadata.as_ref().and_then(|md| md.attempt.as_deref())
                    == Some(attempt.as_str())
        });
        if let Some(pi) = ours {
            return Ok(Some(pi));
        }
        match (more, last) {
            (true, Some(last)) => after = Some(last),
            _ => return Ok(None),
        }
    }
    Err(PluginError::HostUnavailable(format!(
        "too many PaymentIntents to search for {invoice_id}'s earlier charge; retry"
    )))
}

/// Stripe took the charge: paid, processing, or waiting on the customer.
fn charged(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    asked: u64,
    pi: &Obj,
    out: &mut Vec<Transition>,
) -> Result<Charge, PluginError> {
    let amount = pi.amount_taken().unwrap_or(asked);
    let currency = if pi.currency().is_empty() {
        rec.currency.as_str()
    } else {
        pi.currency()
    };
    match pi.status() {
        Some("succeeded") => {
            push(
                out,
                settle::paid(m, invoice_id, pi.id(), amount, currency, Tell::Both)?,
            );
            close_leftover_session(m, invoice_id, None, out)?;
        }
        Some("processing") => {
            push(out, settle::processing(invoice_id, pi.id(), amount)?);
            close_leftover_session(m, invoice_id, None, out)?;
        }
        _ => {
            let why = "the bank asks the customer to confirm";
            push(
                out,
                settle::action_required(m, invoice_id, pi.id(), why, Tell::Both)?,
            );
            bump_attempt(invoice_id, rec.attempt, None)?;
            return Ok(Charge::NeedsLink);
        }
    }
    Ok(Charge::Done)
}

/// The card was declined: both parties are told, and the next try is a new
/// PaymentIntent with another payment method, never this one again. Told
/// first, moved on after: a crash in between repeats the telling (the
/// outbox drops a repeat), and a late webhook of this attempt is never
/// taken for a stale one.
fn declined(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    card: &str,
    f: &crate::stripe::error::Failure,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    let attempt_ref = match (&f.payment_intent, &f.charge) {
        (Some(pi), _) => pi.clone(),
        // Some servers name only the charge; its intent keys the emails,
        // so that the webhook about the same attempt sends none again.
        (None, Some(ch)) => imports::stripe(m, &request::retrieve_charge(ch))
            .ok()
            .and_then(|c| c.payment_intent().map(str::to_string))
            .unwrap_or_else(|| format!("attempt-{}", rec.attempt)),
        (None, None) => format!("attempt-{}", rec.attempt),
    };
    let settled = if f.needs_authentication() {
        settle::action_required(m, invoice_id, &attempt_ref, &f.error.message, Tell::Both)?
    } else {
        let reason = Reason::of_failure(invoice_id, &attempt_ref, f);
        let how = Failed {
            channel: Channel::OffSession,
            soft: dunning::soft(reason.code, reason.decline_code, reason.advice_code),
            retry: rec.retry_running.then_some(rec.retries_done).unwrap_or(0),
        };
        settle::failed(m, &reason, how, Tell::Both)?
    };
    push(out, settled);
    bump_attempt(invoice_id, rec.attempt, Some(card))
}

/// Stripe refused the charge for a reason that is not the card's (a debit
/// without a mandate, a detached method): no money moved, so the invoice is
/// collected by link, and the merchant alone is told what to fix.
fn refused(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    card: &str,
    f: &crate::stripe::error::Failure,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    let attempt_ref = format!("attempt-{}", rec.attempt);
    let reason = Reason::of_failure(invoice_id, &attempt_ref, f);
    let how = Failed {
        channel: Channel::OffSession,
        soft: false,
        retry: 0,
    };
    push(out, settle::failed(m, &reason, how, Tell::Merchant)?);
    bump_attempt(invoice_id, rec.attempt, Some(card))
}

/// Moves to the next attempt number (once, however many callers race), and
/// remembers a payment method that must not be charged again for this invoice.
fn bump_attempt(
    invoice_id: &str,
    seen: u32,
    refused_method: Option<&str>,
) -> Result<(), PluginError> {
    record::update(invoice_id, &mut |r| {
        let fresh = r.attempt == seen;
        if fresh {
            r.next_attempt();
        }
        let new_method = refused_method.filter(|pm| !r.declined_methods.iter().any(|d| d == pm));
        if let Some(pm) = new_method {
            r.declined_methods.push(pm.to_string());
        }
        fresh || new_method.is_some()
    })?;
    Ok(())
}

/// An open Checkout Session for what is still due: the current one if it is
/// open for at least a few more minutes, else a fresh one. `None` when nothing
/// is left to collect (or the last session was just paid).
pub fn open_session(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<Option<Obj>, PluginError> {
    record::with_lease(invoice_id, &mut || {
        if resolve_unknown_charge(m, invoice_id, out)? == Resolved::Took {
            return Ok(None);
        }
        current_or_new_session(m, invoice_id, out)
    })
}

fn current_or_new_session(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<Option<Obj>, PluginError> {
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(None);
    };
    if !rec.takes_payment() {
        return Ok(None);
    }
    if let Some(id) = rec.session.clone() {
        let s = imports::stripe(m, &request::retrieve_checkout_session(&id))?;
        let now = imports::now_secs().max(0) as u64;
        match s.status() {
            Some("open") if s.expires_at() > now + 300 => return Ok(Some(s)),
            // Too close to its end to hand out: expired in Stripe before it is
            // forgotten, so that it cannot take money beside the next one.
            Some("open") if close_session(m, invoice_id, &rec, out)? => return Ok(None),
            Some("open") => {}
            Some("complete") if settle_closed_session(m, invoice_id, &s, out)? => return Ok(None),
            _ => {
                record::drop_session(invoice_id, &id)?;
            }
        }
    }
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(None);
    };
    let stripe_customer = current_customer(invoice_id, &rec)?;
    let success_url = format!(
        "{}/pay/{}?session_id={{CHECKOUT_SESSION_ID}}",
        m.pay_link_base.trim_end_matches('/'),
        rec.token
    );
    let receipt_email = receipt_email(m, &rec);
    let spec = SessionSpec {
        invoice_id,
        invoice_number: &rec.number,
        currency: &rec.currency,
        amount_minor: rec.outstanding(),
        stripe_customer: stripe_customer.as_deref(),
        success_url: &success_url,
        receipt_email,
        attempt: rec.attempt,
    };
    let session = imports::stripe(m, &request::create_checkout_session(&spec))?;
    record::update(invoice_id, &mut |r| {
        r.session = Some(session.id().to_string());
        true
    })?;
    Ok(Some(session))
}
