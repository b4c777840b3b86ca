//! The contract's host-side rules, pure: what a transition the plugin
//! returned does to the host's view of an invoice. Above all, a
//! `status-changed` moves the status only when its revision is newer than
//! the one applied (concurrent calls return in any order). A billing host
//! that embeds the runtime applies transitions with `apply`; `serve` does
//! the same inside its store's transaction (`state.rs`).

use crate::bindings::{CollectionReason, Money, PaymentFailure, PaymentStatus, Transition};
pub use crate::times::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The host's own fields of an invoice, added to the platform's document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceState {
    pub status: String,
    pub payment_link: Option<String>,
    pub checkout_session_id: Option<String>,
    pub amount_paid: Option<String>,
    pub amount_refunded: Option<String>,
    pub payments: Vec<PaymentRecord>,
    pub last_failure: Option<Value>,
    /// How much more than due the invoice has received (to refund), if any.
    #[serde(default)]
    pub overpaid: Option<String>,
    /// Set while the plugin collects nothing for the invoice (VOID,
    /// PAID_OUTSIDE_STRIPE, NOTHING_DUE ...).
    #[serde(default)]
    pub collection_stopped: Option<String>,
    /// The plugin record's revision behind `status`: an older one is dropped.
    #[serde(default)]
    pub status_revision: u64,
    /// When this host first stored the invoice as PAID (ms since the epoch,
    /// the host's clock): what finance reads as "paid on".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at_ms: Option<u64>,
    /// When the invoice was settled (paid, or collection stopped for good):
    /// its pay link expires a while after (security review S12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at_ms: Option<u64>,
    /// When the platform revoked the invoice's pay link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_link_revoked_ms: Option<u64>,
    /// Dunning: when the declined card is next charged (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    /// Dunning: retries still to come, the next one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries_left: Option<u32>,
}

impl InvoiceState {
    /// No retry is scheduled (the view's dunning fields are cleared).
    pub fn no_retry(&mut self) {
        self.next_retry_at = None;
        self.retries_left = None;
    }

    /// Whether the invoice's pay link may still be opened at `now_ms`, its
    /// links living `expiry_ms` after the invoice settled.
    pub fn pay_link_open(&self, now_ms: u64, expiry_ms: u64) -> bool {
        self.pay_link_revoked_ms.is_none()
            && self
                .settled_at_ms
                .is_none_or(|at| now_ms <= at.saturating_add(expiry_ms))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRecord {
    pub stripe_ref: String,
    pub status: String,
    pub amount: String,
    pub currency: String,
}

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The view holds the transition now (applying it again changes nothing).
    Applied,
    /// A `status-changed` no newer than the applied one: dropped, the view unchanged.
    StaleStatus,
}

/// The invoice a transition is about; none for customer and account news.
pub fn invoice_of(t: &Transition) -> Option<&str> {
    Some(match t {
        Transition::CustomerLinked(_)
        | Transition::CustomerUnlinked(_)
        | Transition::CardOnFileChanged(_)
        | Transition::AccountUpdated(_)
        | Transition::AccountDisconnected(_) => return None,
        Transition::PaymentLinkAttached(l) => &l.invoice_id,
        Transition::CollectionStopped(c) => &c.invoice_id,
        Transition::CollectionScheduled(c) => &c.invoice_id,
        Transition::CollectionResumed(id) => id,
        Transition::StatusChanged(s) => &s.invoice_id,
        Transition::PaymentProcessing(p)
        | Transition::InvoicePaid(p)
        | Transition::InvoicePartiallyPaid(p) => &p.invoice_id,
        Transition::Overpaid(o) => &o.invoice_id,
        Transition::PaymentFailed(f) | Transition::PaymentFlagged(f) => &f.invoice_id,
        Transition::NeedsCustomerAction(a) => &a.invoice_id,
        Transition::Refunded(r) => &r.invoice_id,
        Transition::Disputed(d) => &d.invoice_id,
    })
}

/// Applies `t` to the host's view `st` of its invoice at `now_ms` (the
/// host's clock). The plugin's state machine has already refused
/// out-of-order facts, so every transition is legal here, and applying one
/// twice changes nothing (payments are keyed by their Stripe ref). The
/// status comes only from `status-changed`: the host never derives one from
/// the other transitions.
pub fn apply(st: &mut InvoiceState, t: &Transition, now_ms: u64) -> Applied {
    match t {
        Transition::StatusChanged(s) if s.revision <= st.status_revision => {
            return Applied::StaleStatus;
        }
        Transition::StatusChanged(s) => {
            st.status_revision = s.revision;
            st.status = s.status.name().into();
            if st.status == "PAID" && st.paid_at_ms.is_none() {
                st.paid_at_ms = Some(now_ms);
            }
            if st.status == "PAID" {
                st.settled_at_ms.get_or_insert(now_ms);
            }
            if s.status != PaymentStatus::Failed {
                // Paid, or money on its way: no retry is to come.
                st.no_retry();
            }
            st.amount_paid = (s.amount_paid.minor > 0).then(|| s.amount_paid.decimal.clone());
            st.amount_refunded =
                (s.amount_refunded.minor > 0).then(|| s.amount_refunded.decimal.clone());
        }
        // The excess as it stands now; none left (refunded, or a duplicate
        // lost in a dispute) clears it.
        Transition::Overpaid(o) => {
            upsert_payment(st, &o.stripe_ref, &o.payment);
            st.overpaid = (o.excess.minor > 0).then(|| o.excess.decimal.clone());
        }
        Transition::CollectionStopped(c) => {
            st.collection_stopped = Some(c.reason.name().into());
            st.settled_at_ms.get_or_insert(now_ms);
            st.no_retry();
        }
        // A failure ends the retry it was (the next one, if any, follows).
        Transition::CollectionScheduled(c) if c.reason == CollectionReason::Retry => {
            st.next_retry_at = Some(rfc3339(c.due_at_ms));
            st.retries_left = Some(c.retries_left);
        }
        Transition::CollectionResumed(_) => {
            st.collection_stopped = None;
            st.settled_at_ms = None;
        }
        Transition::PaymentLinkAttached(l) => {
            st.payment_link = Some(l.url.clone());
            st.checkout_session_id = l.checkout_session_id.clone();
        }
        Transition::InvoicePaid(p) | Transition::InvoicePartiallyPaid(p) => {
            upsert_payment(st, &p.stripe_ref, &p.amount);
        }
        Transition::PaymentFailed(f) | Transition::PaymentFlagged(f) => {
            st.last_failure = Some(failure(f));
            st.no_retry();
        }
        Transition::NeedsCustomerAction(a) => {
            st.last_failure = Some(
                serde_json::json!({ "stripeRef": a.stripe_ref, "message": a.reason, "payUrl": a.pay_url }),
            );
        }
        _ => {}
    }
    Applied::Applied
}

fn failure(f: &PaymentFailure) -> Value {
    serde_json::json!({
        "stripeRef": f.stripe_ref, "code": f.code, "declineCode": f.decline_code,
        "adviceCode": f.advice_code, "message": f.message, "retryable": f.retryable,
    })
}

/// Payments are the money received, keyed and ordered by their Stripe ref, so
/// the list is the same whatever order the events came in.
fn upsert_payment(st: &mut InvoiceState, stripe_ref: &str, amount: &Money) {
    let record = PaymentRecord {
        stripe_ref: stripe_ref.into(),
        status: "succeeded".into(),
        amount: amount.decimal.clone(),
        currency: amount.currency.clone(),
    };
    match st.payments.iter_mut().find(|p| p.stripe_ref == stripe_ref) {
        Some(p) => *p = record,
        None => st.payments.push(record),
    }
    st.payments.sort_by(|a, b| a.stripe_ref.cmp(&b.stripe_ref));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::InvoiceStatus;

    fn money(minor: u64, decimal: &str) -> Money {
        Money {
            minor,
            decimal: decimal.into(),
            currency: "GBP".into(),
        }
    }

    fn status(revision: u64, status: PaymentStatus, paid: u64) -> Transition {
        Transition::StatusChanged(InvoiceStatus {
            invoice_id: "inv_1".into(),
            status,
            revision,
            amount_paid: money(paid, "12.00"),
            amount_refunded: money(0, "0.00"),
        })
    }

    #[test]
    fn only_a_newer_revision_moves_the_status_whatever_the_order() {
        let paid = status(3, PaymentStatus::Paid, 1200);
        let older = status(2, PaymentStatus::Failed, 0);
        let mut st = InvoiceState::default();
        assert_eq!(apply(&mut st, &paid, 10), Applied::Applied);
        let after_paid = st.clone();
        assert_eq!(apply(&mut st, &older, 20), Applied::StaleStatus);
        assert_eq!(
            apply(&mut st, &paid, 30),
            Applied::StaleStatus,
            "the same revision again"
        );
        assert_eq!(st, after_paid);
        assert_eq!(st.status, "PAID");
        assert_eq!(st.paid_at_ms, Some(10), "paid on the first application");
        assert_eq!(st.amount_paid.as_deref(), Some("12.00"));

        let mut reversed = InvoiceState::default();
        apply(&mut reversed, &older, 10);
        apply(&mut reversed, &paid, 10);
        assert_eq!(reversed, after_paid, "either order ends in the same view");
    }
}
