//! on-invoice-updated, and stopping or resuming collection: the platform
//! voided a sent invoice, settled it outside Stripe, wrote it off, or
//! credited it. Collection stops (the open session is expired first, so it
//! cannot take money) or is re-priced; it never leaves a payable session.

use super::collect;
use super::invalid;
use crate::contract::{
    CollectionStop, CollectionStopped, InvoiceChange, InvoiceUpdate, Merchant, PluginError,
    Transition,
};
use crate::money;
use crate::record::{self, Stop};

pub fn on_invoice_updated(m: &Merchant, u: &InvoiceUpdate) -> Result<Vec<Transition>, PluginError> {
    let mut out = Vec::new();
    // An invoice the plugin never collected has nothing to stop.
    let Some(rec) = record::load(&u.invoice_id)? else {
        return Ok(out);
    };
    let stop = match u.change {
        InvoiceChange::Void => Stop::Void,
        InvoiceChange::PaidOutsideStripe => Stop::PaidOutsideStripe,
        InvoiceChange::Uncollectible => Stop::Uncollectible,
        InvoiceChange::Open => {
            let left = money::to_minor(&rec.currency, &u.amount_due).map_err(invalid)?;
            if left == 0 {
                Stop::NothingDue
            } else {
                resume(&u.invoice_id, &mut out)?;
                set_due(m, &u.invoice_id, rec.paid.saturating_add(left), &mut out)?;
                return Ok(out);
            }
        }
    };
    stop_collection(m, &u.invoice_id, stop, &mut out)?;
    Ok(out)
}

/// Stops collecting: the open session is expired (a payment it took
/// meanwhile is counted), the record remembers why, and the link shows that
/// nothing is due. Holding the lease, so no charge or session races it.
pub fn stop_collection(
    m: &Merchant,
    invoice_id: &str,
    why: Stop,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    record::with_lease(invoice_id, &mut || {
        let mut newly = false;
        record::update(invoice_id, &mut |r| {
            newly = r.stopped != Some(why);
            r.stopped = Some(why);
            newly
        })?;
        collect::close_leftover_session(m, invoice_id, None, out)?;
        if newly {
            out.push(Transition::CollectionStopped(stopped(invoice_id, why)));
        }
        Ok(())
    })
}

/// Collection resumes (sent again with an amount due). Nothing is reported
/// when it was not stopped.
pub fn resume(invoice_id: &str, out: &mut Vec<Transition>) -> Result<(), PluginError> {
    let mut was_stopped = false;
    record::update(invoice_id, &mut |r| {
        was_stopped = r.stopped.take().is_some();
        was_stopped
    })?;
    if was_stopped {
        out.push(Transition::CollectionResumed(invoice_id.into()));
    }
    Ok(())
}

/// A new total due (a credit note, or sent again for another amount): the
/// session for the old amount is expired first, and the next one is a new
/// attempt, so its idempotency key is fresh.
pub fn set_due(
    m: &Merchant,
    invoice_id: &str,
    due: u64,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(());
    };
    if rec.due == due {
        return Ok(());
    }
    record::with_lease(invoice_id, &mut || {
        if let Some(rec) = record::load(invoice_id)? {
            collect::close_session(m, invoice_id, &rec, out)?;
        }
        record::update(invoice_id, &mut |r| {
            r.due = due;
            r.next_attempt();
            true
        })?;
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
