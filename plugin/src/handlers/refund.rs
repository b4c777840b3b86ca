//! on-invoice-updated with `refund`: the platform refunds money paid
//! through Stripe. The amount is taken from the invoice's payments, newest
//! first, never more than is left to refund on each; a refund asked for
//! more than all of them hold, or while a dispute is open, is refused
//! before any request. The split is written down before the first request
//! (`refund-plan:…`), so a retry after a lost answer sends the same
//! requests under the same idempotency keys, whatever was heard meanwhile:
//! one refund, never two. Each payment's cumulative refund is then read
//! from its charge, as the refund events are (`settle::refunded`).

use super::{invalid, settle};
use crate::contract::{
    InvoiceUpdate, Merchant, PluginError, RefundReason, RefundRequest, Transition,
};
use crate::host::kv;
use crate::imports::{self, kv_failure};
use crate::money;
use crate::record::{self, DisputeStage, InvoiceRecord};
use crate::stripe::{objects::Obj, request};

pub fn refund(m: &Merchant, u: &InvoiceUpdate) -> Result<Vec<Transition>, PluginError> {
    let Some(r) = &u.refund else {
        return Err(invalid("no refund asked for"));
    };
    let id = u.invoice_id.as_str();
    let ok_id = (1..=64).contains(&r.refund_id.len())
        && r.refund_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok_id {
        return Err(invalid("refundId is 1 to 64 letters, digits, - or _"));
    }
    record::with_lease(id, &mut || {
        let rec = record::load(id)?.ok_or_else(|| invalid("nothing paid through Stripe"))?;
        let key = format!("refund-plan:{id}:{}", r.refund_id);
        let (plan, again) = plan_of(&key, r, &rec)?;
        let mut out = Vec::new();
        for (nth, (pi, amount)) in plan.iter().enumerate() {
            // Tried before: Stripe may have made it, and forgotten the key
            // (it keeps one 24 hours); its list of the payment's refunds says.
            let found = match again {
                true => made_before(m, pi, &r.refund_id)?,
                false => None,
            };
            let made = match found {
                Some(made) => made,
                None => {
                    let reason = reason_name(r.reason);
                    let req = request::create_refund(id, &r.refund_id, nth, pi, *amount, reason);
                    imports::stripe(m, &req)?
                }
            };
            let charge = imports::stripe(
                m,
                &request::retrieve_charge(made.charge().unwrap_or_default()),
            )?;
            out.extend(settle::refunded(id, pi, charge.amount_refunded())?.transitions);
        }
        Ok(out)
    })
}

/// The refund Stripe made earlier for this refund id on `pi`, if any.
fn made_before(m: &Merchant, pi: &str, refund_id: &str) -> Result<Option<Obj>, PluginError> {
    let list = imports::stripe(m, &request::list_refunds(pi))?;
    Ok(list
        .data
        .unwrap_or_default()
        .into_iter()
        .find(|re| re.metadata.as_ref().and_then(|md| md.refund.as_deref()) == Some(refund_id)))
}

fn reason_name(r: RefundReason) -> &'static str {
    match r {
        RefundReason::Duplicate => "duplicate",
        RefundReason::Fraudulent => "fraudulent",
        RefundReason::RequestedByCustomer => "requested_by_customer",
    }
}

/// A payment, and the amount refunded from it.
type Line = (String, u64);

/// The split of this refund over the invoice's payments: the one written
/// down by an earlier try of the same refund id (and true), else a new one,
/// checked and written down now.
fn plan_of(
    key: &str,
    r: &RefundRequest,
    rec: &InvoiceRecord,
) -> Result<(Vec<Line>, bool), PluginError> {
    let amount = money::to_minor(&rec.currency, &r.amount).map_err(invalid)?;
    if let Some(raw) = kv::get(key).map_err(kv_failure)? {
        let plan = decode(&raw);
        let planned: u64 = plan.iter().map(|(_, a)| a).sum();
        if planned != amount {
            return Err(invalid("refundId used for another amount"));
        }
        return Ok((plan, true));
    }
    if rec.disputes.iter().any(|d| d.stage == DisputeStage::Open) {
        return Err(invalid("a dispute is open"));
    }
    if amount == 0 {
        return Err(invalid("a refund of nothing"));
    }
    let plan = split(rec, amount).ok_or_else(|| invalid("more than is left to refund"))?;
    if !kv::compare_and_swap(key, None, encode(&plan).as_bytes(), None).map_err(kv_failure)? {
        return Err(PluginError::NotReady("refund under way; retry".into()));
    }
    Ok((plan, false))
}

/// One line a payment: `pi amount`.
fn encode(plan: &[Line]) -> String {
    let mut text = String::new();
    for (pi, a) in plan {
        text.push_str(pi);
        text.push(' ');
        text.push_str(&a.to_string());
        text.push('\n');
    }
    text
}

/// `amount` from the payments, newest first, at most what is left on each.
fn split(rec: &InvoiceRecord, amount: u64) -> Option<Vec<Line>> {
    let mut left = amount;
    let mut plan = Vec::new();
    for (pi, paid) in rec.payments.iter().rev() {
        let refunded = rec.refunded_with(pi, 0);
        let refunded_here = rec.refunded.saturating_sub(refunded);
        let take = paid.saturating_sub(refunded_here).min(left);
        if take > 0 {
            plan.push((pi.clone(), take));
            left -= take;
        }
    }
    (left == 0).then_some(plan)
}

fn decode(raw: &[u8]) -> Vec<Line> {
    let mut plan = Vec::new();
    for line in String::from_utf8_lossy(raw).lines() {
        if let Some((pi, a)) = line.split_once(' ') {
            plan.push((pi.to_string(), a.parse().unwrap_or(0)));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_takes_from_the_newest_payment_first_and_never_more_than_is_left() {
        let mut rec = InvoiceRecord::decode(b"state=paid&currency=GBP&due=1000").unwrap();
        rec.payments = vec![("pi_1".into(), 600), ("pi_2".into(), 400)];
        rec.set_refund("pi_2", 100);
        assert_eq!(split(&rec, 200), Some(vec![("pi_2".into(), 200)]));
        assert_eq!(
            split(&rec, 500),
            Some(vec![("pi_2".into(), 300), ("pi_1".into(), 200)])
        );
        assert_eq!(split(&rec, 901), None);
        let plan = vec![("pi_2".to_string(), 300), ("pi_1".to_string(), 200)];
        assert_eq!(decode(encode(&plan).as_bytes()), plan);
    }
}
