//! on-invoice-updated with `collection-due`: the time a `collection-scheduled`
//! asked for has come.
//! For an invoice in dunning, the retry: a new attempt (its own idempotency
//! key) under the invoice's lease, made only if nothing was paid or stopped
//! meanwhile and any charge of unknown outcome is resolved first. For an
//! invoice held while the merchant's account was restricted: collection as
//! sending it would have done (the card on file if never tried, the link).
//! An early call charges only a card on file that was not declined for the
//! invoice (a new or reissued card); otherwise an early, repeated or
//! needless call changes nothing.

use super::collect::{self, Charge};
use super::health;
use super::invoice::attach_link;
use crate::contract::{CollectionReason, CollectionScheduled, Merchant, PluginError, Transition};
use crate::payment_state::PayState;
use crate::record::{self, InvoiceRecord};
use crate::{dunning, imports};

pub fn on_collection_due(m: &Merchant, invoice_id: &str) -> Result<Vec<Transition>, PluginError> {
    let mut out = Vec::new();
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(out);
    };
    let switched_off = !(m.auto_charge && rec.auto_charge) && rec.next_retry_ms.is_some();
    if !rec.takes_payment() || switched_off {
        // Paid, stopped or switched off meanwhile: no retry is left.
        end_retries(invoice_id)?;
        return Ok(out);
    }
    if health::restricted(m)? {
        out.push(health::held(invoice_id));
        return Ok(out);
    }
    match next_step(&rec, imports::now_ms()) {
        // Before its day, a retry waits, unless the card on file is no
        // longer the one declined (replaced on the card page, or reissued):
        // that card is charged now, as auto-charge would.
        Step::Later(_) => {
            if collect::auto_charge(m, invoice_id, &mut out)? == Charge::Done {
                end_retries(invoice_id)?;
            } else {
                keep_waiting(m, invoice_id, &mut out)?;
            }
        }
        Step::Retry => {
            start_retry(invoice_id, &rec)?;
            retry(m, invoice_id, &mut out)?;
        }
        Step::ResumeRetry => retry(m, invoice_id, &mut out)?,
        Step::Collect => collect(m, invoice_id, &rec, &mut out)?,
    }
    Ok(out)
}

/// The retry still waiting after an early call, scheduled again: unless
/// the call's own charge already did (a new card declined softly
/// reschedules it) or ended the retries (declined for good).
fn keep_waiting(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    let rescheduled = out
        .iter()
        .any(|t| matches!(t, Transition::CollectionScheduled(_)));
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(());
    };
    if let Some(due_ms) = rec.next_retry_ms.filter(|_| !rescheduled) {
        out.push(Transition::CollectionScheduled(CollectionScheduled {
            invoice_id: invoice_id.into(),
            due_at_ms: due_ms,
            reason: CollectionReason::Retry,
            retries_left: dunning::next_retry(&m.retry_days, rec.retries_done, 0)
                .map_or(0, |n| n.retries_left),
        }));
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A retry is scheduled for later than now (an early call).
    Later(u64),
    /// A retry is due now.
    Retry,
    /// A retry was started and its outcome not heard (a lost answer): the
    /// same attempt, the same key.
    ResumeRetry,
    /// No retry: collect as sending would (after a restriction).
    Collect,
}

fn next_step(rec: &InvoiceRecord, now_ms: u64) -> Step {
    match (rec.next_retry_ms, rec.retry_running) {
        (Some(due), _) if due > now_ms => Step::Later(due),
        (Some(_), _) => Step::Retry,
        (None, true) => Step::ResumeRetry,
        (None, false) => Step::Collect,
    }
}

/// Counts the retry and takes it off the schedule, in one change: only one
/// caller starts it (the others see it started and resume the same attempt).
fn start_retry(invoice_id: &str, seen: &InvoiceRecord) -> Result<(), PluginError> {
    record::update(invoice_id, &mut |r| {
        let ours = r.next_retry_ms == seen.next_retry_ms && r.next_retry_ms.is_some();
        if ours {
            r.retries_done += 1;
            r.next_retry_ms = None;
            r.retry_running = true;
        }
        ours
    })?;
    Ok(())
}

/// The retry's charge, under the lease, with the checks of every
/// auto-charge (paid or stopped meanwhile, a charge of unknown outcome).
/// Once it has an outcome (paid, declined, or no card to charge) the retry
/// is over; an error leaves it under way, to be resumed.
fn retry(m: &Merchant, invoice_id: &str, out: &mut Vec<Transition>) -> Result<(), PluginError> {
    collect::auto_charge(m, invoice_id, out)?;
    record::update(invoice_id, &mut |r| {
        let running = r.retry_running;
        r.retry_running = false;
        running
    })?;
    Ok(())
}

fn end_retries(invoice_id: &str) -> Result<(), PluginError> {
    record::update(invoice_id, &mut |r| {
        let any = r.next_retry_ms.is_some() || r.retry_running;
        r.next_retry_ms = None;
        r.retry_running = false;
        any
    })?;
    Ok(())
}

/// Collection as sending the invoice would have made it, had the account
/// not been restricted, or once the card on file changed: the card on file
/// unless it was declined for the invoice, else the link.
fn collect(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    // A failed invoice too: its declined card is barred, a new one is not.
    let due = matches!(rec.state, PayState::Open | PayState::Failed);
    let charge = if m.auto_charge && rec.auto_charge && due {
        collect::auto_charge(m, invoice_id, out)?
    } else {
        Charge::NoCard
    };
    if m.show_payment_link && charge != Charge::Done {
        attach_link(m, invoice_id, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_before_the_retry_is_due_waits_and_a_lost_retry_resumes() {
        let mut rec = InvoiceRecord::decode(b"state=failed&attempt=3").unwrap();
        rec.next_retry_ms = Some(1_000);
        assert_eq!(next_step(&rec, 999), Step::Later(1_000));
        assert_eq!(next_step(&rec, 1_000), Step::Retry);
        rec.next_retry_ms = None;
        rec.retry_running = true;
        assert_eq!(next_step(&rec, 5_000), Step::ResumeRetry);
        rec.retry_running = false;
        assert_eq!(next_step(&rec, 5_000), Step::Collect);
    }
}
