//! What each payment fact does to an invoice: offered to its state machine
//! (record::advance), and, when legal, turned into transitions and emails.
//! Shared by the auto-charge path and the webhook path, so both agree.

use crate::contract::{
    CollectionReason, CollectionScheduled, CustomerAction, Dispute, DisputeStatus, InvoiceStatus,
    Merchant, Money, Overpayment, Payment, PaymentFailure, PluginError, Transition,
};
use crate::dunning::{self, Channel, Failed};
use crate::imports;
use crate::money;
use crate::notify::{self, ExcessCause, Reason, Retrying, Tell};
use crate::payment_state::Fact;
use crate::record::{self, Advanced, DisputeStage, InvoiceRecord};

/// Transitions for the host, and a short note of what happened.
#[derive(Default)]
pub struct Settled {
    pub transitions: Vec<Transition>,
    pub note: String,
}

impl Settled {
    fn ignored(fact: &str, state: crate::payment_state::PayState) -> Self {
        Settled {
            transitions: Vec::new(),
            note: format!("ignored: {fact} when the invoice is {}", state.name()),
        }
    }

    /// A fact about an attempt or dispute that has moved on since.
    fn stale(what: &str, id: &str) -> Self {
        Settled {
            transitions: Vec::new(),
            note: format!("ignored: {what} ({id})"),
        }
    }

    fn one(t: Transition, note: &str) -> Self {
        Settled {
            transitions: vec![t],
            note: note.to_string(),
        }
    }

    /// `t`, then the invoice's status as the state machine left it.
    fn moved(invoice_id: &str, rec: &InvoiceRecord, t: Transition, note: &str) -> Self {
        Settled {
            transitions: vec![t, Transition::StatusChanged(status(invoice_id, rec))],
            note: note.to_string(),
        }
    }
}

/// The invoice's status and running totals, as the record has them now.
pub fn status(invoice_id: &str, rec: &InvoiceRecord) -> InvoiceStatus {
    InvoiceStatus {
        invoice_id: invoice_id.into(),
        status: rec.state.status(),
        amount_paid: money_of(&rec.currency, rec.paid),
        amount_refunded: money_of(&rec.currency, rec.refunded),
        revision: rec.rev,
    }
}

pub fn pay_url(m: &Merchant, rec: &InvoiceRecord) -> String {
    format!(
        "{}/pay/{}",
        m.pay_link_base.trim_end_matches('/'),
        rec.token
    )
}

pub fn money_of(currency: &str, minor: u64) -> Money {
    let currency = currency.to_ascii_uppercase();
    let decimal = money::to_decimal(&currency, minor).unwrap_or_else(|_| minor.to_string());
    Money {
        minor,
        decimal,
        currency,
    }
}

fn pi_key(stripe_ref: &str) -> String {
    format!("payment:{stripe_ref}")
}

/// Remembers which invoice a PaymentIntent paid, for refunds and disputes,
/// whose objects carry no invoice metadata of their own.
pub fn remember_payment(stripe_ref: &str, invoice_id: &str) -> Result<(), PluginError> {
    // A cache: once it expires, the PaymentIntent's own metadata is asked.
    imports::kv_set(
        &pi_key(stripe_ref),
        invoice_id,
        imports::Keep::StripesEventWindow,
    )
}

pub fn invoice_of_payment(stripe_ref: &str) -> Result<Option<String>, PluginError> {
    imports::kv_get_string(&pi_key(stripe_ref))
}

fn payment(invoice_id: &str, stripe_ref: &str, rec: &InvoiceRecord, amount: u64) -> Payment {
    Payment {
        invoice_id: invoice_id.into(),
        stripe_ref: stripe_ref.into(),
        amount: money_of(&rec.currency, amount),
        total_paid: money_of(&rec.currency, rec.paid),
    }
}

/// Whether this attempt already paid: its earlier stages are stale. (A failed
/// one is not finished: Checkout retries it in the same session.)
fn finished(invoice_id: &str, attempt_ref: &str) -> Result<bool, PluginError> {
    Ok(load(invoice_id)?.counted(attempt_ref))
}

/// A failure or cancel of another attempt than the debit in flight is stale:
/// it must not end the processing state (that would re-arm auto-charge while
/// money is on its way).
fn overtaken(invoice_id: &str, attempt_ref: &str) -> Result<bool, PluginError> {
    let rec = load(invoice_id)?;
    Ok(rec.state == crate::payment_state::PayState::Processing
        && rec.in_flight.as_deref().is_some_and(|p| p != attempt_ref))
}

/// A failure counted before whose outcome another payment's has replaced
/// since (a late copy, or a redelivery after a newer attempt): it must not
/// undo the newer outcome.
fn superseded(invoice_id: &str, attempt_ref: &str) -> Result<bool, PluginError> {
    let rec = load(invoice_id)?;
    Ok(rec.failed_refs.iter().any(|f| f == attempt_ref)
        && rec.outcome_ref.as_deref().is_some_and(|o| o != attempt_ref))
}

fn load(invoice_id: &str) -> Result<InvoiceRecord, PluginError> {
    record::load(invoice_id)?.ok_or_else(|| not_finalized(invoice_id))
}

/// Money arrived. It counts only in the invoice's currency, and only once per
/// payment, whatever state the invoice is in: money is never ignored. Money
/// beyond what is due is reported as an overpayment, and the merchant told
/// what to refund.
pub fn paid(
    m: &Merchant,
    invoice_id: &str,
    stripe_ref: &str,
    amount: u64,
    currency: &str,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let rec = load(invoice_id)?;
    if !currency.eq_ignore_ascii_case(&rec.currency) {
        let got = money_of(currency, amount);
        // Remembered, so that its refunds and disputes are not waited for.
        record::update(invoice_id, &mut |r| {
            let new = !r.flagged.iter().any(|f| f == stripe_ref);
            if new {
                r.flagged.push(stripe_ref.to_string());
            }
            new
        })?;
        return Ok(Settled::one(
            Transition::PaymentFlagged(PaymentFailure {
                invoice_id: invoice_id.into(),
                stripe_ref: Some(stripe_ref.into()),
                code: Some("currency_mismatch".into()),
                decline_code: None,
                advice_code: None,
                message: format!(
                    "received {} {}, but the invoice is in {}",
                    got.decimal, got.currency, rec.currency
                ),
                retryable: false,
            }),
            "flagged: paid in another currency",
        ));
    }
    // Remembered with the first count; a repeat has nothing new to remember.
    if !rec.counted(stripe_ref) {
        remember_payment(stripe_ref, invoice_id)?;
    }
    let rec = record::update(invoice_id, &mut |r| {
        if !r.counted(stripe_ref) {
            r.paid = r.paid.saturating_add(amount);
            r.payments.push((stripe_ref.into(), amount));
        }
        if r.in_flight.as_deref() == Some(stripe_ref) {
            r.in_flight = None;
        }
        r.settle_state();
        true
    })?
    .ok_or_else(|| not_finalized(invoice_id))?;
    // Recomputed the same on a redelivery: what was counted before this payment.
    let before = rec.paid_before(stripe_ref);
    let p = payment(invoice_id, stripe_ref, &rec, amount);
    let mut transitions = Vec::new();
    if before < rec.due {
        transitions.push(if before + amount >= rec.due {
            Transition::InvoicePaid(p)
        } else {
            Transition::InvoicePartiallyPaid(p)
        });
    }
    // Owed is nothing once the platform stopped collection (voided, paid
    // another way): all of a payment after that is to be refunded.
    if before + amount > rec.owed() && rec.excess() > 0 {
        let over = overpayment(invoice_id, &rec, stripe_ref, amount);
        tell_excess(
            m,
            invoice_id,
            &rec,
            &over,
            ExcessCause::Payment(stripe_ref),
            tell,
        )?;
        transitions.push(Transition::Overpaid(over));
    }
    transitions.push(Transition::StatusChanged(status(invoice_id, &rec)));
    Ok(Settled {
        transitions,
        note: format!("counted: {} now", rec.state.name()),
    })
}

fn overpayment(
    invoice_id: &str,
    rec: &InvoiceRecord,
    stripe_ref: &str,
    amount: u64,
) -> Overpayment {
    Overpayment {
        invoice_id: invoice_id.into(),
        stripe_ref: stripe_ref.into(),
        payment: money_of(&rec.currency, amount),
        excess: money_of(&rec.currency, rec.excess()),
        total_paid: money_of(&rec.currency, rec.paid),
    }
}

/// The overpayment as it stands now, against the latest payment counted;
/// `None` when the invoice was never paid beyond what it owes.
fn excess_now(invoice_id: &str, rec: &InvoiceRecord) -> Option<Overpayment> {
    let (last, amount) = rec.payments.last()?;
    (rec.paid > rec.owed()).then(|| overpayment(invoice_id, rec, last, *amount))
}

/// What is owed changed (a credit, or collection stopped): money already
/// kept beyond it is an overpayment, reported to the host, and the merchant
/// told if it is more than they were told already.
pub fn report_excess(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    cause: ExcessCause,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    let Some(over) = excess_now(invoice_id, rec) else {
        return remember_lower_excess(invoice_id, rec);
    };
    tell_excess(m, invoice_id, rec, &over, cause, Tell::Both)?;
    out.push(Transition::Overpaid(over));
    Ok(())
}

/// The merchant is told of an excess above what they were told already
/// (`told_excess`, kept in the record). The email goes first, under a key
/// named by its cause, and the record after: a crash in between repeats the
/// same email, which the outbox drops, and never loses it. An excess that
/// shrank (a refund) is remembered lower, so a later growth is told again.
fn tell_excess(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    over: &Overpayment,
    cause: ExcessCause,
    tell: Tell,
) -> Result<(), PluginError> {
    let excess = rec.excess();
    if excess > rec.told_excess {
        if tell == Tell::Nobody {
            return Ok(());
        }
        notify::overpaid(m, rec, over, cause, tell)?;
    } else if excess == rec.told_excess {
        return Ok(());
    }
    record::update(invoice_id, &mut |r| {
        let changed = r.told_excess != excess;
        r.told_excess = excess;
        changed
    })?;
    Ok(())
}

/// A refund or a dispute made the excess smaller: remembered, so that the
/// merchant is told again if it grows later.
fn remember_lower_excess(invoice_id: &str, rec: &InvoiceRecord) -> Result<(), PluginError> {
    let excess = rec.excess();
    if excess < rec.told_excess {
        record::update(invoice_id, &mut |r| {
            let lower = excess < r.told_excess;
            if lower {
                r.told_excess = excess;
            }
            lower
        })?;
    }
    Ok(())
}

fn not_finalized(invoice_id: &str) -> PluginError {
    PluginError::NotReady(format!(
        "invoice {invoice_id} has not been finalized here yet"
    ))
}

/// A completed Checkout Session: paid now, or (bank debits) later.
pub fn session_completed(
    m: &Merchant,
    invoice_id: &str,
    s: &crate::stripe::objects::Obj,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let pi = s.payment_ref();
    match s.payment_status() {
        Some("paid") => paid(m, invoice_id, &pi, s.amount_total(), s.currency(), tell),
        Some("unpaid") => processing(invoice_id, &pi, s.amount_total()),
        _ => Ok(Settled {
            transitions: Vec::new(),
            note: "session completed without payment".into(),
        }),
    }
}

/// Stripe accepted a payment whose money comes later (bank debits).
pub fn processing(invoice_id: &str, stripe_ref: &str, amount: u64) -> Result<Settled, PluginError> {
    remember_payment(stripe_ref, invoice_id)?;
    if finished(invoice_id, stripe_ref)? {
        return Ok(Settled::stale("processing of a paid attempt", stripe_ref));
    }
    let track = |r: &mut InvoiceRecord| r.in_flight = Some(stripe_ref.to_string());
    Ok(
        match record::advance(invoice_id, &|_| Fact::Processing, &track)? {
            Advanced::Moved { rec, .. } => Settled::moved(
                invoice_id,
                &rec,
                Transition::PaymentProcessing(payment(invoice_id, stripe_ref, &rec, amount)),
                "processing",
            ),
            Advanced::Ignored { state } => Settled::ignored("processing", state),
        },
    )
}

/// A PaymentIntent failed: a decline, or a bank asking for authentication
/// (then the customer is asked to pay on-session).
pub fn intent_failed(
    m: &Merchant,
    invoice: &str,
    o: &crate::stripe::objects::Obj,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let empty = Default::default();
    let err = o.last_payment_error.as_ref().unwrap_or(&empty);
    let message = err.message.as_deref().unwrap_or("the payment failed");
    if err.code.as_deref() == Some("authentication_required") {
        return action_required(m, invoice, o.id(), message, tell);
    }
    let reason = Reason {
        invoice_id: invoice,
        attempt_ref: o.id(),
        message,
        code: err.code.as_deref(),
        decline_code: err.decline_code.as_deref(),
        advice_code: err.advice_code.as_deref(),
    };
    let how = Failed {
        channel: if o.via_checkout() {
            Channel::Checkout
        } else {
            Channel::OffSession
        },
        soft: dunning::soft(reason.code, reason.decline_code, reason.advice_code),
        retry: o
            .metadata
            .as_ref()
            .and_then(|md| md.retry.as_deref())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    };
    failed(m, &reason, how, tell)
}

/// A payment attempt failed: both parties are told, once per attempt. A
/// soft decline of an off-session charge is retried on the merchant's
/// schedule (`collection-scheduled`); then only the first failure and the
/// last retry are told.
pub fn failed(
    m: &Merchant,
    reason: &Reason,
    how: Failed,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let attempt = reason.attempt_ref;
    if overtaken(reason.invoice_id, attempt)? {
        return Ok(Settled::stale(
            "a failure of an attempt overtaken by a debit in flight",
            attempt,
        ));
    }
    if superseded(reason.invoice_id, attempt)? {
        return Ok(Settled::stale(
            "a failure already counted, since replaced by a newer outcome",
            attempt,
        ));
    }
    let now = imports::now_ms();
    let mark = |r: &mut InvoiceRecord| {
        let first_time = !r.failed_refs.iter().any(|f| f == attempt);
        if first_time {
            r.failed_refs.push(attempt.into());
            plan_retry(r, how, &m.retry_days, now);
        }
        if r.in_flight.as_deref() == Some(attempt) {
            r.in_flight = None;
        }
        r.outcome_ref = Some(attempt.into());
    };
    Ok(
        match record::advance(reason.invoice_id, &|_| Fact::Failed, &mark)? {
            Advanced::Moved { rec, .. } => {
                let next = rec.next_retry_ms.map(|due_ms| dunning::Next {
                    due_ms,
                    retries_left: dunning::next_retry(&m.retry_days, rec.retries_done, 0)
                        .map_or(0, |n| n.retries_left),
                });
                let tell = if rec.stopped.is_some() || !dunning::told(how, m.retry_days.len()) {
                    Tell::Nobody
                } else {
                    tell
                };
                let retrying = match next {
                    Some(n) if how.retried() => Retrying::On(n.due_ms),
                    None if how.retried() && how.retry > 0 => Retrying::GaveUp,
                    _ => Retrying::No,
                };
                let card_page = match rec.stripe_customer.as_str() {
                    "" => None,
                    cus => Some(super::card_page::url(m, cus)?),
                };
                let pay = pay_url(m, &rec);
                let links = (pay.as_str(), card_page.as_deref());
                notify::payment_failed(m, &rec, reason, links, tell, retrying)?;
                let mut settled = Settled::moved(
                    reason.invoice_id,
                    &rec,
                    Transition::PaymentFailed(PaymentFailure {
                        invoice_id: reason.invoice_id.into(),
                        stripe_ref: Some(reason.attempt_ref.into()),
                        code: reason.code.map(Into::into),
                        decline_code: reason.decline_code.map(Into::into),
                        advice_code: reason.advice_code.map(Into::into),
                        message: reason.message.into(),
                        retryable: how.soft,
                    }),
                    "payment failed",
                );
                if let Some(n) = next.filter(|_| rec.stopped.is_none()) {
                    settled.transitions.push(Transition::CollectionScheduled(
                        CollectionScheduled {
                            invoice_id: reason.invoice_id.into(),
                            due_at_ms: n.due_ms,
                            reason: CollectionReason::Retry,
                            retries_left: n.retries_left,
                        },
                    ));
                }
                settled
            }
            Advanced::Ignored { state } => Settled::ignored("a failed payment", state),
        },
    )
}

/// What a first-heard failure does to the invoice's retries: a soft
/// decline of an off-session charge schedules the next one (counted from
/// the first such failure); a hard one ends them. A failure on Checkout's
/// page leaves them as they are: the card on file may still succeed.
fn plan_retry(r: &mut InvoiceRecord, how: Failed, days: &[u32], now: u64) {
    if how.channel != Channel::OffSession {
        return;
    }
    r.retry_running = false;
    r.next_retry_ms = None;
    if how.soft && r.auto_charge {
        let first = *r.first_failed_ms.get_or_insert(now);
        r.next_retry_ms = dunning::next_retry(days, r.retries_done, first).map(|n| n.due_ms);
    }
}

/// The customer must authenticate or pay on-session: not a hard failure.
pub fn action_required(
    m: &Merchant,
    invoice_id: &str,
    attempt_ref: &str,
    why: &str,
    tell: Tell,
) -> Result<Settled, PluginError> {
    if finished(invoice_id, attempt_ref)? {
        return Ok(Settled::stale(
            "a request for action on a finished attempt",
            attempt_ref,
        ));
    }
    let mark = |r: &mut InvoiceRecord| r.outcome_ref = Some(attempt_ref.into());
    Ok(
        match record::advance(invoice_id, &|_| Fact::ActionRequired, &mark)? {
            Advanced::Moved { rec, .. } => {
                let url = pay_url(m, &rec);
                let tell = if rec.stopped.is_some() {
                    Tell::Nobody
                } else {
                    tell
                };
                notify::action_required(m, &rec, invoice_id, attempt_ref, &url, tell)?;
                Settled::moved(
                    invoice_id,
                    &rec,
                    Transition::NeedsCustomerAction(CustomerAction {
                        invoice_id: invoice_id.into(),
                        stripe_ref: Some(attempt_ref.into()),
                        pay_url: url,
                        reason: why.into(),
                    }),
                    "needs customer action",
                )
            }
            Advanced::Ignored { state } => Settled::ignored("a request for action", state),
        },
    )
}

/// An attempt was canceled: the invoice is open for payment again.
pub fn canceled(invoice_id: &str, stripe_ref: &str) -> Result<Settled, PluginError> {
    if overtaken(invoice_id, stripe_ref)? {
        return Ok(Settled::stale(
            "a cancel of an attempt overtaken by a debit in flight",
            stripe_ref,
        ));
    }
    Ok(
        match record::advance(invoice_id, &|_| Fact::Canceled, &|_| {})? {
            Advanced::Moved { rec, .. } => Settled::moved(
                invoice_id,
                &rec,
                Transition::PaymentFailed(PaymentFailure {
                    invoice_id: invoice_id.into(),
                    stripe_ref: Some(stripe_ref.into()),
                    code: Some("payment_intent_canceled".into()),
                    decline_code: None,
                    advice_code: None,
                    message: "the payment was canceled".into(),
                    retryable: true,
                }),
                "payment canceled",
            ),
            Advanced::Ignored { state } => Settled::ignored("a cancellation", state),
        },
    )
}

/// Refunds and disputes follow a payment of the invoice. One that arrives
/// before its payment is counted (deliveries come in any order) is refused as
/// not-ready, so that Stripe delivers it again once the payment is in. One
/// of a payment flagged and never counted (another currency) is
/// acknowledged: it will never be counted, so it is never waited for.
fn after_payment(invoice_id: &str, stripe_ref: &str, what: &str) -> Result<Follows, PluginError> {
    let rec = load(invoice_id)?;
    if rec.counted(stripe_ref) {
        return Ok(Follows::Counted);
    }
    if rec.flagged.iter().any(|f| f == stripe_ref) {
        return Ok(Follows::Flagged);
    }
    Err(PluginError::NotReady(format!(
        "{what} of payment {stripe_ref} for invoice {invoice_id} arrived before the payment; retry later"
    )))
}

/// What a refund or dispute follows.
#[derive(PartialEq, Eq)]
enum Follows {
    Counted,
    /// A payment flagged and not counted: nothing of the invoice changes.
    Flagged,
}

/// Stripe's cumulative refunded amount for one payment of the invoice. The
/// state follows from the money, whatever else is going on (a refund made
/// during a dispute counts, and shows once the dispute is over).
pub fn refunded(
    invoice_id: &str,
    stripe_ref: &str,
    refunded_total: u64,
) -> Result<Settled, PluginError> {
    if after_payment(invoice_id, stripe_ref, "a refund")? == Follows::Flagged {
        return Ok(Settled::stale("a refund of a flagged payment", stripe_ref));
    }
    let rec = record::update(invoice_id, &mut |r| {
        r.set_refund(stripe_ref, refunded_total);
        r.settle_state();
        true
    })?
    .ok_or_else(|| not_finalized(invoice_id))?;
    let mut settled = Settled::moved(
        invoice_id,
        &rec,
        Transition::Refunded(crate::contract::Refund {
            invoice_id: invoice_id.into(),
            stripe_ref: stripe_ref.into(),
            amount: money_of(&rec.currency, rec.refunded),
            full: rec.refunded >= rec.paid,
        }),
        "refunded",
    );
    remember_lower_excess(invoice_id, &rec)?;
    settled
        .transitions
        .extend(excess_now(invoice_id, &rec).map(Transition::Overpaid));
    Ok(settled)
}

/// A dispute of one of the invoice's payments opened or closed. Where each
/// dispute stands is remembered by its id, so a close delivered before its
/// create is kept, and the late create changes nothing.
pub fn disputed(
    invoice_id: &str,
    dispute_id: &str,
    stripe_ref: &str,
    status: DisputeStatus,
    amount: u64,
) -> Result<Settled, PluginError> {
    if after_payment(invoice_id, stripe_ref, "a dispute")? == Follows::Flagged {
        return Ok(Settled::stale("a dispute of a flagged payment", stripe_ref));
    }
    let stage = match status {
        DisputeStatus::Opened => DisputeStage::Open,
        DisputeStatus::Won => DisputeStage::Won,
        DisputeStatus::Lost => DisputeStage::Lost,
    };
    let mut now = stage;
    let rec = record::update(invoice_id, &mut |r| {
        now = r.set_dispute(dispute_id, stage, amount);
        r.settle_state();
        true
    })?
    .ok_or_else(|| not_finalized(invoice_id))?;
    let status = match now {
        DisputeStage::Open => DisputeStatus::Opened,
        DisputeStage::Won => DisputeStatus::Won,
        DisputeStage::Lost => DisputeStatus::Lost,
    };
    let mut settled = Settled::moved(
        invoice_id,
        &rec,
        Transition::Disputed(Dispute {
            invoice_id: invoice_id.into(),
            stripe_ref: stripe_ref.into(),
            status,
            amount: money_of(&rec.currency, amount),
        }),
        "disputed",
    );
    remember_lower_excess(invoice_id, &rec)?;
    settled
        .transitions
        .extend(excess_now(invoice_id, &rec).map(Transition::Overpaid));
    Ok(settled)
}
