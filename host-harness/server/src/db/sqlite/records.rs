//! The platform's customers and invoices, their accounts and cursors, and
//! the transaction the plugin's transitions are applied in.

use super::*;
use crate::db::{AccountNews, COLLECT_JOB, PARKED, RecordStore};

struct SqliteTx<'a, 'c>(&'a Transaction<'c>);

impl RecordsTx for SqliteTx<'_, '_> {
    fn invoice_state(&mut self, merchant: &str, id: &str) -> StoreResult<Option<String>> {
        self.0
            .row_cached(
                "SELECT state FROM invoices WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
                |r| r.get(0),
            )
            .optional()
            .map_err(failure)
    }

    fn save_invoice_state(&mut self, merchant: &str, id: &str, state: &str) -> StoreResult<()> {
        self.0
            .exec_cached(
                "UPDATE invoices SET state = ?3 WHERE merchant = ?1 AND id = ?2",
                params![merchant, id, state],
            )
            .map(drop)
            .map_err(failure)
    }

    fn link_customer(&mut self, merchant: &str, id: &str, stripe_id: &str) -> StoreResult<()> {
        self.0
            .exec_cached(
                "INSERT INTO customers (merchant, id, doc, stripe_customer_id)
                 VALUES (?1, ?2, '{}', ?3) ON CONFLICT (merchant, id)
                 DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id",
                params![merchant, id, stripe_id],
            )
            .map(drop)
            .map_err(failure)
    }

    fn unlink_customer(&mut self, merchant: &str, id: &str) -> StoreResult<()> {
        self.0
            .exec_cached(
                "UPDATE customers SET stripe_customer_id = NULL WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
            )
            .map(drop)
            .map_err(failure)
    }

    fn invoices_of_stripe_customer(
        &mut self,
        merchant: &str,
        stripe_customer: &str,
    ) -> StoreResult<Vec<(String, String, String)>> {
        let mut stmt = self
            .0
            .prepare_cached(
                "SELECT i.id, i.doc, i.state FROM invoices i JOIN customers c
                 ON c.merchant = i.merchant AND c.id = json_extract(i.doc, '$.customerId')
                 WHERE i.merchant = ?1 AND c.stripe_customer_id = ?2 ORDER BY i.id",
            )
            .map_err(failure)?;
        let rows = stmt
            .query_map([merchant, stripe_customer], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(failure)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(failure)
    }

    fn set_card_on_file(
        &mut self,
        merchant: &str,
        stripe_customer: &str,
        payment_method: Option<&str>,
    ) -> StoreResult<()> {
        self.0
            .exec_cached(
                "UPDATE customers SET card_on_file = ?3
                 WHERE merchant = ?1 AND stripe_customer_id = ?2",
                params![merchant, stripe_customer, payment_method],
            )
            .map(drop)
            .map_err(failure)
    }

    fn account_updated(&mut self, merchant: &str, id: &str, news: AccountNews) -> StoreResult<()> {
        self.0
            .exec_cached(
                "INSERT INTO accounts (merchant, id, charges_enabled, details_submitted, restricted)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (merchant, id) DO UPDATE SET charges_enabled = excluded.charges_enabled,
                 details_submitted = excluded.details_submitted, restricted = excluded.restricted,
                 disconnected = 0",
                params![
                    merchant,
                    id,
                    news.charges_enabled,
                    news.details_submitted,
                    news.restricted
                ],
            )
            .map(drop)
            .map_err(failure)
    }

    fn schedule_collection(&mut self, job: &NewJob) -> StoreResult<()> {
        self.0
            .exec_cached(super::jobs::INSERT_JOB, super::jobs::job_params(job))
            .map(drop)
            .map_err(failure)
    }

    fn wake_parked_collections(&mut self, merchant: &str, now_ms: i64) -> StoreResult<()> {
        self.0
            .exec_cached(
                "UPDATE jobs SET run_at_ms = ?3 WHERE merchant = ?1 AND kind = ?2 AND run_at_ms = ?4",
                params![merchant, COLLECT_JOB, now_ms, PARKED],
            )
            .map(drop)
            .map_err(failure)
    }

    fn cancel_collections(&mut self, merchant: &str, invoice: &str) -> StoreResult<()> {
        // Subjects `{invoice}@{ms}`: '@' < 'A', so the range holds exactly them.
        self.0
            .exec_cached(
                "DELETE FROM jobs WHERE merchant = ?1 AND kind = ?2 AND subject >= ?3 AND subject < ?4",
                params![
                    merchant,
                    COLLECT_JOB,
                    format!("{invoice}@"),
                    format!("{invoice}A")
                ],
            )
            .map(drop)
            .map_err(failure)
    }

    fn account_disconnected(&mut self, merchant: &str, id: &str) -> StoreResult<()> {
        self.0
            .exec_cached(
                "INSERT INTO accounts (merchant, id, disconnected) VALUES (?1, ?2, 1)
                 ON CONFLICT (merchant, id) DO UPDATE SET disconnected = 1, charges_enabled = 0",
                [merchant, id],
            )
            .map(drop)
            .map_err(failure)
    }

    fn set_sync_cursor(&mut self, key: &str, cursor: &str) -> StoreResult<()> {
        self.0
            .exec_cached(
                "INSERT INTO sync_cursors (merchant, cursor) VALUES (?1, ?2)
                 ON CONFLICT (merchant) DO UPDATE SET cursor = excluded.cursor",
                params![key, cursor],
            )
            .map(drop)
            .map_err(failure)
    }

    fn index_pay_link(
        &mut self,
        merchant: &str,
        token_sha256: &str,
        invoice: &str,
    ) -> StoreResult<()> {
        self.0
            .exec_cached(
                "INSERT OR IGNORE INTO pay_links (merchant, token_sha256, invoice) VALUES (?1, ?2, ?3)",
                params![merchant, token_sha256, invoice],
            )
            .map(drop)
            .map_err(failure)
    }
}

impl RecordStore for Sqlite {
    fn customer(&self, merchant: &str, id: &str) -> StoreResult<Option<CustomerRow>> {
        self.conn()
            .row_cached(
                "SELECT doc, stripe_customer_id, card_on_file FROM customers
                 WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(failure)
    }

    fn put_customer(&self, merchant: &str, id: &str, doc: &str) -> StoreResult<()> {
        self.conn()
            .exec_cached(
                "INSERT INTO customers (merchant, id, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (merchant, id) DO UPDATE SET doc = excluded.doc",
                params![merchant, id, doc],
            )
            .map(drop)
            .map_err(failure)
    }

    fn account(&self, merchant: &str, id: &str) -> StoreResult<Option<AccountRow>> {
        self.conn()
            .row_cached(
                "SELECT charges_enabled, details_submitted, disconnected, restricted
                 FROM accounts WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
                |r| {
                    Ok(AccountRow {
                        charges_enabled: r.get(0)?,
                        details_submitted: r.get(1)?,
                        disconnected: r.get(2)?,
                        restricted: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(failure)
    }

    fn invoice(&self, merchant: &str, id: &str) -> StoreResult<Option<(String, String)>> {
        self.conn()
            .row_cached(
                "SELECT doc, state FROM invoices WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(failure)
    }

    fn insert_invoice(
        &self,
        merchant: &str,
        id: &str,
        doc: &str,
        state: &str,
    ) -> StoreResult<bool> {
        let n = self
            .conn()
            .exec_cached(
                "INSERT OR IGNORE INTO invoices (merchant, id, doc, state) VALUES (?1, ?2, ?3, ?4)",
                params![merchant, id, doc, state],
            )
            .map_err(failure)?;
        Ok(n == 1)
    }

    fn set_amount_due(&self, merchant: &str, id: &str, amount_due: &str) -> StoreResult<()> {
        self.conn()
            .exec_cached(
                "UPDATE invoices SET doc = json_set(doc, '$.amountDue', ?3)
                 WHERE merchant = ?1 AND id = ?2",
                params![merchant, id, amount_due],
            )
            .map(drop)
            .map_err(failure)
    }

    fn pay_link_invoice(&self, merchant: &str, token_sha256: &str) -> StoreResult<Option<String>> {
        self.conn()
            .row_cached(
                "SELECT invoice FROM pay_links WHERE merchant = ?1 AND token_sha256 = ?2",
                [merchant, token_sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(failure)
    }

    fn sync_cursor(&self, key: &str) -> StoreResult<Option<String>> {
        self.conn()
            .row_cached(
                "SELECT cursor FROM sync_cursors WHERE merchant = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(failure)
    }

    fn records_tx(&self, body: TxBody<'_, TxAbort>) -> Result<(), TxAbort> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failure)?;
        let mut writes = SqliteTx(&tx);
        body(&mut writes)?;
        tx.commit().map_err(failure)?;
        Ok(())
    }
}
