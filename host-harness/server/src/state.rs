//! The host's records of invoices and customers, and how transitions from the
//! plugin change them. All transitions of one call are applied in a single
//! store transaction, so a 2xx to Stripe always means the change is durable.

use crate::bindings::Transition;
use crate::db::Db;
use crate::db::{RecordsTx, StoreError, TxAbort};
use crate::platform::{PlatformCustomer, PlatformInvoice};
use anyhow::{Context, Result, anyhow};
use serde_json::{Map, Value};

pub use crate::transitions::{InvoiceState, PaymentRecord};

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
    /// The merchant's connected account now ("" for the platform's own):
    /// the work its transitions queue runs only while it still has it.
    account: &'a str,
    /// The host's clock now (ms), for what is stamped on a record.
    now_ms: u64,
}

impl<'a> Records<'a> {
    /// `now_ms` is the host's clock now: what a record changed now is stamped with.
    pub fn new(db: &'a Db, merchant: &'a str, now_ms: u64) -> Self {
        Self {
            db,
            merchant,
            account: "",
            now_ms,
        }
    }

    /// The records of a merchant that has connected account `account`.
    pub fn of_account(self, account: &'a str) -> Self {
        Self { account, ..self }
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
                "detailsSubmitted": a.details_submitted, "disconnected": a.disconnected,
                "restricted": a.restricted})
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

    /// The invoices of the customer linked to `stripe_customer` that are
    /// still to be paid through Stripe, with their views (for the card page).
    pub fn unpaid_invoices_of(
        &self,
        stripe_customer: &str,
    ) -> Result<Vec<(PlatformInvoice, InvoiceState)>> {
        let mut rows = Vec::new();
        self.transaction(&mut |tx| {
            rows = tx.invoices_of_stripe_customer(self.merchant, stripe_customer)?;
            Ok(())
        })?;
        let mut out = Vec::new();
        for (_, doc, state) in rows {
            let st: InvoiceState = serde_json::from_str(&state)?;
            let unpaid = matches!(
                st.status.as_str(),
                "FINAL" | "ACTION_REQUIRED" | "PAYMENT_FAILED" | "PARTIALLY_PAID"
            );
            if unpaid && st.collection_stopped.is_none() && st.payment_link.is_some() {
                out.push((serde_json::from_str(&doc)?, st));
            }
        }
        Ok(out)
    }

    /// Applies every transition, or none.
    fn scope(&self) -> Applying<'_> {
        Applying {
            merchant: self.merchant,
            account: self.account,
            now_ms: self.now_ms,
        }
    }

    /// A collect job's transitions, in one transaction: the retry it was
    /// (due at `due_ms`) is over, and the invoice view shows a next one
    /// only if the plugin scheduled it.
    pub fn apply_collected(
        &self,
        invoice: &str,
        due_ms: u64,
        transitions: &[Transition],
    ) -> Result<(), ApplyError> {
        let was = crate::transitions::rfc3339(due_ms);
        self.transaction(&mut |tx| {
            if let Some(mut st) = load_state(tx, self.merchant, invoice)?
                && st.next_retry_at.as_deref() == Some(was.as_str())
            {
                st.no_retry();
                save_state(tx, self.merchant, invoice, &st)?;
            }
            apply_all(tx, self.scope(), transitions)
        })
    }

    pub fn apply(&self, transitions: &[Transition]) -> Result<(), ApplyError> {
        self.transaction(&mut |tx| apply_all(tx, self.scope(), transitions))
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
            apply_all(tx, self.scope(), transitions)?;
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

/// A call's transitions, in the store's transaction: each invoice's view is
/// read once (locked until the transaction ends), changed by the contract's
/// pure rule (`transitions::apply`) transition by transition, and written
/// once at the end if it changed (a redelivery writes nothing); a pay link's
/// token is indexed for revocation.
/// Whose transitions are applied, and when.
#[derive(Clone, Copy)]
struct Applying<'a> {
    merchant: &'a str,
    account: &'a str,
    now_ms: u64,
}

fn apply_all(
    tx: &mut dyn RecordsTx,
    at: Applying,
    transitions: &[Transition],
) -> Result<(), ApplyError> {
    let merchant = at.merchant;
    let mut views = Views::default();
    for t in transitions {
        let Some(invoice_id) = crate::transitions::invoice_of(t) else {
            apply_beside_invoices(tx, merchant, t)?;
            if let Transition::CardOnFileChanged(c) = t
                && c.payment_method_id.is_some()
            {
                collect_with_new_card(tx, at, &c.stripe_customer_id)?;
            }
            if let Transition::AccountUpdated(a) = t
                && !a.restricted
                && a.account_id == at.account
            {
                // Collection that waited for the account resumes now.
                let now = i64::try_from(at.now_ms).unwrap_or(i64::MAX);
                tx.wake_parked_collections(merchant, now)?;
            }
            continue;
        };
        let st = views.of(tx, merchant, invoice_id)?;
        if let Transition::PaymentLinkAttached(l) = t
            && let Some(token) = l.url.rsplit('/').next().filter(|t| !t.is_empty())
        {
            tx.index_pay_link(merchant, &crate::tokens::sha256_hex(token), invoice_id)?;
        }
        if let Transition::CollectionScheduled(c) = t {
            schedule(tx, at, c)?;
        }
        // A stale status is dropped; the rest of the call still applies.
        crate::transitions::apply(st, t, at.now_ms);
    }
    for (id, stored, now) in &views.0 {
        let settled = |s: &InvoiceState| s.status == "PAID" || s.collection_stopped.is_some();
        if settled(now) && !settled(stored) {
            // Paid or stopped now: the wake-ups queued for it are dropped.
            tx.cancel_collections(merchant, id)?;
        }
    }
    views.save_changed(tx, merchant)
}

/// The queue's subject and run time of a `collection-scheduled`: at its
/// time (`{invoice}@{ms}`), or parked until the merchant's account is
/// restored (`{invoice}@restored`, at `db::PARKED`).
pub fn collection_job(c: &crate::bindings::CollectionScheduled) -> (String, i64) {
    match c.reason {
        crate::bindings::CollectionReason::AccountRestored => {
            (format!("{}@restored", c.invoice_id), crate::db::PARKED)
        }
        crate::bindings::CollectionReason::Retry => {
            let due = i64::try_from(c.due_at_ms).unwrap_or(i64::MAX - 1);
            (format!("{}@{due}", c.invoice_id), due)
        }
    }
}

/// A card on file is new (saved on the customer's card page, or reissued
/// by the card network): each of the customer's invoices whose payment
/// failed, or whose retry waits, is collected now. The plugin charges the
/// card only where it was not declined for that invoice.
fn collect_with_new_card(
    tx: &mut dyn RecordsTx,
    at: Applying,
    stripe_customer: &str,
) -> Result<(), ApplyError> {
    for (id, _, state) in tx.invoices_of_stripe_customer(at.merchant, stripe_customer)? {
        let st: InvoiceState =
            serde_json::from_str(&state).map_err(|e| ApplyError::Storage(anyhow!(e)))?;
        let waiting = st.status == "PAYMENT_FAILED" || st.next_retry_at.is_some();
        if waiting && st.collection_stopped.is_none() {
            let now = crate::bindings::CollectionScheduled {
                invoice_id: id,
                due_at_ms: at.now_ms,
                reason: crate::bindings::CollectionReason::Retry,
                retries_left: 0,
            };
            schedule(tx, at, &now)?;
        }
    }
    Ok(())
}

/// Queues the wake-up a `collection-scheduled` asks for, in the same
/// transaction: a restart, or another worker, still runs it.
fn schedule(
    tx: &mut dyn RecordsTx,
    at: Applying,
    c: &crate::bindings::CollectionScheduled,
) -> Result<(), ApplyError> {
    let (subject, run_at) = collection_job(c);
    let created = i64::try_from(at.now_ms).unwrap_or(i64::MAX);
    Ok(tx.schedule_collection(&crate::db::NewJob {
        merchant: at.merchant,
        kind: crate::db::COLLECT_JOB,
        subject: &subject,
        run_at_ms: run_at.max(created),
        created_ms: created,
        error: "",
        account: at.account,
    })?)
}

/// The invoices' views one transaction changes: as read, and as changed.
#[derive(Default)]
struct Views(Vec<(String, InvoiceState, InvoiceState)>);

impl Views {
    /// The view of `id` as changed so far, read on first use.
    fn of(
        &mut self,
        tx: &mut dyn RecordsTx,
        merchant: &str,
        id: &str,
    ) -> Result<&mut InvoiceState, ApplyError> {
        let at = match self.0.iter().position(|(i, _, _)| i == id) {
            Some(at) => at,
            None => {
                let stored = load_state(tx, merchant, id)?
                    .ok_or_else(|| ApplyError::UnknownInvoice(id.to_string()))?;
                self.0.push((id.to_string(), stored.clone(), stored));
                self.0.len() - 1
            }
        };
        Ok(&mut self.0[at].2)
    }

    fn save_changed(self, tx: &mut dyn RecordsTx, merchant: &str) -> Result<(), ApplyError> {
        for (id, stored, now) in &self.0 {
            if now != stored {
                save_state(tx, merchant, id, now)?;
            }
        }
        Ok(())
    }
}

/// A transition about a customer or a connected account, not an invoice.
fn apply_beside_invoices(
    tx: &mut dyn RecordsTx,
    merchant: &str,
    t: &Transition,
) -> Result<(), ApplyError> {
    match t {
        Transition::CustomerLinked(l) => {
            Ok(tx.link_customer(merchant, &l.customer_id, &l.stripe_customer_id)?)
        }
        Transition::CustomerUnlinked(id) => Ok(tx.unlink_customer(merchant, id)?),
        Transition::CardOnFileChanged(c) => {
            let card = c.payment_method_id.as_deref();
            Ok(tx.set_card_on_file(merchant, &c.stripe_customer_id, card)?)
        }
        Transition::AccountUpdated(a) => {
            let news = crate::db::AccountNews {
                charges_enabled: a.charges_enabled,
                details_submitted: a.details_submitted,
                restricted: a.restricted,
            };
            Ok(tx.account_updated(merchant, &a.account_id, news)?)
        }
        Transition::AccountDisconnected(id) => Ok(tx.account_disconnected(merchant, id)?),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{InvoiceStatus, Money, Payment, PaymentStatus};

    fn money(minor: u64) -> Money {
        Money {
            minor,
            decimal: format!("{}.00", minor / 100),
            currency: "GBP".into(),
        }
    }

    fn payment() -> Transition {
        Transition::InvoicePaid(Payment {
            invoice_id: "inv_1".into(),
            stripe_ref: "pi_1".into(),
            amount: money(1200),
            total_paid: money(1200),
        })
    }

    fn paid(revision: u64) -> Transition {
        Transition::StatusChanged(InvoiceStatus {
            invoice_id: "inv_1".into(),
            status: PaymentStatus::Paid,
            amount_paid: money(1200),
            amount_refunded: money(0),
            revision,
        })
    }

    /// Counts the reads and writes of invoices' rows, passing all through.
    struct Counting<'a> {
        inner: &'a mut dyn RecordsTx,
        reads: usize,
        saves: usize,
    }

    impl RecordsTx for Counting<'_> {
        fn invoice_state(&mut self, m: &str, id: &str) -> crate::db::StoreResult<Option<String>> {
            self.reads += 1;
            self.inner.invoice_state(m, id)
        }
        fn save_invoice_state(&mut self, m: &str, id: &str, s: &str) -> crate::db::StoreResult<()> {
            self.saves += 1;
            self.inner.save_invoice_state(m, id, s)
        }
        fn link_customer(&mut self, m: &str, id: &str, s: &str) -> crate::db::StoreResult<()> {
            self.inner.link_customer(m, id, s)
        }
        fn unlink_customer(&mut self, m: &str, id: &str) -> crate::db::StoreResult<()> {
            self.inner.unlink_customer(m, id)
        }
        fn set_card_on_file(
            &mut self,
            m: &str,
            c: &str,
            p: Option<&str>,
        ) -> crate::db::StoreResult<()> {
            self.inner.set_card_on_file(m, c, p)
        }
        fn account_updated(
            &mut self,
            m: &str,
            id: &str,
            news: crate::db::AccountNews,
        ) -> crate::db::StoreResult<()> {
            self.inner.account_updated(m, id, news)
        }
        fn schedule_collection(&mut self, job: &crate::db::NewJob) -> crate::db::StoreResult<()> {
            self.inner.schedule_collection(job)
        }
        fn cancel_collections(&mut self, m: &str, i: &str) -> crate::db::StoreResult<()> {
            self.inner.cancel_collections(m, i)
        }
        fn wake_parked_collections(&mut self, m: &str, now: i64) -> crate::db::StoreResult<()> {
            self.inner.wake_parked_collections(m, now)
        }
        fn account_disconnected(&mut self, m: &str, id: &str) -> crate::db::StoreResult<()> {
            self.inner.account_disconnected(m, id)
        }
        fn set_sync_cursor(&mut self, k: &str, c: &str) -> crate::db::StoreResult<()> {
            self.inner.set_sync_cursor(k, c)
        }
        fn index_pay_link(&mut self, m: &str, t: &str, i: &str) -> crate::db::StoreResult<()> {
            self.inner.index_pay_link(m, t, i)
        }
        fn invoices_of_stripe_customer(
            &mut self,
            m: &str,
            c: &str,
        ) -> crate::db::StoreResult<Vec<(String, String, String)>> {
            self.inner.invoices_of_stripe_customer(m, c)
        }
    }

    /// A call's transitions about one invoice (a payment and the status it
    /// brings) read its row once and write it once, in one transaction.
    #[test]
    fn one_read_and_one_write_per_invoice_per_call() {
        let db = Db::in_memory().unwrap();
        let records = Records::new(&db, crate::db::DEFAULT_MERCHANT, 1_000);
        records
            .insert_draft(&serde_json::json!({}), "inv_1")
            .unwrap();
        let (mut reads, mut saves) = (0, 0);
        db.records_tx(&mut |tx| {
            let mut counting = Counting {
                inner: tx,
                reads: 0,
                saves: 0,
            };
            let at = Applying {
                merchant: crate::db::DEFAULT_MERCHANT,
                account: "",
                now_ms: 1_000,
            };
            let result = apply_all(&mut counting, at, &[payment(), paid(1)]);
            (reads, saves) = (counting.reads, counting.saves);
            result.map_err(|e| TxAbort::Refused(e.to_string()))
        })
        .unwrap();
        assert_eq!((reads, saves), (1, 1));
        let (_, st) = records.invoice("inv_1").unwrap().unwrap();
        assert_eq!((st.status.as_str(), st.payments.len()), ("PAID", 1));
    }

    /// A redelivery (the same status again, or a stale one) changes nothing
    /// in the invoice's view, so nothing is written: no WAL frames, and a
    /// group commit with nothing new to sync.
    #[test]
    fn a_transition_that_changes_nothing_writes_nothing() {
        let db = Db::in_memory().unwrap();
        let state = Records::new(&db, crate::db::DEFAULT_MERCHANT, 1_000);
        state.insert_draft(&serde_json::json!({}), "inv_1").unwrap();
        let changes = || db.sqlite().unwrap().total_changes();
        state.apply(&[payment(), paid(1)]).unwrap();
        let after_first = changes();
        state.apply(&[payment(), paid(1)]).unwrap();
        state.apply(&[paid(0)]).unwrap();
        assert_eq!(changes(), after_first, "the same status again was written");
        state.apply(&[paid(2)]).unwrap();
        assert_eq!(changes(), after_first + 1, "a newer revision is written");
        assert_eq!(state.invoice("inv_1").unwrap().unwrap().1.status, "PAID");
    }
}
