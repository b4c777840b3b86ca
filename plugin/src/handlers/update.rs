//! on-invoice-updated, and stopping or resuming collection: the platform
//! voided a sent invoice, settled it outside Stripe, wrote it off, or
//! credited it. Collection stops (the open session is expired first, so it
//! cannot take money) or is re-priced; it never leaves a payable session.
//! A stop the platform decided (void, paid outside Stripe, written off) is
//! undone only by an explicit reopen, never by sending the invoice again.

use super::collect;
use super::invalid;
use super::settle;
use crate::contract::{
    CollectionStop, CollectionStopped, InvoiceChange, InvoiceUpdate, Merchant, PluginError,
    Transition,
};
use crate::imports;
use crate::money;
use crate::notify::ExcessCause;
use crate::record::{self, InvoiceRecord, Stop};

pub fn on_invoice_updated(m: &Merchant, u: &InvoiceUpdate) -> Result<Vec<Transition>, PluginError> {
    let mut out = Vec::new();
    let stop = match u.change {
        InvoiceChange::Void => Stop::Void,
        InvoiceChange::PaidOutsideStripe => Stop::PaidOutsideStripe,
        InvoiceChange::Uncollectible => Stop::Uncollectible,
        InvoiceChange::CollectionDue => return super::due::on_collection_due(m, &u.invoice_id),
        InvoiceChange::Refund => return super::refund::refund(m, u),
        InvoiceChange::Open => {
            let Some(rec) = record::load(&u.invoice_id)? else {
                // Reopened before the plugin ever had a record: an early stop is forgotten.
                if early_stop(&u.invoice_id)?.is_some() {
                    imports::kv_delete(&early_stop_key(&u.invoice_id))?;
                    out.push(Transition::CollectionResumed(u.invoice_id.clone()));
                }
                return Ok(out);
            };
            let left = money::to_minor(&rec.currency, &u.amount_due).map_err(invalid)?;
            if left == 0 {
                Stop::NothingDue
            } else {
                reopen(m, &u.invoice_id, &rec, left, &mut out)?;
                return Ok(out);
            }
        }
    };
    if record::load(&u.invoice_id)?.is_none() {
        // The first finalize has not stored its record yet (it failed early,
        // or is queued): the stop is remembered, and that finalize honours it.
        remember_early_stop(&u.invoice_id, stop)?;
        out.push(Transition::CollectionStopped(stopped(&u.invoice_id, stop)));
        return Ok(out);
    }
    stop_collection(m, &u.invoice_id, stop, &mut out)?;
    Ok(out)
}

/// `OPEN` with an amount left to pay: collection resumes (whatever stopped
/// it) for what the merchant keeps plus `left`, all in one step under the
/// lease, so a reopen that fails leaves the invoice as it was. An invoice
/// with refunds or disputes is refused: what it owes can no longer be read
/// from one amount.
fn reopen(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    left: u64,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    if rec.refunded > 0 || !rec.disputes.is_empty() {
        return Err(invalid(format!(
            "invoice {invoice_id} has refunds or disputes; it cannot be reopened for more (send the rest as a new invoice)"
        )));
    }
    set_due(m, invoice_id, rec.kept().saturating_add(left), out)
}

fn early_stop_key(invoice_id: &str) -> String {
    format!("stopped-early:{invoice_id}")
}

fn remember_early_stop(invoice_id: &str, why: Stop) -> Result<(), PluginError> {
    imports::kv_set(
        &early_stop_key(invoice_id),
        why.name(),
        imports::Keep::Always,
    )
}

/// A stop the platform decided before the plugin had a record of the invoice.
pub fn early_stop(invoice_id: &str) -> Result<Option<Stop>, PluginError> {
    Ok(imports::kv_get_string(&early_stop_key(invoice_id))?
        .as_deref()
        .and_then(Stop::from_name))
}

/// Stops collecting: the open session is expired first (a payment it took
/// meanwhile is counted), then the record remembers why, so a stop that
/// fails part-way leaves collection as it was. The link then shows that
/// nothing is due. Holding the lease, so no charge or session races it.
/// `CollectionStopped` is reported every time, so a retry after a failure
/// part-way still tells the host.
pub fn stop_collection(
    m: &Merchant,
    invoice_id: &str,
    why: Stop,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    record::with_lease(invoice_id, &mut || {
        if let Some(rec) = record::load(invoice_id)? {
            collect::close_session(m, invoice_id, &rec, out)?;
        }
        record::update(invoice_id, &mut |r| {
            let newly = r.stopped != Some(why);
            r.stopped = Some(why);
            newly
        })?;
        out.push(Transition::CollectionStopped(stopped(invoice_id, why)));
        // Paid through Stripe, then stopped (paid another way too, voided):
        // what Stripe took is now to be refunded.
        if let Some(rec) = record::load(invoice_id)? {
            let cause = ExcessCause::Stopped(why);
            settle::report_excess(m, invoice_id, &rec, cause, out)?;
        }
        Ok(())
    })
}

/// The invoice was sent again with an amount due: collection resumes if it
/// had stopped only because nothing was due or Stripe was not offered. A
/// stop the platform decided stays; returns it.
pub fn resume(invoice_id: &str, out: &mut Vec<Transition>) -> Result<Option<Stop>, PluginError> {
    let mut kept = None;
    let mut was_stopped = false;
    record::update(invoice_id, &mut |r| {
        kept = r.stopped.filter(|s| s.for_good());
        was_stopped = r.stopped.is_some() && kept.is_none();
        if was_stopped {
            r.stopped = None;
        }
        was_stopped
    })?;
    if was_stopped {
        out.push(Transition::CollectionResumed(invoice_id.into()));
    }
    Ok(kept)
}

/// Reopened with a total due: whatever stopped collection is lifted. A
/// charge of unknown outcome is resolved first; for a new amount, the
/// session for the old one is expired (a payment it took is counted) and the
/// next payment is a new attempt, so its idempotency key is fresh. The state
/// follows the money against the new amount, and money beyond it is reported.
fn set_due(
    m: &Merchant,
    invoice_id: &str,
    due: u64,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    record::with_lease(invoice_id, &mut || {
        collect::resolve_unknown_charge(m, invoice_id, out)?;
        let Some(rec) = record::load(invoice_id)? else {
            return Ok(());
        };
        let new_amount = rec.due != due;
        if new_amount {
            collect::close_session(m, invoice_id, &rec, out)?;
        }
        let mut was_stopped = false;
        let rec = record::update(invoice_id, &mut |r| {
            was_stopped = r.stopped.take().is_some();
            if r.due != due {
                r.due = due;
                r.next_attempt();
                r.settle_state();
            }
            true
        })?;
        if was_stopped {
            out.push(Transition::CollectionResumed(invoice_id.into()));
        }
        if let Some(rec) = rec.filter(|r| r.paid > 0) {
            let cause = ExcessCause::NewAmount(due);
            settle::report_excess(m, invoice_id, &rec, cause, out)?;
            out.push(Transition::StatusChanged(settle::status(invoice_id, &rec)));
        }
        Ok(())
    })
}

pub fn stopped(invoice_id: &str, why: Stop) -> CollectionStopped {
    CollectionStopped {
        invoice_id: invoice_id.into(),
        reason: match why {
            Stop::NothingDue => CollectionStop::NothingDue,
            Stop::StripeRemoved => CollectionStop::StripeRemoved,
            Stop::Void => CollectionStop::Void,
            Stop::PaidOutsideStripe => CollectionStop::PaidOutsideStripe,
            Stop::Uncollectible => CollectionStop::Uncollectible,
        },
    }
}
