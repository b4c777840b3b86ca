//! The host's records of invoices and customers, and how transitions from the
//! plugin change them. All transitions of one call are applied in a single
//! store transaction, so a 2xx to Stripe always means the change is durable.

use crate::bindings::{Money, Transition};
use crate::db::Db;
use crate::db::{RecordsTx, StoreError, TxAbort};
use crate::platform::{PlatformCustomer, PlatformInvoice};
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
}

impl InvoiceState {
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

#[derive(Debug)]
pub enum ApplyError {
    /// The transition names an invoice this host has no record of (yet).
    UnknownInvoice(String),
    Storage(anyhow::Error),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::UnknownInvoice(id) => write!(f, "unknown invoice {id}"),
            ApplyError::Storage(e) => write!(f, "storage: {e}"),
        }
    }
}

impl std::error::Error for ApplyError {}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        ApplyError::Storage(e.into())
    }
}

type CustomerRow = (Value, Option<String>, Option<String>);

/// One merchant's records: every invoice and customer query is scoped to it.
pub struct Records<'a> {
    db: &'a Db,
    merchant: &'a str,
    /// The host's clock now (ms), for what is stamped on a record.
    now_ms: u64,
}

impl<'a> Records<'a> {
    /// `now_ms` is the host's clock now: what a record changed now is stamped with.
    pub fn new(db: &'a Db, merchant: &'a str, now_ms: u64) -> Self {
        Self {
            db,
            merchant,
            now_ms,
        }
    }

    /// The document, the Stripe link and the card on file.
    fn customer(&self, id: &str) -> Result<Option<CustomerRow>> {
        let row = self.db.customer(self.merchant, id)?;
        row.map(|(doc, link, card)| Ok((serde_json::from_str(&doc)?, link, card)))
            .transpose()
    }

    pub fn parsed_customer(&self, id: &str) -> Result<Option<PlatformCustomer>> {
        self.customer(id)?
            .map(|(doc, _, _)| Ok(serde_json::from_value(doc)?))
            .transpose()
    }

    /// The customer document as the platform sent it, with the host's Stripe link.
    pub fn customer_view(&self, id: &str) -> Result<Option<Value>> {
        Ok(self.customer(id)?.map(|(doc, link, card)| {
            let mut obj = into_object(doc);
            obj.insert("id".into(), id.into());
            obj.insert(
                "stripeCustomerId".into(),
                link.map(Value::from).unwrap_or(Value::Null),
            );
            obj.insert(
                "cardOnFile".into(),
                card.map(Value::from).unwrap_or(Value::Null),
            );
            Value::Object(obj)
        }))
    }

    pub fn account_view(&self, id: &str) -> Result<Option<Value>> {
        Ok(self.db.account(self.merchant, id)?.map(|a| {
            serde_json::json!({"id": id, "chargesEnabled": a.charges_enabled,
                "detailsSubmitted": a.details_submitted, "disconnected": a.disconnected})
        }))
    }

    pub fn invoice(&self, id: &str) -> Result<Option<(Value, InvoiceState)>> {
        let row = self.db.invoice(self.merchant, id)?;
        row.map(|(doc, state)| Ok((serde_json::from_str(&doc)?, serde_json::from_str(&state)?)))
            .transpose()
    }

    pub fn parsed_invoice(&self, id: &str) -> Result<Option<(PlatformInvoice, InvoiceState)>> {
        self.invoice(id)?
            .map(|(doc, st)| Ok((serde_json::from_value(doc)?, st)))
            .transpose()
    }

    /// The invoice document with the host's state merged in.
    pub fn invoice_view(&self, id: &str) -> Result<Option<Value>> {
        Ok(self.invoice(id)?.map(|(doc, state)| {
            let mut obj = into_object(doc);
            if let Value::Object(s) = serde_json::to_value(state).unwrap_or_default() {
                obj.extend(s);
            }
            Value::Object(obj)
        }))
    }

    /// Stores a draft. `Ok(false)` when the id is taken.
    pub fn insert_draft(&self, doc: &Value, id: &str) -> Result<bool> {
        let state = InvoiceState {
            status: "DRAFT".into(),
            ..Default::default()
        };
        let state = serde_json::to_string(&state)?;
        Ok(self
            .db
            .insert_invoice(self.merchant, id, &doc.to_string(), &state)?)
    }

    /// Keeps the platform's new `amountDue` on the invoice document.
    pub fn set_amount_due(&self, id: &str, amount_due: &str) -> Result<()> {
        Ok(self.db.set_amount_due(self.merchant, id, amount_due)?)
    }

    pub fn put_customer(&self, id: &str, doc: &Value) -> Result<()> {
        Ok(self.db.put_customer(self.merchant, id, &doc.to_string())?)
    }

    pub fn set_status_if(&self, id: &str, from: &str, to: &str) -> Result<()> {
        self.transaction(&mut |tx| {
            if let Some(mut st) = load_state(tx, self.merchant, id)?
                && st.status == from
            {
                st.status = to.into();
                save_state(tx, self.merchant, id, &st)?;
            }
            Ok(())
        })
        .context("setting an invoice's status")
    }

    /// Revokes the invoice's pay link for good; false when there is no such invoice.
    pub fn revoke_pay_link(&self, id: &str) -> Result<bool> {
        let mut found = false;
        self.transaction(&mut |tx| {
            if let Some(mut st) = load_state(tx, self.merchant, id)? {
                found = true;
                st.pay_link_revoked_ms.get_or_insert(self.now_ms);
                save_state(tx, self.merchant, id, &st)?;
            }
            Ok(())
        })
        .context("revoking a pay link")?;
        Ok(found)
    }

    /// The invoice a pay-link token was made for, and its state, when this
    /// host saw the link made.
    pub fn invoice_of_pay_link(&self, token: &str) -> Result<Option<(String, InvoiceState)>> {
        let hash = crate::tokens::sha256_hex(token);
        let Some(id) = self.db.pay_link_invoice(self.merchant, &hash)? else {
            return Ok(None);
        };
        Ok(self.invoice(&id)?.map(|(_, st)| (id, st)))
    }

    /// Applies every transition, or none.
    pub fn apply(&self, transitions: &[Transition]) -> Result<(), ApplyError> {
        self.transaction(&mut |tx| {
            transitions
                .iter()
                .try_for_each(|t| apply_one(tx, self.merchant, self.now_ms, t))
        })
    }

    /// Runs `body` in one store transaction; an `ApplyError` rolls it back.
    fn transaction(
        &self,
        body: &mut dyn FnMut(&mut dyn RecordsTx) -> Result<(), ApplyError>,
    ) -> Result<(), ApplyError> {
        let mut refused: Option<ApplyError> = None;
        let outcome = self.db.records_tx(&mut |tx| {
            body(tx).map_err(|e| {
                let text = e.to_string();
                refused = Some(e);
                TxAbort::Refused(text)
            })
        });
        match outcome {
            Ok(()) => Ok(()),
            Err(TxAbort::Refused(text)) => {
                Err(refused.unwrap_or(ApplyError::Storage(anyhow!(text))))
            }
            Err(TxAbort::Store(e)) => Err(e.into()),
        }
    }

    /// Where the last stored sync of `merchant` ended.
    pub fn sync_cursor(&self, merchant: &str) -> Result<Option<String>> {
        Ok(self.db.sync_cursor(merchant)?)
    }

    /// Applies a sync's transitions and keeps its cursor, both or neither:
    /// a sync whose result was not stored is simply read again.
    pub fn apply_synced(
        &self,
        merchant: &str,
        cursor: &str,
        transitions: &[Transition],
    ) -> Result<(), ApplyError> {
        self.transaction(&mut |tx| {
            for t in transitions {
                apply_one(tx, self.merchant, self.now_ms, t)?;
            }
            Ok(tx.set_sync_cursor(merchant, cursor)?)
        })
    }

    /// The emails sent under the merchant's namespace (its account).
    pub fn outbox(&self, namespace: &str) -> Result<Vec<Value>> {
        let rows = self.db.outbox(namespace)?;
        Ok(rows
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect())
    }
}

fn into_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn load_state(
    tx: &mut dyn RecordsTx,
    merchant: &str,
    id: &str,
) -> Result<Option<InvoiceState>, ApplyError> {
    let s = tx.invoice_state(merchant, id)?;
    s.map(|s| serde_json::from_str(&s).map_err(|e| ApplyError::Storage(anyhow!(e))))
        .transpose()
}

fn save_state(
    tx: &mut dyn RecordsTx,
    merchant: &str,
    id: &str,
    st: &InvoiceState,
) -> Result<(), ApplyError> {
    let json = serde_json::to_string(st).map_err(|e| ApplyError::Storage(anyhow!(e)))?;
    Ok(tx.save_invoice_state(merchant, id, &json)?)
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

/// The host applies what the plugin decided: the plugin's state machine has
/// already refused out-of-order facts, so every transition here is legal, and
/// applying one twice changes nothing (payments are keyed by their Stripe ref).
fn apply_one(
    tx: &mut dyn RecordsTx,
    merchant: &str,
    now_ms: u64,
    t: &Transition,
) -> Result<(), ApplyError> {
    let invoice_id = match t {
        Transition::CustomerLinked(l) => {
            return Ok(tx.link_customer(merchant, &l.customer_id, &l.stripe_customer_id)?);
        }
        Transition::CustomerUnlinked(id) => return Ok(tx.unlink_customer(merchant, id)?),
        Transition::CardOnFileChanged(c) => {
            let card = c.payment_method_id.as_deref();
            return Ok(tx.set_card_on_file(merchant, &c.stripe_customer_id, card)?);
        }
        Transition::AccountUpdated(a) => {
            let (charges, details) = (a.charges_enabled, a.details_submitted);
            return Ok(tx.account_updated(merchant, &a.account_id, charges, details)?);
        }
        Transition::AccountDisconnected(id) => return Ok(tx.account_disconnected(merchant, id)?),
        Transition::PaymentLinkAttached(l) => &l.invoice_id,
        Transition::CollectionStopped(c) => &c.invoice_id,
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
    };
    let mut st = load_state(tx, merchant, invoice_id)?
        .ok_or_else(|| ApplyError::UnknownInvoice(invoice_id.clone()))?;
    let failure = |f: &crate::bindings::PaymentFailure| {
        serde_json::json!({
            "stripeRef": f.stripe_ref, "code": f.code, "declineCode": f.decline_code,
            "adviceCode": f.advice_code, "message": f.message, "retryable": f.retryable,
        })
    };
    // The status comes only from `status-changed`: the plugin's state machine
    // decides it, and the host never derives one from the other transitions.
    match t {
        // Concurrent calls return in any order: only a newer revision moves the status.
        Transition::StatusChanged(s) if s.revision <= st.status_revision => return Ok(()),
        Transition::StatusChanged(s) => {
            st.status_revision = s.revision;
            st.status = s.status.name().into();
            if st.status == "PAID" && st.paid_at_ms.is_none() {
                st.paid_at_ms = Some(now_ms);
            }
            if st.status == "PAID" {
                st.settled_at_ms.get_or_insert(now_ms);
            }
            st.amount_paid = (s.amount_paid.minor > 0).then(|| s.amount_paid.decimal.clone());
            st.amount_refunded =
                (s.amount_refunded.minor > 0).then(|| s.amount_refunded.decimal.clone());
        }
        // The excess as it stands now; none left (refunded, or a duplicate
        // lost in a dispute) clears it.
        Transition::Overpaid(o) => {
            upsert_payment(&mut st, &o.stripe_ref, &o.payment);
            st.overpaid = (o.excess.minor > 0).then(|| o.excess.decimal.clone());
        }
        Transition::CollectionStopped(c) => {
            st.collection_stopped = Some(c.reason.name().into());
            st.settled_at_ms.get_or_insert(now_ms);
        }
        Transition::CollectionResumed(_) => {
            st.collection_stopped = None;
            st.settled_at_ms = None;
        }
        Transition::PaymentLinkAttached(l) => {
            st.payment_link = Some(l.url.clone());
            st.checkout_session_id = l.checkout_session_id.clone();
            if let Some(token) = l.url.rsplit('/').next().filter(|t| !t.is_empty()) {
                tx.index_pay_link(merchant, &crate::tokens::sha256_hex(token), invoice_id)?;
            }
        }
        Transition::InvoicePaid(p) | Transition::InvoicePartiallyPaid(p) => {
            upsert_payment(&mut st, &p.stripe_ref, &p.amount);
        }
        Transition::PaymentFailed(f) | Transition::PaymentFlagged(f) => {
            st.last_failure = Some(failure(f))
        }
        Transition::NeedsCustomerAction(a) => {
            st.last_failure = Some(
                serde_json::json!({ "stripeRef": a.stripe_ref, "message": a.reason, "payUrl": a.pay_url }),
            );
        }
        _ => {}
    }
    save_state(tx, merchant, invoice_id, &st)
}
