//! The host's records of invoices and customers, and how transitions from the
//! plugin change them. All transitions of one call are applied in a single
//! SQLite transaction, so a 2xx to Stripe always means the change is durable.

use crate::bindings::{Money, Transition};
use crate::db::Db;
use crate::platform::{PlatformCustomer, PlatformInvoice};
use anyhow::{Result, anyhow};
use rusqlite::{OptionalExtension, Transaction, params};
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
    /// the host's wall clock): what finance reads as "paid on".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at_ms: Option<u64>,
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

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Storage(e.into())
    }
}

type CustomerRow = (Value, Option<String>, Option<String>);

/// One merchant's records: every invoice and customer query is scoped to it.
pub struct Records<'a> {
    db: &'a Db,
    merchant: &'a str,
}

impl<'a> Records<'a> {
    pub fn new(db: &'a Db, merchant: &'a str) -> Self {
        Self { db, merchant }
    }

    /// The document, the Stripe link and the card on file.
    fn customer(&self, id: &str) -> Result<Option<CustomerRow>> {
        let conn = self.db.conn();
        let row: Option<(String, Option<String>, Option<String>)> = conn
            .query_row(
                "SELECT doc, stripe_customer_id, card_on_file FROM customers
                 WHERE merchant = ?1 AND id = ?2",
                [self.merchant, id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
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
        let conn = self.db.conn();
        Ok(conn
            .query_row("SELECT charges_enabled, details_submitted, disconnected FROM accounts WHERE id = ?1", [id], |r| {
                Ok(serde_json::json!({"id": id, "chargesEnabled": r.get::<_, bool>(0)?,
                    "detailsSubmitted": r.get::<_, bool>(1)?, "disconnected": r.get::<_, bool>(2)?}))
            })
            .optional()?)
    }

    pub fn invoice(&self, id: &str) -> Result<Option<(Value, InvoiceState)>> {
        let conn = self.db.conn();
        let row: Option<(String, String)> = conn
            .query_row(
                "SELECT doc, state FROM invoices WHERE merchant = ?1 AND id = ?2",
                [self.merchant, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
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
        let conn = self.db.conn();
        let n = conn.execute(
            "INSERT OR IGNORE INTO invoices (merchant, id, doc, state) VALUES (?1, ?2, ?3, ?4)",
            params![
                self.merchant,
                id,
                doc.to_string(),
                serde_json::to_string(&state)?
            ],
        )?;
        Ok(n == 1)
    }

    /// Keeps the platform's new `amountDue` on the invoice document.
    pub fn set_amount_due(&self, id: &str, amount_due: &str) -> Result<()> {
        let conn = self.db.conn();
        conn.execute(
            "UPDATE invoices SET doc = json_set(doc, '$.amountDue', ?3)
             WHERE merchant = ?1 AND id = ?2",
            params![self.merchant, id, amount_due],
        )?;
        Ok(())
    }

    pub fn put_customer(&self, id: &str, doc: &Value) -> Result<()> {
        let conn = self.db.conn();
        conn.execute(
            "INSERT INTO customers (merchant, id, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT (merchant, id) DO UPDATE SET doc = excluded.doc",
            params![self.merchant, id, doc.to_string()],
        )?;
        Ok(())
    }

    pub fn set_status_if(&self, id: &str, from: &str, to: &str) -> Result<()> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        if let Some(mut st) = load_state(&tx, self.merchant, id)?
            && st.status == from
        {
            st.status = to.into();
            save_state(&tx, self.merchant, id, &st)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Applies every transition, or none.
    pub fn apply(&self, transitions: &[Transition]) -> Result<(), ApplyError> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        for t in transitions {
            apply_one(&tx, self.merchant, t)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Where the last stored sync of `merchant` ended.
    pub fn sync_cursor(&self, merchant: &str) -> Result<Option<String>> {
        let conn = self.db.conn();
        let cursor = conn
            .query_row(
                "SELECT cursor FROM sync_cursors WHERE merchant = ?1",
                [merchant],
                |r| r.get(0),
            )
            .optional()?;
        Ok(cursor)
    }

    /// Applies a sync's transitions and keeps its cursor, both or neither:
    /// a sync whose result was not stored is simply read again.
    pub fn apply_synced(
        &self,
        merchant: &str,
        cursor: &str,
        transitions: &[Transition],
    ) -> Result<(), ApplyError> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        for t in transitions {
            apply_one(&tx, self.merchant, t)?;
        }
        tx.execute(
            "INSERT INTO sync_cursors (merchant, cursor) VALUES (?1, ?2)
             ON CONFLICT (merchant) DO UPDATE SET cursor = excluded.cursor",
            params![merchant, cursor],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The emails sent under the merchant's namespace (its account).
    pub fn outbox(&self, namespace: &str) -> Result<Vec<Value>> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare(
            "SELECT ns, dedupe_key, recipients, cc, subject, text_body, html_body, created_ms
             FROM outbox WHERE ns = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([namespace], |r| {
            Ok(serde_json::json!({
                "account": r.get::<_, String>(0)?,
                "dedupeKey": r.get::<_, String>(1)?,
                "to": r.get::<_, String>(2)?,
                "cc": r.get::<_, String>(3)?,
                "subject": r.get::<_, String>(4)?,
                "text": r.get::<_, String>(5)?,
                "html": r.get::<_, Option<String>>(6)?,
                "createdMs": r.get::<_, i64>(7)?,
            }))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn into_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn load_state(
    tx: &Transaction,
    merchant: &str,
    id: &str,
) -> Result<Option<InvoiceState>, ApplyError> {
    let s: Option<String> = tx
        .query_row(
            "SELECT state FROM invoices WHERE merchant = ?1 AND id = ?2",
            [merchant, id],
            |r| r.get(0),
        )
        .optional()?;
    s.map(|s| serde_json::from_str(&s).map_err(|e| ApplyError::Storage(anyhow!(e))))
        .transpose()
}

fn save_state(
    tx: &Transaction,
    merchant: &str,
    id: &str,
    st: &InvoiceState,
) -> Result<(), ApplyError> {
    let json = serde_json::to_string(st).map_err(|e| ApplyError::Storage(anyhow!(e)))?;
    tx.execute(
        "UPDATE invoices SET state = ?3 WHERE merchant = ?1 AND id = ?2",
        params![merchant, id, json],
    )?;
    Ok(())
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
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn apply_one(tx: &Transaction, merchant: &str, t: &Transition) -> Result<(), ApplyError> {
    let invoice_id = match t {
        Transition::CustomerLinked(l) => {
            tx.execute(
                "INSERT INTO customers (merchant, id, doc, stripe_customer_id)
                 VALUES (?1, ?2, '{}', ?3) ON CONFLICT (merchant, id)
                 DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id",
                params![merchant, l.customer_id, l.stripe_customer_id],
            )?;
            return Ok(());
        }
        Transition::CustomerUnlinked(id) => {
            tx.execute(
                "UPDATE customers SET stripe_customer_id = NULL WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
            )?;
            return Ok(());
        }
        Transition::CardOnFileChanged(c) => {
            tx.execute(
                "UPDATE customers SET card_on_file = ?3
                 WHERE merchant = ?1 AND stripe_customer_id = ?2",
                params![merchant, c.stripe_customer_id, c.payment_method_id],
            )?;
            return Ok(());
        }
        Transition::AccountUpdated(a) => {
            tx.execute(
                "INSERT INTO accounts (id, charges_enabled, details_submitted) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET charges_enabled = excluded.charges_enabled,
                 details_submitted = excluded.details_submitted, disconnected = 0",
                params![a.account_id, a.charges_enabled, a.details_submitted],
            )?;
            return Ok(());
        }
        Transition::AccountDisconnected(id) => {
            tx.execute(
                "INSERT INTO accounts (id, disconnected) VALUES (?1, 1) ON CONFLICT (id) DO UPDATE SET disconnected = 1, charges_enabled = 0",
                [id],
            )?;
            return Ok(());
        }
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
                st.paid_at_ms = Some(wall_clock_ms());
            }
            st.amount_paid = (s.amount_paid.minor > 0).then(|| s.amount_paid.decimal.clone());
            st.amount_refunded =
                (s.amount_refunded.minor > 0).then(|| s.amount_refunded.decimal.clone());
        }
        Transition::Overpaid(o) => {
            upsert_payment(&mut st, &o.stripe_ref, &o.payment);
            st.overpaid = Some(o.excess.decimal.clone());
        }
        Transition::CollectionStopped(c) => st.collection_stopped = Some(c.reason.name().into()),
        Transition::CollectionResumed(_) => st.collection_stopped = None,
        Transition::PaymentLinkAttached(l) => {
            st.payment_link = Some(l.url.clone());
            st.checkout_session_id = l.checkout_session_id.clone();
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
