//! What each payment fact does to an invoice: offered to its state machine
//! (record::advance), and, when legal, turned into transitions and emails.
//! Shared by the auto-charge path and the webhook path, so both agree.

use crate::bindings::billing::stripe_plugin::types::{
    CustomerAction, Dispute, DisputeStatus, InvoiceStatus, Merchant, Money, Payment,
    PaymentFailure, PluginError, Transition,
};
use crate::imports;
use crate::money;
use crate::notify::{self, Reason, Tell};
use crate::payment_state::Fact;
use crate::record::{self, Advanced, InvoiceRecord};

/// Transitions for the host, and a short note of what happened.
#[derive(Default)]
pub struct Settled {
    pub transitions: Vec<Transition>,
    pub note: String,
}

impl Settled {
    fn ignored(fact: &str, state: impl core::fmt::Debug) -> Self {
        Settled {
            transitions: Vec::new(),
            note: format!("ignored: {fact} when the invoice is {state:?}"),
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
    imports::kv_set(&pi_key(stripe_ref), invoice_id)
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
    Ok(load(invoice_id)?.paid_refs.iter().any(|r| r == attempt_ref))
}

/// A failure or cancel of another attempt than the debit in flight is stale:
/// it must not end the processing state (that would re-arm auto-charge while
/// money is on its way).
fn overtaken(invoice_id: &str, attempt_ref: &str) -> Result<bool, PluginError> {
    let rec = load(invoice_id)?;
    Ok(rec.state == crate::payment_state::PayState::Processing
        && rec.in_flight.as_deref().is_some_and(|p| p != attempt_ref))
}

fn load(invoice_id: &str) -> Result<InvoiceRecord, PluginError> {
    record::load(invoice_id)?.ok_or_else(|| {
        PluginError::NotReady(format!(
            "invoice {invoice_id} has not been finalized here yet"
        ))
    })
}

/// Money arrived. It counts only in the invoice's currency, and only once per payment.
pub fn paid(
    invoice_id: &str,
    stripe_ref: &str,
    amount: u64,
    currency: &str,
) -> Result<Settled, PluginError> {
    let rec = load(invoice_id)?;
    if !currency.eq_ignore_ascii_case(&rec.currency) {
        let got = money_of(currency, amount);
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
    let counted = |r: &InvoiceRecord| r.paid_refs.iter().any(|p| p == stripe_ref);
    // Remembered with the first count; a repeat has nothing new to remember.
    if !counted(&rec) {
        remember_payment(stripe_ref, invoice_id)?;
    }
    let advanced = record::advance(
        invoice_id,
        &|r| {
            let total = if counted(r) {
                r.paid
            } else {
                r.paid.saturating_add(amount)
            };
            if total >= r.due {
                Fact::PaidFull
            } else {
                Fact::PaidShort
            }
        },
        &|r| {
            if !counted(r) {
                r.paid = r.paid.saturating_add(amount);
                r.paid_refs.push(stripe_ref.into());
            }
            if r.in_flight.as_deref() == Some(stripe_ref) {
                r.in_flight = None;
            }
        },
    )?;
    Ok(match advanced {
        Advanced::Moved { rec, .. } => {
            let p = payment(invoice_id, stripe_ref, &rec, amount);
            if rec.paid >= rec.due {
                Settled::moved(invoice_id, &rec, Transition::InvoicePaid(p), "paid")
            } else {
                Settled::moved(
                    invoice_id,
                    &rec,
                    Transition::InvoicePartiallyPaid(p),
                    "partially paid",
                )
            }
        }
        Advanced::Ignored { state } => Settled::ignored("a payment", state),
    })
}

/// A completed Checkout Session: paid now, or (bank debits) later.
pub fn session_completed(
    invoice_id: &str,
    s: &crate::stripe::objects::Obj,
) -> Result<Settled, PluginError> {
    let pi = s.payment_ref();
    match s.payment_status() {
        Some("paid") => paid(invoice_id, &pi, s.amount_total(), s.currency()),
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

/// A payment attempt failed: both parties are told, once per attempt.
pub fn failed(
    m: &Merchant,
    reason: &Reason,
    retryable: bool,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let attempt = reason.attempt_ref;
    if overtaken(reason.invoice_id, attempt)? {
        return Ok(Settled::stale(
            "a failure of an attempt overtaken by a debit in flight",
            attempt,
        ));
    }
    let mark = |r: &mut InvoiceRecord| {
        if !r.failed_refs.iter().any(|f| f == attempt) {
            r.failed_refs.push(attempt.into());
        }
        if r.in_flight.as_deref() == Some(attempt) {
            r.in_flight = None;
        }
    };
    Ok(
        match record::advance(reason.invoice_id, &|_| Fact::Failed, &mark)? {
            Advanced::Moved { rec, .. } => {
                notify::payment_failed(m, &rec, reason, &pay_url(m, &rec), tell)?;
                Settled::moved(
                    reason.invoice_id,
                    &rec,
                    Transition::PaymentFailed(PaymentFailure {
                        invoice_id: reason.invoice_id.into(),
                        stripe_ref: Some(reason.attempt_ref.into()),
                        code: reason.code.map(Into::into),
                        decline_code: reason.decline_code.map(Into::into),
                        advice_code: reason.advice_code.map(Into::into),
                        message: reason.message.into(),
                        retryable,
                    }),
                    "payment failed",
                )
            }
            Advanced::Ignored { state } => Settled::ignored("a failed payment", state),
        },
    )
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
    Ok(
        match record::advance(invoice_id, &|_| Fact::ActionRequired, &|_| {})? {
            Advanced::Moved { rec, .. } => {
                let url = pay_url(m, &rec);
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

/// Refunds and disputes follow a payment. One that arrives before the payment
/// (deliveries come in any order) is refused as not-ready, so that Stripe
/// delivers it again once the payment is in; one that arrives after is news.
fn after_payment(invoice_id: &str, what: &str) -> Result<(), PluginError> {
    if load(invoice_id)?.paid == 0 {
        return Err(PluginError::NotReady(format!(
            "{what} for invoice {invoice_id} arrived before its payment; retry later"
        )));
    }
    Ok(())
}

/// Stripe's cumulative refunded amount for one payment of the invoice.
pub fn refunded(
    invoice_id: &str,
    stripe_ref: &str,
    refunded_total: u64,
) -> Result<Settled, PluginError> {
    after_payment(invoice_id, "a refund")?;
    let full = |r: &InvoiceRecord| r.refunded_with(stripe_ref, refunded_total) >= r.paid;
    let advanced = record::advance(
        invoice_id,
        &|r| {
            if full(r) {
                Fact::RefundedFully
            } else {
                Fact::RefundedPartly
            }
        },
        &|r| r.set_refund(stripe_ref, refunded_total),
    )?;
    Ok(match advanced {
        Advanced::Moved { rec, .. } => Settled::moved(
            invoice_id,
            &rec,
            Transition::Refunded(crate::bindings::billing::stripe_plugin::types::Refund {
                invoice_id: invoice_id.into(),
                stripe_ref: stripe_ref.into(),
                amount: money_of(&rec.currency, rec.refunded),
                full: rec.refunded >= rec.paid,
            }),
            "refunded",
        ),
        Advanced::Ignored { state } => Settled::ignored("a refund", state),
    })
}

/// `dispute_id` tells a late "created" for an already closed dispute from a new one.
pub fn disputed(
    invoice_id: &str,
    dispute_id: &str,
    stripe_ref: &str,
    status: DisputeStatus,
    amount: u64,
) -> Result<Settled, PluginError> {
    after_payment(invoice_id, "a dispute")?;
    let fact = match status {
        DisputeStatus::Opened => Fact::DisputeOpened,
        DisputeStatus::Won => Fact::DisputeWon,
        DisputeStatus::Lost => Fact::DisputeLost,
    };
    if fact == Fact::DisputeOpened
        && load(invoice_id)?
            .closed_disputes
            .iter()
            .any(|d| d == dispute_id)
    {
        return Ok(Settled::stale(
            "the opening of a dispute already closed",
            dispute_id,
        ));
    }
    let close = |r: &mut InvoiceRecord| {
        if fact != Fact::DisputeOpened && !r.closed_disputes.iter().any(|d| d == dispute_id) {
            r.closed_disputes.push(dispute_id.into());
        }
        if fact == Fact::DisputeWon && r.refunded > 0 {
            r.state = crate::payment_state::PayState::PartiallyRefunded;
        }
    };
    Ok(match record::advance(invoice_id, &|_| fact, &close)? {
        Advanced::Moved { rec, .. } => Settled::moved(
            invoice_id,
            &rec,
            Transition::Disputed(Dispute {
                invoice_id: invoice_id.into(),
                stripe_ref: stripe_ref.into(),
                status,
                amount: money_of(&rec.currency, amount),
            }),
            "disputed",
        ),
        Advanced::Ignored { state } => Settled::ignored("a dispute", state),
    })
}
